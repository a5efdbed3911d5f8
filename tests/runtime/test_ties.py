"""Event-time ties on DuckDB, both ways of finding them: an aggregate over the view up front
(views not much larger than the spine), or the join run undeduplicated and checked afterwards,
where only a tie on a row some spine row got costs the deduplicating join. Finds are cached."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from featql.jobs.ties import CACHE, _signature
from featql.jobs.training import training_set
from runtime.conftest import compiled
from runtime.test_project_harness import HERE, SCHEMAS, write_data

T = datetime(2024, 1, 1, 1)


def _event(user: int, ts: datetime, x: int, created: datetime | None) -> dict[str, Any]:
    return {"user_id": user, "merchant": "a", "x": x, "s": "k", "ts": ts, "created_at": created}


@pytest.fixture(params=["verify", "aggregate"])
def project(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Any]:
    import featql.jobs.ties as ties

    monkeypatch.setattr(ties, "VERIFY_ABOVE", 0.0 if request.param == "verify" else 1e9)
    root = tmp_path / "project"
    shutil.copytree(HERE, root)
    return root, compiled(root)


def _x(root: Path, c: Any, spine: list[dict[str, Any]]) -> list[Any]:
    table = pa.Table.from_pylist(spine, schema=SCHEMAS["spine"])
    out = training_set(root, c.manifest, c.config, "svc", table, engine="duckdb",
                       use_store=False)
    return out.column("last_event__x").to_pylist()


def _recorded(root: Path, c: Any) -> bool | str | None:
    """What the cache says of `last_event` with its current files."""
    path = root / CACHE
    cache = json.loads(path.read_text()) if path.exists() else {}
    return cache.get(_signature(c.manifest, c.manifest.view("last_event"), root))


def test_tie_on_a_matched_row_is_broken_by_created_and_remembered(
        project: tuple[Path, Any]) -> None:
    root, c = project
    at = datetime(2024, 1, 1, 0, 30)
    events = [_event(1, at, 5, datetime(2024, 1, 1, 0, 40)),   # loses: created earlier
              _event(1, at, 7, datetime(2024, 1, 1, 0, 50)),   # wins
              _event(1, at, 9, None)]                          # loses: NULL created is last
    write_data(root, {"events": events, "profiles": [], "tags": []})
    spine = [{"user_id": 1, "merchant": "a", "t": T}]
    for order in (events, events[::-1], [events[2], events[0], events[1]]):
        write_data(root, {"events": order, "profiles": [], "tags": []})
        assert _x(root, c, spine) == [7]
        assert _recorded(root, c) is True  # recorded for these very files
    assert _x(root, c, spine) == [7]  # now deduplicated up front, same answer


def test_tie_no_spine_row_gets(project: tuple[Path, Any]) -> None:
    """Verifying finds no tie that matters (and records nothing); the aggregate finds it."""
    root, c = project
    early = datetime(2024, 1, 1, 0, 10)
    events = [_event(1, early, 1, None), _event(1, early, 2, None),  # tied, superseded
              _event(1, datetime(2024, 1, 1, 0, 20), 3, None),
              _event(2, datetime(2024, 1, 1, 0, 40), 4, None)]
    write_data(root, {"events": events, "profiles": [], "tags": []})
    spine = [{"user_id": 1, "merchant": "a", "t": T}, {"user_id": 2, "merchant": "a", "t": T},
             {"user_id": 1, "merchant": "a", "t": datetime(2024, 1, 1, 0, 5)}]
    assert _x(root, c, spine) == [3, 4, None]
    import featql.jobs.ties as ties

    verifying = ties.VERIFY_ABOVE == 0
    assert _recorded(root, c) == (ties.VERIFIED if verifying else True)
    assert _x(root, c, spine) == [3, 4, None]  # verified once: now the aggregate settles it
    assert _recorded(root, c) is True
