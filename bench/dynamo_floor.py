"""Where a DynamoDB lookup's time goes: the floor of dynalite alone against featql's read path,
in one run, interleaved rounds, on the serve bench's service (bench_50: user + merchant views,
the example project) loaded into dynalite.

Arms, each for 1 entity and 100 entities (the same request bodies as bench/serve_bench.py):
  raw      pre-signed BatchGetItem bytes over http.client keep-alive connections, the chunks of
           one lookup sent at once on one connection each, bodies read and not parsed: the
           floor of dynalite + loopback + the cheapest Python client
  boto3    botocore `batch_get_item` of the same chunks, one after the other
  lean     featql's reader (`featql.online.dynamo_http.BatchGetClient.batch_get_all`): signed
           per call, parsed with orjson
  read     `DynamoStore.read` (the lean reader + cells out of the JSON, base64 decoded)
  lookup   `OnlineService.lookup` in process (read + TTL / tile merges + transforms + rows)
  app      `featql serve`'s app in process (its dispatcher: routing, request JSON, lookup,
           answer JSON, metrics), no HTTP server
  serve    `featql serve`'s app on granian (2 workers, featql serve's default threads), over
           HTTP with one client connection; `serve 2thr` the same with 2 threads per worker
and, as in serve_bench's target rows, closed loops: raw and serve with 4 connections (1
entity) and 2 connections (100 entities).

For each: p50 / p99 wall time per lookup, the Python client's CPU per lookup (in-process
arms), the server's CPU (serve), and dynalite's CPU per lookup (/proc/<pid>/stat of the Node
process). A CPU breakdown of featql's in-process work follows, measured without the network on
the captured answers: JSON parse, cells out of the JSON (+ base64), decode/merge, the rest of
the lookup. Ratios are against the raw arm of the same round; medians over rounds.

    .venv/bin/python bench/dynamo_floor.py [--transactions 100000] [--rounds 5] [--quick]

100,000 transactions make 2,000 users and 200 merchants with the serve bench's densities (50
transactions per user, 500 per merchant), so the cells are the same size as in its DynamoDB
rows. Needs `make dynalite` (or npm) and git history for nothing. Bounded: every arm has a
request count and a time limit. Results also in bench/out/dynamo_floor.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

import serve_bench as sb  # noqa: E402  (bench/ on the path: the serve bench's helpers)

SERVICE = sb.SERVICE


# -- raw exchange ------------------------------------------------------------------------------
class RawClient:
    """Pre-signed BatchGetItem requests over http.client keep-alive connections (one per chunk
    of a lookup): all chunks sent, then all bodies read, not parsed."""

    def __init__(self, port: int, slots: int):
        self.conns = [sb.Conn("127.0.0.1", port, timeout=10) for _ in range(slots)]

    def exchange(self, chunks: list[tuple[bytes, dict[str, str]]]) -> list[bytes]:
        try:
            return self._exchange(chunks)
        except (http.client.HTTPException, ConnectionError):
            # Node closes a connection idle for 5 s (keepAliveTimeout): reconnect once
            self.close()
            return self._exchange(chunks)

    def _exchange(self, chunks: list[tuple[bytes, dict[str, str]]]) -> list[bytes]:
        for conn, (body, headers) in zip(self.conns, chunks, strict=False):
            conn.request("POST", "/", body=body, headers=headers)
        out = []
        for conn, _ in zip(self.conns, chunks, strict=False):
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"dynalite answered {resp.status}: {data[:200]!r}")
            out.append(data)
        return out

    def close(self) -> None:
        for c in self.conns:
            c.close()


def presign(store: Any, request: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """A BatchGetItem body and its headers, signed once by the lean reader's own signing."""
    reader = store._fast_reader()
    body = orjson.dumps({"RequestItems": request})
    headers = reader._headers(body)
    headers["content-length"] = str(len(body))
    return body, headers


# -- timing ------------------------------------------------------------------------------------
def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else float("nan")


def workers(pid: int) -> list[int]:
    """The child processes of `pid` (granian's workers)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def timed(call: Callable[[int], Any], n: int, max_s: float, dyn_pid: int,
          server_pids: list[int] | None = None, conns: int = 1) -> dict[str, float]:
    """`call(i)` n times (split over `conns` threads, closed loop), at most `max_s` seconds:
    p50/p99 wall ms, throughput, this process's CPU ms per call, dynalite's and the server's
    CPU ms per call, and the busiest server worker's share of the server's CPU (1.0: one
    worker served every connection)."""
    lat: list[list[float]] = [[] for _ in range(conns)]
    deadline = time.perf_counter() + max_s

    def worker(k: int) -> None:
        for i in range(k, n, conns):
            t = time.perf_counter()
            if t > deadline:
                break
            call(i)
            lat[k].append(time.perf_counter() - t)

    d0, s0 = sb.cpu_seconds([dyn_pid]), sb.cpu_seconds(server_pids or [])
    kids = [w for p in server_pids or [] for w in workers(p)]
    k0 = [sb.cpu_seconds([w]) for w in kids]
    c0, w0 = time.process_time(), time.perf_counter()
    if conns == 1:
        worker(0)
    else:
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    wall = time.perf_counter() - w0
    done = [x for xs in lat for x in xs]
    k = max(1, len(done))
    per_worker = [sb.cpu_seconds([w]) - c for w, c in zip(kids, k0, strict=True)]
    share = max(per_worker) / sum(per_worker) if per_worker and sum(per_worker) else float("nan")
    return {"worker_share": share, "p50": pct(done, 0.5), "p99": pct(done, 0.99), "rps": k / wall,
            "cpu": (time.process_time() - c0) / k * 1000,
            "dyn_cpu": (sb.cpu_seconds([dyn_pid]) - d0) / k * 1000,
            "server_cpu": (sb.cpu_seconds(server_pids or []) - s0) / k * 1000, "n": k}


def cpu_per_call(call: Callable[[int], Any], n: int) -> float:
    """CPU ms per call of `call(i)` for i in range(n), best of 3 passes."""
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for i in range(n):
            call(i)
        best = min(best, (time.process_time() - t0) / n * 1000)
    return best


class CannedReader:
    """Stands in for the lean reader: answers the parsed responses captured for one lookup
    (no network, no parse), to time what featql does with an answer."""

    def __init__(self) -> None:
        self.answers: list[dict[str, Any]] = []

    def batch_get_all(self, requests: list[dict[str, Any]]) -> list[Any]:
        assert len(requests) == len(self.answers), (len(requests), len(self.answers))
        return list(self.answers)


# -- setup -------------------------------------------------------------------------------------
def setup(work: Path, transactions: int) -> tuple[Path, Any, Any, Any, str]:
    from serve.conftest import start_dynalite

    from featql.compiler.project import compile_project
    from featql.jobs.online_load import load_online
    from featql.online.dynamodb import DynamoStore

    root = sb.prepare_project(work, transactions)
    m = compile_project(root).manifest
    assert m is not None
    end = dt.datetime(2024, 1, 1) + dt.timedelta(days=90)
    sb.AT = end.isoformat()
    dyn, url = start_dynalite()
    sb.set_online(root, f'[online]\nstore = "dynamodb"\nregion = "us-east-1"\n'
                        f'endpoint_url = "{url}"\ntable_prefix = "bench_"\n')
    t0 = time.perf_counter()
    store = DynamoStore("dev", endpoint_url=url, table_prefix="bench_", writers=16)
    rep = load_online(root, m, "dev", end=end, store=store)
    store.close()
    print(f"dynalite load: {rep.written:,} cells in {time.perf_counter() - t0:.1f}s", flush=True)
    return root, m, dyn, url, end.isoformat()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transactions", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer calls per arm (smoke test)")
    args = ap.parse_args()

    from featql.cli.commands.serve import default_threads
    from featql.core.manifest import write_manifest
    from featql.online.dynamodb import DynamoStore, make_client
    from featql.online.lookup import OnlineService, parse_time

    work = Path(tempfile.mkdtemp(prefix="featql-dynamo-floor-"))
    procs: list[Any] = []
    results: dict[str, list[dict[str, float]]] = {}
    try:
        root, m, dyn, url, at = setup(work, args.transactions)
        procs.append(dyn)
        n_users, n_merchants = max(50, args.transactions // 50), max(10, args.transactions // 500)
        store = DynamoStore("dev", endpoint_url=url, region="us-east-1", table_prefix="bench_")
        svc = OnlineService(m, store, root)
        now = parse_time(at)
        port = int(url.rsplit(":", 1)[1])
        manifest_path = write_manifest(m, work / "manifest")
        settings = {"root": str(root), "workspace": "dev", "manifest_path": str(manifest_path),
                    "metrics_dir": str(work / "metrics")}
        threads = default_threads("dynamodb", url)
        # featql serve as it starts (its default threads per worker), and with 2 threads: a
        # worker holding two connections then overlaps one's store wait with the other's work
        servers: dict[str, tuple[Any, list[Any]]] = {}
        for label, n_threads in (("serve", threads), ("serve 2thr", 2)):
            if label != "serve" and n_threads == threads:
                continue
            proc, sport = sb.start_featql("granian", settings, 2, n_threads, None)
            procs.append(proc)
            servers[label] = (proc, [sb.Conn("127.0.0.1", sport, timeout=10) for _ in range(4)])
        print(f"featql serve: granian, 2 workers, {threads} thread(s) per worker (its default "
              "for this endpoint)" + (", and 2 threads" if "serve 2thr" in servers else ""))
        boto = make_client(store._session, "us-east-1", url, attempts=1)
        # the app in this process, no HTTP server: what `featql serve` adds around the lookup
        # (routing, the body's JSON, the answer's JSON, metrics), apart from granian's share
        from featql.server.app import ServeSettings, create_app

        app_store = DynamoStore("dev", endpoint_url=url, region="us-east-1",
                                table_prefix="bench_")
        dispatcher = create_app(ServeSettings(
            root=root, workspace="dev", manifest_path=manifest_path,
            metrics_dir=work / "metrics-in-process"), m, app_store
        ).extensions["featql.dispatcher"]
        feature_path = f"/v1/features/{SERVICE}"

        def app_call(body: bytes) -> None:
            reply = dispatcher.reply_for({
                "REQUEST_METHOD": "POST", "PATH_INFO": feature_path,
                "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
                "HTTP_HOST": "127.0.0.1", "wsgi.input": io.BytesIO(body)}, time.perf_counter())
            if reply.status != 200:
                raise RuntimeError(f"the app answered {reply.status}: {reply.body[:200]!r}")

        reader = store._fast_reader()
        canned = CannedReader()

        cases = {}
        for size, count in (("1 entity", 1), ("100 entities", 100)):
            bodies = sb.request_bodies(count, n_users, n_merchants, 200 if count == 1 else 60)
            parsed = [orjson.loads(b) for b in bodies]
            captured: list[list[dict[str, Any]]] = []
            orig = reader.batch_get_all
            reader.batch_get_all = lambda reqs, orig=orig, cap=captured: (cap.append(reqs),
                                                                          orig(reqs))[1]
            for p in parsed:
                svc.lookup(SERVICE, p["entities"], p["request"], now)
            del reader.batch_get_all
            raw_reqs = [[presign(store, r) for r in reqs] for reqs in captured]
            cases[size] = (bodies, parsed, captured, raw_reqs)
            keys = [sum(len(r[store.table]["Keys"]) for r in reqs) for reqs in captured]
            print(f"{size}: {statistics.mean(keys):.0f} keys per lookup in "
                  f"{statistics.mean(len(r) for r in captured):.1f} BatchGetItem chunk(s)")

        raw1 = RawClient(port, 2)
        raw_many = [RawClient(port, 2) for _ in range(4)]
        # answers for the CPU breakdown (captured once: the data does not change)
        answers: dict[str, list[list[bytes]]] = {
            size: [raw1.exchange(r) for r in c[3]] for size, c in cases.items()}
        resp_bytes = {size: statistics.mean(sum(len(x) for x in a) for a in ans)
                      for size, ans in answers.items()}
        for size, b in resp_bytes.items():
            print(f"{size}: {b / 1024:.1f} KiB of BatchGetItem answers per lookup")

        def serve_call(label: str, body: bytes, k: int) -> None:
            conn = servers[label][1][k]
            for attempt in (0, 1):  # an idle keep-alive connection the server closed: once more
                try:
                    conn.request("POST", f"/v1/features/{SERVICE}", body=body,
                                 headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    data = resp.read()
                    break
                except (http.client.HTTPException, ConnectionError):
                    conn.close()
                    if attempt:
                        raise
            if resp.status != 200:
                raise RuntimeError(f"featql serve answered {resp.status}: {data[:200]!r}")

        scale = 0.3 if args.quick else 1.0
        for rnd in range(args.rounds):
            for size, (bodies, parsed, captured, raw_reqs) in cases.items():
                one = size == "1 entity"
                n = int((600 if one else 120) * scale)
                conc = 4 if one else 2
                arms: dict[str, tuple[Callable[[int], Any], list[int] | None, int]] = {
                    "raw": (lambda i, r=raw_reqs: raw1.exchange(r[i % len(r)]), None, 1),
                    "boto3": (lambda i, c=captured: [boto.batch_get_item(RequestItems=x)
                                                     for x in c[i % len(c)]], None, 1),
                    "lean": (lambda i, c=captured: reader.batch_get_all(c[i % len(c)]),
                             None, 1),
                    "read": (lambda i, c=captured: store.read(
                        [k["item"]["S"] for x in c[i % len(c)] for k in x[store.table]["Keys"]],
                        svc.reads[SERVICE].cells), None, 1),
                    "lookup": (lambda i, p=parsed: svc.lookup(
                        SERVICE, p[i % len(p)]["entities"], p[i % len(p)]["request"], now),
                        None, 1),
                    "app": (lambda i, b=bodies: app_call(b[i % len(b)]), None, 1),
                    # worker k of a closed loop makes the calls i = k (mod conns): its own
                    # connection is number k
                    f"raw x{conc}": (lambda i, r=raw_reqs, c=conc: raw_many[i % c].exchange(
                        r[i % len(r)]), None, conc),
                }
                for label, (proc, _) in servers.items():
                    arms[label] = (lambda i, b=bodies, s=label: serve_call(s, b[i % len(b)], 0),
                                   [proc.pid], 1)
                    arms[f"{label} x{conc}"] = (
                        lambda i, b=bodies, c=conc, s=label: serve_call(s, b[i % len(b)], i % c),
                        [proc.pid], conc)
                order = list(arms.items())
                if rnd % 2:
                    order.reverse()
                for name, (call, pids, c) in order:
                    for i in range(10):  # warm: connections, lazy imports
                        call(i)
                    got = timed(call, n * (2 if c > 1 else 1), 8 * scale + 2, dyn.pid, pids, c)
                    results.setdefault(f"{size} | {name}", []).append(got)
            print(f"round {rnd + 1}/{args.rounds} done (load average {os.getloadavg()[0]:.1f})",
                  flush=True)

        breakdown = {size: cpu_breakdown(store, svc, canned, now, c[1], c[2], answers[size])
                     for size, c in cases.items()}
        report(results, breakdown, resp_bytes)
        for conn in [raw1, *raw_many, *(c for _, cs in servers.values() for c in cs)]:
            conn.close()
        app_store.close()
        store.close()
    finally:
        for proc in reversed(procs):
            sb.stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def cpu_breakdown(store: Any, svc: Any, canned: CannedReader, now: int,
                  parsed: list[dict[str, Any]], captured: list[list[dict[str, Any]]],
                  answers: list[list[bytes]]) -> dict[str, float]:
    """featql's CPU per lookup without the network, on the captured answers: JSON parse, cells
    out of the JSON (base64 included), the lookup's own work (decode, merges, transforms, rows)."""
    nb = len(parsed)
    docs = [[orjson.loads(x) for x in a] for a in answers]
    items = [[k["item"]["S"] for x in c for k in x[store.table]["Keys"]] for c in captured]
    cells = svc.reads[SERVICE].cells
    real = store._reader
    store._reader = canned
    try:
        def read(i: int) -> None:
            canned.answers = docs[i % nb]
            store.read(items[i % nb], cells)

        def lookup(i: int) -> None:
            canned.answers = docs[i % nb]
            p = parsed[i % nb]
            svc.lookup(SERVICE, p["entities"], p["request"], now)

        n = 2000 if len(parsed[0]["entities"]) == 1 else 100
        parse = cpu_per_call(lambda i: [orjson.loads(x) for x in answers[i % nb]], n)
        t_read = cpu_per_call(read, n)
        t_lookup = cpu_per_call(lookup, n)
    finally:
        store._reader = real
    return {"json parse": parse, "cells out of JSON (+base64)": t_read,
            "decode + merges + transforms + rows": t_lookup - t_read,
            "lookup without network (sum)": t_lookup + parse}


def report(results: dict[str, list[dict[str, float]]], breakdown: dict[str, dict[str, float]],
           resp_bytes: dict[str, float]) -> None:
    med = {k: {f: statistics.median(r[f] for r in rs) for f in rs[0]}
           for k, rs in results.items()}
    n_rounds = max(len(rs) for rs in results.values())
    print(f"\nmedians of {n_rounds} interleaved rounds; ms per lookup; ratios vs raw (same "
          "size, concurrency 1); cpu = this Python process (client arms), srv = featql serve's "
          "workers, dyn = dynalite (Node); w.share = the busiest server worker's part of the "
          "server CPU (2 workers: 0.5 = balanced, 1.0 = one worker took every connection)")
    head = (f"{'arm':28} {'p50':>7} {'p99':>7} {'p99/raw':>7} {'rps':>7} {'cpu':>6} "
            f"{'srv':>6} {'dyn':>6} {'w.share':>7}")
    print(head)
    print("-" * len(head))
    for k, r in med.items():
        size = k.split(" | ")[0]
        base = med[f"{size} | raw"]
        print(f"{k:28} {r['p50']:7.2f} {r['p99']:7.2f} {r['p99'] / base['p99']:7.2f} "
              f"{r['rps']:7.0f} {r['cpu']:6.2f} {r['server_cpu']:6.2f} {r['dyn_cpu']:6.2f} "
              f"{r['worker_share']:7.2f}")
    for size, parts in breakdown.items():
        print(f"\nfeatql's CPU per {size} lookup without the network ({resp_bytes[size] / 1024:.1f}"
              " KiB of answers), best of 3 passes:")
        for name, ms in parts.items():
            print(f"  {name:40} {ms:6.3f} ms")
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "dynamo_floor.json").write_text(json.dumps(
        {"median": med, "runs": results, "cpu_breakdown": breakdown,
         "answer_bytes": resp_bytes, "cpus": os.cpu_count(),
         "load_average": os.getloadavg()}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
