"""featql's CPU per online lookup in process, SQLite and DynamoDB (dynalite on 127.0.0.1), this
tree against a baseline commit, in one run, interleaved rounds.

The serve bench's service (bench_50: user + merchant views of the example project, two request
transforms) is loaded into SQLite and into dynalite; two worker processes then run
`OnlineService.lookup` on the same request bodies as bench/serve_bench.py, one importing featql
from this tree, one from `--base` (extracted with `git archive`). Rounds alternate which worker
goes first; the table gives the median (and range) over rounds of the CPU per lookup
(`time.process_time` of the worker: its own work, the store's client included, not dynalite's
or SQLite's I/O wait). `--profile` instead runs cProfile over this tree's lookups and prints
the functions with the most own time.

    .venv/bin/python bench/lookup_cpu.py [--base HEAD] [--transactions 100000] [--rounds 7]
        [--profile] [--skip-dynamodb]

Needs `make dynalite` (or npm) unless --skip-dynamodb, and git for the baseline.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import hashlib
import io
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SIZES = (1, 100)


def setup(work: Path, transactions: int, dynamo: bool, procs: list[Any]) -> dict[str, str]:
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))
    sys.path.insert(0, str(REPO / "tests"))
    import orjson
    import serve_bench as sb
    from serve.conftest import start_dynalite

    from featql.compiler.project import compile_project
    from featql.core.manifest import write_manifest
    from featql.jobs.online_load import load_online
    from featql.online.dynamodb import DynamoStore

    root = sb.prepare_project(work, transactions)
    m = compile_project(root).manifest
    assert m is not None
    end = dt.datetime(2024, 1, 1) + dt.timedelta(days=90)
    sb.AT = end.isoformat()
    load_online(root, m, "dev", end=end)
    conf = {"root": str(root), "manifest": str(write_manifest(m, work / "manifest")),
            "at": end.isoformat(), "url": ""}
    if dynamo:
        proc, url = start_dynalite()
        procs.append(proc)
        conf["url"] = url
        store = DynamoStore("dev", endpoint_url=url, table_prefix="bench_", writers=16)
        load_online(root, m, "dev", end=end, store=store)
        store.close()
    users, merchants = max(50, transactions // 50), max(10, transactions // 500)
    bodies = {str(n): [b.decode() for b in sb.request_bodies(n, users, merchants,
                                                             200 if n == 1 else 40)]
              for n in SIZES}
    (work / "bodies.json").write_bytes(orjson.dumps(bodies))
    conf["bodies"] = str(work / "bodies.json")
    return conf


def services(conf: dict[str, str]) -> dict[str, Any]:
    """An OnlineService per store, built with the featql first on sys.path."""
    from featql.core.manifest import load_manifest
    from featql.online.lookup import OnlineService
    from featql.online.sqlite import SqliteStore

    m = load_manifest(Path(conf["manifest"]))
    root = Path(conf["root"])
    out = {"sqlite": OnlineService(m, SqliteStore(root / ".featql" / "online.db", "dev"), root)}
    if conf["url"]:
        from featql.online.dynamodb import DynamoStore

        out["dynamodb"] = OnlineService(m, DynamoStore(
            "dev", endpoint_url=conf["url"], region="us-east-1", table_prefix="bench_"), root)
    return out


def worker(src: str, conf_text: str) -> None:
    """Reads `store size calls` lines, answers the CPU us per lookup (and a digest of the
    answers, to check both trees agree)."""
    sys.path.insert(0, src)
    import orjson

    from featql.online.lookup import parse_time

    conf = orjson.loads(conf_text)
    svcs = services(conf)
    bodies = {int(k): [orjson.loads(b) for b in v]
              for k, v in orjson.loads(Path(conf["bodies"]).read_bytes()).items()}
    now = parse_time(conf["at"])
    print("ready", flush=True)
    for line in sys.stdin:
        store, size, calls = line.split()
        svc, bs = svcs[store], bodies[int(size)]
        if calls == "digest":
            got = [svc.lookup("bench_50", b["entities"], b["request"], now) for b in bs]
            print(hashlib.sha256(orjson.dumps(got, option=orjson.OPT_SORT_KEYS)).hexdigest(),
                  flush=True)
            continue
        n = int(calls)
        t0 = time.process_time()
        for i in range(n):
            b = bs[i % len(bs)]
            svc.lookup("bench_50", b["entities"], b["request"], now)
        print((time.process_time() - t0) / n * 1e6, flush=True)


def profile(conf: dict[str, str]) -> None:
    import orjson

    from featql.online.lookup import parse_time

    svcs = services(conf)
    bodies = [orjson.loads(b) for b in orjson.loads(Path(conf["bodies"]).read_bytes())["100"]]
    now = parse_time(conf["at"])
    for name, svc in svcs.items():
        for b in bodies:
            svc.lookup("bench_50", b["entities"], b["request"], now)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(3):
            for b in bodies:
                svc.lookup("bench_50", b["entities"], b["request"], now)
        prof.disable()
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        print(f"\n== {name}: {3 * len(bodies)} lookups of 100 entities, by own time")
        stats.sort_stats("tottime").print_stats(25)
        print("\n".join(out.getvalue().splitlines()[:45]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="HEAD", help="the baseline commit (default HEAD)")
    ap.add_argument("--transactions", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--skip-dynamodb", action="store_true")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return 0
    import orjson

    work = Path(tempfile.mkdtemp(prefix="featql-lookup-cpu-"))
    procs: list[subprocess.Popen[Any]] = []
    try:
        conf = setup(work, args.transactions, not args.skip_dynamodb, procs)
        if args.profile:
            profile(conf)
            return 0
        base = work / "base"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.base, "featql"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        trees = {f"base {args.base}": str(base), "this tree": str(REPO)}
        workers: dict[str, subprocess.Popen[str]] = {}
        for label, src in trees.items():
            p = subprocess.Popen([sys.executable, __file__, "--worker", src,
                                  orjson.dumps(conf).decode()], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, cwd=work)
            procs.append(p)
            workers[label] = p
        for p in workers.values():
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"

        def ask(p: subprocess.Popen[str], line: str) -> str:
            assert p.stdin is not None and p.stdout is not None
            p.stdin.write(line + "\n")
            p.stdin.flush()
            return p.stdout.readline().strip()

        stores = ["sqlite"] + ([] if args.skip_dynamodb else ["dynamodb"])
        for store in stores:
            for size in SIZES:
                digests = {ask(p, f"{store} {size} digest") for p in workers.values()}
                print(f"{store} {size}: answers {'identical' if len(digests) == 1 else 'DIFFER'}"
                      " across the trees")
        cpu: dict[tuple[str, int, str], list[float]] = {}
        for rnd in range(args.rounds):
            order = list(workers.items())
            if rnd % 2:
                order.reverse()
            for store in stores:
                for size in SIZES:
                    calls = 400 if size == 1 else 30
                    for label, p in order:
                        cpu.setdefault((store, size, label), []).append(
                            float(ask(p, f"{store} {size} {calls}")))
        print(f"\nCPU per lookup (us), median of {args.rounds} interleaved rounds (min-max)")
        for store in stores:
            for size in SIZES:
                row = []
                for label in workers:
                    xs = cpu[(store, size, label)]
                    row.append(f"{label}: {statistics.median(xs):7.0f} "
                               f"({min(xs):.0f}-{max(xs):.0f})")
                b, t = (statistics.median(cpu[(store, size, lab)]) for lab in workers)
                print(f"  {store:8} {size:3} entities  " + "   ".join(row)
                      + f"   ratio {t / b:.2f}")
    finally:
        for p in reversed(procs):  # the workers, then dynalite
            if p.stdin:
                p.stdin.close()
            else:
                p.terminate()
            p.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
