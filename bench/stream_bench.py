"""Streaming freshness benchmark (issue 13): how soon a lookup sees an event.

    .venv/bin/python bench/stream_bench.py [--seconds 10] [--rate 1000] [--clients 4]
                                           [--batch 10]

Push path (the embedded default): a small stream project is applied and served by
`featql serve` on 127.0.0.1; `--clients` threads push `--rate` events/s in total (open loop:
each batch of `--batch` events has a scheduled send time, so a stalled server cannot hide its
queueing), and after each acknowledged push the same client looks the entity up until the
feature shows the event (`user_last.last_id` is the event's id, `user_aggs.n_1h` counts it).
Freshness = first lookup that sees the event − the batch's scheduled send time; p50 and p99
over every event. Sustained events/s: the same clients push batches of 100 as fast as they can.
Unattended and bounded: a push or lookup that takes over HTTP_TIMEOUT, an event not seen within
LOOK_SECONDS of its push, or a client still running after its phase, fails the bench with why.

Baseline, measured in the same run: the same load written straight into the online store (the
same SQLite file, one cell per event, written and read back by the same number of threads in
process, no HTTP, no validation, no log): the figure a push cannot beat. Each figure is printed
next to its baseline and the ratio. Results also go to bench/out/stream_bench.json.

`--kafka` then measures the Kafka → Spark → online half (`bench/stream_kafka.py`, which also
runs on its own): `featql stream --trigger 1` on a real broker, freshness p50/p99 from produce
to the first lookup that sees the event, and sustained events/s, each next to the same events
written straight into the online store in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.ingest.server import Server, cli  # noqa: E402

USERS = 2000
HTTP_TIMEOUT = 10.0  # seconds a push or a lookup may take before the bench fails


def write_project(root: Path) -> None:
    for d in ("sources", "entities", "views", "services", "data/events", "data/events_stream"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "featql.toml").write_text(
        '[project]\nname = "bench"\n[offline]\nengine = "duckdb"\npath = "data/offline"\n'
        '[online]\nstore = "sqlite"\npath = ".featql/online.db"\n')
    (root / "sources/events.sql").write_text(
        "-- @source(name = events, timestamp = ts, batch = parquet('data/events/'),\n"
        "--         stream = files('data/events_stream/', format = json), lateness = '1h',\n"
        "--         key = event_id)\n"
        "CREATE TABLE events (event_id BIGINT, user_id BIGINT, amount DOUBLE, ts TIMESTAMP);\n")
    (root / "entities/user.sql").write_text("-- @entity(name = user, keys = [user_id])\n")
    (root / "views/user_aggs.sql").write_text(
        "-- @feature_view(name = user_aggs, entity = user, timestamp = ts,\n"
        "--               windows = ['1h', '1d'], slide = '1h', start = '2024-01-01')\n"
        "SELECT user_id, COUNT(*) AS n, SUM(amount) AS total, MAX(amount) AS top\n"
        "FROM events GROUP BY user_id\n")
    (root / "views/user_last.sql").write_text(
        "-- @feature_view(name = user_last, entity = user, timestamp = ts, ttl = '7d',\n"
        "--               schedule = '1d', start = '2024-01-01')\n"
        "SELECT user_id, ts, event_id AS last_id, amount AS last_amount FROM events\n")
    (root / "services/svc.sql").write_text(
        "-- @feature_service(name = svc, features = [user_aggs.*, user_last.*])\n")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"event_id": pa.array([], pa.int64()),
                             "user_id": pa.array([], pa.int64()),
                             "amount": pa.array([], pa.float64()),
                             "ts": pa.array([], pa.timestamp("us"))}),
                   root / "data/events/part-000.parquet")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


class Ids:
    def __init__(self) -> None:
        self.lock, self.next = threading.Lock(), 0

    def take(self, n: int) -> int:
        with self.lock:
            first, self.next = self.next, self.next + n
            return first


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat()


# -- the push path --------------------------------------------------------------------------------
LOOK_SECONDS = 10.0  # an acknowledged event not seen by a lookup within this: the bench fails


def push_clients(server: Server, seconds: float, clients: int, batch: int, ids: Ids,
                 rate: float | None = None) -> dict[str, Any]:
    """`clients` threads pushing batches of `batch` events for `seconds`. With `rate` (events/s
    in total) each batch has a scheduled send time (open loop) and, once acknowledged, its
    client looks the entity of its last event up until the features show it: freshness = that
    lookup's end - the scheduled time. Without `rate` the clients push as fast as they can
    (sustained events/s). Bounded: every client stops by `seconds` + LOOK_SECONDS + the HTTP
    timeout, and a client that does not is an error."""
    interval = batch * clients / rate if rate else 0.0  # each client's period between batches
    fresh: list[float] = []
    done = [0] * clients
    calls = [0, 0]  # pushes, lookups (not locked: a rough count is enough)
    errors: list[str] = []
    end = time.perf_counter() + seconds

    def client(c: int) -> None:
        users = [u for u in range(USERS) if u % clients == c]
        k = 0
        due = time.perf_counter() + c * interval / clients
        while (due if rate else time.perf_counter()) < end and not errors:
            delay = due - time.perf_counter()
            if rate and delay > 0:
                time.sleep(delay)
            first = ids.take(batch)
            recs = [{"event_id": first + i, "user_id": users[(k + i) % len(users)],
                     "amount": float(i), "ts": _now_iso()} for i in range(batch)]
            k += batch
            status, body = server.push("events", recs)
            calls[0] += 1
            if status != 200:
                errors.append(f"push: {status} {body}")
                return
            done[c] += batch
            if not rate:
                continue
            probe, got = recs[-1], None
            give_up = time.perf_counter() + LOOK_SECONDS
            while time.perf_counter() < give_up:
                status, got = server.lookup("svc", [{"user_id": probe["user_id"]}])
                calls[1] += 1
                row = got["features"][0] if status == 200 else {}
                if row.get("user_last.last_id") == probe["event_id"] and \
                        row.get("user_aggs.n_1h", 0) >= 1:
                    break
            else:
                errors.append(f"event {probe['event_id']} not seen within {LOOK_SECONDS:g} s "
                              f"of its push: {got}")
                return
            fresh.extend([time.perf_counter() - due] * batch)
            due += interval

    def run(c: int) -> None:
        try:
            client(c)
        except Exception as e:  # a refused connection, a timeout: the bench fails, says why
            errors.append(f"client {c}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in range(clients)]
    cpu0 = server_cpu(server)
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, started + seconds + LOOK_SECONDS + HTTP_TIMEOUT + 5
                   - time.perf_counter()))
    took = time.perf_counter() - started
    if any(t.is_alive() for t in threads):
        errors.append(f"a client was still running {took:.0f} s after the start")
    if errors:
        raise SystemExit("push bench failed: " + errors[0])
    cpu = server_cpu(server) - cpu0
    out: dict[str, Any] = {"events": sum(done), "seconds": took,
                           "events_per_s": sum(done) / took, "pushes": calls[0],
                           "lookups": calls[1], "server_cpu_s": cpu,
                           "server_cpu_ms_per_push": 1e3 * cpu / max(1, calls[0])}
    if rate:
        out.update(p50_ms=pct(fresh, 50) * 1e3, p99_ms=pct(fresh, 99) * 1e3)
    return out


def server_cpu(server: Server) -> float:
    """CPU seconds (user + system) used so far by the server's processes (its session: the
    supervisor and every worker), from /proc; 0 where there is no /proc. On a shared machine
    this is the figure to compare, not the latencies: it does not count time spent waiting."""
    total = 0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == server.proc.pid:  # the session id (the server is a session leader)
            total += int(fields[11]) + int(fields[12])
    return total / tick


# -- the baseline: the same load straight into the online store ------------------------------------
def baseline(root: Path, seconds: float, rate: float | None, clients: int, batch: int,
             ids: Ids) -> dict[str, Any]:
    from featql.online import codec
    from featql.online.base import Cell, version
    from featql.online.sqlite import SqliteStore

    store = SqliteStore(root / ".featql/online.db", "baseline")
    fresh: list[float] = []
    count = [0]
    lock = threading.Lock()
    end = time.perf_counter() + seconds
    interval = batch * clients / rate if rate else 0.0

    def client(c: int) -> None:
        due = time.perf_counter()
        while (due if rate else time.perf_counter()) < end:
            if rate:
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            first = ids.take(batch)
            cells = []
            for i in range(batch):
                ts = codec.to_micros(dt.datetime.now(dt.UTC))
                payload = codec.encode_row(ts, None, [first + i, float(i)])
                user = c + clients * ((first + i) % (USERS // clients))  # this client's own
                cells.append(Cell(f"user#[{user}]", "user_last@bench",
                                  version(ts, None, payload), payload))
            store.write(cells)
            got = store.read([cells[-1].item], ["user_last@bench"])
            assert got[cells[-1].item]["user_last@bench"] == cells[-1].payload
            seen = time.perf_counter()
            with lock:
                count[0] += batch
                if rate:
                    fresh.extend([seen - due] * batch)
            due += interval

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    took = time.perf_counter() - started
    store.close()
    out: dict[str, Any] = {"events": count[0], "seconds": took, "events_per_s": count[0] / took}
    if rate:
        out.update(p50_ms=pct(fresh, 50) * 1e3, p99_ms=pct(fresh, 99) * 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=1000.0, help="events/s pushed in total")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, default=10, help="events per push")
    ap.add_argument("--kafka", action="store_true",
                    help="then the Kafka -> Spark -> online half (bench/stream_kafka.py: "
                    "`featql stream --trigger 1` on a real broker; needs `make kafka`)")
    ap.add_argument("--kafka-rate", type=float, default=200.0,
                    help="events/s produced to Kafka (with --kafka)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="featql-stream-bench-"))
    root = tmp / "proj"
    load = [os.getloadavg()[0], 0.0]
    try:
        write_project(root)
        done = cli(root, "apply", "--yes")
        if done.returncode != 0:
            raise SystemExit(done.stdout + done.stderr)
        server = Server(root, workers=int(os.environ.get("FEATQL_BENCH_WORKERS", "2")),
                        timeout=HTTP_TIMEOUT)
        ids = Ids()
        try:
            push_clients(server, 2.0, args.clients, args.batch, ids, args.rate)  # warm-up
            fresh = push_clients(server, args.seconds, args.clients, args.batch, ids,
                                 args.rate)
            sustained = push_clients(server, args.seconds, args.clients, 100, ids)
        finally:
            server.stop()
        base_fresh = baseline(root, args.seconds, args.rate, args.clients, args.batch, ids)
        base_sustained = baseline(root, args.seconds, None, args.clients, 100, ids)
        load[1] = os.getloadavg()[0]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = [
        ("push freshness p50 (ms)", fresh["p50_ms"], base_fresh["p50_ms"]),
        ("push freshness p99 (ms)", fresh["p99_ms"], base_fresh["p99_ms"]),
        (f"events/s at the offered {args.rate:.0f}/s", fresh["events_per_s"],
         base_fresh["events_per_s"]),
        ("sustained events/s (batches of 100)", sustained["events_per_s"],
         base_sustained["events_per_s"]),
    ]
    print(f"push path: {args.clients} clients, {args.rate:.0f} events/s offered in batches of "
          f"{args.batch}, {args.seconds:.0f} s per phase; baseline = the same load written "
          "straight into the SQLite online store in process, same run")
    print(f"load average (1 min) {load[0]:.1f} at the start, {load[1]:.1f} at the end, on "
          f"{os.cpu_count()} cores")
    print(f"{'figure':<40} {'featql':>10} {'baseline':>10} {'ratio':>8}")
    for name, got, base in rows:
        print(f"{name:<40} {got:>10.1f} {base:>10.1f} {got / base:>8.2f}")
    per = fresh["lookups"] / max(1, fresh["pushes"])
    print(f"server CPU per push (incl. its lookups, {per:.2f} per push): "
          f"{fresh['server_cpu_ms_per_push']:.2f} ms at the offered rate, "
          f"{sustained['server_cpu_ms_per_push']:.2f} ms per push of 100 sustained")
    print(f"target: push p99 <= 50 ms at {args.rate:.0f} events/s from {args.clients} clients: "
          f"p99 {fresh['p99_ms']:.1f} ms (baseline {base_fresh['p99_ms']:.1f} ms) -> "
          f"{'met' if fresh['p99_ms'] <= 50 else 'NOT met'}")
    out = REPO / "bench/out"
    out.mkdir(exist_ok=True)
    (out / "stream_bench.json").write_text(json.dumps(
        {"push": {"freshness": fresh, "sustained": sustained,
                  "baseline_freshness": base_fresh, "baseline_sustained": base_sustained,
                  "load_average": load, "args": vars(args)}}, indent=2))
    if args.kafka:
        from bench.stream_kafka import report, run

        result = run(args.seconds, args.kafka_rate, 50_000)
        report(result)
        (out / "stream_kafka_bench.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
