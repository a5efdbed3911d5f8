"""One suite, both stores (SQLite file, DynamoDB wire protocol via dynalite)."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import pytest

from featql.online import codec
from featql.online import tiles as tiles_mod
from featql.online.base import Cell, OnlineStore, OnlineStoreError, version

from .conftest import make_store


def row_cell(item: str, view: str, event_us: int, created_us: int | None, value: Any) -> Cell:
    payload = codec.encode_row(event_us, created_us, [value])
    return Cell(item, view, version(event_us, created_us, payload), payload)


def test_round_trip_and_missing(store: OnlineStore) -> None:
    report = store.write([row_cell("user#[1]", "v", 10, None, "a"),
                          row_cell("user#[1]", "w", 11, None, 1.5),
                          row_cell("user#[2]", "v", 12, None, None)])
    assert report.written == 3 and report.skipped == 0
    got = store.read(["user#[1]", "user#[2]", "user#[3]"], ["v", "w"])
    assert set(got) == {"user#[1]", "user#[2]"}
    assert codec.decode_row(got["user#[1]"]["v"]) == (10, None, ["a"])
    assert codec.decode_row(got["user#[1]"]["w"]) == (11, None, [1.5])
    assert set(got["user#[2]"]) == {"v"}
    # only the views asked for come back
    assert set(store.read(["user#[1]"], ["w"])["user#[1]"]) == {"w"}


def test_older_never_overwrites_newer(store: OnlineStore) -> None:
    store.write([row_cell("u#[1]", "v", 100, 5, "new")])
    rep = store.write([row_cell("u#[1]", "v", 99, 9, "older event"),
                       row_cell("u#[1]", "v", 100, 4, "same event, older created"),
                       row_cell("u#[1]", "v", 100, None, "same event, no created")])
    assert rep.written == 0 and rep.skipped == 3
    assert codec.decode_row(store.read(["u#[1]"], ["v"])["u#[1]"]["v"])[2] == ["new"]
    again = store.write([row_cell("u#[1]", "v", 100, 5, "new")])  # idempotent re-run
    assert again.written == 0
    assert store.write([row_cell("u#[1]", "v", 100, 6, "newer created")]).written == 1
    assert codec.decode_row(store.read(["u#[1]"], ["v"])["u#[1]"]["v"])[2] == ["newer created"]


def test_last_writer_wins_under_concurrency(store: OnlineStore) -> None:
    rng = random.Random(42)
    keys = [f"user#[{i}]" for i in range(30)]
    rows: list[tuple[str, int, int | None, int]] = []
    for k in keys:
        for _ in range(12):
            event = rng.randrange(1_000, 1_010)  # few distinct times: many ties on event time
            created = rng.choice([None, rng.randrange(0, 4)])
            rows.append((k, event, created, rng.randrange(10**6)))
    cells = [row_cell(k, "v", e, c, val) for k, e, c, val in rows]
    work = cells + cells[: len(cells) // 2]  # duplicates
    rng.shuffle(work)
    n_threads = 8
    parts = [work[i::n_threads] for i in range(n_threads)]
    errors: list[BaseException] = []

    def writer(part: list[Cell]) -> None:
        try:
            for i in range(0, len(part), 7):  # many small batches interleave across threads
                store.write(part[i:i + 7])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    got = store.read(keys, ["v"])
    for k in keys:
        mine = [c for c in cells if c.item == k]
        expected = max(mine, key=lambda c: c.version)
        # the version orders by (event time, created with NULL lowest), then a digest
        best_event = max(codec.decode_row(c.payload)[0] for c in mine)
        top = [codec.decode_row(c.payload) for c in mine
               if codec.decode_row(c.payload)[0] == best_event]
        best_created = max((t[1] for t in top), key=lambda c: -1 if c is None else c)
        stored = codec.decode_row(got[k]["v"])
        assert stored[:2] == (best_event, best_created)
        assert got[k]["v"] == expected.payload


def test_many_items_in_one_read(store: OnlineStore) -> None:
    items = [f"user#[{i}]" for i in range(250)]
    store.write([row_cell(k, "v", 1, None, i) for i, k in enumerate(items)]
                + [row_cell(k, "w", 1, None, -i) for i, k in enumerate(items)])
    got = store.read(items + items[:10], ["v", "w"])  # duplicates are fine
    assert len(got) == 250
    for i, k in enumerate(items):
        assert codec.decode_row(got[k]["v"])[2] == [i]
        assert codec.decode_row(got[k]["w"])[2] == [-i]


def test_tiles_cells(store: OnlineStore) -> None:
    blob = tiles_mod.encode_tiles([0, 3600], {"c__count": [1, 2], "s__sum": [1.5, None]})
    store.write([Cell("user#[1]", "aggs", version(7200, None, blob), blob)])
    tiles = tiles_mod.decode_tiles(store.read(["user#[1]"], ["aggs"])["user#[1]"]["aggs"],
                                   ["c__count", "s__sum"])
    assert list(tiles.starts) == [0, 3600]
    assert list(tiles.columns["c__count"]) == [1.0, 2.0]
    assert tiles.columns["s__sum"][0] == 1.5 and tiles.columns["s__sum"][1] != 1.5


def test_state_and_drop(store: OnlineStore) -> None:
    assert store.get_state("loaded:v") is None
    store.put_state("loaded:v", b"1")
    store.put_state("loaded:v", b"2")
    assert store.get_state("loaded:v") == b"2"
    # state never shows up as an entity
    assert store.read(["__state__#loaded:v"], ["v"]) in ({}, {"__state__#loaded:v": {}})


@pytest.mark.parametrize("kind", ["sqlite", "dynamodb"])
def test_workspaces_are_isolated(kind: str, tmp_path: Path, request: pytest.FixtureRequest
                                 ) -> None:
    endpoint = request.getfixturevalue("dynalite") if kind == "dynamodb" else None
    a, b = make_store(kind, tmp_path, endpoint), make_store(kind, tmp_path, endpoint)
    try:
        a.write([row_cell("user#[1]", "v", 1, None, "in a")])
        assert b.read(["user#[1]"], ["v"]) == {}
        assert "user#[1]" in a.read(["user#[1]"], ["v"])
    finally:
        a.drop()
        b.drop()


class _Throttling:
    """The real BatchGetItem call, answering part of each request as UnprocessedKeys."""

    def __init__(self, call: Any, rounds: int):
        self._call = call
        self.rounds = rounds
        self.calls = 0

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        table, req = next(iter(request.items()))
        if self.calls > self.rounds:
            return self._call(request)  # type: ignore[no-any-return]
        half = len(req["Keys"]) // 2
        if half == 0:
            return {"Responses": {table: []}, "UnprocessedKeys": request}
        served = self._call({table: {**req, "Keys": req["Keys"][:half]}})
        served["UnprocessedKeys"] = {table: {**req, "Keys": req["Keys"][half:]}}
        return served  # type: ignore[no-any-return]


@pytest.mark.parametrize("fast", [True, False], ids=["signed-http", "boto3"])
def test_unprocessed_keys_are_retried_not_missing(dynalite: str, tmp_path: Path, fast: bool,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from featql.online import dynamodb
    from featql.online.dynamodb import DynamoStore

    monkeypatch.setattr(dynamodb, "_BACKOFF_CAP_S", 0.02)  # keep the give-up path short

    s = make_store("dynamodb", tmp_path, dynalite)
    assert isinstance(s, DynamoStore)
    s.fast_reads = fast
    try:
        items = [f"user#[{i}]" for i in range(80)]
        s.write([row_cell(k, "v", 1, None, i) for i, k in enumerate(items)])
        if fast:  # the lean reader sends every chunk's first attempt itself: throttle there
            reader = s._fast_reader()
            real = reader.batch_get_all
            throttled = _Throttling(lambda r: real([r])[0], rounds=3)
            reader.batch_get_all = lambda reqs: [throttled(r) for r in reqs]
        else:
            throttled = _Throttling(s._batch_get_call, rounds=3)
            s._batch_get_call = throttled  # type: ignore[method-assign]
        got = s.read(items, ["v"])
        assert len(got) == 80 and throttled.calls == 4
        throttled.rounds, throttled.calls = 10**9, 0  # throttled forever: an error, not NULLs
        with pytest.raises(OnlineStoreError, match="unprocessed"):
            s.read(items, ["v"])
    finally:
        s.drop()


@pytest.mark.parametrize("token", [None, "session-token"])
def test_lean_reader_signs_like_botocore(token: str | None, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    """The hot-path SigV4 signature equals botocore's for the same request and time
    (tests/serve/test_dynamo_signing.py compares many endpoints with a real client's)."""
    import datetime as dt

    from botocore import auth
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from featql.online.dynamo_http import BatchGetClient

    monkeypatch.setattr(auth, "get_current_datetime", lambda *a, **k: dt.datetime(2026, 1, 2))
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    url = "https://dynamodb.eu-west-3.amazonaws.com"
    reader = BatchGetClient(url, "eu-west-3", creds)
    body = b'{"RequestItems": {"t": {"Keys": [{"item": {"S": "user#[1]"}}]}}}'
    req = AWSRequest(method="POST", url=url + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.BatchGetItem"})
    SigV4Auth(creds, "dynamodb", "eu-west-3").add_auth(req)
    ours = reader._headers(body)
    assert ours["authorization"] == req.headers["Authorization"]
    assert ours["x-amz-date"] == "20260102T000000Z"
    assert ours.get("x-amz-security-token") == token


def test_lean_reader_reconnects_when_a_kept_alive_connection_died(dynalite: str,
                                                                  tmp_path: Path) -> None:
    from featql.online.dynamodb import DynamoStore

    s = make_store("dynamodb", tmp_path, dynalite)
    assert isinstance(s, DynamoStore)
    try:
        items = [f"user#[{i}]" for i in range(150)]  # two chunks: two connections
        s.write([row_cell(k, "v", 1, None, i) for i, k in enumerate(items)])
        assert len(s.read(items, ["v"])) == 150
        conns = s._fast_reader()._local.conns
        assert len(conns) == 2
        for conn in conns:
            conn.sock.close()  # what a server closing an idle keep-alive connection leaves
        got = s.read(items, ["v"])
        assert len(got) == 150 and codec.decode_row(got["user#[149]"]["v"])[2] == [149]
    finally:
        s.drop()


@pytest.mark.parametrize("kind", ["sqlite", "dynamodb"])
def test_workspace_names_never_share_a_table(kind: str, tmp_path: Path,
                                             request: pytest.FixtureRequest) -> None:
    """`team-a` and `team_a` (both valid workspace names) get tables of their own; names that
    are plain identifiers keep the table names existing stores have."""
    import uuid

    from featql.online import dynamodb, sqlite

    assert [sqlite.table_name(w) for w in ("dev", "prod", "team_a")] == [
        "online_dev", "online_prod", "online_team_a"]
    assert [dynamodb.table_name("featql_", w) for w in ("dev", "team_a", "team-a")] == [
        "featql_dev", "featql_team_a", "featql_team-a"]
    names = ["team-a", "team_a", "team_a_", "team--a", "Team_A", "a", "ab", "a b", "a_b",
             "online_team_a", "_team_a", "9lives"]
    for prefix in ("", "f", "featql_"):
        tables = {dynamodb.table_name(prefix, w) for w in names}
        assert len(tables) == len(names), prefix
        assert all(3 <= len(t) <= 255 and all(ch.isalnum() or ch in "_.-" for ch in t)
                   for t in tables)
    tables = {sqlite.table_name(w) for w in names}
    assert len(tables) == len(names)
    assert all(t.replace("_", "").isalnum() and t.isascii() for t in tables)

    stores: list[Any] = []
    if kind == "sqlite":
        stores = [sqlite.SqliteStore(tmp_path / "online.db", w) for w in ("team-a", "team_a")]
    else:
        endpoint = request.getfixturevalue("dynalite")
        prefix = f"featql_t{uuid.uuid4().hex[:6]}_"
        stores = [dynamodb.DynamoStore(w, endpoint_url=endpoint, region="us-east-1",
                                       table_prefix=prefix) for w in ("team-a", "team_a")]
    try:
        a, b = stores
        assert a.table != b.table
        a.write([row_cell("user#[1]", "v", 10, None, "from team-a")])
        b.write([row_cell("user#[1]", "v", 11, None, "from team_a")])
        b.write([row_cell("user#[2]", "v", 12, None, "only team_a")])
        got_a, got_b = (s.read(["user#[1]", "user#[2]"], ["v"]) for s in stores)
        assert set(got_a) == {"user#[1]"} and set(got_b) == {"user#[1]", "user#[2]"}
        assert codec.decode_row(got_a["user#[1]"]["v"])[2] == ["from team-a"]
        assert codec.decode_row(got_b["user#[1]"]["v"])[2] == ["from team_a"]
    finally:
        for s in stores:
            s.drop()
            s.close()
