"""`featql plan` sees spellings of one meaning as no change (issue 15, plan precision)."""

from __future__ import annotations

import pytest

from .helpers import Proj
from .test_classification import NO_CHANGE

EDITS = [
    ("constant-on-the-left", "WHERE amount > 0", "WHERE 0 < amount"),
    ("count-one", "COUNT(*)    AS txn_count", "COUNT(1)    AS txn_count"),
    ("both-lowercase", "COUNT(*)    AS txn_count", "count(1) as txn_count"),
]


@pytest.mark.parametrize(("old", "new"), [e[1:] for e in EDITS], ids=[e[0] for e in EDITS])
def test_equal_spelling_is_no_change(old: str, new: str, applied: Proj) -> None:
    applied.edit("views/user_aggs.sql", old, new)
    assert applied.plan_text() == NO_CHANGE


def test_a_real_change_next_to_a_respelling_is_still_breaking(applied: Proj) -> None:
    applied.edit("views/user_aggs.sql", "WHERE amount > 0", "WHERE 1 < amount")
    text = applied.plan_text()
    assert "-/+ recreate feature view user_aggs (breaking)" in text
