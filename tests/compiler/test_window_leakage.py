"""Window functions that read events after the one being scored are refused at check time.

Each case is one window in a row-level feature query; the exact headline, the text it points at
and the hint. Windows that only look back (LAG, frames ending at CURRENT ROW, ROW_NUMBER by
event time) compile.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Compile

HEADER = ("-- @feature_view(name = v, entity = user, timestamp = event_ts, ttl = '30d',\n"
          "--               start = '2024-01-01')\n")
AFTER = "the feature at event time t would use events from after t"
LAG_HINT = ("use LAG(...) OVER (... ORDER BY event_ts), the previous event, or an aggregate view "
            "with windows")
ORDER_HINT = "order the window by event_ts (ascending), with a frame that ends at CURRENT ROW"
FRAME_HINT = "end the frame at CURRENT ROW: ROWS BETWEEN n PRECEDING AND CURRENT ROW"


def view(select: str) -> dict[str, str]:
    return {"views/v.sql": f"{HEADER}SELECT user_id, event_ts,\n       {select}\nFROM txns\n"}


REFUSED = [
    ("lead", "LEAD(amount) OVER (PARTITION BY user_id ORDER BY event_ts) AS next_amount",
     "E602", f"LEAD reads a later row: {AFTER}", "LEAD(", LAG_HINT),
    ("lead-ignore-nulls",
     "LEAD(amount) IGNORE NULLS OVER (PARTITION BY user_id ORDER BY event_ts) AS next_amount",
     "E602", f"LEAD reads a later row: {AFTER}", "LEAD(", LAG_HINT),
    ("lead-offset", "LEAD(amount, 3) OVER (PARTITION BY user_id ORDER BY event_ts) AS n3",
     "E602", f"LEAD reads a later row: {AFTER}", "LEAD(", LAG_HINT),
    ("lag-descending", "LAG(amount) OVER (PARTITION BY user_id ORDER BY event_ts DESC) AS p",
     "E602", f"LAG reads a later row: {AFTER}", "LAG(", LAG_HINT),
    ("frame-following",
     "SUM(amount) OVER (PARTITION BY user_id ORDER BY event_ts "
     "ROWS BETWEEN CURRENT ROW AND 2 FOLLOWING) AS s",
     "E603", f"window frame reaches FOLLOWING rows: {AFTER}", "FOLLOWING", FRAME_HINT),
    ("frame-unbounded-following",
     "MAX(amount) OVER (PARTITION BY user_id ORDER BY event_ts "
     "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS m",
     "E603", f"window frame reaches FOLLOWING rows: {AFTER}", "FOLLOWING", FRAME_HINT),
    ("range-following",
     "COUNT(*) OVER (PARTITION BY user_id ORDER BY event_ts "
     "RANGE BETWEEN CURRENT ROW AND INTERVAL 1 DAY FOLLOWING) AS c",
     "E603", f"window frame reaches FOLLOWING rows: {AFTER}", "FOLLOWING", FRAME_HINT),
    ("descending-running-sum",
     "SUM(amount) OVER (PARTITION BY user_id ORDER BY event_ts DESC) AS s",
     "E603", "window ordered by event_ts DESC reaches PRECEDING rows, which are later events: "
     f"{AFTER}", "DESC", "order by event_ts ascending"),
    ("whole-partition", "AVG(amount) OVER (PARTITION BY user_id) AS a",
     "E604", "window has no ORDER BY: it spans every event of its partition, later ones included",
     "AVG(", ORDER_HINT),
    ("ordered-by-amount", "ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY amount) AS r",
     "E604", "window is not ordered by the event time 'event_ts': its rows can come from after "
     "the event", "amount)", ORDER_HINT),
    ("last-value-unordered", "LAST_VALUE(amount) OVER (PARTITION BY user_id) AS l",
     "E604", "window has no ORDER BY: it spans every event of its partition, later ones included",
     "LAST_VALUE(", ORDER_HINT),
    ("ntile", "NTILE(4) OVER (PARTITION BY user_id ORDER BY event_ts) AS q",
     "E605", "NTILE depends on the size of the whole partition, later events included", "NTILE(",
     "compute it from earlier events: COUNT(*) OVER (... ORDER BY event_ts) counts the events "
     "so far"),
    ("percent-rank", "PERCENT_RANK() OVER (PARTITION BY user_id ORDER BY event_ts) AS q",
     "E605", "PERCENT_RANK depends on the size of the whole partition, later events included",
     "PERCENT_RANK(",
     "compute it from earlier events: COUNT(*) OVER (... ORDER BY event_ts) counts the events "
     "so far"),
]

ALLOWED = [
    ("lag", "LAG(amount) OVER (PARTITION BY user_id ORDER BY event_ts) AS previous_amount"),
    ("lead-descending", "LEAD(amount) OVER (PARTITION BY user_id ORDER BY event_ts DESC) AS p"),
    ("running-sum", "SUM(amount) OVER (PARTITION BY user_id ORDER BY event_ts) AS s"),
    ("rows-preceding", "AVG(amount) OVER (PARTITION BY user_id ORDER BY event_ts "
     "ROWS BETWEEN 5 PRECEDING AND CURRENT ROW) AS a5"),
    ("row-number", "ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY event_ts) AS n"),
]


@pytest.mark.parametrize(("select", "code", "message", "at", "hint"),
                         [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_window_reading_later_events_is_refused(select: str, code: str, message: str, at: str,
                                                hint: str, project: Compile,
                                                tmp_path: Path) -> None:
    result = project(view(select))
    errors = result.diagnostics.errors
    assert [d.headline().split(": ", 1)[1] for d in errors] == [f"error[{code}]: {message}"]
    diag = errors[0]
    assert diag.span.path == "views/v.sql" and diag.span.line == 4
    assert diag.hint == hint
    line = (tmp_path / "views/v.sql").read_text().split("\n")[3]
    assert line[diag.span.col - 1:].startswith(at), (line, diag.span.col)
    assert not result.ok


@pytest.mark.parametrize("select", [c[1] for c in ALLOWED], ids=[c[0] for c in ALLOWED])
def test_window_looking_back_compiles(select: str, project: Compile) -> None:
    result = project(view(select))
    assert [d.headline() for d in result.diagnostics.errors] == []
    assert result.ok
