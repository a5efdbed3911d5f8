"""DynamoDB item layout: heads (values merged at load) apart from tiles, JSON as strings, items
written by earlier versions still read, and lookups outside the head's slide read the tiles."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from featql.compiler.project import compile_project
from featql.jobs.online_load import load_online
from featql.online import codec
from featql.online import tiles as tiles_mod
from featql.online.base import Cell, version
from featql.online.dynamodb import DynamoStore
from featql.online.lookup import OnlineService
from featql.online.sqlite import SqliteStore

COLS = ["c__count", "s__sum"]


@pytest.fixture()
def dstore(dynalite: str) -> Iterator[DynamoStore]:
    s = DynamoStore("t" + uuid.uuid4().hex[:10], endpoint_url=dynalite, region="us-east-1",
                    table_prefix="featql_test_")
    try:
        yield s
    finally:
        s.drop()
        s.close()


def _item(store: DynamoStore, key: str) -> dict[str, Any]:
    got: dict[str, Any] = store.client.get_item(TableName=store.table,
                                                Key={"item": {"S": key}})["Item"]
    return got


def test_head_and_tiles_are_apart(dstore: DynamoStore) -> None:
    starts, cols = [0, 3600, 7200], {"c__count": [1, 2, 3], "s__sum": [1.5, None, 4.0]}
    blob = tiles_mod.encode_tiles(starts, cols, merged=(10800, [6, 5.5]))
    dstore.write([Cell("user#[1]", "aggs", version(10800, 1, blob), blob)])
    raw = _item(dstore, "user#[1]")
    assert set(raw["d:aggs"]) == {"S"} and set(raw["t:aggs"]) == {"B"}
    head = dstore.read(["user#[1]"], ["aggs"])["user#[1]"]["aggs"]
    assert len(head) < len(blob) and tiles_mod.merged_at(head) == 10800
    full = dstore.read(["user#[1]"], ["aggs"], ["aggs"])["user#[1]"]["aggs"]
    assert tiles_mod.merged_at(full) == 10800
    again = tiles_mod.decode_tiles(full, COLS)
    assert again.starts == starts and list(again.columns["c__count"]) == [1, 2, 3]
    # a newer cell without merged values: whole in `d:`, the stale tiles removed with it
    plain = tiles_mod.encode_tiles(starts, cols)
    dstore.write([Cell("user#[1]", "aggs", version(14400, 1, plain), plain)])
    assert "t:aggs" not in _item(dstore, "user#[1]")
    assert dstore.read(["user#[1]"], ["aggs"])["user#[1]"]["aggs"] == plain
    assert dstore.read(["user#[1]"], ["aggs"], ["aggs"])["user#[1]"]["aggs"] == plain


def test_json_payloads_are_strings_and_read_back_exactly(dstore: DynamoStore) -> None:
    row = codec.encode_row(5, None, ["é\"x", 1.5, None, 2**62])
    dstore.write([Cell("user#[2]", "v", version(5, None, row), row)])
    assert _item(dstore, "user#[2]")["d:v"] == {"S": row.decode()}
    assert dstore.read(["user#[2]"], ["v"])["user#[2]"]["v"] == row


def test_items_of_the_earlier_layout_are_read(dstore: DynamoStore) -> None:
    """Earlier versions wrote every payload whole, binary, in `d:`: read as they are."""
    blob = tiles_mod.encode_tiles([0, 3600], {"c__count": [1, 2], "s__sum": [1.0, 2.0]},
                                  merged=(7200, [3, 3.0]))
    row = codec.encode_row(5, None, [1])
    for view, payload in (("aggs", blob), ("v", row)):
        dstore.client.update_item(
            TableName=dstore.table, Key={"item": {"S": "user#[3]"}},
            UpdateExpression="SET #d = :d, #v = :v",
            ExpressionAttributeNames={"#d": "d:" + view, "#v": "v:" + view},
            ExpressionAttributeValues={":d": {"B": payload}, ":v": {"S": "1"}})
    for full in ((), ("aggs",)):
        got = dstore.read(["user#[3]"], ["aggs", "v"], full)["user#[3]"]
        assert got == {"aggs": blob, "v": row}


class Counting:
    """A store that records the `full` argument of each read."""

    def __init__(self, inner: Any):
        self.inner, self.calls = inner, []  # type: ignore[var-annotated]

    def read(self, items: Sequence[str], views: Sequence[str],
             full: Collection[str] = ()) -> dict[str, dict[str, bytes]]:
        self.calls.append(set(full))
        got: dict[str, dict[str, bytes]] = self.inner.read(items, views, full)
        return got

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_lookups_outside_the_heads_slide_merge_the_tiles(dstore: DynamoStore,
                                                         serve_project: Path,
                                                         tmp_path: Path) -> None:
    """Same answers as SQLite (whole payloads) at the load's slide and after it; a head for
    another slide costs one more read (unless no window reaches its last tile), then the view
    is read with its tiles until a load catches up again."""
    m = compile_project(serve_project).manifest
    assert m is not None
    end = dt.datetime(2024, 1, 20, 10, 30)
    lite = SqliteStore(tmp_path / "online.db", "t")
    try:
        for s in (dstore, lite):
            load_online(serve_project, m, "t", store=s, end=end)
        counting = Counting(dstore)
        online = OnlineService(m, counting, serve_project)  # type: ignore[arg-type]
        reference = OnlineService(m, lite, serve_project)
        plan = online.service_read("fraud_detection")
        aggs = {vp.cell for vp in plan.views if vp.view.kind == "aggregate"}
        ents = [{"user_id": u, "merchant_id": u % 37 + 1} for u in range(1, 80)]
        req = [{"amount": 10.0 + u} for u in range(1, 80)]

        def both(t: dt.datetime) -> list[set[str]]:
            counting.calls.clear()
            got, _ = online.lookup("fraud_detection", ents, req, now_us=codec.to_micros(t))
            want, _ = reference.lookup("fraud_detection", ents, req,
                                       now_us=codec.to_micros(t))
            assert got == want, t
            return list(counting.calls)

        same_slide, next_day = end + dt.timedelta(minutes=20), end + dt.timedelta(days=1)
        assert both(same_slide) == [set()]  # heads answer
        assert both(dt.datetime(2024, 5, 15)) == [set()]  # windows past every tile: empty
        assert both(next_day) == [set(), aggs]  # heads for another slide: tiles read
        assert both(next_day + dt.timedelta(hours=3)) == [aggs]  # tiles first now
        assert both(same_slide) == [aggs]  # the heads serve this slide again ...
        assert both(same_slide) == [set()]  # ... so they are read alone
    finally:
        lite.close()
