"""The `featql serve` part of `featql demo`: start the server, query it like curl would, stop.

`serve_demo(project_root, workspace="dev")` starts `featql serve` (2 workers) as a child
process on a free loopback port, waits for /healthz, prints each query as a curl command with
its (abridged) JSON answer, and stops the server — also when a query fails. With `push`, it
then pushes three transactions (`POST /v1/ingest/transactions`) and shows the same lookup
change at once (the `make demo` step of issue 13).
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from featql.online.codec import from_micros


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loaded_until(project_root: Path, workspace: str) -> str | None:
    """The end of the data loaded online (ISO), to replay lookups at: demo data is historical."""
    from featql.compiler.project import compile_project
    from featql.online.codec import cell_name
    from featql.online.stores import open_store

    result = compile_project(project_root)
    if result.manifest is None:
        return None
    store = open_store(result.config, project_root, workspace)
    try:
        ends = []
        for v in result.manifest.views:
            raw = store.get_state("loaded:" + cell_name(v))
            if raw:
                state = orjson.loads(raw)
                if "hi" in state:
                    ends.append(state["hi"] * 1_000_000)
                elif state.get("through") is not None:
                    ends.append(state["through"] + 1)
        return from_micros(max(ends)).isoformat() if ends else None
    finally:
        store.close()


def _abridge(data: Any, keep: int = 10) -> Any:
    if isinstance(data, dict):
        items = list(data.items())
        out = {k: _abridge(v, keep) for k, v in items[:keep]}
        if len(items) > keep:
            out["…"] = f"{len(items) - keep} more"
        return out
    if isinstance(data, list):
        return [_abridge(v, keep) for v in data[:3]] + ([f"… {len(data) - 3} more"]
                                                       if len(data) > 3 else [])
    return data


SHOWN = ("user_txn_aggs.txn_count_7d", "user_txn_aggs.amount_avg_7d", "user_profile.country",
         "user_last_txn.last_amount", "merchant_profile.risk_tier",
         "merchant_txn_aggs.fraud_rate_7d", "amount_vs_avg.amount_vs_avg_7d",
         "amount_vs_avg.exceeds_max_30d", "amount_features.amount_log_ratio")


def _highlights(row: dict[str, Any]) -> dict[str, Any]:
    shown = {k: row[k] for k in SHOWN if k in row}
    if len(row) > len(shown):
        shown["…"] = f"{len(row) - len(shown)} more features"
    return shown


def _post(port: int, path: str, body: Any) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, orjson.loads(resp.read())


def _push_step(port: int, base: str, at: str, say: Callable[[str], None]) -> bool:
    """Push three transactions of user 1 just before `at` (POST /v1/ingest/transactions) and
    show its features change at once: the answer comes once the online store holds them."""
    import datetime as dt

    when = dt.datetime.fromisoformat(at)
    lookup = {"entities": [{"user_id": 1, "merchant_id": 7}], "request": {"amount": 50.0},
              "at": at}
    watched = ("user_txn_aggs.txn_count_1h", "user_txn_aggs.amount_sum_1h",
               "user_last_txn.last_amount")
    status, before = _post(port, "/v1/features/fraud_detection", lookup)
    if status != 200:
        return False
    run = time.time_ns() // 1000 % 10**9  # new txn ids per demo run: pushes count once each
    records = [{"txn_id": 9 * 10**15 + run * 10 + i, "user_id": 1, "merchant_id": 7,
                "amount": amount, "currency": "USD", "category": "electronics",
                "channel": "online", "is_fraud": False,
                "event_ts": (when - dt.timedelta(seconds=3 - i)).isoformat(),
                "created_ts": (when - dt.timedelta(seconds=3 - i)).isoformat()}
               for i, amount in enumerate((25.0, 80.0, 250.0))]
    say("$ curl -s -X POST " + base + "/v1/ingest/transactions -d '" +
        json.dumps({"records": records[:1]})[:-2] + ", ...]}'   # 3 records")
    status, report = _post(port, "/v1/ingest/transactions", {"records": records})
    say(f"HTTP {status}")
    say(json.dumps(report, indent=2))
    if status != 200:
        return False
    status, after = _post(port, "/v1/features/fraud_detection", lookup)
    if status != 200:
        say(f"# the lookup after the push failed: HTTP {status}")
        say(json.dumps(after, indent=2))
        return False
    old, new = before["features"][0], after["features"][0]
    say("# the same lookup right after the push:")
    for name in watched:
        say(f"#   {name}: {old.get(name)} -> {new.get(name)}")
    return bool(new.get("user_last_txn.last_amount") == 250.0
                and (new.get("user_txn_aggs.txn_count_1h") or 0) > (
                    old.get("user_txn_aggs.txn_count_1h") or 0))


def serve_demo(project_root: Path | str, workspace: str = "dev",
               say: Callable[[str], None] = print, push: bool = False) -> bool:
    """Run the server and a few queries; True when every query answered as expected."""
    root = Path(project_root)
    at = loaded_until(root, workspace)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "featql.cli", "serve", "--project", str(root), "--port",
         str(port), "--workers", "2", "--workspace", workspace],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    say(f"$ featql serve --port {port} --workers 2 --workspace {workspace} &")
    ok = True
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                say("featql serve did not start")
                return False
            time.sleep(0.2)
        body = {"entities": [{"user_id": 1, "merchant_id": 7}, {"user_id": 42, "merchant_id": 3}],
                "request": [{"amount": 120.0}, {"amount": 9.99}]}
        if at:
            body["at"] = at
        queries: list[tuple[str, str, Any, int]] = [
            ("GET", "/v1/services", None, 200),
            ("POST", "/v1/features/fraud_detection", body, 200),
            ("POST", "/v1/features/fraud_detection",
             {"entities": [{"user_id": "1", "merchant_id": 7}], "request": {"amount": 1.0}}, 400),
        ]
        for method, path, payload, expected in queries:
            data = None if payload is None else json.dumps(payload)
            curl = f"$ curl -s {'-X POST ' if method == 'POST' else ''}{base}{path}" + (
                f" -d '{data}'" if data else "")
            say(curl)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            answer = orjson.loads(resp.read())
            ok &= resp.status == expected
            if isinstance(answer, dict) and "features" in answer:
                answer = {**answer, "features": [_highlights(r) for r in answer["features"]]}
            say(f"HTTP {resp.status}")
            say(json.dumps(_abridge(answer), indent=2, ensure_ascii=False))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        say(f"$ curl -s {base}/metrics | grep 'featql_requests_total.*fraud'")
        say("\n".join(ln for ln in text.splitlines()
                      if ln.startswith("featql_requests_total") and "fraud_detection" in ln))
        if push and at:
            ok &= _push_step(port, base, at, say)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        say("$ kill %1   # server stopped")
    return ok
