"""The sketch functions on Spark: featql's training set against a hand-written Spark SQL query.

One aggregate view over --events events (--entities users, 30 days) with 1d and 7d windows on a
1-hour slide; two services, measured apart:

  pct  APPROX_PERCENTILE(amount, 0.5) and (amount, 0.9): featql builds each tile's KLL sketch
       and reads each window in Python UDFs (`featql.semantics.sketches.SPARK_UDFS`);
  acd  APPROX_COUNT_DISTINCT(merchant): tiles by Spark's own `hll_sketch_agg`, the window's
       estimate in a Python UDF.

featql-pct / featql-acd run its Arrow UDFs (`SPARK_ARROW_UDFS`, the default); the -row modes
the same training set with the row-at-a-time UDFs (`SPARK_UDFS`) registered for that run.

The baselines are hand-written Spark SQL over the raw events of each spine row's longest
window, [floor(t, 1h) - 7d, floor(t, 1h)) (FILTER for the 1-day one), a range join then:
hand-pct Spark's `percentile_approx`, hand-kll `kll_sketch_agg_double` +
`kll_sketch_get_quantile_double`, hand-acd `approx_count_distinct`. They are floors, not
equivalents: they are neither deterministic (KLL) nor tiled, and keep no spine order.

All modes run in one Spark session (local[2]; the start-up is reported apart), each once
untimed first (the JVM's code warm, featql's ties cache settled), then --repeat interleaved
rounds (the order alternating), medians reported: wall seconds, and CPU seconds of the whole
process tree (this process, the JVM, the Python workers; /proc). The machine is shared: the
wall figures are loaded and only indicative, the CPU figures less so.

    .venv/bin/python bench/spark_sketch_bench.py --events 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve()
T0_US = 1_704_067_200_000_000  # 2024-01-01
DAY_US = 86_400_000_000
SPAN_DAYS = 30
WINDOWS = {"1d": 1, "7d": 7}
PCT = "APPROX_PERCENTILE(amount, 0.5) AS p50, APPROX_PERCENTILE(amount, 0.9) AS p90"
ACD = "APPROX_COUNT_DISTINCT(merchant) AS merchants"


def write_project(root: Path, args: argparse.Namespace) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    marker = root / "data" / "params.json"
    params = {k: getattr(args, k) for k in ("events", "entities", "spine")}
    if marker.exists() and json.loads(marker.read_text()) == params:
        return
    print(f"generating {params} under {root} ...", flush=True)
    for sub in ("sources", "views", "data/ev"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "featql.toml").write_text(
        '[project]\nname = "spark_sketch_bench"\n\n[spark]\nmaster = "local[2]"\n\n'
        '[spark.conf]\n"spark.driver.memory" = "3g"\n"spark.sql.shuffle.partitions" = "8"\n')
    (root / "entities.sql").write_text("-- @entity(name = user, keys = [user_id BIGINT])\n")
    (root / "sources" / "ev.sql").write_text(
        "-- @source(name = ev, timestamp = ts, batch = parquet('data/ev/'))\n"
        "CREATE TABLE ev (user_id BIGINT, ts TIMESTAMP, amount DOUBLE, merchant BIGINT);\n")
    for name, feats in (("pct", PCT), ("acd", ACD)):
        (root / "views" / f"{name}.sql").write_text(
            f"-- @feature_view(name = {name}, entity = user, timestamp = ts,\n"
            "--               windows = ['1d', '7d'], slide = '1h', start = '2024-01-01')\n"
            f"SELECT user_id, {feats}\nFROM ev GROUP BY user_id\n")
        (root / f"{name}_service.sql").write_text(
            f"-- @feature_service(name = {name}_service, features = [{name}.*])\n")
    rng = np.random.default_rng(14)
    n = args.events
    amount = np.round(rng.lognormal(3.5, 1.0, n), 2)  # cents: ties of values happen
    pq.write_table(pa.table({
        "user_id": rng.integers(0, args.entities, n),
        "ts": pa.array(T0_US + rng.integers(0, SPAN_DAYS * DAY_US, n) // 1_000_000 * 1_000_000,
                       pa.int64()).cast(pa.timestamp("us")),
        "amount": pa.array(amount, mask=rng.random(n) < 0.01),
        "merchant": rng.integers(0, 3000, n)}), root / "data" / "ev" / "part-000.parquet")
    ts = T0_US + 7 * DAY_US + rng.integers(0, (SPAN_DAYS - 7) * DAY_US, args.spine)
    pq.write_table(pa.table({
        "rid": np.arange(args.spine), "user_id": rng.integers(0, args.entities, args.spine),
        "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("us"))}), root / "data" / "spine.parquet")
    marker.write_text(json.dumps(params))


def hand_sql(root: Path, mode: str) -> str:
    sel = []
    for w, days in WINDOWS.items():
        f = "" if days == 7 else " FILTER (WHERE w1)"
        if mode == "hand-pct":
            sel += [f"percentile_approx(amount, {p}){f} AS p{int(p * 100)}_{w}" for p in (0.5, 0.9)]
        elif mode == "hand-kll":
            continue
        else:
            sel.append(f"approx_count_distinct(merchant){f} AS merchants_{w}")
    if mode == "hand-kll":  # the sketch per window, then its quantiles
        inner = ", ".join(f"kll_sketch_agg_double(amount, 200)"
                          f"{'' if d == 7 else ' FILTER (WHERE w1)'} AS sk_{w}"
                          for w, d in WINDOWS.items())
        outer = ", ".join(f"kll_sketch_get_quantile_double(sk_{w}, {p}) AS p{int(p * 100)}_{w}"
                          for w in WINDOWS for p in (0.5, 0.9))
        agg = f"(SELECT rid, {outer} FROM (SELECT rid, {inner} FROM j GROUP BY rid))"
    else:
        agg = f"(SELECT rid, {', '.join(sel)} FROM j GROUP BY rid)"
    data = root / "data"
    return f"""
WITH s AS (SELECT rid, user_id, ts, date_trunc('HOUR', ts) AS hi
           FROM parquet.`{data}/spine.parquet`),
j AS (SELECT s.rid, e.amount, e.merchant, e.ts >= s.hi - INTERVAL 1 DAY AS w1
      FROM s JOIN parquet.`{data}/ev` e
        ON e.user_id = s.user_id AND e.ts >= s.hi - INTERVAL 7 DAY AND e.ts < s.hi)
SELECT s.rid, s.user_id, s.ts, a.* EXCEPT (rid) FROM s LEFT JOIN {agg} a USING (rid)
"""


def tree_cpu(root_pid: int) -> float:
    """CPU seconds (user + system, with reaped children's) of root_pid and its descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            raw = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        stats[int(d)] = fields
        children.setdefault(int(fields[1]), []).append(int(d))
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        if pid in stats:
            f = stats[pid]
            total += sum(int(x) for x in f[11:15]) / tick
        todo.extend(children.get(pid, ()))
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/featql_spark_sketch_bench"))
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--entities", type=int, default=300)
    ap.add_argument("--spine", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--modes", default="featql-pct,featql-pct-row,hand-pct,hand-kll,featql-acd,"
                    "featql-acd-row,hand-acd",
                    help="-row: featql with its row-at-a-time Python UDFs (before issue 14)")
    ap.add_argument("--label", default="", help="a name for this tree in the output")
    args = ap.parse_args()
    root = args.dir.resolve()
    write_project(root, args)
    sys.path.insert(0, str(HERE.parents[1]))
    from featql.api import Project
    from featql.engines.spark import spark_session
    from featql.semantics.sketches import register_spark_udfs

    warnings.simplefilter("ignore")
    project = Project(root)
    config = project.compiled.config
    t = time.perf_counter()
    spark = spark_session(config.spark_master, config.spark_conf)
    startup = time.perf_counter() - t
    jvm = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())

    def run(mode: str) -> dict[str, float]:
        c0, w0 = tree_cpu(os.getpid()) + (0 if jvm_child else tree_cpu(jvm)), time.perf_counter()
        if mode.startswith("featql"):
            row = mode.endswith("-row")  # the row-at-a-time UDFs, for this run only
            if row:
                register_spark_udfs(spark, arrow=False)
            try:
                table = project.training_set(f"{mode.split('-')[1]}_service", root / "data" /
                                             "spine.parquet", engine="spark")
            finally:
                if row:
                    register_spark_udfs(spark)
        else:
            table = spark.sql(hand_sql(root, mode)).toArrow()
        wall = time.perf_counter() - w0
        cpu = tree_cpu(os.getpid()) + (0 if jvm_child else tree_cpu(jvm)) - c0
        return {"seconds": wall, "cpu": cpu, "rows": table.num_rows}

    jvm_child = jvm in _descendants(os.getpid())
    modes = args.modes.split(",")
    print(f"spark sketch bench {args.label}: {args.events:,} events, {args.entities:,} users, "
          f"spine {args.spine:,}, windows 1d/7d on 1h; Spark start-up {startup:.1f} s; load "
          f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (loaded: other jobs run)",
          flush=True)
    for m in modes:
        r = run(m)
        print(f"  warm-up {m}: {r['seconds']:.1f} s, {r['rows']:,} rows", flush=True)
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    for rnd in range(args.repeat):
        for m in (modes if rnd % 2 == 0 else modes[::-1]):
            runs[m].append(run(m))
            print(f"  round {rnd + 1} {m}: {runs[m][-1]['seconds']:.2f} s wall, "
                  f"{runs[m][-1]['cpu']:.2f} s CPU (load {os.getloadavg()[0]:.1f})", flush=True)
    med = {m: {"seconds": statistics.median(r["seconds"] for r in rs),
               "cpu": statistics.median(r["cpu"] for r in rs)} for m, rs in runs.items()}
    for m, r in med.items():
        base = {"featql-pct": "hand-pct", "featql-acd": "hand-acd", "featql-pct-row": "hand-pct",
                "featql-acd-row": "hand-acd"}.get(m)
        ratio = (f"  {r['seconds'] / med[base]['seconds']:.1f}x wall, "
                 f"{r['cpu'] / med[base]['cpu']:.1f}x CPU of {base}") if base in med else ""
        print(f"  {m:11s} median {r['seconds']:7.2f} s wall {r['cpu']:7.2f} s CPU{ratio}")
    out = HERE.parent / "out"
    out.mkdir(exist_ok=True)
    name = f"spark_sketch_bench{'_' + args.label if args.label else ''}.json"
    (out / name).write_text(json.dumps(
        {"params": vars(args) | {"dir": str(root)}, "startup": startup, "median": med,
         "runs": runs, "loaded": True, "load_average": os.getloadavg()}, indent=2))


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                raw = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(raw[raw.rindex(")") + 2:].split()[1]), []).append(int(d))
    seen, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, ()):
            seen.add(c)
            todo.append(c)
    return seen


if __name__ == "__main__":
    main()
