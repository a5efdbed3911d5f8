"""A small project written into tmp_path that the registry tests edit, apply and plan."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from featql.compiler.project import compile_project
from featql.core.ir import Manifest
from featql.registry import SqliteRegistry, open_registry
from featql.registry.applier import build_plan, record
from featql.registry.planner import Plan
from featql.registry.render import plan_text

NOW = datetime(2024, 3, 1)

FILES = {
    "featql.toml": '[project]\nname = "reg"\n',
    "sources/txns.sql": """\
-- @source(name = txns, timestamp = event_ts, batch = parquet('data/txns/'))
CREATE TABLE txns (
  user_id  BIGINT,
  amount   DOUBLE,
  channel  STRING,
  event_ts TIMESTAMP
);
""",
    "entities/user.sql": "-- @entity(name = user, keys = [user_id BIGINT])\n",
    "views/user_aggs.sql": """\
-- @feature_view(name = user_aggs, entity = user, timestamp = event_ts,
--               windows = ['1d', '7d'], slide = '1d', start = '2024-01-01')
-- @owner('risk')  @tags(['velocity'])
SELECT user_id,
       COUNT(*)    AS txn_count,
       SUM(amount) AS amount_sum
FROM txns
WHERE amount > 0
GROUP BY user_id
""",
    "views/user_last.sql": """\
-- @feature_view(name = user_last, entity = user, timestamp = event_ts,
--               ttl = '30d', schedule = '1d', start = '2024-01-01')
-- @owner('risk')
SELECT t.user_id, t.event_ts, t.amount AS last_amount, t.channel AS last_channel
FROM txns AS t
""",
    "services/scoring.sql": """\
-- @feature_service(name = scoring, features = [user_aggs.*, user_last.last_amount])
""",
}


class Proj:
    """A project folder plus its registry; `apply()` records the current files as applied."""

    def __init__(self, root: Path):
        self.root = root
        for rel, text in FILES.items():
            self.write(rel, text)

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def edit(self, rel: str, old: str, new: str) -> None:
        text = self.read(rel)
        assert old in text, f"{old!r} not in {rel}"
        self.write(rel, text.replace(old, new, 1))

    def manifest(self) -> Manifest:
        result = compile_project(self.root)
        assert result.ok, [d.render() for d in result.diagnostics.errors]
        assert result.manifest is not None
        return result.manifest

    def registry(self) -> SqliteRegistry:
        return open_registry(self.root)

    def plan(self, workspace: str = "dev") -> Plan:
        reg = self.registry()
        try:
            reg.ensure_workspace(workspace)
            return build_plan(self.root, self.manifest(), reg, workspace, now=NOW)
        finally:
            reg.close()

    def plan_text(self, workspace: str = "dev") -> str:
        return plan_text(self.plan(workspace))

    def apply(self, workspace: str = "dev") -> int:
        plan = self.plan(workspace)
        reg = self.registry()
        try:
            return record(self.root, reg, plan)
        finally:
            reg.close()


def write_txns(root: Path, days: int = 10, per_day: int = 3) -> int:
    """Parquet rows for txns over `days` days from 2024-01-01 (two files); returns the count."""
    from datetime import timedelta

    import pyarrow as pa
    import pyarrow.parquet as pq

    start = datetime(2024, 1, 1, 8)
    ts = [start + timedelta(days=d, hours=h) for d in range(days) for h in range(per_day)]
    table = pa.table({
        "user_id": pa.array([i % 4 for i in range(len(ts))], pa.int64()),
        "amount": pa.array([float(i) for i in range(len(ts))]),
        "channel": pa.array(["pos"] * len(ts)),
        "event_ts": pa.array(ts, pa.timestamp("us")),
    })
    out = root / "data" / "txns"
    out.mkdir(parents=True, exist_ok=True)
    half = len(ts) // 2
    pq.write_table(table.slice(0, half), out / "part-0.parquet")
    pq.write_table(table.slice(half), out / "part-1.parquet")
    return len(ts)
