"""Where a source's files are: local folders, files and globs relative to the project, or
`s3://` locations (listed and read through pyarrow's S3FileSystem).

DuckDB's httpfs extension is not bundled with the Python wheel and cannot be downloaded on a
machine without internet access, so S3 data is read by pyarrow and handed to the engines as
Arrow tables; local files are read by the engines themselves.
S3 settings come from the usual AWS variables; `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`)
points at an S3-compatible server (moto, MinIO).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from featql.core.errors import UserError
from featql.core.ir import Source
from featql.semantics.types import arrow_type

if TYPE_CHECKING:
    import pyarrow.fs as pafs

_EXT = {"parquet": (".parquet", ".pq"), "csv": (".csv",), "json": (".json", ".jsonl", ".ndjson")}


def is_s3(path: str) -> bool:
    return path.startswith("s3://") or path.startswith("s3a://")


def s3_filesystem() -> pafs.S3FileSystem:
    import pyarrow.fs as pafs

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    kwargs: dict[str, object] = {"region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    if endpoint:
        scheme, _, rest = endpoint.partition("://")
        kwargs.update(endpoint_override=rest or endpoint, scheme=scheme if rest else "http")
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        kwargs.update(access_key=os.environ["AWS_ACCESS_KEY_ID"],
                      secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY", ""))
    return pafs.S3FileSystem(**kwargs)


def s3_key(path: str) -> str:
    return path.split("://", 1)[1]


def local_files(source: Source, root: Path) -> list[str]:
    """The source's local files, sorted; [] when the folder is empty."""
    path = source.batch.path
    full = Path(path) if Path(path).is_absolute() else root / path
    exts = _EXT.get(source.batch.format, ("",))
    if any(ch in path for ch in "*?["):
        found = sorted(glob.glob(str(full), recursive=True))
    elif full.is_dir():
        found = sorted(str(p) for p in full.rglob("*") if p.is_file() and p.suffix in exts
                       and not p.name.startswith((".", "_")))
    elif full.exists():
        found = [str(full)]
    else:
        raise UserError(f"source '{source.name}': no data at {full}")
    return found


def read_s3(source: Source) -> pa.Table:
    """Read an S3 source into Arrow (all files under the prefix with the source's format)."""
    import pyarrow.dataset as ds

    fs = s3_filesystem()
    fmt = {"parquet": "parquet", "csv": "csv", "json": "json"}[source.batch.format]
    key = s3_key(source.batch.path).rstrip("/")
    try:
        dataset = ds.dataset(key, filesystem=fs, format=fmt, exclude_invalid_files=False)
        table = dataset.to_table()
    except (OSError, FileNotFoundError) as e:
        raise UserError(f"source '{source.name}': cannot read {source.batch.path}: {e}") from e
    return table


def empty_table(source: Source) -> pa.Table:
    return pa.table({c.name: pa.array([], arrow_type(c.type)) for c in source.columns})


def source_input(source: Source, root: Path) -> tuple[list[str], pa.Table | None]:
    """What an engine registers for a source: its local files, or else an Arrow table.

    S3 sources are read through pyarrow (DuckDB's httpfs cannot be installed offline) and a
    source without files is an empty table of its schema; both come back as the table.
    """
    if is_s3(source.batch.path):
        return [], read_s3(source)
    files = local_files(source, root)
    if source.batch.format == "parquet":
        check_parquet_files(source, files)
    return files, None if files else empty_table(source)


_SCHEMAS: dict[tuple[str, int, int], pa.Schema] = {}  # (file, mtime_ns, size) -> its schema


def check_parquet_files(source: Source, files: list[str]) -> None:
    """Every file of a Parquet source is readable and holds every declared column with a type
    that fits: the engines read files by name, and a column missing from one file would
    otherwise be read as NULLs there (silently fewer rows counted, wrong sums)."""
    import pyarrow.parquet as pq

    from featql.core.types import UNKNOWN, compatible, from_arrow

    for f in files:
        try:
            st = os.stat(f)
            key = (f, st.st_mtime_ns, st.st_size)
            schema = _SCHEMAS.get(key)
            if schema is None:
                schema = _SCHEMAS[key] = pq.read_schema(f)
        except (OSError, pa.ArrowException) as e:
            raise UserError(f"source '{source.name}': cannot read {f}: {e}") from e
        fields = {name.lower(): schema.field(name) for name in schema.names}
        for col in source.columns:
            field = fields.get(col.name)
            if field is None:
                raise UserError(f"source '{source.name}': {f} has no column '{col.name}' "
                                f"(declared {col.type} in {source.location.path})")
            actual = from_arrow(field.type)
            if actual != UNKNOWN and not compatible(actual, col.type):
                raise UserError(f"source '{source.name}': column '{col.name}' is {actual} in "
                                f"{f}, but is declared {col.type} in {source.location.path}")
