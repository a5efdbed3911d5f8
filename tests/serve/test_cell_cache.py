"""Decoded cells kept across lookups (featql.online.cell_decode) never change an answer: one
service asked again and again, at times back and forth across slides and TTLs, answers what a
fresh service (nothing kept) answers at each of those times. On DynamoDB aggregate cells are
read as heads (values merged for one slide), the ones kept with the slide they are for."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import orjson

from featql.compiler.project import compile_project
from featql.jobs.online_load import load_online
from featql.online.base import OnlineStore
from featql.online.codec import to_micros
from featql.online.lookup import OnlineService, RequestError

LOADED = dt.datetime(2024, 1, 31)  # the example's data is 2024-01-01 .. 2024-01-30


def test_kept_decodes_answer_what_fresh_ones_do(store: OnlineStore, serve_project: Path) -> None:
    m = compile_project(serve_project).manifest
    assert m is not None
    load_online(serve_project, m, "cache", store=store, end=LOADED)
    kept = OnlineService(m, store, serve_project)
    rng = random.Random(5)
    entities = [{"user_id": rng.randrange(1, 400), "merchant_id": rng.randrange(1, 40)}
                for _ in range(60)]
    request = [{"amount": rng.choice([1.0, 250.0, 9000.0])} for _ in entities]
    hours = [0, 0, 1, 5, 23, 24, 30, 24 * 7 + 1, 24 * 31, 24 * 400]
    times = [LOADED + dt.timedelta(hours=h, minutes=rng.choice([0, 7])) for h in hours * 2]
    rng.shuffle(times)
    answers = set()
    for t in times:
        fresh = OnlineService(m, store, serve_project)
        got = outcome(kept, entities, request, to_micros(t))
        assert got == outcome(fresh, entities, request, to_micros(t)), t
        answers.add(got)
    assert len(answers) >= 4  # the times give different answers: the check is not vacuous


def outcome(service: OnlineService, entities: list[dict[str, int]],
            request: list[dict[str, float]], now_us: int) -> bytes:
    """The answer, or the refusal (a lookup too far from the load for compacted cells)."""
    try:
        return orjson.dumps(service.lookup("fraud_detection", entities, request, now_us=now_us))
    except RequestError as e:
        return orjson.dumps(e.to_json())
