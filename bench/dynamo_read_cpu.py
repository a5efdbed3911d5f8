"""CPU per DynamoDB BatchGetItem against dynalite on 127.0.0.1, in one run, interleaved rounds:
(a) the lean reader as it was before it signed with botocore (its own SigV4 code, loaded from
git history), (b) the lean reader signing with botocore's SigV4Auth, (c) plain boto3
`batch_get_item`. Prints the median (and range) of each round's mean CPU and wall time per
call, for 1 and 100 keys. Run: `.venv/bin/python bench/dynamo_read_cpu.py` (needs `make
dynalite` and git)."""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BEFORE = "f5ba038"  # the last commit whose lean reader signed SigV4 itself


def load_before() -> Any:
    src = subprocess.run(["git", "-C", str(REPO), "show", f"{BEFORE}:featql/online/dynamo_http.py"],
                         check=True, capture_output=True).stdout
    path = Path(tempfile.mkdtemp()) / "dynamo_http_before.py"
    path.write_bytes(src)
    spec = importlib.util.spec_from_file_location("dynamo_http_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from featql.online import codec
    from featql.online.base import Cell, version
    from featql.online.dynamodb import DynamoStore, make_client
    from tests.serve.conftest import start_dynalite

    before = load_before()
    proc, url = start_dynalite()
    try:
        store = DynamoStore("b" + uuid.uuid4().hex[:8], endpoint_url=url, region="us-east-1",
                            table_prefix="bench_")
        keys = [f"user#[{i}]" for i in range(100)]
        rows = [codec.encode_row(1, None, [i, 1.5, "x" * 20]) for i in range(100)]
        store.write([Cell(k, "v", version(1, None, r), r) for k, r in zip(keys, rows,
                                                                          strict=True)])
        names = {"#k": "item", "#d0": "d:v"}
        # (a) reads the credentials the way it did then: from the client's private signer
        a = before.BatchGetClient(store.client)
        b = store._fast_reader()
        c = make_client(store._session, "us-east-1", url, attempts=1)
        arms: dict[str, Callable[[dict[str, Any]], Any]] = {
            "(a) lean, own SigV4 (before)": lambda r: a.batch_get_all([r])[0],
            "(b) lean + botocore SigV4Auth": lambda r: b.batch_get_all([r])[0],
            "(c) boto3 batch_get_item": lambda r: c.batch_get_item(RequestItems=r)}
        for n in (1, 100):
            request = {store.table: {"Keys": [{"item": {"S": k}} for k in keys[:n]],
                                     "ProjectionExpression": "#k, #d0",
                                     "ExpressionAttributeNames": names}}
            for call in arms.values():  # warm, and check every arm reads all n items
                for _ in range(30):
                    got = call(request)
                    assert len(got["Responses"][store.table]) == n, got
            calls = 300 if n == 1 else 100
            cpu: dict[str, list[float]] = {k: [] for k in arms}
            wall: dict[str, list[float]] = {k: [] for k in arms}
            for rnd in range(args.rounds):
                order = list(arms.items())
                if rnd % 2:
                    order.reverse()
                for name, call in order:
                    t0, w0 = time.process_time(), time.perf_counter()
                    for _ in range(calls):
                        call(request)
                    cpu[name].append((time.process_time() - t0) / calls * 1e6)
                    wall[name].append((time.perf_counter() - w0) / calls * 1e6)
            print(f"\n{n} key(s) per BatchGetItem: {args.rounds} interleaved rounds x {calls} "
                  "calls; per call, median of the rounds (min-max)")
            for name in arms:
                print(f"  {name:31s} CPU {statistics.median(cpu[name]):6.0f} us "
                      f"({min(cpu[name]):.0f}-{max(cpu[name]):.0f})   wall "
                      f"{statistics.median(wall[name]):6.0f} us")
        store.drop()
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
