"""Train/serve parity: a training-set row at time t equals what the online path returns after
loading the data up to t (request transforms, TTL expiry and NULLs included)."""

from __future__ import annotations

import datetime as dt
import math
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from featql.compiler.project import compile_project
from featql.jobs.online_load import load_online
from featql.jobs.training import training_set
from featql.online.base import OnlineStore
from featql.online.codec import to_micros
from featql.online.lookup import OnlineService


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


@pytest.mark.parametrize("t", [dt.datetime(2024, 1, 21, 13, 30),  # mid-data, mid-slide
                               dt.datetime(2024, 1, 31, 0, 0),  # just after the data
                               dt.datetime(2024, 5, 15)])  # TTLs expired, windows empty
def test_training_row_equals_online_row(store: OnlineStore, serve_project: Path,
                                        t: dt.datetime) -> None:
    result = compile_project(serve_project)
    m = result.manifest
    assert m is not None
    load_online(serve_project, m, "parity", store=store, end=t)
    rng = random.Random(7)
    users = [*rng.sample(range(1, 400), 30), 10**9]
    merchants = [rng.choice([*range(1, 40), 10**6]) for _ in users]
    amounts = [rng.choice([None, 0.0, -3.5, 12.5, 1e6, rng.uniform(1, 500)]) for _ in users]
    spine = pa.table({"user_id": pa.array(users, pa.int64()),
                      "merchant_id": pa.array(merchants, pa.int64()),
                      "ts": pa.array([t] * len(users), pa.timestamp("us")),
                      "amount": pa.array(amounts, pa.float64())})
    train = training_set(serve_project, m, result.config, "fraud_detection", spine,
                         use_store=False).to_pylist()
    online = OnlineService(m, store, serve_project)
    served, _ = online.lookup("fraud_detection",
                              [{"user_id": u, "merchant_id": x} for u, x in
                               zip(users, merchants, strict=True)],
                              [{"amount": a} for a in amounts], now_us=to_micros(t))
    plan = online.service_read("fraud_detection")
    compared = non_null = 0
    for i, (trow, srow) in enumerate(zip(train, served, strict=True)):
        assert list(srow) == list(plan.columns)  # the service's order, whatever the views'
        for col in plan.columns:
            obj, name = col.split(".", 1)
            tcol = f"{obj.replace(':', '_')}__{name}"
            assert tcol in trow, tcol
            assert _same(trow[tcol], srow[col]), (i, col, trow[tcol], srow[col])
            compared += 1
            non_null += srow[col] is not None
    assert compared == len(users) * len(plan.columns)
    if t.year == 2024 and t.month == 1:
        assert non_null > compared // 3  # a meaningful comparison, not NULL == NULL
