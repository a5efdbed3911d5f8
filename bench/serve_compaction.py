"""Compaction at serving (issue 14): a service with 30-day and 90-day windows on 1-hour slides,
loaded into SQLite compacted (FQC1, `load_online(..., compact=True)`; opt-in: `[online] compact`)
(`compact=False`) from the same offline data, then the same 100-entity lookups against both.

    .venv/bin/python bench/serve_bench.py --compaction [--transactions N] [--rounds R] [--quick]

Reported per store and entity set: p50/p99 latency of `OnlineService.lookup` in process (the
read the server runs, without HTTP), and the bytes read per lookup: the sizes of the payloads
the store returned (`store.read`, counted by a wrapper around the real SqliteStore, not
estimated). Lookups are answered a few hours after the load (every slide of the day after it,
inside the compaction horizon), so they merge the tiles (the values merged at load serve only
the load's own slide). Rounds interleave the two stores; medians over rounds. Every lookup's
values are compared between the two stores and must be equal (exit 1 otherwise).

Entity sets: the example's data gives each user ~50 transactions over its 90 days, so an
all-fine cell holds at most a few dozen tiles and compaction has little to merge. The bench
therefore moves the transactions of the lower half of the user ids onto `DENSE` users (user
id 1 + (id - 1) mod DENSE; at 1M transactions ~2,500 each, a tile in most hours: the entities
compaction is for) before the apply. `dense` lookups draw 100 of those users, `sparse` ones 100
users of the upper half, untouched example users.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

LONG_VIEW = """-- @feature_view(name = user_txn_long, entity = user, timestamp = event_ts,
--               windows = ['30d', '90d'], slide = '1h', start = '2024-01-01')
SELECT user_id, COUNT(*) AS txn_count, SUM(amount) AS amount_sum, AVG(amount) AS amount_avg,
       MAX(amount) AS amount_max
FROM transactions WHERE amount > 0 GROUP BY user_id
"""
HLL_VIEW = """-- @feature_view(name = user_merchants_long, entity = user, timestamp = event_ts,
--               windows = ['30d', '90d'], slide = '1h', start = '2024-01-01')
SELECT user_id, APPROX_COUNT_DISTINCT(merchant_id) AS merchants
FROM transactions WHERE amount > 0 GROUP BY user_id
"""
# service -> its view: the exact functions (the target), and a sketch apart (an HLL
# tile keeps ~4 bytes per distinct value whatever its resolution: compaction saves its tiles'
# headers, not its coupons)
SERVICES = {"long_windows": "user_txn_long", "long_windows_hll": "user_merchants_long"}
FILES = {"views/user_txn_long.sql": LONG_VIEW, "views/user_merchants_long.sql": HLL_VIEW,
         "services/long_windows.sql":
             "-- @feature_service(name = long_windows, features = [user_txn_long.*])\n",
         "services/long_windows_hll.sql":
             "-- @feature_service(name = long_windows_hll, features = [user_merchants_long.*])\n"}
HLL_RSE = 1.04 / 4096 ** 0.5  # docs/language.md: lgConfigK 12
N_ENTITIES = 100
DENSE = 200


def _densify(root: Path) -> None:
    """Move the transactions of users 1..n/2 onto users 1..DENSE (see the module doc)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = sorted((root / "data" / "transactions").glob("*.parquet"))
    top = max(pc.max(pq.read_table(f, columns=["user_id"]).column("user_id")).as_py() or 0
              for f in files)
    half = top // 2
    for f in files:
        t = pq.read_table(f)
        u = t.column("user_id")
        ids = u.to_numpy()
        ids = np.where(ids <= half, (ids - 1) % DENSE + 1, ids)
        t = t.set_column(t.schema.get_field_index("user_id"), "user_id",
                         pa.array(ids, u.type))
        pq.write_table(t, f)


class CountingStore:
    """The real store, counting the bytes of every payload its reads return."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.kind = store.kind
        self.bytes = 0
        self.cells = 0

    def read(self, items: Sequence[str], views: Sequence[str],
             full: Collection[str] = ()) -> dict[str, dict[str, bytes]]:
        got: dict[str, dict[str, bytes]] = self.store.read(items, views, full)
        for per in got.values():
            for payload in per.values():
                self.bytes += len(payload)
                self.cells += 1
        return got

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


def _users(root: Path, lo: int, hi: int) -> tuple[list[int], float]:
    """The users in [lo, hi] with a purchase, and their median purchase count."""
    import duckdb

    con = duckdb.connect()
    try:
        rows = con.execute(
            "SELECT user_id, count(*) FROM read_parquet(?) WHERE amount > 0 "
            "AND user_id BETWEEN ? AND ? GROUP BY user_id ORDER BY user_id",
            [str(root / "data" / "transactions" / "*.parquet"), lo, hi]).fetchall()
    finally:
        con.close()
    return [int(r[0]) for r in rows], statistics.median(r[1] for r in rows)


def run(transactions: int, rounds: int, quick: bool) -> int:
    from serve_bench import REPO, machine_speed, prepare_project

    from featql.compiler.project import compile_project
    from featql.jobs.online_load import load_online
    from featql.online.codec import cell_name
    from featql.online.lookup import OnlineService
    from featql.online.sqlite import SqliteStore
    from featql.semantics import read_cost

    work = Path(tempfile.mkdtemp(prefix="featql-compaction-bench-"))
    lookups = 40 if quick else 200  # per store, entity set and round
    stores: dict[str, CountingStore] = {}
    try:
        t0 = time.perf_counter()
        root = prepare_project(work, transactions, FILES, _densify)
        result = compile_project(root)
        assert result.manifest is not None and result.ok
        m = result.manifest
        views = [m.view(v) for v in SERVICES.values()]
        end = dt.datetime(2024, 1, 1) + dt.timedelta(days=90)
        print(f"data: {transactions:,} transactions ({time.perf_counter() - t0:.1f}s)")
        for label, compact in (("compacted", True), ("all-fine", False)):
            store = SqliteStore(work / f"online-{label}.db", "dev")
            t0 = time.perf_counter()
            rep = load_online(root, m, "dev", views=list(SERVICES.values()), store=store,
                              end=end, compact=compact)
            print(f"{label}: {rep.written:,} cells in {time.perf_counter() - t0:.1f}s")
            for view in views:
                assert view is not None
                sizes = [n for (n,) in store._conn().execute(
                    f"SELECT length(payload) FROM {store.table} WHERE view = ?",
                    [cell_name(view)])]
                print(f"  {view.name}: {sum(sizes) / 1e6:.1f} MB, cell bytes median "
                      f"{statistics.median(sizes):.0f} max {max(sizes)}")
            stores[label] = CountingStore(store)
        for view in views:
            assert view is not None
            bound, plain = read_cost.view_read(view), read_cost.view_read(view, compact=False)
            print(f"compile-time bound per entity for {view.name} (featql compile): "
                  f"{bound.tiles} tiles / {bound.bytes} B compacted, {plain.tiles} tiles / "
                  f"{plain.bytes} B all-fine")
        services = {k: OnlineService(m, s, root) for k, s in stores.items()}
        n_users = max(50, transactions // 50)  # what the generator creates
        dense, dense_n = _users(root, 1, DENSE)
        sparse, sparse_n = _users(root, n_users // 2 + 1, n_users)
        print(f"entities: {len(dense)} dense users (median {dense_n:.0f} purchases), "
              f"{len(sparse)} sparse users (median {sparse_n:.0f})")
        sets = {"dense": dense, "sparse": sparse}
        rng = random.Random(14)
        # each lookup: 100 users of the set, at a slide start 1-23 h after the load (inside the
        # horizon of one day: answered exactly from the compacted cells), plus a few seconds
        requests = {name: [([{"user_id": u} for u in rng.sample(pool, N_ENTITIES)],
                            int((end + dt.timedelta(hours=rng.randint(1, 23),
                                                    seconds=rng.randint(0, 3599))
                                 ).timestamp() * 1_000_000))
                           for _ in range(lookups)]
                    for name, pool in sets.items()}
        for svc in services.values():  # warm-up: lazy imports, the tiles-first switch
            for service in SERVICES:
                for ents, at in requests["sparse"][:3]:
                    svc.lookup(service, ents, None, at)
        # (service, store, set) -> per round: p50, p99 (ms), bytes and cells per lookup
        rows: dict[tuple[str, str, str], list[tuple[float, float, float, float]]] = {}
        speeds, mismatches, worst_hll = [], 0, 0.0
        for rnd in range(rounds):
            speeds.append(machine_speed())
            for service in SERVICES:
                for name, reqs in requests.items():
                    answers: dict[str, list[Any]] = {}
                    order = list(services) if rnd % 2 == 0 else list(services)[::-1]
                    for label in order:
                        svc, cs = services[label], stores[label]
                        lat, got = [], []
                        b0, c0 = cs.bytes, cs.cells
                        for ents, at in reqs:
                            t = time.perf_counter()
                            values, _meta = svc.lookup(service, ents, None, at)
                            lat.append(time.perf_counter() - t)
                            got.append(values)
                        rows.setdefault((service, label, name), []).append(
                            (_pct(lat, 0.5), _pct(lat, 0.99), (cs.bytes - b0) / len(reqs),
                             (cs.cells - c0) / len(reqs)))
                        answers[label] = got
                    for i, (x, y) in enumerate(zip(answers["compacted"], answers["all-fine"],
                                                   strict=True)):
                        if service == "long_windows":  # exact functions: equal, bit for bit
                            if x != y:
                                mismatches += 1
                                if mismatches <= 3:
                                    print(f"MISMATCH {name} lookup {i}: "
                                          f"{[(p, q) for p, q in zip(x, y, strict=True)][:1]}")
                            continue
                        for p, q in zip(x, y, strict=True):  # the sketch: within its bound
                            for k, v in p.items():
                                dv = abs(v - q[k])
                                worst_hll = max(worst_hll, dv / max(1, q[k]))
                                if dv > 2 * (3 * HLL_RSE * q[k] + 1):
                                    mismatches += 1
                                    print(f"OUT OF BOUND {k}: {v} vs {q[k]}")
            print(f"round {rnd + 1}/{rounds}: reference loop {speeds[-1]:.1f} ms, load average "
                  f"{os.getloadavg()[0]:.1f}")
    finally:
        for cs in stores.values():
            cs.store.close()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{N_ENTITIES}-entity lookups, in process on SQLite, {lookups} lookups per service, "
          f"store, set and round, median of {rounds} interleaved rounds; long_windows = "
          "user_txn_long (COUNT, SUM, AVG, MAX x 30d, 90d on a 1h slide), long_windows_hll = "
          "user_merchants_long (APPROX_COUNT_DISTINCT x 30d, 90d)")
    head = (f"{'service':17} {'store':10} {'users':7} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'KB read':>9} {'cells':>6}")
    print(head)
    print("-" * len(head))
    med: dict[tuple[str, str, str], dict[str, float]] = {}
    for key, rs in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])):
        med[key] = {k: round(statistics.median(r[i] for r in rs), 3) for i, k in
                    enumerate(("p50_ms", "p99_ms", "bytes", "cells"))}
        r = med[key]
        print(f"{key[0]:17} {key[1]:10} {key[2]:7} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
              f"{r['bytes'] / 1000:9.1f} {r['cells']:6.0f}")
    ratios = {}
    for service in SERVICES:
        for name in sets:
            c, f = med[(service, "compacted", name)], med[(service, "all-fine", name)]
            ratios[f"{service} {name}"] = r = {"bytes": round(f["bytes"] / c["bytes"], 2),
                                               "p99": round(f["p99_ms"] / c["p99_ms"], 2)}
            print(f"{service} {name}: all-fine / compacted: bytes read {r['bytes']:.2f}x, "
                  f"p99 {r['p99']:.2f}x")
    print(f"long_windows values equal in every lookup: {mismatches == 0} ({mismatches} differ); "
          f"APPROX_COUNT_DISTINCT compacted vs all-fine: largest relative difference "
          f"{worst_hll:.4%} (documented bound 3 x {HLL_RSE:.3%} each)")
    ok = ratios["long_windows dense"]["bytes"] >= 5 and not mismatches
    print(f"  [{'x' if ok else ' '}] compacted read >= 5x fewer bytes at the same values "
          "(long_windows, dense users)")
    print(f"reference loop per round (ms): {', '.join(f'{x:.1f}' for x in speeds)}; load "
          f"average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve_compaction.json").write_text(json.dumps(
        {"transactions": transactions, "lookups": lookups, "rounds": rounds,
         "median": {" ".join(k): v for k, v in med.items()},
         "runs": {" ".join(k): v for k, v in rows.items()},
         "ratios_all_fine_over_compacted": ratios, "mismatches": mismatches,
         "hll_worst_relative_difference": worst_hll,
         "reference_loop_ms": speeds, "load_average": os.getloadavg()}, indent=2))
    return 1 if mismatches else 0
