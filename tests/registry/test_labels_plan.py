"""Marking a label column is a metadata change of its source: no feature changes meaning."""

from __future__ import annotations

from .helpers import Proj


def test_marking_a_label_is_metadata(proj: Proj) -> None:
    proj.edit("sources/txns.sql", "  channel  STRING,", "  channel  STRING,\n  is_fraud BOOLEAN,")
    assert proj.apply() == 1
    proj.edit("sources/txns.sql", "batch = parquet('data/txns/'))",
              "batch = parquet('data/txns/'), labels = [is_fraud])")
    assert proj.plan_text() == (
        "Plan for workspace 'dev' against apply #1:\n\n"
        "~   update   source txns (metadata)\n"
        "      labels: [] → ['is_fraud']\n\n"
        "Plan: 0 to create, 1 to update, 0 to recreate, 0 to delete (0 breaking, "
        "0 non-breaking, 1 metadata).\n")
