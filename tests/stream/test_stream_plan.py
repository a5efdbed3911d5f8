"""`featql plan` shows stream views and the checkpoint of `featql stream` a change keeps or
resets (no Spark, no broker: the plan only reads the registry)."""

from __future__ import annotations

from pathlib import Path

import pytest

from featql.cli.main import main

from .project import write_project

TOPIC = "kafka(topic = 'txns', bootstrap = '127.0.0.1:9092', format = json)"


def _plan(root: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["plan", "--project", str(root)]) == 3
    return capsys.readouterr().out


def test_plan_shows_stream_views_and_their_checkpoint(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    root = write_project(tmp_path / "p", "txns", "127.0.0.1:9092", [])
    out = _plan(root, capsys)
    assert ("      stream: new; the first `featql stream` starts the checkpoints "
            ".featql/stream/dev/txns/*/checkpoint at the start of the stream (events already "
            "in the batch log count once)\n") in out
    for view in ("user_aggs", "user_last"):  # a checkpoint per view
        assert ("      stream view: fed by `featql stream` from source 'txns' "
                f"({TOPIC}); backfilled from the batch log (which holds the events streamed "
                f"so far); checkpoint .featql/stream/dev/txns/{view}/checkpoint is started by "
                "the first `featql stream`\n") in out
    assert main(["apply", "--project", str(root), "--yes"]) == 0

    # a recreated stream view: backfilled, its checkpoint kept, its sibling not named
    view = root / "views/user_last.sql"
    view.write_text(view.read_text().replace("amount AS last_amount",
                                             "amount * 2 AS last_amount"))
    # a view added over the streamed source: its own checkpoint, from where the log ends
    (root / "views/user_max.sql").write_text(
        "-- @feature_view(name = user_max, entity = user, timestamp = event_ts,\n"
        "--               windows = ['1d'], slide = '1h', start = '2024-03-01')\n"
        "SELECT user_id, MAX(amount) AS top FROM txns GROUP BY user_id\n")
    out = _plan(root, capsys)
    assert "-/+ recreate feature view user_last (breaking)" in out
    assert ("checkpoint .featql/stream/dev/txns/user_last/checkpoint is kept\n") in out
    assert "txns/user_aggs/checkpoint" not in out
    assert ("checkpoint .featql/stream/dev/txns/user_max/checkpoint is started by the first "
            "`featql stream`, where the log then ends\n") in out
    (root / "views/user_max.sql").unlink()

    # another topic: the checkpoint resets, and the views over the source say so too
    src = root / "sources/txns.sql"
    src.write_text(src.read_text().replace("topic = 'txns'", "topic = 'txns-v2'"))
    out = _plan(root, capsys)
    assert ("      stream: the checkpoints .featql/stream/dev/txns/*/checkpoint reset: "
            f"{TOPIC} → {TOPIC.replace('txns', 'txns-v2')}; the next `featql stream` reads "
            "the new location from its start (events whose key was ingested before count "
            "once)\n") in out
    assert "checkpoint .featql/stream/dev/txns/user_aggs/checkpoint resets (the stream " \
           "location of its source changed)" in out

    # the key is the events' identity: a change of it is breaking; lateness is not
    src.write_text(src.read_text().replace("topic = 'txns-v2'", "topic = 'txns'")
                   .replace("key = txn_id", "key = user_id").replace("'1h'", "'2h'"))
    out = _plan(root, capsys)
    assert "      key: 'txn_id' → 'user_id'\n" in out
    assert "      lateness: '1h' → '2h'\n" in out
