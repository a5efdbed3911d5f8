"""`featql ingest SOURCE FILE`: push the records of a Parquet, CSV or JSON-lines file through the
ingest path.

The same write path as `POST /v1/ingest/<source>` (featql.jobs.ingest): each record is checked
against the source's schema (an error names the record and the field), events whose `key` was
already ingested count once, the new ones are appended to the source's offline log and written
to the online store of the workspace for every view over the source. Runs the definitions
applied to the workspace. The file is pushed in batches of `--batch-size` records, each with a
batch id made of the file's digest and the batch's index: running the same file again changes
nothing.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featql.cli.commands._common import applied_run, project_root, workspace
from featql.cli.commands._registry import add_workspace_argument
from featql.cli.console import UserError, console

if TYPE_CHECKING:
    import pyarrow as pa


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="the source the records belong to")
    p.add_argument("file", metavar="FILE", help="records: .parquet, .csv or .json/.jsonl lines")
    p.add_argument("--batch-size", type=int, default=10_000, metavar="N",
                   help="records per batch (default 10000)")
    add_workspace_argument(p)


def _json_lines(path: Path) -> list[Any]:
    """JSON lines as objects (checked record by record by the ingest path, which names the
    record and field of a mistake; Arrow's reader would only name a column)."""
    import orjson

    out = []
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError as e:
                raise UserError(f"{path}:{n}: not a JSON record: {e}") from None
    return out


def read_records(path: Path) -> pa.Table | list[Any]:
    import pyarrow as pa

    if not path.is_file():
        raise UserError(f"records file '{path}' does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            import pyarrow.csv as pcsv

            return pcsv.read_csv(path)
        if suffix in (".json", ".jsonl", ".ndjson"):
            return _json_lines(path)
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise UserError(f"cannot read the records file {path}: {e}") from e
    raise UserError(f"unknown records format '{suffix}' of {path}; use .parquet, .csv or "
                    ".json (JSON lines)")


def run(args: argparse.Namespace) -> int:
    from featql.jobs.ingest import find_source, ingest_events
    from featql.online.lookup import RequestError

    if args.batch_size < 1:
        raise UserError("--batch-size must be a positive number of records")
    root = project_root(args.project)
    ws = workspace(root, args.workspace)
    run_ = applied_run(args.project, ws)
    manifest = run_.applied.run_manifest
    try:
        find_source(manifest, args.source)
    except RequestError as e:
        raise UserError(e.message) from None
    path = Path(args.file)
    table = read_records(path)
    total = len(table) if isinstance(table, list) else table.num_rows
    digest = hashlib.blake2b(path.read_bytes(), digest_size=8).hexdigest()
    totals = {"received": 0, "ingested": 0, "duplicates": 0, "late": 0}
    views: dict[str, int] = {}
    c = console()
    with console(stderr=True).status(f"ingesting {total:,} records of {args.source}"):
        for i, start in enumerate(range(0, total, args.batch_size)):
            chunk = (table[start:start + args.batch_size] if isinstance(table, list)
                     else table.slice(start, args.batch_size))
            try:
                rep = ingest_events(root, manifest, ws, args.source, chunk,
                                    batch_id=f"file:{digest}:{args.batch_size}:{i}",
                                    config=run_.config, limit=None)
            except RequestError as e:
                raise UserError(f"{path}: {_shift(e.message, start)}") from None
            for k in totals:
                totals[k] += getattr(rep, k)
            for v, n in rep.views.items():
                views[v] = views.get(v, 0) + n
    c.print(f"[green]✓[/] {totals['ingested']:,} events of {args.source} ingested into "
            f"workspace '{ws}' ({totals['received']:,} records, {totals['duplicates']:,} "
            f"already ingested, {totals['late']:,} late)", highlight=False)
    if views:
        c.print("  online cells written: " + ", ".join(f"{v} {n:,}" for v, n in
                                                       sorted(views.items())), highlight=False)
    return 0


def _shift(message: str, offset: int) -> str:
    """A batch's `records[i]` as the file's record index."""
    import re

    return re.sub(r"records\[(\d+)\]", lambda m: f"records[{int(m.group(1)) + offset}]",
                  message)
