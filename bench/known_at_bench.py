"""known_at benchmark: the training-set cost of a `known_at` source (PRODUCT §3 "as known at")
against the same source and data without it, on DuckDB, measured in the same run.

One row-level view of `--rows` rows × 4 DOUBLE features over `--entities` users, event times
over 90 days, each row created 0-72 hours after its event (so at a spine time some rows are
already past but not yet known); a `--spine`-row spine. Without known_at the view is joined by
DuckDB's `ASOF LEFT JOIN` (the baseline); with it, by featql's known_at plan: each entity's
rows ranked by the tie-break, the running best rank in the order rows become visible
(max(ts + 1us, created)), an `ASOF JOIN` on that time and the winner joined back by its rank
(n log n, whatever the rows or spine rows per entity; `--entities 100` shows a hot-key case).
Both read the same Parquet file
from the sources (`use_store=False`), in this process, best of --repeat runs, interleaved.

`--kind aggregate` (or `both`): an aggregate view over the same rows instead (COUNT, SUM, AVG,
MAX, STDDEV_SAMP, LAST_N(a, 3); windows 1d and 7d on a 1h slide). Without known_at the tiles are
merged by the RANGE-frame anchor plan; with it, the tiles are keyed by (user, tile, time known)
(an event created after its tile's end gets a partial of its own) and each distinct (user, t)
of the spine is joined to the partials of its 7d window known by t and merged per spine row.

    python bench/known_at_bench.py                       # 2M rows, 100k users, 500k spine rows
    python bench/known_at_bench.py --rows 200000 --spine 50000
    python bench/known_at_bench.py --kind aggregate --rows 1000000 --spine 200000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

SOURCE = ("-- @source(name = feats, timestamp = ts, created = created_at{known},\n"
          "--         batch = parquet('data/feats/'))\n"
          "CREATE TABLE feats (user_id BIGINT, ts TIMESTAMP, created_at TIMESTAMP, a DOUBLE, "
          "b DOUBLE, c DOUBLE, d DOUBLE);\n")


AGGREGATE = ("-- @feature_view(name = v, entity = user, timestamp = ts, windows = ['1d', '7d'],\n"
             "--               slide = '1h', start = '2024-01-01')\n"
             "SELECT user_id, COUNT(*) AS n, SUM(a) AS sa, AVG(b) AS ab, MAX(c) AS mc, "
             "STDDEV_SAMP(d) AS sd, LAST_N(a, 3) AS la FROM feats GROUP BY user_id\n")


def write_project(root: Path, known: bool, kind: str = "row") -> None:
    (root / "sources").mkdir(parents=True, exist_ok=True)
    (root / "featql.toml").write_text('[project]\nname = "known_bench"\n')
    (root / "entities.sql").write_text("-- @entity(name = user, keys = [user_id BIGINT])\n")
    (root / "sources" / "feats.sql").write_text(
        SOURCE.format(known=", known_at = created_at" if known else ""))
    (root / "view.sql").write_text(
        AGGREGATE if kind == "aggregate" else
        "-- @feature_view(name = v, entity = user, timestamp = ts, start = '2024-01-01')\n"
        "SELECT user_id, ts, a, b, c, d FROM feats\n")
    (root / "svc.sql").write_text("-- @feature_service(name = svc, features = [v.*])\n")


def write_data(data: Path, rows: int, entities: int, spine_rows: int) -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(7)
    t0 = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    span = 90 * 86_400 * 1_000_000
    ts = t0 + rng.integers(0, span, rows)
    created = ts + rng.integers(0, 72 * 3_600_000_000, rows)
    table = pa.table({
        "user_id": pa.array(rng.integers(0, entities, rows)),
        "ts": pa.array(ts.astype("datetime64[us]")),
        "created_at": pa.array(created.astype("datetime64[us]")),
        **{c: pa.array(rng.random(rows)) for c in "abcd"}})
    (data / "feats").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, data / "feats" / "p.parquet")
    spine = pa.table({
        "user_id": pa.array(rng.integers(0, entities, spine_rows)),
        "t": pa.array((t0 + rng.integers(0, span, spine_rows)).astype("datetime64[us]"))})
    pq.write_table(spine, data / "spine.parquet")
    return data / "spine.parquet"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--spine", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--kind", choices=["row", "aggregate", "both"], default="row")
    args = ap.parse_args()
    for kind in (("row", "aggregate") if args.kind == "both" else (args.kind,)):
        run(args, kind)


def run(args: argparse.Namespace, kind: str) -> None:
    import pyarrow.parquet as pq

    from featql.compiler.project import compile_project
    from featql.jobs.training import training_set

    column = "v__a" if kind == "row" else "v__n_7d"
    with tempfile.TemporaryDirectory() as tmp:
        roots = {}
        for known in (False, True):
            root = Path(tmp) / ("known" if known else "plain")
            write_project(root, known, kind)
            roots[known] = root
        spine_path = write_data(roots[False] / "data", args.rows, args.entities, args.spine)
        (roots[True] / "data").symlink_to(roots[False] / "data")
        spine = pq.read_table(spine_path)
        results: dict[bool, list[float]] = {False: [], True: []}
        hidden = None
        for _ in range(args.repeat):
            for known in (False, True):
                result = compile_project(roots[known])
                assert result.ok, [d.headline() for d in result.diagnostics]
                t = time.perf_counter()
                out = training_set(roots[known], result.manifest, result.config, "svc", spine,
                                   engine="duckdb", use_store=False)
                results[known].append(time.perf_counter() - t)
                if known:
                    hidden = out
                else:
                    plain = out
        diff = sum(1 for x, y in zip(plain.column(column).to_pylist(),
                                     hidden.column(column).to_pylist(), strict=True) if x != y)
        base, kn = min(results[False]), min(results[True])
        plans = (("ASOF baseline", "running best+ASOF") if kind == "row"
                 else ("RANGE-frame anchors", "spine x known partials"))
        print(f"{kind} view: rows {args.rows:,}, entities {args.entities:,}, spine "
              f"{args.spine:,} (DuckDB, from the sources, best of {args.repeat})")
        print(f"  without known_at ({plans[0]}): {base:.2f} s  "
              f"runs {', '.join(f'{r:.2f}' for r in results[False])}")
        print(f"  with known_at ({plans[1]}): {kn:.2f} s  "
              f"runs {', '.join(f'{r:.2f}' for r in results[True])}")
        print(f"  ratio known_at / baseline: {kn / base:.2f}x; spine rows whose {column} differs "
              f"(an event not yet created hidden): {diff:,} of {args.spine:,}")

if __name__ == "__main__":
    main()
