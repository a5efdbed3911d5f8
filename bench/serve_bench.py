"""Feature-server benchmark: the featql app under each HTTP server (granian, the server `featql
serve` runs, and the event-loop gunicorn worker featql had before), 2 workers, on the example
project over SQLite and DynamoDB (dynalite), against a bare Flask app on granian with the same
settings that returns a constant JSON body of the same size (the ceiling), all in one run.

    .venv/bin/python bench/serve_bench.py [--transactions 1000000] [--rounds 3] [--quick]
        [--servers uvicorn,granian,loop] [--skip-dynamodb] [--compaction]

Servers: `granian` is featql's app on granian (its RSGI interface on its Rust event loop
rloop); `granian-<interface>[+<loop>][@<key>=<value>/...]` the same app on another of granian's
interfaces (asgi: featql.server.asgi; rsgi; wsgi: granian's WSGI mode), event loop (rloop,
asyncio) and Server keywords (`granian@task_impl=rust`, `granian@runtime_mode=mt/
runtime_threads=2`), `~fixed` at the end without the spreading of kept-alive connections
(featql.server.balance); `uvicorn` the app's ASGI entry on uvicorn (httptools, uvloop:
featql.server.uvicorn_server); `loop` is featql's former event-loop worker
(featql/server/worker.py + http1.py, deleted from the package): the bench takes both files
from the commit before their removal (`git show`), so the comparison needs the repository's
history. The first server of `--servers` is judged against the targets; the default list
starts with what `featql serve` runs. Every server runs the same app (create_app) from the same
manifest file, with `featql serve`'s default threads for the store.

Each row also says how quiet the machine was: `late99`, how late the generator itself sent
(open loop), and `others`, the cores that processes outside the bench kept busy meanwhile. An
open-loop p99 at 1,000 rps over 5 s is the 50th-worst request: one scheduling stall of ~50 ms
(another process holding both cores) is enough to set it, whatever the server.

Load: a bounded generator on loopback (threads, http.client keep-alive connections), either
open-loop at a fixed rate (latency measured from each request's scheduled send time, so a
stalled server cannot hide its queueing) or closed-loop for throughput. Every run has a fixed
request count and a time limit; rounds interleave the servers. Results: a table on stdout and
bench/out/serve_bench.json.
Note: dynalite is a Node process on the same 2 cores as the servers and the load generator, so
the DynamoDB figures measure this machine, not AWS.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


AT = None  # set once the data is generated: the end of the data
SERVICE = "bench_50"
SERVICE_SQL = """-- @feature_service(name = bench_50,
--   features = [user_txn_aggs.*, user_channel_aggs.*,
--               user_profile.country, user_profile.kyc_level, user_profile.account_age_days,
--               user_last_txn.*, user_risk_flags.*, merchant_profile.*,
--               merchant_txn_aggs.fraud_rate_7d, merchant_txn_aggs.txn_count_1d,
--               merchant_txn_aggs.txn_count_7d, merchant_txn_aggs.amount_sum_7d,
--               merchant_txn_aggs.amount_avg_7d, merchant_txn_aggs.amount_max_7d,
--               amount_vs_avg, amount_features])
"""


# -- servers ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen[bytes], path: str = "/healthz",
               timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", path)
            if c.getresponse().status == 200:
                c.close()
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"server on {port} not ready")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


LEGACY_REV = "f5ba0389ddb43ffc49e7df64c7bff5f968ad5273"  # the last commit with worker.py
# "granian" is what featql serve runs; granian-<interface> one of granian's interfaces over the
# same dispatcher (runner.serve(interface=...)); loop the former event-loop worker
SERVERS = ("granian", "granian-asgi", "granian-rsgi", "granian-wsgi", "uvicorn", "loop")
# what `featql serve` runs (featql.server.choice.DEFAULT_SERVER) first: judged against the
# targets; then the other maintained server, then the former worker
DEFAULT_SERVERS = ("granian", "uvicorn", "loop")


def legacy_worker(work: Path) -> Path | None:
    """featql's former event-loop worker, from LEGACY_REV, as package `featql_legacy_serve`
    in a folder to put on sys.path; None when the history is not there."""
    pkg = work / "legacy" / "featql_legacy_serve"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    for name in ("worker", "http1"):
        got = subprocess.run(["git", "-C", str(REPO), "show",
                              f"{LEGACY_REV}:featql/server/{name}.py"],
                             capture_output=True, text=True)
        if got.returncode != 0:
            return None
        text = got.stdout.replace("from featql.server import http1",
                                  "from featql_legacy_serve import http1")
        text = text.replace("from featql.server.http1 import",
                            "from featql_legacy_serve.http1 import")
        (pkg / f"{name}.py").write_text(text)
    return pkg.parent


def start_featql(server: str, settings: dict[str, Any], workers: int, threads: int,
                 legacy: Path | None) -> tuple[subprocess.Popen[bytes], int]:
    """The featql app on `server` (granian, or the former event-loop worker: `loop`)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--featql-server", server, str(port), json.dumps(settings),
         str(workers), str(threads), str(legacy or "")],
        env={**os.environ, "FEATQL_LOG_LEVEL": "error"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, proc)
    return proc, port


def run_featql_server(server: str, port: int, raw: str, workers: int, threads: int,
                      legacy: str) -> None:
    from featql.server.app import ServeSettings, create_app
    from featql.server.metrics import use_directory
    from featql.server.runner import serve

    conf = json.loads(raw)
    settings = ServeSettings(root=Path(conf["root"]), workspace=conf["workspace"],
                             manifest_path=Path(conf["manifest_path"]),
                             metrics_dir=Path(conf["metrics_dir"]))
    if server.startswith("granian"):  # granian[-<interface>][+<event loop>][@k=v/k=v][~fixed]
        server, fixed, _ = server.partition("~fixed")
        if fixed:  # no spreading of kept-alive connections (featql.server.balance)
            from featql.server.runner import REBALANCE_ENV

            os.environ[REBALANCE_ENV] = "0"
        server, _, options = server.partition("@")
        name, _, loop = server.partition("+")
        serve(settings, "127.0.0.1", port, workers, threads,
              interface=name.partition("-")[2] or None, loop=loop or None,
              server_name="granian", granian_options=granian_options(options))
        return
    if server == "uvicorn":
        serve(settings, "127.0.0.1", port, workers, threads, server_name="uvicorn")
        return
    assert server == "loop" and legacy, server
    sys.path.insert(0, legacy)
    from featql_legacy_serve.worker import loop_worker

    use_directory(settings.metrics_dir)
    _gunicorn(lambda: create_app(settings), port, workers, loop_worker(settings.max_body_bytes))


def granian_options(text: str) -> dict[str, Any]:
    """`task_impl=rust/runtime_mode=mt/runtime_threads=2/...`: granian Server keywords."""
    from granian.constants import RuntimeModes, TaskImpl

    kinds: dict[str, Any] = {"task_impl": TaskImpl, "runtime_mode": RuntimeModes}
    out: dict[str, Any] = {}
    for item in filter(None, text.split("/")):
        key, _, value = item.partition("=")
        if key in kinds:
            out[key] = kinds[key](value)
        elif value in ("true", "false"):
            out[key] = value == "true"
        else:
            out[key] = int(value)
    return out


def _gunicorn(load: Any, port: int, workers: int, worker_class: type) -> None:
    """gunicorn with the settings `featql serve` gave it before granian."""
    from gunicorn.app.base import BaseApplication

    class _App(BaseApplication):
        def load_config(self) -> None:
            for k, v in {"bind": f"127.0.0.1:{port}", "workers": workers,
                         "worker_class": worker_class, "threads": 1, "keepalive": 30,
                         "backlog": 2048, "timeout": 60, "accesslog": None,
                         "loglevel": "error"}.items():
                self.cfg.set(k, v)

        def load(self) -> Any:
            return load()

    _App().run()


def start_bare(body_file: Path, workers: int, threads: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--bare-server", str(port), str(body_file), str(workers),
         str(threads)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, proc, "/healthz")
    return proc, port


def _bare_app(body_file: Path) -> Any:
    from flask import Flask, Response, request

    bodies = orjson.loads(body_file.read_bytes())
    one, many = bodies["one"].encode(), bodies["many"].encode()
    app = Flask("bare")

    @app.post("/v1/features/<name>")
    def features(name: str) -> Response:
        body = orjson.loads(request.get_data())
        return Response(many if len(body["entities"]) > 1 else one,
                        mimetype="application/json")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(b'{"status":"ok"}', mimetype="application/json")

    return app


def run_bare_server(port: int, body_file: Path, workers: int, threads: int) -> None:
    """The ceiling: Flask + orjson on granian (WSGI, Flask's own interface), with the settings
    `featql serve` gives granian and as many threads, a constant body."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    from featql.server.runner import CONNECTIONS_PER_WORKER, HEADER_READ_TIMEOUT_MS

    Server("bare", address="127.0.0.1", port=port, interface=Interfaces.WSGI, workers=workers,
           blocking_threads=threads, http=HTTPModes.http1, websockets=False, backlog=2048,
           backpressure=CONNECTIONS_PER_WORKER,
           http1_settings=HTTP1Settings(header_read_timeout=HEADER_READ_TIMEOUT_MS),
           log_level=LogLevels.error).serve(
        target_loader=functools.partial(_bare_app, body_file), wrap_loader=False)


# -- load generator --------------------------------------------------------------------------
class Conn(http.client.HTTPConnection):
    """Keep-alive client connection: TCP_NODELAY, request head and body in one send (one
    syscall, no Nagle/delayed-ACK stall)."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send_output(self, message_body: Any = None, encode_chunked: bool = False) -> None:
        if isinstance(message_body, bytes):
            self._buffer.extend((b"", message_body))  # type: ignore[attr-defined]
            self.send(b"\r\n".join(self._buffer))  # type: ignore[attr-defined]
            del self._buffer[:]  # type: ignore[attr-defined]
            return
        super()._send_output(message_body, encode_chunked)  # type: ignore[misc]


@dataclass
class Result:
    scenario: str
    mode: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors_5xx: int
    errors_other: int
    response_bytes: int
    server_cpu_ms: float = float("nan")  # CPU (user+sys) of the server's workers per request
    store_cpu_ms: float = float("nan")  # CPU of the store process (dynalite) per request
    # open loop: p99 of how late the generator sent a request after its scheduled time (the
    # generator's own stalls; its latency includes them)
    late_p99_ms: float = float("nan")
    # cores busy on the machine, during the run, with processes other than this bench, the
    # server and the store: the load of others, which wall figures follow
    other_cores: float = float("nan")
    # how the run's client connections sat on the server's worker processes: connections per
    # worker, most first ("2" = one worker held both, "1+1" = one each)
    spread: str = ""


def descendants(pid: int) -> list[int]:
    """`pid` and its children, grandchildren... (/proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return out


def connection_spread(server_pid: int, port: int, client_ports: list[int]) -> str:
    """Which of the server's processes holds the server end of each client connection: the
    counts per process, most first, "+"-joined ("?" when a connection was not found)."""
    inodes: dict[str, int] = {}
    wanted = set(client_ports)
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
            if local == port and remote in wanted:
                inodes[f"socket:[{fields[9]}]"] = remote
    owner: dict[int, int] = {}
    for pid in descendants(server_pid):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link in inodes:
                    owner[inodes[link]] = pid
    counts: dict[int, int] = {}
    for p in client_ports:
        counts[owner.get(p, -1)] = counts.get(owner.get(p, -1), 0) + 1
    missing = counts.pop(-1, 0)
    return "+".join(str(n) for n in sorted(counts.values(), reverse=True)) + "?" * missing


def cpu_seconds(pids: list[int]) -> float:
    """user+sys CPU seconds of processes and their children (gunicorn workers), from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    seen: set[int] = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return total


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all but idle and iowait), /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def measured(run: Any, server: list[int], store: list[int]) -> Result:
    """`run()` with the CPU its server and store processes spent per request, and the cores
    the rest of the machine kept busy meanwhile."""
    s0, d0 = cpu_seconds(server), cpu_seconds(store)
    m0, b0, t0 = machine_busy_seconds(), sum(os.times()[:2]), time.perf_counter()
    r: Result = run()
    n = max(1, r.requests)
    server_s, store_s = cpu_seconds(server) - s0, cpu_seconds(store) - d0
    ours = server_s + store_s + sum(os.times()[:2]) - b0
    r.other_cores = round(max(0.0, machine_busy_seconds() - m0 - ours)
                          / max(1e-9, time.perf_counter() - t0), 2)
    r.server_cpu_ms = round(server_s / n * 1000, 2)
    if store:
        r.store_cpu_ms = round(store_s / n * 1000, 2)
    return r


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


def drive(port: int, bodies: list[bytes], path: str, *, connections: int, total: int,
          max_seconds: float, rate: float | None, scenario: str,
          server_pid: int | None = None) -> Result:
    """Send `total` requests over `connections` keep-alive connections (open-loop at `rate`
    requests/s, else closed-loop), stopping early after `max_seconds`; with `server_pid`, the
    result says which of its processes held each connection at the end."""
    held: list[Conn] = []
    lat: list[list[float]] = [[] for _ in range(connections)]
    late: list[list[float]] = [[] for _ in range(connections)]
    codes: list[dict[int, int]] = [{} for _ in range(connections)]
    size = [0]
    start = time.perf_counter() + 0.05
    deadline = start + max_seconds

    def worker(k: int) -> None:
        conn = Conn("127.0.0.1", port, timeout=10)
        rng = random.Random(k)
        i = k
        while i < total:
            planned = start + i / rate if rate else time.perf_counter()
            now = time.perf_counter()
            if planned > deadline or now > deadline:
                break
            if planned > now:
                time.sleep(planned - now)
            body = bodies[rng.randrange(len(bodies))]
            if rate:
                late[k].append(time.perf_counter() - planned)
            try:
                conn.request("POST", path, body=body,
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = Conn("127.0.0.1", port, timeout=10)
                status, data = 599, b""
            done = time.perf_counter()
            lat[k].append(done - (planned if rate else now))
            codes[k][status] = codes[k].get(status, 0) + 1
            size[0] = max(size[0], len(data))
            i += connections
        held.append(conn)  # closed after the spread is read

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = max(1e-9, time.perf_counter() - start)
    ports = [c.sock.getsockname()[1] for c in held if c.sock is not None]
    spread = connection_spread(server_pid, port, ports) if server_pid else ""
    for c in held:
        c.close()
    all_lat = [x for xs in lat for x in xs]
    all_late = [x for xs in late for x in xs]
    merged: dict[int, int] = {}
    for c in codes:
        for k, v in c.items():
            merged[k] = merged.get(k, 0) + v
    return Result(scenario, f"open-loop {rate:.0f} rps" if rate else
                  f"closed-loop {connections} conns", len(all_lat), round(elapsed, 2),
                  round(len(all_lat) / elapsed, 1), round(_pct(all_lat, 0.5), 2),
                  round(_pct(all_lat, 0.99), 2),
                  sum(v for k, v in merged.items() if k >= 500),
                  sum(v for k, v in merged.items() if k != 200 and k < 500),
                  size[0], late_p99_ms=round(_pct(all_late, 0.99), 2), spread=spread)


def request_bodies(n_entities: int, users: int, merchants: int, count: int = 200,
                   at: str | None = None) -> list[bytes]:
    rng = random.Random(n_entities)
    out = []
    for _ in range(count):
        ents = [{"user_id": rng.randint(1, users), "merchant_id": rng.randint(1, merchants)}
                for _ in range(n_entities)]
        req = [{"amount": round(rng.uniform(1, 500), 2)} for _ in range(n_entities)]
        out.append(orjson.dumps({"entities": ents, "request": req, "at": at or AT}))
    return out


# -- setup -------------------------------------------------------------------------------------
def prepare_project(work: Path, transactions: int, extra: dict[str, str] | None = None,
                    edit: Any = None) -> Path:
    """The example project with the bench's service (and `extra` files: path -> text; `edit`,
    called with the project folder once the data is generated, before the apply)."""
    from featql.examples.generate import generate

    root = work / "features"
    shutil.copytree(REPO / "features", root,
                    ignore=shutil.ignore_patterns("data", "target", ".featql"))
    (root / "services" / "bench_50.sql").write_text(SERVICE_SQL)
    for rel, text in (extra or {}).items():
        (root / rel).write_text(text)
    generate(root, transactions=transactions, days=90)
    if edit is not None:
        edit(root)
    from featql.compiler.project import compile_project
    from featql.registry import apply_now

    apply_now(root, compile_project(root).manifest)  # type: ignore[arg-type]  # serve runs it
    return root


def set_online(root: Path, text: str) -> None:
    toml = (root / "featql.toml").read_text()
    head, _, tail = toml.partition("[online]")
    rest = tail.split("\n[", 1)
    (root / "featql.toml").write_text(head + text + (("\n[" + rest[1]) if len(rest) > 1 else ""))


def main() -> int:
    global AT
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--transactions", type=int, default=1_000_000)
    ap.add_argument("--dynamo-users", type=int, default=2000,
                    help="users loaded into DynamoDB (dynalite writes are slow)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="interleaved rounds over the servers; medians are reported")
    ap.add_argument("--quick", action="store_true", help="shorter runs (smoke test)")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads per granian worker (default: featql serve's default for each "
                         "store, and the SQLite one's for bare Flask); the loop worker has one")
    ap.add_argument("--servers", default=",".join(DEFAULT_SERVERS),
                    help="comma-separated, the first judged against the targets: granian "
                         "(RSGI on rloop), granian-<asgi|rsgi|wsgi>[+<rloop|asyncio>]"
                         "[@key=value/...][~fixed] (another granian interface / event loop / "
                         "Server keywords / without featql.server.balance), uvicorn "
                         "(httptools + uvloop), loop (the former event-loop gunicorn worker)")
    ap.add_argument("--skip-dynamodb", action="store_true")
    ap.add_argument("--compaction", action="store_true",
                    help="only the compaction scenario (bench/serve_compaction.py): a service "
                         "with 30-day and 90-day windows on 1-hour slides, loaded compacted "
                         "and not; p99 and bytes read per 100-entity lookup")
    ap.add_argument("--bare-server", nargs=4, metavar=("PORT", "BODY", "WORKERS", "THREADS"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--featql-server", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_server:
        port, body, workers, threads = args.bare_server
        run_bare_server(int(port), Path(body), int(workers), int(threads))
        return 0
    if args.featql_server:
        server, port, raw, workers, threads, legacy = args.featql_server
        run_featql_server(server, int(port), raw, int(workers), int(threads), legacy)
        return 0
    if args.compaction:
        from serve_compaction import run as run_compaction  # bench/ is sys.path[0]

        return run_compaction(args.transactions, args.rounds, args.quick)
    chosen = [x for x in args.servers.split(",") if x]
    unknown = ({x.partition("~")[0].partition("@")[0].partition("+")[0] for x in chosen}
               - set(SERVERS))
    if unknown:
        ap.error(f"unknown server(s) {', '.join(sorted(unknown))}; known: {', '.join(SERVERS)}")

    import pyarrow.compute as pc

    from featql.compiler.project import compile_project
    from featql.jobs.online_load import default_scan, load_online
    from featql.online.dynamodb import DynamoStore

    sys.path.insert(0, str(REPO / "tests"))
    from serve.conftest import start_dynalite  # the tests' dynalite launcher

    from featql.cli.commands.serve import default_threads
    from featql.core.manifest import write_manifest

    workers, threads = 2, args.threads
    bare_threads = threads or default_threads("sqlite")  # the server it is the ceiling of
    scale = 0.3 if args.quick else 1.0
    work = Path(tempfile.mkdtemp(prefix="featql-serve-bench-"))
    results: list[Result] = []
    speeds: list[float] = []
    procs: list[subprocess.Popen[bytes]] = []
    legacy = legacy_worker(work) if "loop" in chosen else None
    if "loop" in chosen and legacy is None:
        print(f"no event-loop worker: commit {LEGACY_REV[:10]} is not in this clone's history; "
              "measuring without it")
        chosen.remove("loop")
    try:
        t0 = time.perf_counter()
        root = prepare_project(work, args.transactions)
        result = compile_project(root)
        assert result.manifest is not None and result.ok
        m = result.manifest
        end = dt.datetime(2024, 1, 1) + dt.timedelta(days=90)
        AT = end.isoformat()
        print(f"data: {args.transactions:,} transactions ({time.perf_counter() - t0:.1f}s)")
        t0 = time.perf_counter()
        rep = load_online(root, m, "dev", end=end)
        print(f"SQLite online load: {rep.written:,} cells in {time.perf_counter() - t0:.1f}s")
        n_users = max(50, args.transactions // 50)  # what the generator creates
        n_merchants = max(10, args.transactions // 500)
        # label, port, users, merchants, server pid, store pids
        servers: list[tuple[str, int, int, int, int, list[int]]] = []
        manifest_path = write_manifest(m, work / "manifest")

        def settings(project: Path, label: str) -> dict[str, Any]:
            return {"root": str(project), "workspace": "dev", "manifest_path": str(manifest_path),
                    "metrics_dir": str(work / f"metrics-{label}")}

        def start_all(project: Path, store: str, users: int, merchants: int,
                      store_pids: list[int], endpoint: str | None = None) -> int:
            n = threads or default_threads(store, endpoint)
            for server in chosen:
                label = f"{server} {store}"
                proc, port = start_featql(server, settings(project, label.replace(" ", "-")),
                                          workers, 1 if server == "loop" else n, legacy)
                procs.append(proc)
                servers.append((label, port, users, merchants, proc.pid, store_pids))
            return servers[-len(chosen)][1]

        port = start_all(root, "sqlite", n_users, n_merchants, [])
        c = http.client.HTTPConnection("127.0.0.1", port)
        c.request("POST", f"/v1/features/{SERVICE}",
                  body=request_bodies(1, n_users, n_merchants, 1)[0])
        r = c.getresponse()
        one_body = r.read()
        assert r.status == 200, one_body
        n_feat = len(orjson.loads(one_body)["features"][0])
        print(f"service {SERVICE}: {n_feat} features per entity")
        c.request("POST", f"/v1/features/{SERVICE}",
                  body=request_bodies(100, n_users, n_merchants, 1)[0])
        many_body = c.getresponse().read()
        c.close()
        body_file = work / "bare_bodies.json"
        body_file.write_bytes(orjson.dumps({"one": one_body.decode(),
                                            "many": many_body.decode()}))
        proc, port = start_bare(body_file, workers, bare_threads)
        procs.append(proc)
        servers.append(("bare-flask", port, n_users, n_merchants, proc.pid, []))

        if not args.skip_dynamodb:
            dyn_proc, url = start_dynalite()
            procs.append(dyn_proc)
            droot = work / "features-dynamodb"
            shutil.copytree(root, droot, ignore=shutil.ignore_patterns(".featql", "target"))
            set_online(droot, f'[online]\nstore = "dynamodb"\nregion = "us-east-1"\n'
                              f'endpoint_url = "{url}"\ntable_prefix = "bench_"\n')
            du, dm = min(args.dynamo_users, n_users), min(args.dynamo_users // 10, n_merchants)
            scan, close = default_scan(m, root, result.config, "dev")

            def subset(view: Any, start: Any, stop_: Any) -> Any:
                table = scan(view, start, stop_)
                key = view.keys[0].name
                limit = du if key == "user_id" else dm
                return table.filter(pc.less_equal(table.column(key), limit))

            t0 = time.perf_counter()
            store = DynamoStore("dev", endpoint_url=url, table_prefix="bench_", writers=16)
            rep = load_online(droot, m, "dev", end=end, store=store,
                              scan=subset)
            close()
            store.close()
            print(f"DynamoDB (dynalite) online load: {rep.written:,} cells for {du:,} users "
                  f"and {dm:,} merchants in {time.perf_counter() - t0:.1f}s")
            start_all(droot, "dynamodb", du, dm, [dyn_proc.pid], url)

        path = f"/v1/features/{SERVICE}"
        for rnd in range(args.rounds):
            speeds.append(machine_speed())
            print(f"round {rnd + 1}: reference loop {speeds[-1]:.1f} ms (machine speed)")
            for label, port, users, merchants, pid, store_pids in servers:
                one = request_bodies(1, users, merchants)
                many = request_bodies(100, users, merchants, 60)
                drive(port, one, path, connections=4, total=300, max_seconds=5, rate=None,
                      scenario="warm-up")  # not reported: connections, caches, lazy imports
                # dynalite (one Node thread on these 2 cores) saturates below 1,000 rps: its
                # open-loop row runs at a rate it sustains, not as an overload test
                open_rate = 300 if label.endswith("dynamodb") else 1000
                runs = [(one, 8, 5 * open_rate, 8, open_rate, "1 entity"),
                        (one, 4, 5000, 5, None, "1 entity"),
                        (many, 2, 500, 6, None, "100 entities")]
                if label != "bare-flask":  # one client at a time: latency without queueing
                    runs.append((many, 1, 300, 5, None, "100 ent. 1 conn"))
                if label.endswith("dynamodb"):  # a day after the load: the aggregates' tiles are
                    # read and merged (the values merged at load are for the load's slide)
                    later = (dt.datetime.fromisoformat(AT) + dt.timedelta(days=1)).isoformat()
                    runs.append((request_bodies(100, users, merchants, 60, at=later), 2, 300, 5,
                                 None, "100 ent. +1 day"))
                for bodies, conns, total, secs, rate, name in runs:
                    results.append(measured(functools.partial(
                        drive, port, bodies, path, connections=conns, total=int(total * scale),
                        max_seconds=secs * scale + 2, rate=rate, scenario=f"{label} {name}",
                        server_pid=pid),
                        [pid], store_pids))
            print(f"round {rnd + 1}/{args.rounds} done (load average "
                  f"{os.getloadavg()[0]:.1f})")
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    report(results, workers, f"{threads} threads" if threads else
           f"default threads (SQLite {default_threads('sqlite')}, DynamoDB at dynalite's "
           f"loopback endpoint {default_threads('dynamodb', 'http://127.0.0.1')}; bare Flask "
           f"{bare_threads})", speeds, chosen)
    return 0


def machine_speed() -> float:
    """Milliseconds for a fixed pure-Python loop, best of 5: this shared machine's speed
    drifts by a third or more within minutes, and every figure above follows it."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        acc = 0
        for i in range(300_000):
            acc += i * i % 7
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 2)


def report(results: list[Result], workers: int, threads: str, speeds: list[float],
           servers: list[str]) -> None:
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.scenario, r.mode), []).append(r)
    med = {k: Result(k[0], k[1], sum(r.requests for r in rs),
                     round(statistics.median(r.seconds for r in rs), 2),
                     round(statistics.median(r.rps for r in rs), 1),
                     round(statistics.median(r.p50_ms for r in rs), 2),
                     round(statistics.median(r.p99_ms for r in rs), 2),
                     sum(r.errors_5xx for r in rs), sum(r.errors_other for r in rs),
                     max(r.response_bytes for r in rs),
                     round(statistics.median(r.server_cpu_ms for r in rs), 2),
                     round(statistics.median(r.store_cpu_ms for r in rs), 2),
                     round(statistics.median(r.late_p99_ms for r in rs), 2),
                     round(statistics.median(r.other_cores for r in rs), 2))
           for k, rs in groups.items()}
    n_rounds = max(len(rs) for rs in groups.values())
    print(f"\nthe featql app on {' and '.join(servers)} ({workers} workers; granian: {threads}; "
          "loop: featql's former event-loop gunicorn worker, 1 thread); bare Flask on granian; "
          f"load generator on loopback; median of {n_rounds} interleaved rounds (reqs and 5xx "
          "summed); open-loop latency from each request's scheduled send time; cpus: "
          + str(os.cpu_count()))
    head = (f"{'scenario':32} {'mode':22} {'reqs':>6} {'rps':>8} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'best p99':>8} {'5xx':>4} {'4xx':>4} {'bytes':>7} {'cpu/req':>8} {'store':>6} "
            f"{'late99':>6} {'others':>6}  spread by round")
    print(head)
    print("-" * len(head))
    for k, r in sorted(med.items(), key=lambda kv: (kv[0][0].split(" ", 2)[1:], kv[0])):
        best = min(x.p99_ms for x in groups[k])
        print(f"{r.scenario:32} {r.mode:22} {r.requests:6d} {r.rps:8.1f} {r.p50_ms:8.2f} "
              f"{r.p99_ms:8.2f} {best:8.2f} {r.errors_5xx:4d} {r.errors_other:4d} "
              f"{r.response_bytes:7d} {r.server_cpu_ms:8.2f} {r.store_cpu_ms:6.2f} "
              f"{r.late_p99_ms:6.2f} {r.other_cores:6.2f}  "
              + ",".join(x.spread for x in groups[k]))
    print("cpu/req: CPU ms (user+sys) of the server's processes per request; store: of dynalite "
          "(judge changes by these on a shared machine: wall figures follow its load); late99: "
          "open loop, p99 of how late the generator sent after the schedule (ms); others: "
          "cores kept busy by processes outside this bench, its servers and dynalite; spread: "
          "client connections per worker process in each round (\"2\": one worker held both)")
    others = [r.other_cores for r in results]
    if others:
        busy = sum(1 for x in others if x > 0.1)
        print(f"machine: other processes kept {min(others):.2f}-{max(others):.2f} cores busy "
              f"(median {statistics.median(others):.2f}) during the runs, > 0.1 in {busy} of "
              f"{len(others)}" + (": NOT a quiet machine, the absolute latency targets are not "
                                  "judged fairly here (an open-loop p99 is one stall of the "
                                  "scheduler long)" if busy else ""))
    by = {(r.scenario, r.mode.split()[0]): r for r in med.values()}
    chosen = servers[0]
    ratios = {}
    for n in ("1 entity", "100 entities"):
        s, b = (by.get((f"{chosen} sqlite {n}", "closed-loop")),
                by.get((f"bare-flask {n}", "closed-loop")))
        if s and b:
            ratios[n] = round(s.rps / b.rps, 3)
            print(f"{chosen} sqlite / bare-flask throughput, {n}: {ratios[n]:.0%}")
    versus: dict[str, dict[str, float]] = {}
    for cand in (x for x in servers if x != "loop" and "loop" in servers):
        print(f"\n{cand} against the event-loop worker (the issue's rule: keep the worker "
              "only if the library is worse by more than 25 % in p99 or throughput)")
        for (scenario, mode), r in sorted(by.items()):
            if not scenario.startswith(cand + " "):
                continue
            old = by.get(("loop" + scenario[len(cand):], mode))
            if old is None:
                continue
            p99 = r.p99_ms / old.p99_ms if old.p99_ms else float("nan")
            rps = r.rps / old.rps if old.rps else float("nan")
            cpu = (r.server_cpu_ms / old.server_cpu_ms if old.server_cpu_ms
                   else float("nan"))
            # an open-loop row's throughput is its fixed rate: judge it by latency alone
            worse = p99 > 1.25 or (mode == "closed-loop" and rps < 0.8)
            versus[f"{scenario} {mode}"] = {"p99_ratio": round(p99, 3),
                                            "rps_ratio": round(rps, 3),
                                            "cpu_ratio": round(cpu, 3)}
            print(f"  {scenario[len(cand) + 1:]:24} {mode:12} p99 {r.p99_ms:7.2f} vs "
                  f"{old.p99_ms:7.2f} ms ({p99:5.0%})  rps {r.rps:8.1f} vs {old.rps:8.1f} "
                  f"({rps:5.0%})  cpu/req {cpu:5.0%}{'  WORSE by > 25 %' if worse else ''}")

    def get(scenario: str, mode: str) -> Result | None:
        return by.get((f"{chosen} {scenario}", mode))

    checks: dict[str, bool | None] = {}
    r1 = get("sqlite 1 entity", "open-loop")
    checks[f"{chosen}: sqlite 1-entity p99 <= 5 ms at 1000 rps"] = (
        r1.p99_ms <= 5 if r1 else None)
    checks[f"{chosen}: sqlite 1-entity throughput >= 50% of bare Flask"] = (
        ratios["1 entity"] >= 0.5 if "1 entity" in ratios else None)
    d1 = get("dynamodb 1 entity", "closed-loop")
    checks[f"{chosen}: dynamodb 1-entity p99 <= 10 ms (closed loop, 4 conns)"] = (
        d1.p99_ms <= 10 if d1 else None)
    d100 = get("dynamodb 100 entities", "closed-loop")
    checks[f"{chosen}: dynamodb 100-entity p99 <= 30 ms (closed loop, 2 conns)"] = (
        d100.p99_ms <= 30 if d100 else None)
    checks["zero 5xx"] = all(r.errors_5xx == 0 for r in results)
    for name, ok in checks.items():
        print(f"  [{'x' if ok else ' ' if ok is not None else '-'}] {name}")
    if speeds:
        print(f"reference loop per round (ms, lower = faster machine): "
              f"{', '.join(f'{x:.1f}' for x in speeds)}")
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve_bench.json").write_text(json.dumps(
        {"median": [asdict(r) for r in med.values()], "runs": [asdict(r) for r in results],
         "throughput_ratio_vs_bare": ratios, "versus_loop_worker": versus, "targets": checks,
         "servers": servers, "cpus": os.cpu_count(),
         "reference_loop_ms": speeds,
         "load_average": os.getloadavg()}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
