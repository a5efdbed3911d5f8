"""The faster manifest encoder and tree copy give exactly what the plain ones give."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import sqlglot
from sqlglot import exp

from featql.core import manifest as manifest_module
from featql.core.ir import Meta
from featql.core.manifest import dumps, from_data, manifest_data
from featql.core.treecopy import light_copy

from .projects import ROW_VIEW


def _plain(m) -> str:
    return json.dumps(manifest_data(m), indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("description", [
    "plain ascii", "café", "tab\there, bell\x07, nul\x00", "del\x7f", "line\u2028sep", "💳",
    'quote " and backslash \\ and slash /',
])
def test_manifest_bytes_equal_the_json_module(project, description: str):
    result = project({"views/v.sql": ROW_VIEW})
    assert result.ok, [d.headline() for d in result.diagnostics.errors]
    view = result.manifest.views[0]
    m = replace(result.manifest, views=(replace(view, meta=Meta(description=description)),))
    text = dumps(m)
    assert text == _plain(m)
    assert from_data(json.loads(text)) == m


def test_manifest_without_orjson_is_the_same(project, monkeypatch):
    result = project({"views/v.sql": ROW_VIEW})
    fast = dumps(result.manifest)
    monkeypatch.setattr(manifest_module, "_orjson", None)
    assert dumps(result.manifest) == fast == _plain(result.manifest)


QUERIES = [
    "SELECT a.x AS y, CAST(b.z AS DOUBLE) / NULLIF(a.q, 0) AS r FROM t AS a JOIN u AS b "
    "ON a.k = b.k WHERE a.x > 1",
    "WITH c AS (SELECT k, MAX(v) AS m FROM t GROUP BY k) SELECT c.k, c.m FROM c "
    "UNION ALL SELECT 1, 2",
    "SELECT k, SUM(CASE WHEN f THEN v END) OVER (PARTITION BY k ORDER BY ts) AS s FROM t",
]


@pytest.mark.parametrize("sql", QUERIES)
def test_light_copy_is_an_independent_equal_tree(sql: str):
    tree = sqlglot.parse_one(sql, read="duckdb")
    for node in tree.walk():
        node.comments = None
    before = tree.sql("duckdb")
    copy = light_copy(tree)
    assert copy == tree and copy is not tree
    assert copy.sql("duckdb") == before
    originals = {id(n) for n in tree.walk()}
    assert not any(id(n) in originals for n in copy.walk())  # no node is shared
    assert all(n.parent is None if n is copy else n.parent is not None for n in copy.walk())
    for col in copy.find_all(exp.Column):  # changing the copy leaves the original alone
        col.set("this", exp.to_identifier("changed"))
    assert tree.sql("duckdb") == before


def test_light_copy_keeps_type_annotations():
    from sqlglot.optimizer.annotate_types import annotate_types

    tree = annotate_types(sqlglot.parse_one("SELECT 1 + 2.5 AS x, 'a' AS y", read="duckdb"))
    copy = light_copy(tree)
    assert [p.type.sql() for p in copy.selects] == [p.type.sql() for p in tree.selects]
