"""`featql stream --until-idle` over a `files(...)` stream in CSV and in Parquet (the JSON-lines
case is test_stream_files.py): the online store and a training set equal the oracle, a file
added after the first run is read by the next run from its checkpoint (only that file), and a
bad file or a bad row is a counted dead letter with its reason, never a crashed job."""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featql.cli.main import main
from featql.jobs.stream import run_stream
from featql.registry import load_applied

from .project import SCHEMA, START, check_online_and_training, make_events, write_project

COLUMNS = SCHEMA.names


def _project(root: Path, fmt: str) -> Path:
    write_project(root, "unused", "127.0.0.1:9", [])
    src = root / "sources/txns.sql"
    text = src.read_text()
    start = text.index("stream = kafka(")
    end = text.index("),", start) + 1
    src.write_text(text[:start] + f"stream = files('data/txns_stream/', format = {fmt})"
                   + text[end:])
    (root / "data/txns_stream").mkdir(parents=True)
    return root


def _cell(v: Any) -> str:
    return "" if v is None else v.isoformat() if isinstance(v, dt.datetime) else str(v)


def _write(path: Path, fmt: str, events: list[dict[str, Any]],
           extra_rows: list[list[str]] = ()) -> None:  # type: ignore[assignment]
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(events, schema=SCHEMA), path)
        return
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        for e in events:
            out.writerow([_cell(e[c]) for c in COLUMNS])
        for row in extra_rows:
            out.writerow(row)


def _letters(root: Path) -> list[dict[str, Any]]:
    folder = root / ".featql/stream/dev/txns/user_aggs/deadletter"
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl"))
            for line in f.read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_files_stream_in_csv_and_parquet(spark: Any, tmp_path: Path, fmt: str) -> None:
    root = _project(tmp_path / "proj", fmt)
    assert main(["apply", "--project", str(root), "--yes"]) == 0
    rng = random.Random(11)
    first = make_events(rng, 0, 120, START, 5)
    folder = root / "data/txns_stream"
    # a bad row (a text where a number goes) in a good CSV file; a file that is not Parquet
    bad_row = ["777", "1", "lots", "web", START.isoformat(), START.isoformat()]
    _write(folder / f"part-1.{fmt}", fmt, first, [bad_row] if fmt == "csv" else [])
    bad_file = folder / f"part-1b.{fmt}"
    bad_file.write_bytes(b"PAR1 this is not a parquet file\x00\x01" if fmt == "parquet"
                         else b"txn_id,user_id\n\x00\x01,\"unterminated\n")
    applied = load_applied(root, None)

    def stream() -> Any:
        # a checkpoint per view: both read every file; their counts agree
        report = run_stream(root, applied.run_manifest, applied.workspace, until_idle=True,
                            spark=spark)
        aggs, last = report.of("user_aggs"), report.of("user_last")
        assert (aggs.events, aggs.ingested, aggs.duplicates, aggs.dead) == \
            (last.events, last.ingested, last.duplicates, last.dead)
        return aggs

    stats = stream()
    assert stats.ingested == 120
    assert stats.dead >= 1 and stats.dead == stats.total_dead
    letters = _letters(root)
    assert len(letters) == stats.dead
    assert all(letter["reason"] for letter in letters)
    assert any(bad_file.name in letter["origin"] for letter in letters), letters
    if fmt == "csv":
        assert any("lots" in (letter["value"] or "") for letter in letters), letters
    else:
        (only,) = letters
        assert "not a Parquet file" in only["reason"], only
    # a file added after the first run: the next run reads only it, from the checkpoint
    second = make_events(rng, 1000, 30, START + dt.timedelta(hours=5), 1)
    _write(folder / f"part-2.{fmt}", fmt, second + first[:3])
    again = stream()
    assert (again.events, again.ingested, again.duplicates, again.dead) == (33, 30, 3, 0)
    everything = first + second
    last = max(e["event_ts"] for e in everything)
    assert check_online_and_training(root, everything, [last + dt.timedelta(minutes=5),
                                                        last + dt.timedelta(hours=3)]) > 0
