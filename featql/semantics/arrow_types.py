"""Kept for imports written before the one type map: `featql.semantics.types` owns both."""

from __future__ import annotations

from featql.semantics.types import arrow_type, conform

__all__ = ["arrow_type", "conform"]
