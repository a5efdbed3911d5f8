"""The generated row builder of a service plan: keys in the service's order, values from the
parts `lookup` assembles (views' outputs, then transforms'), whatever the names hold."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from featql.compiler.project import compile_project
from featql.jobs.online_load import load_online
from featql.online.codec import to_micros
from featql.online.lookup import OnlineService, _dict_builder, build_reads
from featql.online.sqlite import SqliteStore


def test_keys_follow_the_given_order_and_values_their_sources() -> None:
    build = _dict_builder(["b.y", "a.x", "t.out", "a.z"], [(1, 0), (0, 0), (2, 0), (0, 1)], 3)
    row = build((1, 2), ("y",), (None,))
    assert row == {"b.y": "y", "a.x": 1, "t.out": None, "a.z": 2}
    assert list(row) == ["b.y", "a.x", "t.out", "a.z"]


def test_names_are_data_not_code() -> None:
    odd = ["it's", 'quote"d', "back\\slash", "new\nline", "{brace}: 1"]
    build = _dict_builder(odd, [(0, j) for j in range(len(odd))], 1)
    assert build(tuple(range(len(odd)))) == {k: j for j, k in enumerate(odd)}


def test_no_parts_build_empty_rows() -> None:
    assert _dict_builder([], [], 0)() == {}


def test_a_service_interleaving_views_answers_in_its_own_order(serve_project: Path,
                                                              tmp_path: Path) -> None:
    """Features listed view A, view B, view A again (and a transform between): each row's
    keys follow that list and each value is the one the service's own order gives."""
    m = compile_project(serve_project).manifest
    assert m is not None
    base = m.service("fraud_detection")
    assert base is not None
    refs = list(base.features)
    mixed = refs[1::2] + refs[0::2]  # every view is split in two runs
    assert [r.view for r in mixed] != sorted(r.view for r in mixed)
    service = dataclasses.replace(base, name="mixed", features=tuple(mixed))
    store = SqliteStore(tmp_path / "online.db", "mixed")
    load_online(serve_project, m, "mixed", store=store, end=dt.datetime(2024, 1, 31))
    online = OnlineService(m, store, serve_project)
    online.reads["mixed"] = build_reads(m, service, serve_project)
    entities = [{"user_id": u, "merchant_id": 3} for u in (1, 2, 10**9)]
    now = to_micros(dt.datetime(2024, 1, 31))
    got, _ = online.lookup("mixed", entities, {"amount": 10.0}, now)
    ref, _ = online.lookup("fraud_detection", entities, {"amount": 10.0}, now)
    assert [list(row) for row in got] == [list(online.reads["mixed"].columns)] * 3
    assert list(online.reads["mixed"].columns)[:len(mixed)] == [f"{r.view}.{r.feature}"
                                                                 for r in mixed]
    assert got == ref  # the same values under every name (dict equality ignores order)
    assert any(v is not None for row in got for v in row.values())
