"""`materialize --online` racing pushes (issue 13 item 5): stream views are loaded under the
project's ingest lock, so a load never rolls back pushed events nor counts them twice. Pushes
from two threads and a second process run while `materialize --online` runs again and again;
at the end the online store and a training set equal the brute-force oracle, with no error on
either side. A lock held longer than `--lock-timeout` is a clear error, not a hang."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from featql.compiler.project import compile_project
from featql.jobs.ingest import ingest_events
from featql.jobs.ingest_log import locked
from featql.jobs.materialize import materialize

from .handover import as_json, check, make_events
from .project import events_table, write_project

DAY = dt.datetime(2024, 3, 2)
END = DAY + dt.timedelta(hours=10, minutes=30)
USERS = tuple(range(1, 41))  # at most ~170 events per user and window: KLL stays exact


def push_chunks(root: str, chunks: list[list[dict[str, Any]]], pause: float, stop: Any,
                done: Any) -> None:
    """Push chunks (JSON records) in turn until `stop` is set and 5 more were pushed (or none
    is left); `done.value`: how many were pushed. The body of the pushers (threads and the
    second process)."""
    manifest = compile_project(Path(root)).manifest
    after = 0
    for chunk in chunks:
        if stop.is_set():
            if after == 5:
                break
            after += 1
        rep = ingest_events(Path(root), manifest, "dev", "events", chunk)
        assert rep.ingested == len(chunk), rep
        done.value += 1
        time.sleep(pause)


def _chunks(events: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [as_json(events[i:i + size]) for i in range(0, len(events), size)]


def test_pushes_while_materialize_online_runs_end_equal_to_the_oracle(tmp_path: Path) -> None:
    rng = random.Random(21)
    history = make_events(rng, 0, 240, DAY, END, USERS)
    root = write_project(tmp_path / "proj", rows=events_table(history))
    manifest = compile_project(root).manifest
    materialize(root, manifest, "dev", online=True)  # the backfill

    # three pushers: two threads of this process, one other process; events after the
    # backfill's end (its slide included) and late ones inside the backfilled slides. They
    # push while `materialize --online` runs three times, and on after it, so that the last
    # load races pushes and nothing repairs what it might have rolled back.
    lanes = [make_events(rng, 10_000 * (k + 1), 2_000, END, DAY + dt.timedelta(hours=13),
                         USERS)
             + make_events(rng, 10_000 * (k + 1) + 5_000, 150, DAY + dt.timedelta(hours=9),
                           END, USERS)
             for k in range(3)]
    for lane in lanes:
        rng.shuffle(lane)
    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    counts = [spawn.Value("i", 0) for _ in lanes]
    errors: list[BaseException] = []

    def lane_thread(k: int) -> None:
        try:
            push_chunks(str(root), _chunks(lanes[k], 3), 0.01, stop, counts[k])
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    other = spawn.Process(target=push_chunks,
                          args=(str(root), _chunks(lanes[2], 3), 0.01, stop, counts[2]))
    threads = [threading.Thread(target=lane_thread, args=(k,)) for k in range(2)]
    other.start()
    for t in threads:
        t.start()
    while counts[2].value == 0 and other.is_alive():  # the other process is pushing
        time.sleep(0.05)
    for _ in range(3):
        report = materialize(root, manifest, "dev", online=True)
        assert report.online is not None
    racing = [t.is_alive() for t in threads] + [other.is_alive()]
    stop.set()
    for t in threads:
        t.join(120)
    other.join(120)
    assert not errors, errors
    assert other.exitcode == 0
    assert all(racing), racing  # the pushers outlasted the loads: they raced each of them

    pushed = [e for lane, n in zip(lanes, counts, strict=True) for e in lane[:3 * n.value]]
    everything = history + pushed
    last = max(e["ts"] for e in everything)
    head = last.replace(minute=0, second=0, microsecond=0)
    times = [head, head + dt.timedelta(microseconds=1), last, last + dt.timedelta(microseconds=1),
             head + dt.timedelta(hours=1), last + dt.timedelta(hours=1, minutes=7)]
    times += [head + dt.timedelta(microseconds=rng.randrange(3600 * 1_000_000))
              for _ in range(20)]
    assert check(root, manifest, everything, times, users=USERS) > 0
    # a training set anywhere (the log holds every event once)
    anywhere = [DAY + dt.timedelta(microseconds=rng.randrange(14 * 3600 * 1_000_000))
                for _ in range(30)]
    assert check(root, manifest, everything, anywhere, online=False, users=USERS) > 0


def test_a_lock_held_too_long_is_a_clear_error(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from featql.cli.main import main

    rng = random.Random(3)
    root = write_project(tmp_path / "proj", rows=events_table(make_events(rng, 0, 50, DAY,
                                                                          END)))
    assert main(["apply", "--project", str(root), "--yes"]) == 0
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # a long write into the project (a push, featql stream) holds it
        with locked(root):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        capsys.readouterr()
        started = time.monotonic()
        code = main(["materialize", "--project", str(root), "--online", "--lock-timeout",
                     "0.5"])
        waited = time.monotonic() - started
    finally:
        release.set()
        holder.join(30)
    err = capsys.readouterr().err
    assert code == 1, err
    assert "user_aggs" in err and "ingest lock" in err and "within 0.5 s" in err, err
    assert "rerun `featql materialize --online`" in err, err
    assert waited < 20
    # free again: the same command loads the stream views
    assert main(["materialize", "--project", str(root), "--online"]) == 0
