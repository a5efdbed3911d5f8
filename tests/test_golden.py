"""Golden files: the offline SQL of every example view × target, as reviewed text.

`make golden` (`pytest tests/test_golden.py --snapshot-update`) rewrites them. They live at
`golden/<view>/<target>.sql`, written by `GoldenSQL`, a syrupy single-file extension whose
location comes from the test's `view` and `target` parameters instead of syrupy's
`__snapshots__/<test file>/<test name>` layout. Since that layout is what syrupy's unused-snapshot
detection understands, the extension opts out of it (`discover_snapshots` finds nothing) and
`test_no_stale_golden_files` does that job: it fails on a golden without a view, and deletes it
under --snapshot-update.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.data import SnapshotCollections
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode
from syrupy.location import PyTestLocation
from syrupy.types import SnapshotIndex

from featql.compiler.loader import load
from featql.compiler.project import CompileResult
from featql.compiler.resolve import resolve
from featql.core.config import CONFIG_FILE, load_config
from featql.core.diagnostics import Diagnostics
from featql.dialects import TARGETS, Target, lower_view

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "golden"
EXAMPLE = REPO / "features"


def golden_path(view: str, target: str) -> Path:
    """Where a view's SQL for one target is kept (a variant `v:v2` lives in `v@v2/`)."""
    return GOLDEN / view.replace(":", "@") / f"{target}.sql"


def _params(test_location: PyTestLocation) -> dict[str, Any]:
    callspec = getattr(test_location.item, "callspec", None)
    return dict(callspec.params) if callspec is not None else {}


class GoldenSQL(SingleFileSnapshotExtension):
    """Stores a str snapshot at `golden/<view>/<target>.sql`, as UTF-8 text."""

    file_extension = "sql"
    _write_mode = WriteMode.TEXT

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        params = _params(test_location)
        if "view" not in params:
            return str(GOLDEN)
        return str(golden_path(params["view"], "x").parent)

    @classmethod
    def get_file_basename(cls, *, test_location: PyTestLocation, index: SnapshotIndex) -> str:
        return str(_params(test_location)["target"])

    @classmethod
    def discovery_dirname(cls, *, test_location: PyTestLocation) -> str:
        return str(GOLDEN)

    def discover_snapshots(self, *, test_location: PyTestLocation,
                           ignore_extensions: list[str] | None = None) -> SnapshotCollections:
        return SnapshotCollections()  # staleness: see test_no_stale_golden_files

    @classmethod
    def matches_test_location(cls, *, test_location: PyTestLocation,
                              snapshot_location: str) -> bool:
        return True  # every golden belongs to test_golden; silences syrupy's layout warning


def _example_views() -> list[str]:
    """The example's view names, from its definition files alone (no data needed to collect)."""
    diags = Diagnostics()
    files, _ = load(EXAMPLE, load_config(EXAMPLE, CONFIG_FILE, diags), diags)
    return sorted(resolve(files, diags).views())


VIEWS = _example_views()


@pytest.fixture
def golden(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(GoldenSQL)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("view", VIEWS)
def test_golden(view: str, target: Target, example_compiled: CompileResult,
                golden: SnapshotAssertion) -> None:
    assert example_compiled.manifest is not None
    assert lower_view(example_compiled.manifest, view, target) == golden


def test_every_view_has_goldens(example_compiled: CompileResult) -> None:
    assert example_compiled.manifest is not None
    assert sorted(v.name for v in example_compiled.manifest.views) == VIEWS


def test_no_stale_golden_files(example_compiled: CompileResult,
                               request: pytest.FixtureRequest) -> None:
    assert example_compiled.manifest is not None
    expected = {golden_path(v.name, t) for v in example_compiled.manifest.views for t in TARGETS}
    stale = sorted(set(GOLDEN.glob("*/*.sql")) - expected)
    if request.config.option.update_snapshots:
        for path in stale:
            path.unlink()
            if not any(path.parent.iterdir()):
                path.parent.rmdir()
        return
    assert not stale, ("golden files without a view (run `make golden` to delete them): "
                       + ", ".join(str(p.relative_to(REPO)) for p in stale))
