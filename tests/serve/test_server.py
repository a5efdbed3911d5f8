"""`featql serve` as a real process (granian, 2 workers), spoken to over HTTP; the app's one
routing table and its multiprocess metrics in-process."""

from __future__ import annotations

import datetime as dt
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import featql
from featql.compiler.project import compile_project
from featql.jobs.online_load import load_online
from featql.registry import apply_now

from .conftest import configure_online, copy_with_boom, free_port, wait_port

AT = "2024-01-31T00:00:00"


class Server:
    def __init__(self, root: Path, workers: int = 2, threads: int | None = None):
        self.port = free_port()
        env = {**os.environ, "FEATQL_LOG_LEVEL": "error"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "featql.cli", "serve", "--project", str(root), "--port",
             str(self.port), "--workers", str(workers),
             *(["--threads", str(threads)] if threads else [])],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_port(self.port, timeout=60, proc=self.proc)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.connect()
        return conn

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
             fresh: bool = False, conn: http.client.HTTPConnection | None = None,
             ) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else orjson.dumps(body))
        conn = conn or (self.connect() if fresh else self.conn)
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        payload = resp.read()
        if fresh:
            conn.close()
        ctype = resp.getheader("Content-Type") or ""
        return resp.status, orjson.loads(payload) if "json" in ctype else payload.decode()

    def stop(self) -> None:
        self.conn.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _project(serve_project: Path, tmp: Path, kind: str, endpoint: str | None) -> Path:
    root = copy_with_boom(serve_project, tmp / "project")
    (root / "services" / "boom_service.sql").write_text(
        "-- @feature_service(name = boom_service, features = [user_profile.country, boom])\n")
    configure_online(root, kind, endpoint, ".featql/online.db" if kind == "sqlite"
                     else "featql_srv_")
    result = compile_project(root)
    assert result.ok and result.manifest is not None, result.diagnostics
    apply_now(root, result.manifest)  # featql serve runs what is applied (PRODUCT §3)
    load_online(root, result.manifest, "dev",
                end=dt.datetime.fromisoformat(AT))
    return root


@pytest.fixture(scope="module")
def sqlite_server(serve_project: Path, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[tuple[Server, Path]]:
    root = _project(serve_project, tmp_path_factory.mktemp("srv"), "sqlite", None)
    server = Server(root)
    yield server, root
    server.stop()


ENT = [{"user_id": 1, "merchant_id": 3}, {"user_id": 2, "merchant_id": 5},
       {"user_id": 10**9, "merchant_id": 10**9}]
REQ = [{"amount": 12.5}, {"amount": None}, {"amount": 3.0}]


def test_the_startup_line_names_the_server(sqlite_server: tuple[Server, Path]) -> None:
    import selectors

    server, _ = sqlite_server
    assert server.proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(server.proc.stderr, selectors.EVENT_READ)
    lines: list[str] = []
    while not any("featql serve" in ln for ln in lines) and sel.select(timeout=10):
        lines.append(server.proc.stderr.readline().decode())
    line = next(ln for ln in lines if "featql serve" in ln)
    assert "granian" in line and "(RSGI), 2 worker(s) × 1 thread" in line, line


def test_health_and_services(sqlite_server: tuple[Server, Path]) -> None:
    server, _root = sqlite_server
    status, body = server.call("GET", "/healthz")
    assert status == 200 and body["status"] == "ok" and body["store"] == "sqlite"
    status, body = server.call("GET", "/v1/services")
    assert status == 200
    assert {s["name"] for s in body["services"]} == {"fraud_detection", "merchant_risk",
                                                     "boom_service"}
    status, schema = server.call("GET", "/v1/services/fraud_detection")
    assert status == 200
    assert [k["name"] for k in schema["keys"]] == ["user_id", "merchant_id"]
    assert schema["request"] == [{"name": "amount", "type": "DOUBLE"}]
    names = [f["name"] for f in schema["features"]]
    assert "user_txn_aggs.txn_count_7d" in names and "amount_vs_avg.amount_vs_avg_7d" in names
    status, err = server.call("GET", "/v1/services/fraud_detectoin")
    assert status == 404 and "did you mean 'fraud_detection'" in err["error"]["message"]


def test_features_equal_the_python_api(sqlite_server: tuple[Server, Path]) -> None:
    server, root = sqlite_server
    status, body = server.call("POST", "/v1/features/fraud_detection",
                               {"entities": ENT, "request": REQ, "at": AT})
    assert status == 200, body
    rows = body["features"]
    assert len(rows) == 3 and body["metadata"]["service"] == "fraud_detection"
    in_process = featql.Project(root).online("fraud_detection", ENT, request=REQ, at=AT)
    assert rows == orjson.loads(orjson.dumps(in_process))
    assert rows[0]["user_txn_aggs.txn_count_30d"] > 0
    # a missing entity is NULL features (COUNT 0), not an error
    assert rows[2]["user_profile.country"] is None
    assert rows[2]["user_txn_aggs.txn_count_7d"] == 0
    assert rows[1]["amount_vs_avg.amount_vs_avg_7d"] is None  # NULL request value propagates


def _big_body() -> bytes:
    return orjson.dumps({"entities": [{"user_id": 1, "merchant_id": 1, "pad": "x" * 2_000_000}]})


@pytest.mark.parametrize("method, path, body, status, field", [
    ("POST", "/v1/features/fraud_detection", b"{not json", 400, "body"),
    ("POST", "/v1/features/fraud_detection", [1, 2], 400, "body"),
    ("POST", "/v1/features/fraud_detection", {"request": REQ}, 400, "entities"),
    ("POST", "/v1/features/fraud_detection", {"entitys": ENT}, 400, "entitys"),
    ("POST", "/v1/features/fraud_detection", {"entities": {"user_id": 1}}, 400, "entities"),
    ("POST", "/v1/features/fraud_detection", {"entities": []}, 400, "entities"),
    ("POST", "/v1/features/fraud_detection",
     {"entities": [{"user_id": 1, "merchant_id": 1}] * 101, "request": {"amount": 1.0}},
     413, "entities"),
    ("POST", "/v1/features/fraud_detection", {"entities": [{"user_id": 1}], "request": REQ[:1]},
     400, "entities[0].merchant_id"),
    ("POST", "/v1/features/fraud_detection",
     {"entities": [{"user_id": "1", "merchant_id": 1}], "request": REQ[:1]},
     400, "entities[0].user_id"),
    ("POST", "/v1/features/fraud_detection",
     {"entities": [{"user_id": True, "merchant_id": 1}], "request": REQ[:1]},
     400, "entities[0].user_id"),
    ("POST", "/v1/features/fraud_detection", {"entities": ENT[:1]}, 400, "request"),
    ("POST", "/v1/features/fraud_detection", {"entities": ENT, "request": REQ[:2]}, 400,
     "request"),
    ("POST", "/v1/features/fraud_detection",
     {"entities": ENT[:1], "request": [{"amount": "12"}]}, 400, "request[0].amount"),
    ("POST", "/v1/features/fraud_detection",
     {"entities": ENT[:1], "request": [{"amout": 1.0}]}, 400, "request[0].amount"),
    ("POST", "/v1/features/fraud_detection",
     {"entities": ENT[:1], "request": REQ[:1], "at": "yesterday"}, 400, "at"),
    ("POST", "/v1/features/fraud_detection", _big_body(), 413, "body"),
    ("POST", "/v1/features/nope", {"entities": ENT}, 404, "service"),
    ("GET", "/v1/features/fraud_detection", None, 405, "method"),
    ("GET", "/v2/whatever", None, 404, "path"),
])
def test_bad_input_is_a_4xx_naming_the_field(sqlite_server: tuple[Server, Path], method: str,
                                             path: str, body: Any, status: int, field: str
                                             ) -> None:
    server, _ = sqlite_server
    raw = body if isinstance(body, bytes) else None
    got, err = server.call(method, path, None if raw else body, raw=raw, fresh=True)
    assert got == status, err
    assert err["error"]["field"] == field, err
    assert err["error"]["message"]


def test_the_routing_table_answers_every_method_and_path_in_json(
        sqlite_server: tuple[Server, Path]) -> None:
    server, _ = sqlite_server
    conn = server.connect()
    conn.request("HEAD", "/healthz")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b""
    conn.close()
    for method, path, status, field in [("OPTIONS", "/healthz", 405, "method"),
                                        ("POST", "/healthz", 405, "method"),
                                        ("DELETE", "/v1/features/fraud_detection", 405,
                                         "method"),
                                        ("POST", "/v1/features/fraud_detection/x", 404, "path"),
                                        ("GET", "/v1/services/", 404, "path"),
                                        ("GET", "/", 404, "path")]:
        got, err = server.call(method, path, fresh=True)
        assert got == status and err["error"]["field"] == field, (method, path, err)


def test_one_table_holds_every_route(sqlite_server: tuple[Server, Path], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Every rule of the app's url_map has its handler (and no handler lacks a rule); the
    Flask test client (what `featql serve` probes /healthz with) goes through the same
    dispatcher."""
    from featql.core.manifest import write_manifest
    from featql.server.app import Dispatcher, ServeSettings, create_app

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)  # restored after the test
    _, root = sqlite_server
    result = compile_project(root)
    assert result.manifest is not None
    settings = ServeSettings(root=root, workspace="dev",
                             manifest_path=write_manifest(result.manifest, tmp_path),
                             metrics_dir=tmp_path / "metrics")
    app = create_app(settings)
    routes = app.extensions["featql"]
    assert isinstance(app.wsgi_app, Dispatcher)
    rules = {r.endpoint: (r.rule, set(r.methods or ()) - {"HEAD"})
             for r in app.url_map.iter_rules()}
    assert set(rules) == set(routes.handlers)
    assert rules["features"] == ("/v1/features/<service_name>", {"POST"})
    with app.test_client() as client:
        health = client.get("/healthz")
        assert health.status_code == 200 and health.get_json()["store"] == "sqlite"
        status = client.post("/v1/features/fraud_detection", data=b"{}")
        assert status.status_code == 400 and status.get_json()["error"]["field"] == "entities"
        assert client.get("/metrics").status_code == 200


def test_remembered_matches_answer_like_the_table(sqlite_server: tuple[Server, Path],
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The dispatcher remembers the table's matches (bounded): every answer, before and past
    the bound, equals the one the table gives with nothing remembered; refusals of the table
    (404, 405) are never remembered."""
    from featql.core.manifest import write_manifest
    from featql.server.app import MATCHES_KEPT, ServeSettings, create_app

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    _, root = sqlite_server
    result = compile_project(root)
    assert result.manifest is not None
    settings = ServeSettings(root=root, workspace="dev",
                             manifest_path=write_manifest(result.manifest, tmp_path),
                             metrics_dir=tmp_path / "metrics")
    app = create_app(settings)
    dispatcher = app.extensions["featql.dispatcher"]
    paths = ([f"/v1/services/s{i}" for i in range(MATCHES_KEPT + 100)]
             + ["/v1/services/fraud_detection", "/v1/services", "/healthz", "/nope",
                "/v1/features/fraud_detection"])
    with app.test_client() as client:
        for path in paths * 2:  # the second pass answers from what was remembered
            got = client.get(path)
            remembered = dict(dispatcher._matched)
            dispatcher._matched.clear()
            fresh = client.get(path)
            dispatcher._matched.update(remembered)
            assert (got.status_code, got.data) == (fresh.status_code, fresh.data), path
            assert len(dispatcher._matched) <= MATCHES_KEPT
    assert ("GET", "/nope") not in dispatcher._matched  # 404
    assert ("GET", "/v1/features/fraud_detection") not in dispatcher._matched  # 405
    assert ("GET", "/healthz") in dispatcher._matched


def test_bodies_that_never_finish_hold_no_worker(sqlite_server: tuple[Server, Path]) -> None:
    """Clients that send a head and part of a body, then nothing: more of them than the
    server has threads (2 workers × 1); requests on fresh connections still answer at once."""
    import socket
    import time

    server, _ = sqlite_server
    stalled = []
    try:
        for _ in range(6):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(b"POST /v1/features/fraud_detection HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ent")
            stalled.append(s)
        time.sleep(0.3)
        for _ in range(10):
            t0 = time.perf_counter()
            status, body = server.call("GET", "/healthz", fresh=True)
            assert status == 200 and time.perf_counter() - t0 < 2.0
        status, body = server.call("POST", "/v1/features/merchant_risk",
                                   {"entities": [{"merchant_id": 1}], "at": AT}, fresh=True)
        assert status == 200, body
    finally:
        for s in stalled:
            s.close()


def test_a_raising_transform_is_a_per_request_error(sqlite_server: tuple[Server, Path]) -> None:
    server, _ = sqlite_server
    ok = {"entities": [{"user_id": 1}], "request": {"amount": 5.0}, "at": AT}
    status, body = server.call("POST", "/v1/features/boom_service", ok)
    assert status == 200 and "boom.ratio" in body["features"][0]
    for _ in range(6):  # every worker gets to raise at least once, none dies
        status, err = server.call("POST", "/v1/features/boom_service",
                                  {**ok, "request": {"amount": -1.0}}, fresh=True)
        assert status == 422
        assert "boom" in err["error"]["message"] and "negative amount" in err["error"]["message"]
    assert server.proc.poll() is None
    status, body = server.call("POST", "/v1/features/boom_service", ok)
    assert status == 200


def _metric(text: str, name: str, labels: str) -> float:
    """The value of sample `name{labels}` in a Prometheus text, whatever the labels' order."""
    from prometheus_client.parser import text_string_to_metric_families

    want = dict(re.findall(r'(\w+)="([^"]*)"', labels))
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == want:
                return float(s.value)
    raise AssertionError((name, labels))


def test_metrics_add_up_across_workers(sqlite_server: tuple[Server, Path]) -> None:
    server, _ = sqlite_server
    _, before = server.call("GET", "/metrics")
    ok0 = _metric(before, "featql_requests_total", 'service="merchant_risk",code="2xx"')
    bad0 = _metric(before, "featql_requests_total", 'service="merchant_risk",code="4xx"')
    n_ok, n_bad = 40, 7
    # kept-alive connections opened one after another while the earlier ones stay open: a
    # worker holding connections lets the idler one accept first, so they spread over both
    # (on a busy machine the idler one may not be scheduled in time: open more until it is)
    held: list[http.client.HTTPConnection] = []
    pids: set[int] = set()
    try:
        while len(pids) < 2 and len(held) < 60:
            held.append(server.connect())
            pids.add(server.call("GET", "/healthz", conn=held[-1])[1]["pid"])
        for i in range(n_ok):
            status, _ = server.call("POST", "/v1/features/merchant_risk",
                                    {"entities": [{"merchant_id": i + 1}] * 2},
                                    conn=held[i % len(held)])
            assert status == 200
        for i in range(n_bad):
            status, _ = server.call("POST", "/v1/features/merchant_risk", {"entities": [{}]},
                                    conn=held[i % len(held)])
            assert status == 400
    finally:
        for c in held:
            c.close()
    assert len(pids) == 2, "both workers should have answered"
    for _ in range(4):  # whichever worker answers, the totals are the same
        _, text = server.call("GET", "/metrics", fresh=True)
        assert _metric(text, "featql_requests_total",
                       'service="merchant_risk",code="2xx"') == ok0 + n_ok
        assert _metric(text, "featql_requests_total",
                       'service="merchant_risk",code="4xx"') == bad0 + n_bad
        assert _metric(text, "featql_request_duration_seconds_count",
                       'service="merchant_risk"') == ok0 + bad0 + n_ok + n_bad
        assert _metric(text, "featql_request_duration_seconds_bucket",
                       'service="merchant_risk",le="+Inf"') == ok0 + bad0 + n_ok + n_bad
        assert _metric(text, "featql_entities_total", 'service="merchant_risk"') >= 2 * n_ok


@pytest.mark.parametrize("threads", [None, 2], ids=["default threads (1)", "2 threads"])
def test_dynamodb_server_answers_like_sqlite(serve_project: Path, dynalite: str,
                                             sqlite_server: tuple[Server, Path],
                                             tmp_path: Path, threads: int | None) -> None:
    """One and two Python threads per worker (dynalite's loopback endpoint defaults to one),
    with the body framed by Content-Length and by chunked transfer coding."""
    root = _project(serve_project, tmp_path, "dynamodb", dynalite)
    server = Server(root, workers=1, threads=threads)
    try:
        body = {"entities": ENT, "request": REQ, "at": AT}
        status, dyn = server.call("POST", "/v1/features/fraud_detection", body)
        assert status == 200, dyn
        assert server.call("GET", "/healthz")[1]["store"] == "dynamodb"
        _, lite = sqlite_server[0].call("POST", "/v1/features/fraud_detection", body)
        assert dyn["features"] == lite["features"]
        raw = orjson.dumps(body)
        server.conn.request("POST", "/v1/features/fraud_detection", encode_chunked=True,
                            body=iter([raw[:10], raw[10:]]),
                            headers={"Content-Type": "application/json"})
        resp = server.conn.getresponse()
        assert resp.status == 200
        assert orjson.loads(resp.read())["features"] == lite["features"]
        status, err = server.call("POST", "/v1/features/fraud_detection", {"entities": [{}]})
        assert status == 400 and err["error"]["field"], err
    finally:
        server.stop()


def test_demo_step(sqlite_server: tuple[Server, Path]) -> None:
    from featql.cli.serve_demo import serve_demo

    _server, root = sqlite_server
    lines: list[str] = []
    assert serve_demo(root, "dev", say=lines.append)
    text = "\n".join(lines)
    assert "HTTP 200" in text and "HTTP 400" in text and '"at": "2024-01-31T00:00:00"' in text
    assert 'featql_requests_total{code="2xx",service="fraud_detection"} 1.0' in text
    cli = subprocess.run([sys.executable, "-m", "featql.cli", "serve", "--project", str(root),
                          "--demo"], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert "$ curl -s -X POST" in cli.stdout and "server stopped" in cli.stdout


def test_dynamodb_table_missing_is_a_503_not_nulls(serve_project: Path, dynalite: str,
                                                    tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(serve_project, root, ignore=shutil.ignore_patterns(".featql", "target"))
    configure_online(root, "dynamodb", dynalite, "featql_never_loaded_")
    apply_now(root, compile_project(root).manifest)  # type: ignore[arg-type]
    server = Server(root, workers=1)
    try:
        status, health = server.call("GET", "/healthz")
        assert status == 200 and "user_profile" in health["not_loaded"]
        status, err = server.call("POST", "/v1/features/merchant_risk",
                                  {"entities": [{"merchant_id": 1}]})
        assert status == 503 and "materialize --online" in err["error"]["message"]
    finally:
        server.stop()


def test_reload_dev_server_logs_without_ansi_codes(sqlite_server: tuple[Server, Path]) -> None:
    """`--reload` runs Flask's dev server; with stderr not a terminal its request log must be
    plain text (werkzeug colours 4xx lines with ANSI codes by default)."""
    _, root = sqlite_server
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "featql.cli", "serve", "--project", str(root), "--port",
         str(port), "--reload"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)  # the reloader runs the server in a child: stop the group
    try:
        wait_port(port, timeout=60, proc=proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/v1/features/fraud_detection")
        resp = conn.getresponse()
        assert resp.status == 405 and orjson.loads(resp.read())["error"]["field"] == "method"
        conn.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    log = err.decode()
    assert '"GET /v1/features/fraud_detection HTTP/1.1" 405' in log, log
    assert "\x1b[" not in log


def _observe_in_child(directory: str, n: int) -> None:
    from featql.server.metrics import Metrics

    m = Metrics(Path(directory), ["svc"])
    for i in range(n):
        m.observe("svc", 200 if i % 3 else 404, 0.002, 2)


def test_metrics_add_up_across_processes_and_forget_dead_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """prometheus_client's multiprocess mode: counts of processes that have exited still add
    up; the live-worker gauge counts only the processes alive."""
    import multiprocessing

    from featql.server.metrics import Metrics

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)  # restored after the test
    directory = tmp_path / "metrics"
    parent = Metrics(directory, ["svc"])
    ctx = multiprocessing.get_context("fork")
    children = [ctx.Process(target=_observe_in_child, args=(str(directory), n))
                for n in (30, 12)]
    for c in children:
        c.start()
    for c in children:
        c.join(30)
        assert c.exitcode == 0
    parent.observe("svc", 503, 0.3)
    text = parent.render().decode()
    assert _metric(text, "featql_requests_total", 'service="svc",code="2xx"') == 20 + 8
    assert _metric(text, "featql_requests_total", 'service="svc",code="4xx"') == 10 + 4
    assert _metric(text, "featql_requests_total", 'service="svc",code="5xx"') == 1
    assert _metric(text, "featql_request_errors_total", 'service="svc"') == 15
    assert _metric(text, "featql_entities_total", 'service="svc"') == 2 * 42
    assert _metric(text, "featql_request_duration_seconds_count", 'service="svc"') == 43
    assert _metric(text, "featql_request_duration_seconds_bucket",
                   'service="svc",le="0.0025"') == 42
    assert _metric(text, "featql_requests_total", 'service="_other",code="2xx"') == 0
    # the two children are dead: only this process serves
    assert _metric(text, "featql_workers", "") == 1


@pytest.mark.parametrize("environ, status, field", [
    ({"SERVER_PROTOCOL": "HTTP/1.1"}, 400, "host"),
    ({"SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": ""}, 400, "host"),
    ({"SERVER_PROTOCOL": "HTTP/1.0"}, None, None),  # HTTP/1.0 needs no Host
    ({"HTTP_HOST": "a.example,b.example"}, 400, "host"),  # two Host lines, joined
    ({"HTTP_HOST": "a b"}, 400, "host"),
    ({"HTTP_HOST": "user@a.example"}, 400, "host"),
    ({"HTTP_HOST": "[::1]:8080"}, None, None),
    ({"HTTP_HOST": "127.0.0.1:8080", "REQUEST_METHOD": "get"}, 400, "method"),
    ({"HTTP_HOST": "h", "PATH_INFO": "/v1/features/caf\xc3\xa9"}, 400, "path"),
    ({"HTTP_HOST": "h", "QUERY_STRING": "n=\xc3\xa9"}, 400, "path"),
    ({"HTTP_HOST": "h", "QUERY_STRING": "n=%C3%A9"}, None, None),
    ({"HTTP_HOST": "h", "HTTP_TRANSFER_ENCODING": "gzip, chunked"}, 501, "transfer-encoding"),
    ({"HTTP_HOST": "h", "HTTP_TRANSFER_ENCODING": "Chunked"}, None, None),
])
def test_what_the_http_server_lets_through_is_refused(environ: dict[str, str],
                                                      status: int | None,
                                                      field: str | None) -> None:
    from featql.server.app import refusal

    env = {"SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": "POST",
           "PATH_INFO": "/v1/features/x", **environ}
    got = refusal(env, env["REQUEST_METHOD"], env["PATH_INFO"])
    if status is None:
        assert got is None
    else:
        assert got is not None and got.status == status
        assert orjson.loads(got.body)["error"]["field"] == field


def test_a_body_shorter_than_its_content_length_is_a_400() -> None:
    import io

    from featql.online.lookup import RequestError
    from featql.server.app import Call

    call = Call({"CONTENT_LENGTH": "50", "wsgi.input": io.BytesIO(b'{"entities": []}')}, 1000)
    with pytest.raises(RequestError, match="ended after 16 of its 50 bytes") as e:
        call.body()
    assert e.value.status == 400 and e.value.field == "body"
    fine = Call({"CONTENT_LENGTH": "2", "wsgi.input": io.BytesIO(b"{}")}, 1000)
    assert fine.json_object() == {}


def test_the_asgi_environ_keeps_what_refusal_needs() -> None:
    from featql.server.app import refusal
    from featql.server.asgi import environ_of

    scope = {"type": "http", "method": "POST", "path": "/v1/features/x",
             "query_string": b"n=\xc3\xa9", "http_version": "1.1",
             "headers": [(b"host", b"a.example"), (b"Host", b"b.example"),
                         (b"content-length", b"2"), (b"x-request-id", b"7")]}
    env = environ_of(scope)
    assert env["HTTP_HOST"] == "a.example,b.example" and env["CONTENT_LENGTH"] == "2"
    assert env["HTTP_X_REQUEST_ID"] == "7" and env["SERVER_PROTOCOL"] == "HTTP/1.1"
    got = refusal(env, env["REQUEST_METHOD"], env["PATH_INFO"])
    assert got is not None and orjson.loads(got.body)["error"]["field"] == "host"
    env["HTTP_HOST"] = "a.example"
    got = refusal(env, env["REQUEST_METHOD"], env["PATH_INFO"])
    assert got is not None and orjson.loads(got.body)["error"]["field"] == "path"  # raw é
