"""Declaring `known_at` changes what every row-level view over the source returns at a time
(rows not yet created are hidden): the plan recreates the source and those views as breaking,
and removing it again does too."""

from __future__ import annotations

from .helpers import Proj

SOURCE = """\
-- @source(name = txns, timestamp = event_ts, created = created_ts, batch = parquet('data/txns/'))
CREATE TABLE txns (
  user_id    BIGINT,
  amount     DOUBLE,
  channel    STRING,
  event_ts   TIMESTAMP,
  created_ts TIMESTAMP
);
"""


def _row_only(proj: Proj) -> None:
    proj.write("sources/txns.sql", SOURCE)
    (proj.root / "views" / "user_aggs.sql").unlink()
    proj.write("services/scoring.sql",
               "-- @feature_service(name = scoring, features = [user_last.last_amount])\n")


def test_declaring_known_at_is_breaking(proj: Proj) -> None:
    _row_only(proj)
    assert proj.apply() == 1
    proj.edit("sources/txns.sql", "created = created_ts,",
              "created = created_ts, known_at = created_ts,")
    text = proj.plan_text()
    assert "~   update   source txns (breaking)\n      known_at: none → 'created_ts'\n" in text
    assert "-/+ recreate feature view user_last (breaking)\n      known_at: false → true\n" \
        in text, text
    assert proj.apply() == 2
    proj.edit("sources/txns.sql", " known_at = created_ts,", "")
    text = proj.plan_text()
    assert "-/+ recreate feature view user_last (breaking)\n      known_at: true → false\n" \
        in text, text
