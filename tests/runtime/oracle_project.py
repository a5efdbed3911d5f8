"""The one-view projects of the aggregate oracle tests (exact, sketch and lifetime functions).

Each of those tests writes a tiny project (one source reading `data/events/`, one aggregate
view, one service `svc`), compiles it once per module, and then, per random case, rewrites the
source's events and asks for a training set, reads the view's tiles or merges them online.
`OracleProject` does those steps for a given project, events schema and spine schema; the
oracles themselves stay in each test (they are what is being compared against).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import strategies as st
from sampling import samples

from featql.jobs.training import training_set
from runtime.conftest import compiled

EPOCH = datetime(1970, 1, 1)
Rows = list[dict[str, Any]]


def write_files(root: Path, files: dict[str, str]) -> None:
    """A project's files (relative path -> text) under `root`."""
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def write_events(root: Path, schema: pa.Schema, events: Rows) -> None:
    """`events` as the only file of `data/events/` (the folder emptied first)."""
    folder = root / "data" / "events"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(events, schema=schema), folder / "p.parquet")


def to_us(t: datetime) -> int:
    return (t - EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class OracleProject:
    root: Path
    compiled: Any  # featql.compiler.project.CompileResult
    events: pa.Schema
    spine: pa.Schema

    @classmethod
    def create(cls, root: Path, files: dict[str, str], events: pa.Schema, spine: pa.Schema
               ) -> OracleProject:
        """`files` written under `root` with no events yet, compiled (it must compile)."""
        write_files(root, files)
        write_events(root, events, [])
        return cls(root, compiled(root), events, spine)

    @property
    def manifest(self) -> Any:
        return self.compiled.manifest

    def write_events(self, events: Rows) -> None:
        write_events(self.root, self.events, events)

    def training(self, events: Rows, spine: Rows, engine: Any) -> Rows:
        """The service `svc`'s training set of `spine` over `events`, computed by `engine`
        from the source (not the offline store)."""
        self.write_events(events)
        got = training_set(self.root, self.manifest, self.compiled.config, "svc",
                           pa.Table.from_pylist(spine, self.spine), engine=engine,
                           use_store=False)
        rows: Rows = got.to_pylist()
        return rows

    def tiles(self, view: str, engine: Any) -> pa.Table:
        """The view's tiles of the events last written, built by `engine`."""
        from featql.jobs.relations import ProjectData

        table: pa.Table = engine.query(ProjectData(engine, self.manifest, self.root).fresh_sql(
            self.manifest.view(view)))
        return table

    def duck_tiles(self, view: str) -> pa.Table:
        """`tiles` built by a fresh single-threaded DuckDB engine."""
        from featql.engines.duckdb import DuckDBEngine

        engine = DuckDBEngine(threads=1)
        try:
            return self.tiles(view, engine)
        finally:
            engine.close()

    def online(self, view_name: str, tiles: pa.Table, spine: Rows) -> Rows:
        """Every spine row as the online read answers it from `tiles`: per user, the tiles
        packed as an FQT3 cell (`encode_tiles`) and merged by `TileMerger` at the row's time.
        Also checks the cells the online load writes (`tile_cells`, one per user with tiles):
        their values merged at load time, for the slide after the data, equal the tiles
        merged now."""
        from featql.jobs.online_load import tile_cells
        from featql.online import codec
        from featql.online.tiles import TileMerger, encode_tiles
        from featql.semantics.aggregates import tile_columns

        view = self.manifest.view(view_name)
        merger = TileMerger(view)
        names = [f"{view_name}__{f.name}" for f in view.features]
        by_user: dict[int, Rows] = {}
        for r in tiles.sort_by([("user_id", "ascending"),
                                ("_tile_start", "ascending")]).to_pylist():
            by_user.setdefault(r["user_id"], []).append(r)
        cols = [col for col, _ in tile_columns(view)]
        cells = {}
        for user, rows in by_user.items():
            starts = [int((r["_tile_start"] - EPOCH).total_seconds()) for r in rows]
            cells[user] = encode_tiles(starts, {col: [r[col] for r in rows] for col in cols})
        out = []
        for row in spine:
            values = merger(cells.get(row["user_id"]), to_us(row["t"]))
            assert values is not None
            out.append({**row, **dict(zip(names, values, strict=True))})
        if tiles.num_rows:  # the load's cells: values merged for the slide after the data
            end = max(r["_tile_start"] for r in tiles.to_pylist()) + timedelta(
                seconds=view.slide_seconds)
            hi_us = to_us(end)
            loaded = {cell.item: cell.payload for cell in tile_cells(view, tiles, hi_us)}
            assert set(loaded) == {codec.item_key("user", [u]) for u in cells}
            for user, payload in cells.items():  # the head merged at load = the tiles now
                assert merger(loaded[codec.item_key("user", [user])], hi_us) == merger(
                    payload, hi_us)
        return out


Case = tuple[Rows, Rows]


def disjoint_batch(case: Callable[[], st.SearchStrategy[Case]], n: int, at: int
                   ) -> tuple[Rows, Rows]:
    """`n` random cases of `case()` from fixed seeds (tests/sampling.py: not hypothesis's
    simplest example), as one (events, spine) with the users of case i moved to 10 * i + u,
    so that one engine job checks them all; at least one case has events."""
    batch = samples(case(), n, at)
    assert any(evs for evs, _ in batch)
    events = [{**e, "user_id": e["user_id"] + 10 * i} for i, (evs, _) in enumerate(batch)
              for e in evs]
    spine = [{**r, "user_id": r["user_id"] + 10 * i} for i, (_, sp) in enumerate(batch)
             for r in sp]
    return events, spine
