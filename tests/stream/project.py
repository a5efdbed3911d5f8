"""A small Kafka stream project for the `featql stream` tests, its events, and a brute-force
oracle of what the online store and a training set must give after streaming them.

One source `txns` (stream = kafka(...), key = txn_id, lateness = '1h', created = created_ts),
a row-level view `user_last` (ttl 7d; ties on event time broken by created, then the feature
tuple) and an aggregate view `user_aggs` (COUNT(*), COUNT(x), SUM, AVG, MIN, MAX over 1h and
1d windows, slide 1h, `WHERE channel <> 'test'`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

START = dt.datetime(2024, 3, 1)
SLIDE_S = 3600
WINDOWS = {"1h": 3600, "1d": 86400}
TTL_S = 7 * 86400
USERS = (1, 2, 3, 4)
AGGS = {"n": ("count_star", None), "n_amount": ("count", "amount"),
        "amount_sum": ("sum", "amount"), "amount_avg": ("avg", "amount"),
        "amount_min": ("min", "amount"), "amount_max": ("max", "amount")}
_SQL = {"count_star": "COUNT(*)", "count": "COUNT({})", "sum": "SUM({})", "avg": "AVG({})",
        "min": "MIN({})", "max": "MAX({})"}

SCHEMA = pa.schema([("txn_id", pa.int64()), ("user_id", pa.int64()), ("amount", pa.float64()),
                    ("channel", pa.string()), ("event_ts", pa.timestamp("us")),
                    ("created_ts", pa.timestamp("us"))])


def write_project(root: Path, topic: str, bootstrap: str,
                  history: list[dict[str, Any]]) -> Path:
    for d in ("sources", "entities", "views", "services", "data/txns"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "featql.toml").write_text(
        '[project]\nname = "streams"\n[offline]\nengine = "duckdb"\npath = "data/offline"\n'
        '[online]\nstore = "sqlite"\npath = ".featql/online.db"\n')
    (root / "sources/txns.sql").write_text(
        "-- @source(name = txns, timestamp = event_ts, created = created_ts,\n"
        "--         batch = parquet('data/txns/'),\n"
        f"--         stream = kafka(topic = '{topic}', bootstrap = '{bootstrap}', "
        "format = json),\n"
        "--         lateness = '1h', key = txn_id)\n"
        "CREATE TABLE txns (txn_id BIGINT, user_id BIGINT, amount DOUBLE, channel STRING,\n"
        "                   event_ts TIMESTAMP, created_ts TIMESTAMP);\n")
    (root / "entities/user.sql").write_text("-- @entity(name = user, keys = [user_id])\n")
    select = ",\n       ".join(
        f"{_SQL[fn].format(col)} AS {name}" for name, (fn, col) in AGGS.items())
    windows = ", ".join(f"'{w}'" for w in WINDOWS)
    (root / "views/user_aggs.sql").write_text(
        "-- @feature_view(name = user_aggs, entity = user, timestamp = event_ts,\n"
        f"--               windows = [{windows}], slide = '1h', start = '2024-03-01')\n"
        f"SELECT user_id,\n       {select}\nFROM txns\nWHERE channel <> 'test'\n"
        "GROUP BY user_id\n")
    (root / "views/user_last.sql").write_text(
        "-- @feature_view(name = user_last, entity = user, timestamp = event_ts, ttl = '7d',\n"
        "--               schedule = '1d', start = '2024-03-01')\n"
        "SELECT user_id, event_ts, amount AS last_amount, channel AS last_channel FROM txns\n")
    (root / "services/svc.sql").write_text(
        "-- @feature_service(name = svc, features = [user_aggs.*, user_last.*])\n")
    pq.write_table(pa.Table.from_pylist(history, schema=SCHEMA),
                   root / "data/txns/part-000.parquet")
    return root


def make_events(rng: random.Random, first_id: int, n: int, start: dt.datetime,
                hours: int) -> list[dict[str, Any]]:
    """Events in event-time order over `hours`, with ties (same user and time: by created, and
    same created too) and NULL amounts and channels."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        ts = start + dt.timedelta(seconds=rng.randrange(hours * 3600))
        out.append({"txn_id": first_id + i, "user_id": rng.choice(USERS),
                    "amount": None if rng.random() < 0.1 else round(rng.uniform(-5, 50), 2),
                    "channel": rng.choice(["web", "app", "app", "test", None]),
                    "event_ts": ts, "created_ts": ts + dt.timedelta(seconds=rng.randrange(5))})
    for j in range(0, n - 1, 25):  # ties: same user and event time
        a, b = out[j], out[j + 1]
        b["user_id"], b["event_ts"] = a["user_id"], a["event_ts"]
        if j % 50 == 0:
            b["created_ts"] = a["created_ts"]  # a full tie: the feature tuple decides
    out.sort(key=lambda e: e["event_ts"])
    return out


def message(e: dict[str, Any]) -> bytes:
    return json.dumps({k: v.isoformat() if isinstance(v, dt.datetime) else v
                       for k, v in e.items()}).encode()


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    """Send (key, value) messages and wait until the broker has them all."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "linger.ms": 5})
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    for key, value in messages:
        producer.produce(topic, key=key, value=value, on_delivery=delivered)
        producer.poll(0)
    remaining = producer.flush(30)
    assert remaining == 0 and failures == [], (remaining, failures[:5])


# -- the oracle -------------------------------------------------------------------------------
def _us(t: dt.datetime) -> int:
    return int(t.replace(tzinfo=dt.UTC).timestamp()) * 1_000_000 + t.microsecond


def _agg(fn: str, values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    if fn == "count_star":
        return len(values)
    if fn == "count":
        return len(present)
    if not present:
        return None
    return {"sum": math.fsum(present), "avg": math.fsum(present) / len(present),
            "min": min(present), "max": max(present)}[fn]


def expected(events: list[dict[str, Any]], user: int, t: dt.datetime, fresh: bool = True
             ) -> dict[str, Any]:
    """Every feature of `svc` for `user` at `t`, from scratch: the stream window
    `[floor(t,S) - W, t)` (batch window `[floor(t,S) - W, floor(t,S))` when not `fresh`), and
    the newest row `ts < t` within the TTL, ties by created then (amount, channel), NULL
    smallest."""
    out: dict[str, Any] = {}
    t_us = _us(t)
    floor = t_us - t_us % (SLIDE_S * 1_000_000)
    mine = [e for e in events if e["user_id"] == user]
    for w, w_s in WINDOWS.items():
        hi = t_us if fresh else floor
        rows = [e for e in mine if e["channel"] is not None and e["channel"] != "test"
                and floor - w_s * 1_000_000 <= _us(e["event_ts"]) < hi]
        for name, (fn, col) in AGGS.items():
            out[f"user_aggs.{name}_{w}"] = _agg(fn, [e[col] if col else 1 for e in rows])
    seen = [e for e in mine if _us(e["event_ts"]) < t_us
            and t_us - _us(e["event_ts"]) <= TTL_S * 1_000_000]

    def rank(e: dict[str, Any]) -> tuple[Any, ...]:
        return (e["event_ts"], e["created_ts"] or dt.datetime.min,
                (e["amount"] is not None, e["amount"] or 0.0),
                (e["channel"] is not None, e["channel"] or ""))

    best = max(seen, key=rank) if seen else None
    out["user_last.last_amount"] = best["amount"] if best else None
    out["user_last.last_channel"] = best["channel"] if best else None
    return out


def close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def check_online_and_training(root: Path, events: list[dict[str, Any]],
                               times: list[dt.datetime], online: bool = True) -> int:
    """Online lookups (unless not `online`) and a training set at `times` for every user equal
    `expected` over `events` (each event once); the number of values checked."""
    from featql.api import Project

    project = Project(root)
    checked = 0
    spine_rows = []
    wanted = []
    for t in times:
        rows = (project.online("svc", [{"user_id": u} for u in USERS], at=t) if online
                else [{} for _ in USERS])
        for u, row in zip(USERS, rows, strict=True):
            want = expected(events, u, t)
            if online:
                bad = {k: (row.get(k), v) for k, v in want.items() if not close(row.get(k), v)}
                assert bad == {}, (u, t, bad)
            checked += len(want)
            spine_rows.append({"user_id": u, "ts": t})
            wanted.append(want)
    spine = pa.Table.from_pylist(spine_rows, schema=pa.schema(
        [("user_id", pa.int64()), ("ts", pa.timestamp("us"))]))
    table = project.training_set("svc", spine).to_pylist()
    for row, want, spine_row in zip(table, wanted, spine_rows, strict=True):
        got = {k: row[k.replace(".", "__")] for k in want}
        bad = {k: (got[k], v) for k, v in want.items() if not close(got[k], v)}
        assert bad == {}, (spine_row, bad)
    return checked
