"""Tiny projects for compiler tests: base sources and entities, and a writer."""

from __future__ import annotations

from pathlib import Path

TOML = '[project]\nname = "t"\n'

SOURCES = {
    "sources/txns.sql": """\
-- @source(name = txns, timestamp = event_ts, batch = parquet('data/txns/'))
CREATE TABLE txns (
  txn_id      BIGINT,
  user_id     BIGINT,
  merchant_id BIGINT,
  amount      DOUBLE,
  channel     STRING,
  is_fraud    BOOLEAN,
  event_ts    TIMESTAMP
);
""",
    "sources/users.sql": """\
-- @source(name = users, timestamp = updated_at, batch = parquet('data/users/'))
CREATE TABLE users (
  user_id    BIGINT,
  user_code  STRING,
  country    STRING,
  signup_day DATE,
  updated_at TIMESTAMP
);
""",
    "entities/user.sql": "-- @entity(name = user, keys = [user_id BIGINT])\n",
    "entities/merchant.sql": "-- @entity(name = merchant, keys = [merchant_id BIGINT])\n",
}

ROW_VIEW = """\
-- @feature_view(name = user_last, entity = user, timestamp = event_ts, ttl = '30d',
--               start = '2024-01-01')
SELECT user_id, event_ts, amount AS last_amount
FROM txns
"""

AGG_VIEW = """\
-- @feature_view(name = user_aggs, entity = user, timestamp = event_ts,
--               windows = ['1d', '7d'], slide = '1d', start = '2024-01-01')
SELECT user_id,
       COUNT(*)    AS txn_count,
       SUM(amount) AS amount_sum
FROM txns
GROUP BY user_id
"""


def write_project(root: Path, files: dict[str, str], *, base: bool = True) -> Path:
    """Write featql.toml, the base sources and entities (unless base=False) and `files`."""
    everything = {"featql.toml": TOML, **(SOURCES if base else {}), **files}
    for rel, text in everything.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
