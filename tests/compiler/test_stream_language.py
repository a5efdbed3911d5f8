"""Stream sources in the language (issue 13): `kafka(...)` and `files(...)` streams, `lateness`
and `key`, and the refusal of stream views that cannot run incrementally, each positioned."""

from __future__ import annotations

import json
from pathlib import Path

from featql.core.manifest import dumps

from .conftest import Compile
from .projects import AGG_VIEW, ROW_VIEW

KAFKA_TXNS = """\
-- @source(name = txns, timestamp = event_ts, batch = parquet('data/txns/'),
--         stream = kafka(topic = 'txns', bootstrap = '127.0.0.1:9092', format = json),
--         lateness = '1h', key = txn_id)
CREATE TABLE txns (
  txn_id BIGINT, user_id BIGINT, merchant_id BIGINT, amount DOUBLE, channel STRING,
  is_fraud BOOLEAN, event_ts TIMESTAMP
);
"""


def _errors(result) -> list[str]:
    return [d.headline() for d in result.diagnostics.errors]


def test_a_kafka_source_compiles_to_its_stream_spec(project: Compile) -> None:
    result = project({"sources/txns.sql": KAFKA_TXNS, "views/user_last.sql": ROW_VIEW,
                      "views/user_aggs.sql": AGG_VIEW})
    assert result.ok, _errors(result)
    manifest = result.manifest
    src = manifest.source("txns")
    assert src.stream is not None
    assert (src.stream.kind, src.stream.path, src.stream.format) == ("kafka", "", "json")
    assert (src.stream.topic, src.stream.bootstrap) == ("txns", "127.0.0.1:9092")
    assert (src.lateness_seconds, src.key) == (3600, "txn_id")
    assert [v.name for v in manifest.stream_views] == ["user_aggs", "user_last"]
    assert manifest.stream_source(manifest.view("user_last")).name == "txns"
    data = json.loads(dumps(manifest))
    txns = next(s for s in data["sources"] if s["name"] == "txns")
    assert txns["key"] == "txn_id" and txns["lateness_seconds"] == 3600
    assert txns["stream"]["topic"] == "txns"
    users = next(s for s in data["sources"] if s["name"] == "users")
    # fields at their default are left out: a manifest without streams keeps its bytes
    assert "key" not in users and "lateness_seconds" not in users


def test_stream_settings_change_the_fingerprints(project: Compile, tmp_path: Path) -> None:
    first = project({"sources/txns.sql": KAFKA_TXNS, "views/user_last.sql": ROW_VIEW})
    assert first.ok, _errors(first)
    other_topic = project({"sources/txns.sql": KAFKA_TXNS.replace("topic = 'txns'",
                                                                  "topic = 'txns2'"),
                           "views/user_last.sql": ROW_VIEW})
    other_key = project({"sources/txns.sql": KAFKA_TXNS.replace("key = txn_id",
                                                                "key = merchant_id"),
                         "views/user_last.sql": ROW_VIEW})
    prints = {r.manifest.view("user_last").fingerprint for r in (first, other_topic, other_key)}
    assert len(prints) == 3


def test_a_files_stream_folder_must_exist(project: Compile, tmp_path: Path) -> None:
    src = ("-- @source(name = txns, timestamp = event_ts, batch = parquet('data/txns/'),\n"
           "--         stream = files('data/txns_stream/', format = json))\n"
           "CREATE TABLE txns (txn_id BIGINT, user_id BIGINT, amount DOUBLE, "
           "event_ts TIMESTAMP);\n")
    result = project({"sources/txns.sql": src})
    assert _errors(result) == [
        "sources/txns.sql:2:21: error[E901]: the stream folder 'data/txns_stream/' of source "
        "'txns' does not exist"]
    (tmp_path / "data" / "txns_stream").mkdir(parents=True)
    assert project({"sources/txns.sql": src}).ok


def _kafka(settings: str) -> dict[str, str]:
    return {"sources/txns.sql":
            "-- @source(name = txns, timestamp = event_ts, batch = parquet('data/txns/'),\n"
            f"--         stream = kafka({settings}))\n"
            "CREATE TABLE txns (txn_id BIGINT, user_id BIGINT, amount DOUBLE, "
            "event_ts TIMESTAMP);\n"}


def test_kafka_settings_mistakes_are_positioned(project: Compile) -> None:
    cases = {
        "topic = 'a', bootstrap = '127.0.0.1:9092', format = xml":
            "sources/txns.sql:2:79: error[E105]: unknown format 'xml' for a kafka(...) "
            "stream",
        "topic = 'a', bootstrp = '127.0.0.1:9092'":
            "sources/txns.sql:2:40: error[E103]: unknown key 'bootstrp' for kafka(...)",
        "topic = 'a'":
            "sources/txns.sql:2:21: error[E104]: kafka(...) is missing bootstrap",
        "topic = 'a', bootstrap = 'localhost'":
            "sources/txns.sql:2:52: error[E105]: bootstrap 'localhost' is not a list of "
            "host:port",
        "'a'": "sources/txns.sql:2:27: error[E105]: kafka(...) takes named settings only",
        "topic = 3, bootstrap = '127.0.0.1:9092'":
            "sources/txns.sql:2:35: error[E105]: expected a topic string such as "
            "'transactions', found a number (3)",
    }
    for settings, want in cases.items():
        assert _errors(project(_kafka(settings))) == [want], settings


def test_key_and_lateness_are_checked(project: Compile) -> None:
    bad_key = KAFKA_TXNS.replace("key = txn_id", "key = txn_idd")
    assert _errors(project({"sources/txns.sql": bad_key})) == [
        "sources/txns.sql:3:35: error[E306]: source 'txns' has no column 'txn_idd' (its key "
        "column)"]
    bad_lateness = KAFKA_TXNS.replace("lateness = '1h'", "lateness = '1x'")
    assert _errors(project({"sources/txns.sql": bad_lateness})) == [
        "sources/txns.sql:3:23: error[E106]: invalid duration '1x'"]


def test_a_stream_view_joining_another_table_is_refused(project: Compile) -> None:
    view = ("-- @feature_view(name = user_last, entity = user, timestamp = event_ts, "
            "start = '2024-01-01')\n"
            "SELECT t.user_id, t.event_ts, u.country\n"
            "FROM txns t JOIN users u ON t.user_id = u.user_id\n")
    result = project({"sources/txns.sql": KAFKA_TXNS, "views/user_last.sql": view})
    errors = _errors(result)
    assert errors == [
        "views/user_last.sql:3:18: error[E902]: stream view 'user_last' joins source 'users' "
        "to stream source 'txns': a batch of new events cannot see the other side's history, "
        "so the view cannot run incrementally"], errors
    diag = result.diagnostics.errors[0]
    assert diag.hint is not None and "feature service" in diag.hint


def test_a_view_over_a_stream_view_is_a_stream_view(project: Compile) -> None:
    over = ("-- @feature_view(name = user_big, entity = user, timestamp = event_ts, "
            "start = '2024-01-01')\n"
            "SELECT user_id, event_ts, last_amount > 100 AS big FROM user_last\n")
    result = project({"sources/txns.sql": KAFKA_TXNS, "views/user_last.sql": ROW_VIEW,
                      "views/user_big.sql": over})
    assert result.ok, _errors(result)
    manifest = result.manifest
    assert manifest.stream_source(manifest.view("user_big")).name == "txns"
    assert [v.name for v in manifest.stream_views] == ["user_big", "user_last"]
    # but joined to anything else it is refused, at the other table
    joined = ("-- @feature_view(name = user_big, entity = user, timestamp = event_ts, "
              "start = '2024-01-01')\n"
              "SELECT l.user_id, l.event_ts, u.country FROM user_last l\n"
              "JOIN users u ON l.user_id = u.user_id\n")
    result = project({"sources/txns.sql": KAFKA_TXNS, "views/user_last.sql": ROW_VIEW,
                      "views/user_big.sql": joined})
    assert _errors(result) == [
        "views/user_big.sql:3:6: error[E902]: stream view 'user_big' joins source 'users' to "
        "stream view 'user_last': a batch of new events cannot see the other side's history, "
        "so the view cannot run incrementally"]


def test_a_window_function_in_a_stream_view_is_refused(project: Compile) -> None:
    view = ("-- @feature_view(name = user_prev, entity = user, timestamp = event_ts, "
            "start = '2024-01-01')\n"
            "SELECT user_id, event_ts,\n"
            "       LAG(amount) OVER (PARTITION BY user_id ORDER BY event_ts) AS prev_amount\n"
            "FROM txns\n")
    errors = _errors(project({"sources/txns.sql": KAFKA_TXNS, "views/user_prev.sql": view}))
    assert len(errors) == 1 and errors[0].startswith(
        "views/user_prev.sql:3:8: error[E902]: stream view 'user_prev' uses a window function"), \
        errors
    # the same view over a batch-only source compiles
    assert project({"views/user_prev.sql": view}).ok
