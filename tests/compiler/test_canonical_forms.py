"""Spellings of one meaning get one fingerprint, so `featql plan` calls them no change; other
spellings that do change the meaning keep their own fingerprints."""

from __future__ import annotations

import pytest

from .conftest import Compile

AGG = ("-- @feature_view(name = g, entity = user, timestamp = event_ts,\n"
       "--               windows = ['1d'], slide = '1d', start = '2024-01-01')\n")
BASE = ("SELECT user_id, COUNT(*) AS n, SUM(amount) AS s FROM txns WHERE amount > 0 "
        "GROUP BY user_id\n")


def fingerprints(project: Compile, body: str) -> dict[str, str]:
    result = project({"views/g.sql": AGG + body})
    assert result.ok and result.manifest is not None, [
        d.headline() for d in result.diagnostics.errors]
    view = result.manifest.views[0]
    return {"view": view.fingerprint, **{f.name: f.fingerprint for f in view.features}}


SAME = [  # (id, as written, as the reference spells it)
    ("constant-on-the-left", BASE.replace("amount > 0", "0 < amount"), BASE),
    ("constant-on-the-left-ge", BASE.replace("amount > 0", "1 <= amount"),
     BASE.replace("amount > 0", "amount >= 1")),
    ("negative-constant", BASE.replace("amount > 0", "-5 < amount"),
     BASE.replace("amount > 0", "amount > -5")),
    ("count-one", BASE.replace("COUNT(*)", "COUNT(1)"), BASE),
    ("count-string", BASE.replace("COUNT(*)", "COUNT('x')"), BASE),
]


@pytest.mark.parametrize(("body", "reference"), [s[1:] for s in SAME], ids=[s[0] for s in SAME])
def test_equal_spellings_share_fingerprints(body: str, reference: str, project: Compile) -> None:
    assert fingerprints(project, body) == fingerprints(project, reference)


DIFFERENT = [
    ("count-column", BASE.replace("COUNT(*)", "COUNT(amount)"), "n_1d"),
    ("count-null", BASE.replace("COUNT(*)", "COUNT(NULL)"), "n_1d"),
    ("strict-vs-not", BASE.replace("amount > 0", "amount >= 0"), "n_1d"),
]


@pytest.mark.parametrize(("body", "feature"), [d[1:] for d in DIFFERENT],
                         ids=[d[0] for d in DIFFERENT])
def test_other_meanings_keep_their_fingerprints(body: str, feature: str,
                                                project: Compile) -> None:
    assert fingerprints(project, body)[feature] != fingerprints(project, BASE)[feature]
