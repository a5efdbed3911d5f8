"""Column-level lineage (placeholder until the lineage pass lands)."""

from __future__ import annotations

from featql.compiler.ir import Manifest


def build_lineage(manifest: Manifest, typed: object) -> Manifest:
    return manifest
