"""The manifest: deterministic bytes, lossless round trip, versioned format."""

from __future__ import annotations

import json

import pytest

from featql.compiler.project import compile_project
from featql.core.manifest import ManifestError, dumps, from_data, load_manifest, write_manifest


def test_round_trip_is_lossless(write_project):
    result = compile_project(write_project())
    assert result.ok, [d.headline() for d in result.diagnostics]
    manifest = result.manifest
    assert from_data(json.loads(dumps(manifest))) == manifest


def test_same_project_gives_same_bytes(write_project):
    a = dumps(compile_project(write_project()).manifest)
    b = dumps(compile_project(write_project()).manifest)
    assert a == b


def test_manifest_content(write_project, tmp_path):
    manifest = compile_project(write_project()).manifest
    path = write_manifest(manifest, tmp_path / "target")
    data = json.loads(path.read_text())
    assert data["format"] == "featql-manifest" and data["version"] == 1
    spend = next(v for v in data["views"] if v["name"] == "spend")
    assert [f["name"] for f in spend["features"]] == [
        "n_1d", "n_7d", "total_1d", "total_7d", "mean_1d", "mean_7d"]
    assert [(f["name"], f["type"]) for f in spend["features"]][:3] == [
        ("n_1d", "BIGINT"), ("n_7d", "BIGINT"), ("total_1d", "DOUBLE")]
    assert ["events", "spend"] in data["dag"] and ["spend", "svc"] in data["dag"]
    profile = next(v for v in data["views"] if v["name"] == "profile")
    assert profile["meta"]["owner"] == "team-a"
    assert profile["ttl_seconds"] == 30 * 86400
    assert load_manifest(path) == manifest


def test_unknown_version_is_refused(write_project):
    data = json.loads(dumps(compile_project(write_project()).manifest))
    data["version"] = 99
    with pytest.raises(ManifestError, match="version 99 is not supported"):
        from_data(data)
