"""A source's label columns (`labels = [...]`) cannot be read by a feature view (issue 15)."""

from __future__ import annotations

import pytest

from featql.core.manifest import dumps, from_data

from .conftest import Compile
from .projects import SOURCES

LABELLED = {"sources/txns.sql": SOURCES["sources/txns.sql"].replace(
    "batch = parquet('data/txns/'))",
    "batch = parquet('data/txns/'),\n--         labels = [is_fraud])")}
HEADER = ("-- @feature_view(name = v, entity = user, timestamp = event_ts, ttl = '30d',\n"
          "--               start = '2024-01-01')\n")
MESSAGE = ("error[E422]: feature view 'v' reads label column 'txns.is_fraud': its features "
           "would give the model the answer")
HINT = ("labels belong in the training set's spine; remove it from the view (it is a label "
        "because txns's @source says labels = [is_fraud])")

CASES = [
    ("as-a-value", "SELECT user_id, event_ts, is_fraud AS was_fraud FROM txns", "is_fraud AS"),
    ("in-a-filter", "SELECT user_id, event_ts, amount AS a FROM txns WHERE NOT is_fraud",
     "is_fraud\n"),
    ("through-an-alias", "SELECT t.user_id, t.event_ts, CASE WHEN t.is_fraud THEN 1 ELSE 0 END "
     "AS f FROM txns AS t", "t.is_fraud"),
    ("in-a-subquery", "SELECT user_id, event_ts, a FROM (SELECT user_id, event_ts, "
     "amount AS a FROM txns WHERE is_fraud) AS q", "is_fraud)"),
]


@pytest.mark.parametrize(("sql", "at"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_reading_a_label_is_an_error(sql: str, at: str, project: Compile) -> None:
    result = project({**LABELLED, "views/v.sql": HEADER + sql + "\n"})
    [err] = result.diagnostics.errors
    assert err.headline().split(": ", 1)[1] == MESSAGE
    assert err.hint == HINT
    text = (HEADER + sql + "\n").split("\n")[err.span.line - 1] + "\n"
    assert text[err.span.col - 1:].startswith(at), (text, err.span.col)


def test_other_columns_of_a_labelled_source_are_features(project: Compile) -> None:
    result = project({**LABELLED, "views/v.sql": HEADER + "SELECT user_id, event_ts, amount AS a "
                      "FROM txns\n"})
    assert result.ok and result.manifest is not None
    [txns] = [s for s in result.manifest.sources if s.name == "txns"]
    assert txns.labels == ("is_fraud",)
    assert from_data(__import__("json").loads(dumps(result.manifest))) == result.manifest


def test_an_unknown_label_column(project: Compile) -> None:
    wrong = {"sources/txns.sql": LABELLED["sources/txns.sql"].replace("[is_fraud]", "[is_frud]")}
    result = project({**wrong, "views/v.sql": HEADER + "SELECT user_id, event_ts, amount AS a "
                      "FROM txns\n"})
    assert [(d.headline(), d.hint) for d in result.diagnostics.errors] == [
        ("sources/txns.sql:2:21: error[E306]: labels names unknown column 'is_frud' of source "
         "'txns'", "did you mean 'is_fraud'?")]
