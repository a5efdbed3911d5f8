"""The catalog: every source's schema, from its `CREATE TABLE` or read from its files.

Types are normalised to featql's type set and column names lowercased. Reading schemas from
files uses pyarrow (imported lazily, so projects that declare every schema never load it).
"""

from __future__ import annotations

from pathlib import Path

from sqlglot import exp

from featql.compiler.body import node_span
from featql.compiler.decorators import Decl
from featql.compiler.loader import ParsedFile
from featql.core.diagnostics import Diagnostics, SourceFile, Span, did_you_mean
from featql.core.ir import BatchSpec, Column, Location, Source, StreamSpec
from featql.core.types import ALL_TYPES, UNKNOWN, from_arrow, from_sqlglot


def build_sources(files: list[ParsedFile], root: Path, diags: Diagnostics) -> list[Source]:
    out: list[Source] = []
    for f in files:
        if f.decl is None or f.decl.kind != "source":
            continue
        src = _build_source(f, root, diags)
        if src is not None:
            out.append(src)
    return out


def location_of(rel_path: str, decl: Decl) -> Location:
    """Where an object is defined, with the path relative to the project (portable manifests)."""
    return Location(rel_path, decl.span.line, decl.span.col)


def _build_source(f: ParsedFile, root: Path, diags: Diagnostics) -> Source | None:
    decl = f.decl
    assert decl is not None
    fmt, path, options = decl.get("batch")
    batch = BatchSpec(fmt, path, options)
    stream = None
    if decl.get("stream") is not None:
        kind, spath, sopts = decl.get("stream")
        opts = dict(sopts)
        fmt = opts.pop("format", "json")
        if kind == "kafka":
            stream = StreamSpec(kind, "", fmt, topic=opts.pop("topic"),
                                bootstrap=opts.pop("bootstrap"))
        else:
            stream = StreamSpec(kind, spath, fmt, tuple(sorted(opts.items())))
            _check_stream_folder(decl, spath, root, diags)
    if f.body_failed:
        return None  # its CREATE TABLE had errors, reported where they are
    if isinstance(f.statement, exp.Create):
        columns = _columns_from_ddl(f, decl, diags)
        schema_from = "ddl"
    else:
        columns = _columns_from_files(f, decl, batch, root, diags)
        schema_from = "files"
    if columns is None:
        return None
    names = {c.name: c for c in columns}
    ok = True
    for key, want in (("timestamp", ("TIMESTAMP",)), ("created", ("TIMESTAMP",))):
        col = decl.get(key)
        if col is None:
            continue
        if col not in names:
            diags.error("E306", f"source '{decl.name}' has no column '{col}' (its {key} column)",
                        decl.at(key), hint=did_you_mean(col, names))
            ok = False
        elif names[col].type not in want:
            diags.error("E306", f"{key} column '{col}' of source '{decl.name}' is "
                        f"{names[col].type}, expected TIMESTAMP", decl.at(key),
                        hint="declare it TIMESTAMP or cast it in the files")
            ok = False
    ok = _check_known_at(decl, names, ok, diags) and ok
    key = decl.get("key")
    if key is not None and key not in names:
        diags.error("E306", f"source '{decl.name}' has no column '{key}' (its key column)",
                    decl.at("key"), hint=did_you_mean(key, names))
        ok = False
    for label in decl.get("labels") or ():
        if label not in names:
            diags.error("E306", f"labels names unknown column '{label}' of source "
                        f"'{decl.name}'", decl.at("labels"), hint=did_you_mean(label, names))
            ok = False
    for p in decl.pii:
        if p not in names:
            diags.error("E306", f"@pii names unknown column '{p}' of source '{decl.name}'",
                        decl.span, hint=did_you_mean(p, names))
    if not ok:
        return None
    return Source(
        name=decl.name,
        location=location_of(f.rel, decl),
        timestamp=decl.get("timestamp"),
        batch=batch,
        columns=tuple(columns),
        schema_from=schema_from,  # type: ignore[arg-type]
        created=decl.get("created"),
        known_at=decl.get("known_at"),
        stream=stream,
        pii=decl.pii,
        meta=decl.meta,
        prevent_destroy=bool(decl.get("prevent_destroy", False)),
        labels=tuple(decl.get("labels") or ()),
        lateness_seconds=decl.get("lateness"),
        key=key,
    )


def _check_stream_folder(decl: Decl, path: str, root: Path, diags: Diagnostics) -> None:
    """A `files(...)` stream reads a folder that exists (Spark would wait on a missing one
    forever without a word); remote folders are checked when the stream starts."""
    if "://" in path:
        return
    folder = Path(path) if Path(path).is_absolute() else root / path
    if folder.is_dir():
        return
    what = "is a file, not a folder" if folder.exists() else "does not exist"
    diags.error("E901", f"the stream folder '{path}' of source '{decl.name}' {what}",
                decl.at("stream"), hint=f"create it (mkdir -p {path}) or fix the path; "
                "`featql stream` reads the files that arrive in it")


def _check_known_at(decl: Decl, names: dict[str, Column], created_ok: bool,
                    diags: Diagnostics) -> bool:
    """`known_at = <created column>` (PRODUCT §3 "as known at"): it must repeat the source's
    `created` column, a TIMESTAMP (the created checks above report that column's own errors)."""
    col = decl.get("known_at")
    if col is None:
        return True
    created = decl.get("created")
    where = decl.at("known_at")
    if created is None:
        hint = (f"declare created = {col} as well" if col in names and
                names[col].type == "TIMESTAMP" else "declare created = <arrival time column>")
        diags.error("E308", f"known_at of source '{decl.name}' needs a created column: a row "
                    "is visible once it has been created", where, hint=hint)
        return False
    if col != created:
        typo = col not in names
        hint = (did_you_mean(col, [created]) if typo else None) or \
            f"write known_at = {created}"
        diags.error("E308", f"known_at of source '{decl.name}' names '{col}', not its created "
                    f"column '{created}'" + (f" (it has no column '{col}')" if typo else ""),
                    where, hint=hint)
        return False
    # otherwise reported as the created column's error (E306)
    return created_ok and col in names and names[col].type == "TIMESTAMP"


def _columns_from_ddl(f: ParsedFile, decl: Decl, diags: Diagnostics) -> list[Column] | None:
    create = f.statement
    assert isinstance(create, exp.Create)
    schema = create.this
    table = schema.this if isinstance(schema, exp.Schema) else schema
    table_name = table.name.lower() if isinstance(table, exp.Table) else ""
    if table_name and table_name != decl.name:
        diags.error("E113", f"CREATE TABLE names '{table_name}' but @source names '{decl.name}'",
                    node_span(f.src, table), hint=f"rename the table to '{decl.name}'")
        return None
    if not isinstance(schema, exp.Schema) or not schema.expressions:
        diags.error("E113", "CREATE TABLE of a source must list its columns",
                    node_span(f.src, create))
        return None
    columns: list[Column] = []
    ok = True
    for coldef in schema.expressions:
        if not isinstance(coldef, exp.ColumnDef):
            continue
        name = coldef.name.lower()
        kind = coldef.args.get("kind")
        ftype = from_sqlglot(kind) if isinstance(kind, exp.DataType) else UNKNOWN
        if kind is None:
            diags.error("E305", f"column '{name}' of source '{decl.name}' has no type",
                        node_span(f.src, coldef), hint=f"types: {', '.join(ALL_TYPES)}")
            ok = False
            continue
        if ftype == UNKNOWN:
            span, written = _type_as_written(f.src, coldef, kind)
            zoned = kind.this in (exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.TIMESTAMPLTZ)
            diags.error("E305", f"column '{name}' has type {written}, which featql does not "
                        "support", span,
                        hint="use TIMESTAMP: featql event times are UTC without a zone" if zoned
                        else f"featql types: {', '.join(ALL_TYPES)}")
            ok = False
            continue
        if any(c.name == name for c in columns):
            diags.error("E412", f"column '{name}' declared twice", node_span(f.src, coldef))
            ok = False
            continue
        columns.append(Column(name, ftype))
    return columns if ok else None


def _type_as_written(src: SourceFile, coldef: exp.ColumnDef,
                     kind: exp.DataType) -> tuple[Span, str]:
    """The span and text of a column's type in the file (sqlglot keeps no position for it)."""
    name_meta = coldef.this.meta if isinstance(coldef.this, exp.Identifier) else {}
    if "end" not in name_meta:
        return node_span(src, coldef), kind.sql("duckdb")
    text = src.text
    start = int(name_meta["end"]) + 1
    while start < len(text) and text[start] in " \t\r\n":
        start += 1
    end, depth = start, 0
    while end < len(text):
        ch = text[end]
        if ch in "(<":
            depth += 1
        elif ch in ">)" and depth > 0:
            depth -= 1
        elif depth == 0 and (ch in ",)\n" or text[end:end + 5].upper() in (" NOT ", " PRIM")):
            break
        end += 1
    written = text[start:end].strip()
    if not written:
        return node_span(src, coldef), kind.sql("duckdb")
    return src.span(start, start + len(written)), written


def _columns_from_files(f: ParsedFile, decl: Decl, batch: BatchSpec, root: Path,
                        diags: Diagnostics) -> list[Column] | None:
    where = decl.at("batch")
    if batch.path.startswith("s3://"):
        diags.error("E304", f"source '{decl.name}' reads s3:// and declares no schema", where,
                    hint="add a CREATE TABLE with its columns after the header")
        return None
    path = root / batch.path
    try:
        import pyarrow.dataset as ds

        schema = ds.dataset(str(path), format=batch.format).schema
    except (FileNotFoundError, OSError, ValueError) as e:
        reason = "no files found" if not path.exists() else str(e).splitlines()[0]
        diags.error("E304", f"cannot read the schema of source '{decl.name}' from "
                    f"'{batch.path}': {reason}", where,
                    hint="generate the data first, or declare the columns with CREATE TABLE")
        return None
    if len(schema) == 0:
        diags.error("E304", f"cannot read the schema of source '{decl.name}' from "
                    f"'{batch.path}': no files found", where,
                    hint="generate the data first, or declare the columns with CREATE TABLE")
        return None
    columns: list[Column] = []
    skipped: list[str] = []
    for field in schema:
        ftype = from_arrow(field.type)
        if ftype == UNKNOWN:
            skipped.append(f"{field.name} ({field.type})")
            continue
        columns.append(Column(field.name.lower(), ftype))
    if skipped:
        diags.warning("W305", f"source '{decl.name}': columns of unsupported types are not "
                      f"visible to features: {', '.join(skipped)}", where)
    return columns
