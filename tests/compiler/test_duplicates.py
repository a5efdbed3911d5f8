"""Semantically equal features are reported once per copied view (W802), in check and plan."""

from __future__ import annotations

from pathlib import Path

from featql.cli import main

from .conftest import Compile
from .projects import AGG_VIEW

COPY = AGG_VIEW.replace("name = user_aggs", "name = user_aggs_copy")
HINT = ("remove the copy and serve the original's features, or mark it intended with "
        "duplicate_of = user_aggs in its @feature_view header")


def warnings(project: Compile, files: dict[str, str]) -> list[str]:
    result = project(files)
    assert not result.diagnostics.errors, [d.headline() for d in result.diagnostics.errors]
    return [d.headline() for d in result.diagnostics.warnings]


def test_a_renamed_copy_is_reported_once_on_the_copy(project: Compile) -> None:
    result = project({"views/user_aggs.sql": AGG_VIEW, "views/zz_copy.sql": COPY})
    [w] = result.diagnostics.warnings
    assert w.headline() == ("views/zz_copy.sql:1:25: warning[W802]: feature view "
                            "'user_aggs_copy' duplicates 'user_aggs': its 4 features compute "
                            "the same values")
    assert w.hint == HINT
    assert result.ok  # a warning, not an error


def test_a_reformatted_copy_with_other_names_is_reported(project: Compile) -> None:
    copy = ("-- @feature_view(name = again, entity = user, timestamp = event_ts,\n"
            "--   windows = ['1d', '7d'], slide = '1d', start = '2024-01-01')\n"
            "select t.user_id, count(*) as how_many, -- renamed and reformatted\n"
            "  sum(t.amount) as total from txns as t group by t.user_id\n")
    assert warnings(project, {"views/user_aggs.sql": AGG_VIEW, "views/zz.sql": copy}) == [
        "views/zz.sql:1:25: warning[W802]: feature view 'again' duplicates 'user_aggs': its 4 "
        "features compute the same values"]


def test_a_copy_with_another_filter_is_not_reported(project: Compile) -> None:
    other = COPY.replace("FROM txns\n", "FROM txns\nWHERE channel <> 'test'\n")
    assert warnings(project, {"views/user_aggs.sql": AGG_VIEW, "views/zz_copy.sql": other}) == []


def test_a_partial_copy_names_the_shared_features(project: Compile) -> None:
    partial = COPY.replace("COUNT(*)    AS txn_count,", "MAX(amount) AS biggest,")
    assert warnings(project, {"views/user_aggs.sql": AGG_VIEW, "views/zz.sql": partial}) == [
        "views/zz.sql:1:25: warning[W802]: 2 of the 4 features of 'user_aggs_copy' compute the "
        "same values as features of 'user_aggs': user_aggs_copy.amount_sum_1d = "
        "user_aggs.amount_sum_1d, user_aggs_copy.amount_sum_7d = user_aggs.amount_sum_7d"]


def test_duplicate_of_silences_an_intended_copy(project: Compile) -> None:
    intended = COPY.replace("start = '2024-01-01')", "start = '2024-01-01',\n"
                            "--               duplicate_of = user_aggs)")
    assert warnings(project, {"views/user_aggs.sql": AGG_VIEW, "views/zz.sql": intended}) == []


def test_duplicate_of_an_unknown_view_is_an_error(project: Compile) -> None:
    wrong = COPY.replace("start = '2024-01-01')", "start = '2024-01-01',\n"
                         "--               duplicate_of = user_agg)")
    result = project({"views/user_aggs.sql": AGG_VIEW, "views/zz.sql": wrong})
    assert [(d.headline(), d.hint) for d in result.diagnostics.errors] == [
        ("views/zz.sql:3:33: error[E307]: duplicate_of 'user_agg' is not a feature view",
         "did you mean 'user_aggs'?")]


def test_check_reports_the_duplicate(project: Compile, tmp_path: Path,
                                     capsys: object) -> None:
    project({"views/user_aggs.sql": AGG_VIEW, "views/zz_copy.sql": COPY})
    assert main(["check", "--project", str(tmp_path)]) == 0
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "warning[W802]: feature view 'user_aggs_copy' duplicates 'user_aggs'" in err
