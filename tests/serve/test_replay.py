"""A lookup `at` a time before the online store's last load either returns exactly what a
training set computes at that time, or is refused with a 422 saying why; never a silently wrong
value (issue 15 item 3: 13 features used to differ without a warning)."""

from __future__ import annotations

import datetime as dt
import random
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from featql.compiler.project import compile_project
from featql.jobs.online_load import load_online
from featql.jobs.training import training_set
from featql.online.base import OnlineStore
from featql.online.codec import to_micros
from featql.online.lookup import OnlineService, RequestError

from .test_parity import _same

LOADED = dt.datetime(2024, 1, 31)  # the example's data is 2024-01-01 .. 2024-01-30
# rows and a 1-day window of a view whose tiles are kept for 7 days: replays inside those days
# can be answered, earlier ones cannot
SERVICE = ("-- @feature_service(name = replay, features = [user_profile.country, "
           "user_profile.kyc_level, merchant_txn_aggs.txn_count_1d, "
           "merchant_txn_aggs.amount_sum_1d])\n")


@pytest.fixture(scope="module")
def project(serve_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("replay") / "features"
    shutil.copytree(serve_project, root, ignore=shutil.ignore_patterns(".featql", "target"))
    (root / "services" / "replay.sql").write_text(SERVICE)
    return root


@pytest.mark.parametrize("service", ["replay", "fraud_detection"])
def test_replays_are_right_or_refused(store: OnlineStore, project: Path, service: str) -> None:
    result = compile_project(project)
    m = result.manifest
    assert m is not None
    load_online(project, m, "replay", store=store, end=LOADED)
    online = OnlineService(m, store, project)
    rng = random.Random(11)
    served = refused = 0
    for _ in range(40):
        # times inside the data, at slide boundaries too, for one entity each
        t = dt.datetime(2024, 1, 20) + dt.timedelta(hours=rng.randrange(0, 11 * 24),
                                                    minutes=rng.choice([0, 0, 17, 45]))
        user, merchant = rng.randrange(1, 400), rng.randrange(1, 40)
        try:
            got, _ = online.lookup(service, [{"user_id": user, "merchant_id": merchant}],
                                   [{"amount": 10.0}], now_us=to_micros(t))
        except RequestError as e:
            assert e.status == 422 and e.code == "at_before_online_data", e
            assert e.field == "at"
            refused += 1
            continue
        spine = pa.table({"user_id": pa.array([user], pa.int64()),
                          "merchant_id": pa.array([merchant], pa.int64()),
                          "ts": pa.array([t], pa.timestamp("us")),
                          "amount": pa.array([10.0], pa.float64())})
        [trow] = training_set(project, m, result.config, service, spine,
                              use_store=False).to_pylist()
        for col, value in got[0].items():
            obj, name = col.split(".", 1)
            assert _same(trow[f"{obj.replace(':', '_')}__{name}"], value), (t, user, col)
        served += 1
    if service == "replay":  # both outcomes happen: the comparison is not vacuous
        assert served >= 5 and refused >= 5, (served, refused)
    else:  # a 30-day window reaches before the 30 days of tiles kept: every replay refused
        assert served == 0 and refused == 40


def test_a_replay_after_the_load_is_served(store: OnlineStore, serve_project: Path) -> None:
    m = compile_project(serve_project).manifest
    assert m is not None
    load_online(serve_project, m, "replay2", store=store, end=LOADED)
    online = OnlineService(m, store, serve_project)
    got, _ = online.lookup("fraud_detection", [{"user_id": 5, "merchant_id": 3}],
                           [{"amount": 1.0}], now_us=to_micros(LOADED + dt.timedelta(hours=5)))
    assert len(got) == 1


def test_the_refusal_names_the_view_and_the_time(store: OnlineStore, serve_project: Path
                                                 ) -> None:
    m = compile_project(serve_project).manifest
    assert m is not None
    load_online(serve_project, m, "replay3", store=store, end=LOADED)
    online = OnlineService(m, store, serve_project)
    with pytest.raises(RequestError) as got:
        online.lookup("merchant_risk", [{"merchant_id": 3}], now_us=to_micros(
            dt.datetime(2024, 1, 2)))
    assert got.value.status == 422
    assert str(got.value).startswith("cannot replay ")
    assert "2024-01-02T00:00:00" in str(got.value)
    assert "compute a training set to see older values" in str(got.value)
