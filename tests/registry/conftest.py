"""Fixtures: the small project of helpers.py, fresh or with its first version applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import Proj


@pytest.fixture
def proj(tmp_path: Path) -> Proj:
    return Proj(tmp_path / "proj")


@pytest.fixture
def applied(proj: Proj) -> Proj:
    """The project with its first version applied to dev (apply #1)."""
    assert proj.apply() == 1
    return proj

