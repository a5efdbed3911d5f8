"""Hostile input against a real `featql serve` process (issue #12, "What it must show").

Black box: every test speaks raw bytes or plain HTTP to 127.0.0.1 and reads the server's
processes from /proc; nothing of featql.server is imported, so the tests judge whichever HTTP
server implementation `featql serve` runs. The figures each test measures are printed (run with
`-rA` or `-s` to see them on success; they are in the message on failure).
"""

from __future__ import annotations

import http.client
import json
import math
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from .conftest import ReadProbe, ServerProcess, cpu_seconds, rss_bytes
from .corpus import CASES, FEAT, ROUTE, Case
from .rawhttp import HOST, Outcome, exchange, parse_responses

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
CASE_TIMEOUT = 4.0  # seconds without an answer that count as a hang
# the issue's minimum, and the issue's own attack (2,010), over 2 workers × 1,000 connections
SLOW_CONNECTIONS = (1_100, 2_100)
SLOW_SECONDS = 15.0
SLOW_SAMPLES = 200
P99_LIMIT = 0.100
CPU_RATIO_LIMIT = 2.0
SEGMENT_US_LIMIT = 100.0  # CPU per one-byte segment (the old worker: 1,163 us after 100 KB)
PIPELINED = 20_000
RSS_GROWTH_LIMIT = 30 << 20


def figures(name: str, **values: object) -> str:
    line = f"{name}: " + ", ".join(f"{k}={v}" for k, v in values.items())
    print(line)
    return line


# --- the corpus -----------------------------------------------------------------------------

def _category(status: int) -> str:
    if 200 <= status < 300:
        return "2xx"
    if 400 <= status < 500:
        return "4xx"
    return str(status)


def judge(case: Case, out: Outcome) -> str | None:
    """Why the outcome breaks the case's rule, or None."""
    if not out.responses:
        if out.timed_out:
            return f"no answer within {CASE_TIMEOUT}s: a hang"
        if "drop" in case.allowed:
            return None
        return ("reset" if out.reset else "closed") + " without a response"
    for resp in out.responses:
        if _category(resp.status) not in case.allowed:
            return f"answered {resp.status}; allowed: {', '.join(sorted(case.allowed))}"
    if len(out.responses) > case.want:
        return (f"{len(out.responses)} responses to {case.want} request(s): the server split "
                "one message into two (request smuggling)")
    if len(out.responses) < case.want:
        return f"only {len(out.responses)} of {case.want} responses"
    if out.trailing:
        return "bytes after the last complete response (a partial or smuggled response)"
    first = out.responses[0]
    if case.json_key and first.status < 300:
        try:
            body = orjson.loads(first.body)
        except orjson.JSONDecodeError:
            return f"a 2xx whose body is not JSON: {first.body[:80]!r}"
        if not isinstance(body, dict) or case.json_key not in body:
            return f"a 2xx without {case.json_key!r}: {first.body[:80]!r}"
    if case.close_after_2xx and first.status < 300 and not (out.closed or out.reset):
        return ("served a message with ambiguous framing but kept the connection open "
                "(RFC 9112 §6.1 requires closing it)")
    return None


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_tricky_request(shared_server: ServerProcess, case: Case) -> None:
    """Each request of the corpus (tests/server/corpus.py has the table and the rules)."""
    try:
        out = exchange(shared_server.port, list(case.segments), want=case.want,
                       timeout=CASE_TIMEOUT, head_only=case.head_only, shut_wr=case.shut_wr,
                       linger=1.0 if case.close_after_2xx else 0.0, pause=case.pause)
    except ValueError as exc:  # what came back is not HTTP/1.x
        pytest.fail(f"{case.id} ({case.why}): {exc}")
    verdict = judge(case, out)
    assert verdict is None, f"{case.id} ({case.why}): {verdict}; {out.describe()}"
    assert shared_server.alive(), shared_server.log_tail()
    assert shared_server.get("/healthz")[0] == 200, "the server stopped answering"


def test_the_corpus_is_large_and_covers_the_issue() -> None:
    ids = {c.id for c in CASES}
    assert len(CASES) >= 60 and len(ids) == len(CASES)
    for needed in ("cl-te", "two-content-lengths", "chunk-size-leading-space", "obs-fold",
                   "bare-lf", "missing-host", "two-hosts", "high-bytes-in-query",
                   "nul-in-target", "header-1mb", "body-over-limit", "json-nested-100k-arrays",
                   "json-array", "ctype-text-plain", "json-invalid-utf8", "http10-no-host",
                   "http2-preface", "absolute-form", "url-1mb", "unknown-method"):
        assert needed in ids, needed


# --- the slowloris --------------------------------------------------------------------------

def _timed_request(port: int, i: int, timeout: float) -> tuple[float, str | None]:
    """One request on a fresh connection (alternately /healthz and the feature route): its
    latency from connect to the last byte, and what went wrong if anything."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        if i % 2:
            conn.request("POST", ROUTE.decode(), body=FEAT,
                         headers={"Content-Type": "application/json"})
        else:
            conn.request("GET", "/healthz")
        resp = conn.getresponse()
        body = resp.read()
        problem = None if resp.status == 200 else f"{resp.status} {body[:100]!r}"
    except OSError as exc:
        problem = repr(exc)
    finally:
        conn.close()
    return time.perf_counter() - t0, problem


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


@pytest.mark.parametrize("connections", SLOW_CONNECTIONS)
def test_slowloris_leaves_fresh_connections_fast(server: ServerProcess, connections: int
                                                 ) -> None:
    """1,100 or 2,100 connections each trickling a never-ending head one byte a second for
    15 s; on fresh connections meanwhile, 200 requests (/healthz and a feature lookup) must answer
    within 100 ms at p99."""
    baseline = [_timed_request(server.port, i, 2.0)[0] for i in range(40)]
    attacker = subprocess.Popen(
        [sys.executable, str(HERE / "slowloris.py"), str(server.port), str(connections),
         str(SLOW_SECONDS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    latencies: list[float] = []
    problems: list[str] = []
    try:
        assert attacker.stdout is not None
        ready = attacker.stdout.readline().strip()
        started = time.monotonic()
        time.sleep(2.0)  # every socket has sent a byte or two
        window = SLOW_SECONDS - 3.5 - (time.monotonic() - started)
        pace = window / SLOW_SAMPLES
        for i in range(SLOW_SAMPLES if ready == "ready" else 0):
            due = started + 2.0 + i * pace
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            if time.monotonic() > started + SLOW_SECONDS - 0.5:
                break  # the attack is over: what is missing counts as failed
            seconds, problem = _timed_request(server.port, i, 2.0)
            latencies.append(seconds)
            if problem:
                problems.append(problem)
        out, err = attacker.communicate(timeout=SLOW_SECONDS + 30)
    finally:
        if attacker.poll() is None:
            attacker.kill()
            attacker.wait()
    lines = out.strip().splitlines()
    stats: dict[str, Any] = (json.loads(lines[-1]) if lines and lines[-1].startswith("{")
                             else {"error": err[-2000:]})
    done = len(latencies)
    p99 = _p99(latencies) if latencies else math.inf
    line = figures("slowloris", samples=done, p99_ms=round(p99 * 1000, 1),
                   p50_ms=round(sorted(latencies)[done // 2] * 1000, 1) if done else None,
                   max_ms=round(max(latencies, default=math.inf) * 1000, 1),
                   failed=len(problems), baseline_p99_ms=round(_p99(baseline) * 1000, 1),
                   attacker=stats)
    assert stats.get("opened", 0) >= connections and not stats.get("connect_failures"), line
    assert done == SLOW_SAMPLES, f"only {done} requests completed in the window; {line}"
    assert not problems, f"{problems[:5]}; {line}"
    assert p99 < P99_LIMIT, line
    assert server.alive() and server.get("/healthz")[0] == 200


# --- one byte at a time ---------------------------------------------------------------------

def realistic_head(port: int, body_length: int) -> bytes:
    """A ~1.5 KB head such as a browser or an SDK behind a gateway sends."""
    return (b"POST " + ROUTE + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port
            + b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
            b"Gecko) Chrome/120.0.0.0 Safari/537.36\r\n"
            b"Accept: application/json, text/plain, */*\r\nAccept-Language: en-US,en;q=0.9\r\n"
            b"Accept-Encoding: gzip, deflate, br\r\nContent-Type: application/json\r\n"
            b"X-Request-Id: 0f8b3c1e-7d2a-4c55-9b1e-3a6f2d9c8e71\r\n"
            b"X-Forwarded-For: 203.0.113.7, 198.51.100.23\r\n"
            b"Cookie: session=" + b"s" * 640 + b"; theme=dark\r\n"
            b"Authorization: Bearer " + b"t" * 300 + b"\r\n"
            b"Content-Length: %d\r\n\r\n" % body_length)


def _open(port: int, n: int) -> list[socket.socket]:
    socks = [socket.create_connection((HOST, port), timeout=10) for _ in range(n)]
    for s in socks:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return socks


def _finish(socks: list[socket.socket]) -> None:
    for s in socks:
        buf = b""
        while not parse_responses(buf)[0]:
            data = s.recv(65536)
            assert data, f"closed without a response: {buf[:200]!r}"
            buf += data
        status = parse_responses(buf)[0][0].status
        assert status == 200, buf[:300]
        s.close()


def _whole(port: int, request: bytes, n: int) -> None:
    socks = _open(port, n)
    for s in socks:
        s.sendall(request)
    _finish(socks)


def _trickle(port: int, socks: list[socket.socket], data: bytes) -> int:
    """Send `data` one byte per TCP segment on every socket, round-robin, each round only once
    the server has read the previous one (so that it cannot read two bytes at once); the
    number of rounds the server had not read within 50 ms."""
    ports = [s.getsockname()[1] for s in socks]
    probe = ReadProbe(port)
    late = 0
    try:
        for i in range(len(data)):
            byte = data[i:i + 1]
            for s in socks:
                s.sendall(byte)
            late += not probe.wait_read(ports)
    finally:
        probe.close()
    return late


def _trickled(port: int, head: bytes, body: bytes, n: int) -> int:
    """`n` connections, each sent the head one byte per segment, then the body in one piece;
    returns the rounds the server was late to read."""
    socks = _open(port, n)
    late = _trickle(port, socks, head)
    for s in socks:
        s.sendall(body)
    _finish(socks)
    return late


def _head_segment_cost(port: int, head: bytes, conns: int, pids: list[int]
                       ) -> tuple[float, float, int]:
    """(CPU seconds per request sent whole, CPU seconds per one-byte head segment beyond
    that, rounds the server was late to read) for `conns` requests of this head."""
    before = cpu_seconds(pids)
    for _ in range(5):
        _whole(port, head + FEAT, conns)
    whole = (cpu_seconds(pids) - before) / (5 * conns)
    before = cpu_seconds(pids)
    late = _trickled(port, head, FEAT, conns)
    trickled = (cpu_seconds(pids) - before) / conns
    return whole, (trickled - whole) / len(head), late


def test_a_head_one_byte_at_a_time_costs_a_constant_per_segment(server: ServerProcess
                                                                 ) -> None:
    """A head that arrives one byte per TCP segment costs the server (master and workers,
    user + system CPU) a constant amount per segment, whatever came before it: a 16 KB head
    costs per segment at most twice what a 1.5 KB head does, so nothing is re-parsed per read.

    Issue #12 asked for the whole trickled request to cost at most twice the same request
    sent in one piece. That cannot be met by any server reading from a socket: every segment
    is a wakeup and a read (about 6 us here on granian, 11-20 us on the former event-loop
    worker), so a 1,437-byte head adds ~9 ms to a request that costs ~0.3 ms sent whole (the
    ratio is printed: ~30x on granian, ~37x on the former worker). What a server controls is
    that the cost per segment does not grow with the head, which is what is asserted here,
    with an absolute bound per segment besides.
    """
    small = realistic_head(server.port, len(FEAT))
    big = _padded_head(server.port, len(FEAT), 4)
    _whole(server.port, small + FEAT, 20)  # warm up both workers' routes
    whole_small, per_small, late_small = _head_segment_cost(server.port, small, 20, server.pids)
    _, per_big, late_big = _head_segment_cost(server.port, big, 4, server.pids)
    ratio = per_big / per_small if per_small > 0 else math.inf
    whole_ratio = (whole_small + per_small * len(small)) / whole_small if whole_small else 0
    line = figures("one-byte-head", small_head=len(small), big_head=len(big),
                   us_per_segment_small=round(per_small * 1e6, 2),
                   us_per_segment_big=round(per_big * 1e6, 2), ratio=round(ratio, 2),
                   trickled_vs_whole_small=round(whole_ratio, 1),
                   rounds_read_late=(late_small, late_big))
    assert ratio <= CPU_RATIO_LIMIT, line
    assert per_big * 1e6 <= SEGMENT_US_LIMIT, line


def _padded_head(port: int, body_length: int, lines: int) -> bytes:
    """realistic_head plus `lines` header lines of 3.8 KB (under the 8 KB per field and the
    100 fields that servers commonly allow)."""
    extra = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 3800) for i in range(lines))
    base = realistic_head(port, body_length)
    return base[:-2] + extra + b"\r\n"


def _body_segment_cost(port: int, head: bytes, body: bytes, conns: int,
                       pids: list[int]) -> tuple[float, int]:
    """CPU seconds per one-byte body segment after a head sent whole, minus the cost of the
    same request sent whole; and the rounds the server was late to read."""
    before = cpu_seconds(pids)
    for _ in range(5):
        _whole(port, head + body, conns)
    whole = (cpu_seconds(pids) - before) / (5 * conns)
    before = cpu_seconds(pids)
    socks = _open(port, conns)
    for s in socks:
        s.sendall(head)
    late = _trickle(port, socks, body)
    _finish(socks)
    trickled = (cpu_seconds(pids) - before) / conns
    return (trickled - whole) / len(body), late


def test_a_body_segment_costs_the_same_after_a_big_head(server: ServerProcess) -> None:
    """What a server controls of the cost of a trickle: each one-byte segment may cost a
    wakeup and a read, but not a re-parse of what came before (the event-loop worker re-parsed
    the head for every body segment, issue #12). The CPU per one-byte body segment after a
    100 KB head stays within twice the CPU per segment after a 1.4 KB head (6 connections
    trickling at once, each round sent once the server has read the last)."""
    body = FEAT[:-1] + b" " * 1000 + b"}"  # valid JSON, 1 KB
    small = realistic_head(server.port, len(body))
    big = _padded_head(server.port, len(body), 26)
    _whole(server.port, big + body, 20)  # warm up, and the big head is accepted
    pids = server.pids
    cost_small, late_small = _body_segment_cost(server.port, small, body, 6, pids)
    cost_big, late_big = _body_segment_cost(server.port, big, body, 6, pids)
    ratio = cost_big / cost_small if cost_small > 0 else math.inf
    line = figures("body-segment-cost", small_head=len(small), big_head=len(big),
                   body_segments=len(body), us_per_segment_small=round(cost_small * 1e6, 2),
                   us_per_segment_big=round(cost_big * 1e6, 2), ratio=round(ratio, 2),
                   rounds_read_late=(late_small, late_big))
    assert ratio <= CPU_RATIO_LIMIT, line


# --- pipelining -----------------------------------------------------------------------------

def test_20000_pipelined_requests_keep_memory_flat(server: ServerProcess) -> None:
    """20,000 requests pipelined on one connection in batches of 100 (alternately /healthz and
    a feature lookup), responses read as they come; the workers' RSS after the first batch and
    at the end differ by less than 30 MB."""
    healthz = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    feature = (b"POST " + ROUTE + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
               b"application/json\r\nContent-Length: %d\r\n\r\n" % len(FEAT) + FEAT)
    batch = (healthz + feature) * 50
    per_batch = 100
    sock = socket.create_connection((HOST, server.port), timeout=10)
    buf = bytearray()
    answered = bad = 0
    rss_start = rss_peak = 0
    statuses: dict[int, int] = {}
    t0 = time.monotonic()
    try:
        for n in range(PIPELINED // per_batch):
            sock.sendall(batch)
            want = (n + 1) * per_batch
            while answered < want:
                data = sock.recv(1 << 20)
                assert data, f"the server closed after {answered} responses"
                buf.extend(data)
                done, used = parse_responses(bytes(buf))
                del buf[:used]
                answered += len(done)
                for r in done:
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                    bad += r.status != 200
            rss = rss_bytes(server.worker_pids)
            if n == 0:
                rss_start = rss
            rss_peak = max(rss_peak, rss)
    finally:
        sock.close()
    rss_end = rss_bytes(server.worker_pids)
    growth = rss_end - rss_start
    line = figures("pipelined", requests=answered, seconds=round(time.monotonic() - t0, 1),
                   statuses=statuses, rss_start_mb=round(rss_start / 2**20, 1),
                   rss_peak_mb=round(rss_peak / 2**20, 1),
                   rss_end_mb=round(rss_end / 2**20, 1), growth_mb=round(growth / 2**20, 2))
    assert answered == PIPELINED and not bad, line
    assert growth < RSS_GROWTH_LIMIT, line
    assert server.alive() and server.get("/healthz")[0] == 200
