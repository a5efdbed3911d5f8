"""`featql plan` shows the duplicate-feature warning (W802) with the plan."""

from __future__ import annotations

import pytest

from featql.cli import main

from .helpers import Proj


def test_plan_warns_about_a_renamed_copy(applied: Proj, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    copy = applied.read("views/user_aggs.sql").replace("name = user_aggs", "name = aggs_copy")
    applied.write("views/zz_copy.sql", copy)
    code = main(["plan", "--project", str(applied.root)])
    out = capsys.readouterr()
    assert code == 3  # changes pending: the copy is a new view
    assert ("views/zz_copy.sql:1:25: warning[W802]: feature view 'aggs_copy' duplicates "
            "'user_aggs': its 4 features compute the same values") in out.err
    assert "create   feature view aggs_copy" in out.out
