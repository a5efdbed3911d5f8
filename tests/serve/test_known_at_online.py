"""As known at, online (PRODUCT §3), on SQLite and on a real DynamoDB wire-protocol server: the
load keeps per entity the newest row created by the load time, a lookup serves it once it had
arrived, and a replay at a time before it arrived is refused (the issue's case: a row written on
01-05 that arrived on 01-20 is not served at 01-10, and is at 01-21)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from runtime.test_known_at import AT_10, AT_21, ISSUE_ROWS, NOW, write_project

from featql.compiler.project import compile_project
from featql.jobs.materialize import materialize
from featql.jobs.online_load import load_online
from featql.online.base import OnlineStore
from featql.online.codec import to_micros
from featql.online.lookup import OnlineService, RequestError


def test_the_online_store_serves_the_row_once_it_has_arrived(store: OnlineStore,
                                                             tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", ISSUE_ROWS)
    result = compile_project(root)
    m = result.manifest
    assert m is not None
    materialize(root, m, "dev", engine="duckdb", config=result.config, now=NOW)
    online = OnlineService(m, store, root)
    # loaded on 01-15: the 01-05 row had not arrived; the 01-02 row is served
    load_online(root, m, "dev", store=store, now=datetime(2024, 1, 15))
    [got], _ = online.lookup("svc", [{"user_id": 1}], now_us=to_micros(AT_10))
    assert (got["profile.score"], got["profile.tier"]) == (-2.0, "b")
    assert got["profile_flags.positive"] is False
    # loaded on 01-25: it had; served from 01-20 on, and a replay before is refused
    load_online(root, m, "dev", store=store, now=datetime(2024, 1, 25))
    [got], _ = online.lookup("svc", [{"user_id": 1}], now_us=to_micros(AT_21))
    assert (got["profile.score"], got["profile.tier"]) == (1.0, "a")
    assert got["profile_flags.positive"] is True
    with pytest.raises(RequestError) as e:
        online.lookup("svc", [{"user_id": 1}], now_us=to_micros(AT_10))
    assert (e.value.status, e.value.code, e.value.field) == (422, "at_before_online_data", "at")
    assert e.value.message == (
        "cannot replay profile for user#[1] at 2024-01-10T00:00:00: the online store keeps "
        "only the newest row per entity, and that row is from that time or later or was "
        "created after it (the view is known_at); compute a training set to see older values")
    # a load at an earlier time never brings the older row back (last-writer-wins)
    load_online(root, m, "dev", store=store, now=datetime(2024, 1, 15), full=True)
    [got], _ = online.lookup("svc", [{"user_id": 1}], now_us=to_micros(AT_21))
    assert got["profile.score"] == 1.0


def test_a_pushed_row_is_served_only_once_created(tmp_path: Path) -> None:
    """Push ingest of a known_at stream source writes no cell for a row created in the future
    (it would hide the row a training set uses now), nor for one without a created time."""
    from featql.jobs.ingest import ingest_events
    from featql.online.sqlite import SqliteStore

    root = write_project(tmp_path / "p", ISSUE_ROWS[1:])
    (root / "data" / "stream").mkdir()
    src = (root / "sources" / "profiles.sql").read_text()
    (root / "sources" / "profiles.sql").write_text(src.replace(
        "batch = parquet('data/profiles/'))",
        "batch = parquet('data/profiles/'),\n--         stream = files('data/stream/', "
        "format = json), key = updated_at)"))
    result = compile_project(root)
    assert result.ok, [d.headline() for d in result.diagnostics]
    m = result.manifest
    store = SqliteStore(root / "online.db", "dev")
    try:
        load_online(root, m, "dev", store=store, now=NOW)
        online = OnlineService(m, store, root)
        future = {"user_id": 1, "score": 9.0, "tier": "z", "updated_at": "2024-02-01 00:00:00",
                  "arrived_at": "2099-01-01 00:00:00"}
        unknown = {**future, "updated_at": "2024-02-02 00:00:00", "arrived_at": None}
        ingest_events(root, m, "dev", "profiles", [future, unknown], store=store)
        [got], _ = online.lookup("svc", [{"user_id": 1}], now_us=to_micros(NOW))
        assert got["profile.score"] == -2.0  # the row known now, not the pushed ones
        arrived = {**future, "updated_at": "2024-02-03 00:00:00",
                   "arrived_at": "2024-02-03 00:00:00"}
        ingest_events(root, m, "dev", "profiles", [arrived], store=store)
        [got], _ = online.lookup("svc", [{"user_id": 1}], now_us=to_micros(NOW))
        assert got["profile.score"] == 9.0
    finally:
        store.close()
