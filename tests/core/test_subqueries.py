"""Subqueries: correlated scalar aggregates are row-level; inner columns resolve inside."""

from __future__ import annotations

from featql.compiler.project import compile_project

HEAD = "-- @feature_view(name = v, entity = user, timestamp = ts, start = '2024-01-01')\n"


def compile_view(write_project, body: str):
    return compile_project(write_project({"views/v.sql": HEAD + body, "services/svc.sql": None}))


def test_correlated_scalar_aggregate_is_a_row_level_feature(write_project):
    result = compile_view(write_project, (
        "SELECT e.user_id, e.ts,\n"
        "       (SELECT MAX(x.amount) FROM events x WHERE x.user_id = e.user_id) AS top\n"
        "FROM events e\n"))
    assert result.ok, [d.headline() for d in result.diagnostics]
    view = result.manifest.view("v")
    assert view.kind == "row" and [(f.name, f.type) for f in view.features] == [("top", "DOUBLE")]


def test_unqualified_columns_of_an_in_subquery_resolve_in_the_subquery(write_project):
    result = compile_view(write_project, (
        "SELECT q.user_id, q.updated_at AS ts, q.country FROM users q\n"
        "WHERE q.user_id IN (SELECT user_id FROM events WHERE amount > 100)\n"))
    assert result.ok, [d.headline() for d in result.diagnostics]


def test_unknown_column_inside_a_subquery_is_reported_there(write_project):
    result = compile_view(write_project, (
        "SELECT q.user_id, q.updated_at AS ts, q.country FROM users q\n"
        "WHERE q.user_id IN (SELECT user_id FROM events WHERE amont > 100)\n"))
    [error] = result.diagnostics.errors
    assert error.headline().endswith(
        "views/v.sql:3:54: error[E401]: unknown column 'amont' in 'events'")
    assert error.hint == "did you mean 'amount'?"
