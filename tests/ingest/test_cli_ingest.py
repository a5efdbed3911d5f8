"""`featql ingest SOURCE FILE` (issue 13 item 3): JSON lines, CSV and Parquet files through the
push path; a second run of the same file changes nothing; a bad record names its line."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from .project import events_table, write_project
from .server import cli


def _records(start: int, n: int) -> list[dict]:
    return [{"event_id": start + i, "user_id": i % 4, "amount": float(i), "kind": "a",
             "ts": f"2024-03-03T08:{i % 60:02d}:00"} for i in range(n)]


def _log_ids(root: Path) -> list[int]:
    return [i for f in sorted((root / "data/events/ingest").rglob("*.parquet"))
            for i in pq.read_table(f).column("event_id").to_pylist()]


def test_ingest_files_once_each(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    assert cli(root, "apply", "--yes").returncode == 0
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in _records(0, 50)))
    done = cli(root, "ingest", "events", str(jsonl))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "50 events of events ingested into workspace 'dev'" in done.stdout
    again = cli(root, "ingest", "events", str(jsonl))
    assert again.returncode == 0 and "0 events of events ingested" in again.stdout
    csv = tmp_path / "b.csv"
    rows = _records(40, 30)  # 10 of them were in the JSON file
    csv.write_text("event_id,user_id,amount,kind,ts\n" + "".join(
        f"{r['event_id']},{r['user_id']},{r['amount']},{r['kind']},{r['ts']}\n" for r in rows))
    done = cli(root, "ingest", "events", str(csv))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "20 events of events ingested" in done.stdout and "30 records, 10 already" in \
        done.stdout
    parquet = tmp_path / "c.parquet"
    pq.write_table(events_table([{**r, "ts": None} | {"ts": __import__("datetime").datetime(
        2024, 3, 3, 9)} for r in _records(100, 5)]), parquet)
    assert cli(root, "ingest", "events", str(parquet)).returncode == 0
    assert sorted(_log_ids(root)) == list(range(70)) + list(range(100, 105))


def test_a_bad_record_names_its_index_and_field(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    assert cli(root, "apply", "--yes").returncode == 0
    bad = tmp_path / "bad.jsonl"
    rows = _records(0, 12)
    rows[11]["amount"] = "lots"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = cli(root, "ingest", "events", str(bad), "--batch-size", "5")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "records[11].amount must be DOUBLE" in done.stderr
    assert "Traceback" not in done.stderr
    unknown = cli(root, "ingest", "event", str(bad))
    assert unknown.returncode == 1 and "did you mean 'events'?" in unknown.stderr
    missing = cli(root, "ingest", "events", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
