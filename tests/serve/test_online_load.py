"""Online materialization: latest row per entity, recent tiles; incremental and idempotent."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from featql.compiler.project import compile_project
from featql.dialects.lower import lower_view
from featql.jobs.online_load import load_online
from featql.online import codec
from featql.online import tiles as tiles_mod
from featql.online.base import OnlineStore


def _independent_latest(root: Path, view: str, end: dt.datetime | None) -> dict[tuple, tuple]:
    """Latest row per key straight from DuckDB (arg_max over the lowered SQL)."""
    m = compile_project(root).manifest
    assert m is not None
    v = m.view(view)
    assert v is not None
    con = duckdb.connect()
    for s in m.sources:
        con.execute(f"CREATE VIEW {s.name} AS SELECT * FROM read_parquet("
                    f"'{root / s.batch.path}/*.parquet')")
    for dep in v.depends_on:
        if m.view(dep) is not None:
            body = "\n".join(ln for ln in lower_view(m, dep, "duckdb").splitlines()
                             if not ln.startswith("--"))
            con.execute(f"CREATE VIEW {dep} AS {body}")
    body = "\n".join(ln for ln in lower_view(m, view, "duckdb").splitlines()
                     if not ln.startswith("--"))
    keys = ", ".join(k.name for k in v.keys)
    feats = [f.name for f in v.features]
    cond = f"WHERE {v.timestamp} < TIMESTAMP '{end}'" if end else ""
    order = ", ".join([f"{v.timestamp} DESC", "_featql_created DESC NULLS LAST",
                       *(f"{f} DESC NULLS LAST" for f in feats)])
    rows = con.execute(
        f"SELECT {keys}, {v.timestamp}, {', '.join(feats)} FROM (SELECT *, row_number() OVER "
        f"(PARTITION BY {keys} ORDER BY {order}) AS rn FROM ({body}) {cond}) WHERE rn = 1"
    ).fetchall()
    n = len(v.keys)
    return {r[:n]: (codec.to_micros(r[n]), [codec.plain(x) for x in r[n + 1:]]) for r in rows}


def test_load_latest_rows_tiles_incremental_idempotent(store: OnlineStore, serve_project: Path
                                                       ) -> None:
    m = compile_project(serve_project).manifest
    assert m is not None
    cut = dt.datetime(2024, 1, 20)
    first = load_online(serve_project, m, "t", store=store, end=cut)
    by_view = {v.view: v for v in first.views}
    assert by_view["user_profile"].written == by_view["user_profile"].entities > 0
    # row-level: what is stored is the latest row before the cut, per entity
    for view_name in ("user_profile", "user_last_txn", "merchant_profile"):
        v = m.view(view_name)
        assert v is not None
        want = _independent_latest(serve_project, view_name, cut)
        items = [codec.item_key(v.entity, k) for k in want]
        got = store.read(items, [codec.cell_name(v)])
        assert len(got) == len(want)
        for key, (event, values) in want.items():
            ev, _created, vals = codec.decode_row(got[codec.item_key(v.entity, key)]
                                                  [codec.cell_name(v)])
            assert (ev, vals) == (event, values), (view_name, key)
    # aggregate: tiles end at the cut floored to the slide
    assert by_view["user_txn_aggs"].through == "2024-01-20T00:00:00"
    # idempotent
    again = load_online(serve_project, m, "t", store=store, end=cut)
    assert again.written == 0
    # incremental: only rows from the previous high-water mark are read, and newer values win
    later = load_online(serve_project, m, "t", store=store)
    lv = {v.view: v for v in later.views}
    assert 0 < lv["user_last_txn"].entities < by_view["user_last_txn"].entities * 2
    assert lv["user_last_txn"].written > 0
    v = m.view("user_last_txn")
    assert v is not None
    want = _independent_latest(serve_project, "user_last_txn", None)
    got = store.read([codec.item_key("user", k) for k in want], [codec.cell_name(v)])
    for key, (event, values) in want.items():
        ev, _c, vals = codec.decode_row(got[codec.item_key("user", key)][codec.cell_name(v)])
        assert (ev, vals) == (event, values)
    # an older materialization re-run afterwards cannot roll values back
    stale = load_online(serve_project, m, "t", store=store, end=cut, full=True,
                        views=["user_last_txn"])
    assert {x.view: x.written for x in stale.views}["user_last_txn"] == 0


@pytest.mark.parametrize("end", [dt.datetime(2024, 1, 10, 7, 30)])
def test_tiles_hold_the_longest_window(store: OnlineStore, serve_project: Path,
                                       end: dt.datetime) -> None:
    m = compile_project(serve_project).manifest
    assert m is not None
    load_online(serve_project, m, "t", store=store, end=end, views=["user_txn_aggs"])
    v = m.view("user_txn_aggs")
    assert v is not None
    hi = codec.to_micros(dt.datetime(2024, 1, 10, 7)) // 1_000_000
    cell = codec.cell_name(v)
    got = store.read([codec.item_key("user", [k]) for k in range(1, 60)], [cell], [cell])
    assert got
    for cells in got.values():
        tiles = tiles_mod.decode_tiles(cells[codec.cell_name(v)], tiles_mod.partial_columns(v))
        assert all(hi - max(v.windows) <= s < hi for s in tiles.starts)
        assert list(tiles.starts) == sorted(tiles.starts)


def test_late_data_for_the_same_end_replaces_tiles(store: OnlineStore, serve_project: Path
                                                   ) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    from featql.jobs.online_load import source_scan

    m = compile_project(serve_project).manifest
    assert m is not None
    end = dt.datetime(2024, 1, 15)
    scan, close = source_scan(m, serve_project)
    bump = {"on": False}

    def late(view, start, stop):  # type: ignore[no-untyped-def]
        table = scan(view, start, stop)
        if not bump["on"]:
            return table
        i = table.schema.get_field_index("txn_count__count")
        return table.set_column(i, "txn_count__count",
                                pc.add(table.column(i), pa.scalar(1, table.schema[i].type)))

    try:
        kw = dict(store=store, scan=late, end=end, views=["merchant_txn_aggs"])
        first = load_online(serve_project, m, "t", **kw)  # type: ignore[arg-type]
        assert first.written > 0
        assert load_online(serve_project, m, "t", **kw).written == 0  # type: ignore[arg-type]
        v = m.view("merchant_txn_aggs")
        assert v is not None
        names, cell = tiles_mod.partial_columns(v), codec.cell_name(v)
        before = tiles_mod.decode_tiles(store.read(["merchant#[1]"], [cell], [cell])
                                        ["merchant#[1]"][cell], names)
        bump["on"] = True  # the offline tiles changed (late events), same end
        again = load_online(serve_project, m, "t", **kw)  # type: ignore[arg-type]
        assert again.written == first.written
        after = tiles_mod.decode_tiles(store.read(["merchant#[1]"], [cell], [cell])
                                       ["merchant#[1]"][cell], names)
        assert [x + 1 for x in before.columns["txn_count__count"]] == list(
            after.columns["txn_count__count"])
    finally:
        close()
