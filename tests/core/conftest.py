"""Fixtures for compiler-core tests: small inline projects written into tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

BASE: dict[str, str] = {
    "featql.toml": '[project]\nname = "mini"\n',
    "sources/events.sql": (
        "-- @source(name = events, timestamp = ts, created = created_ts,\n"
        "--         batch = parquet('data/events/'))\n"
        "CREATE TABLE events (user_id BIGINT, amount DOUBLE, kind STRING, ts TIMESTAMP,\n"
        "                     created_ts TIMESTAMP);\n"
    ),
    "sources/users.sql": (
        "-- @source(name = users, timestamp = updated_at, batch = parquet('data/users/'))\n"
        "CREATE TABLE users (user_id BIGINT, country STRING, updated_at TIMESTAMP);\n"
    ),
    "entities/user.sql": "-- @entity(name = user, keys = [user_id BIGINT])\n",
    "views/profile.sql": (
        "-- @feature_view(name = profile, entity = user, timestamp = updated_at,\n"
        "--               ttl = '30d', start = '2024-01-01')\n"
        "-- @owner('team-a')\n"
        "SELECT u.user_id, u.updated_at, u.country, LENGTH(u.country) AS country_len\n"
        "FROM users AS u\n"
        "WHERE u.country IS NOT NULL\n"
    ),
    "views/spend.sql": (
        "-- @feature_view(name = spend, entity = user, timestamp = ts,\n"
        "--               windows = ['1d', '7d'], slide = '1d', start = '2024-01-01')\n"
        "SELECT user_id, COUNT(*) AS n, SUM(amount) AS total, AVG(amount) AS mean\n"
        "FROM events WHERE amount > 0 GROUP BY user_id\n"
    ),
    "services/svc.sql": "-- @feature_service(name = svc, features = [profile.*, spend.total_7d])\n",
}

Writer = Callable[..., Path]


@pytest.fixture
def write_project(tmp_path: Path) -> Writer:
    """write_project(overrides) writes BASE with overrides (None deletes a file)."""
    counter = {"n": 0}

    def write(overrides: dict[str, str | None] | None = None) -> Path:
        counter["n"] += 1
        root = tmp_path / f"p{counter['n']}"
        files = {**BASE, **(overrides or {})}
        for rel, text in files.items():
            if text is None:
                continue
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root

    return write
