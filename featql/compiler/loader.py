"""Discover a project's definition files and parse each one (header, then body).

With `parallel=True` (the CLI's `check` and `compile` only; never the Python API), a large
project (`PARALLEL_MIN_FILES` SQL files or more) is parsed by two processes: a worker of a
`featql.core.pool.ForkPool` parses the second half of the files and sends the parsed files and
their diagnostics back pickled (unpickling costs a third of parsing), while this process parses
the first half. The result, diagnostics included, is the same as parsing every file here in
order; if the worker fails for any reason, this process parses its half too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlglot import exp

from featql.compiler.body import parse_body
from featql.compiler.decorators import Decl, build_decl
from featql.compiler.header import parse_header
from featql.compiler.pyhooks import PyHook, scan_hooks
from featql.core import pool
from featql.core.config import ProjectConfig
from featql.core.diagnostics import Diagnostic, Diagnostics, SourceFile, Span

MAX_FILE_BYTES = 1_000_000
PARALLEL_MIN_FILES = 200


@dataclass
class ParsedFile:
    src: SourceFile
    rel: str  # path relative to the project root
    decl: Decl | None
    statement: exp.Expression | None
    body_failed: bool = False  # the SQL body had errors (already reported)


def display_path(path: Path) -> str:
    """How a file is named in diagnostics: relative to the working directory when inside it,
    else absolute (never a chain of ../)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # pragma: no cover - other drive on Windows
        return str(path)
    if rel == ".." or rel.startswith(".." + os.sep):
        return str(Path(path).absolute())
    return rel


def discover(root: Path, config: ProjectConfig) -> tuple[list[Path], list[Path]]:
    """(sql files, python files) under root, sorted, skipping excluded and hidden folders."""
    sql: list[Path] = []
    py: list[Path] = []
    excluded = set(config.exclude)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in excluded and not d.startswith("."))
        for f in sorted(filenames):
            if f.endswith(".sql"):
                sql.append(Path(dirpath) / f)
            elif f.endswith(".py"):
                py.append(Path(dirpath) / f)
    return sql, py


def read_source(path: Path, diags: Diagnostics) -> SourceFile | None:
    shown = display_path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            diags.error("E112", f"definition file is too large ({size} bytes, at most "
                        f"{MAX_FILE_BYTES})", Span.whole_file(shown))
            return None
        return SourceFile(shown, path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        diags.error("E112", "definition file is not UTF-8 text", Span.whole_file(shown))
    except OSError as e:
        diags.error("E112", f"cannot read definition file: {e.strerror}", Span.whole_file(shown))
    return None


def parse_file(src: SourceFile, rel: str, diags: Diagnostics) -> ParsedFile:
    before = len(diags.errors)
    decorators, body_start = parse_header(src, diags)
    decl = None
    if len(diags.errors) == before:
        decl = build_decl(decorators, Span(src.path, 1, 1), diags)
    statement = None
    before = len(diags.errors)
    if decl is not None:
        statement = parse_body(src, body_start, decl.kind, diags)
    return ParsedFile(src, rel, decl, statement, body_failed=len(diags.errors) > before)


def load(root: Path, config: ProjectConfig, diags: Diagnostics, *,
         parallel: bool = False) -> tuple[list[ParsedFile], list[PyHook]]:
    """Parse every definition file; `parallel`: a large project's second half in a worker."""
    sql_paths, py_paths = discover(root, config)
    if parallel and len(sql_paths) >= PARALLEL_MIN_FILES and pool.can_fork():
        files = _parse_in_two(root, sql_paths, diags)
    else:
        files = _parse_all(root, sql_paths, diags)
    hooks: list[PyHook] = []
    for path in py_paths:
        src = read_source(path, diags)
        if src is not None:
            hooks.extend(scan_hooks(src, path.relative_to(root).as_posix(), diags))
    return files, hooks


def _parse_all(root: Path, paths: list[Path], diags: Diagnostics) -> list[ParsedFile]:
    files: list[ParsedFile] = []
    for path in paths:
        src = read_source(path, diags)
        if src is not None:
            files.append(parse_file(src, path.relative_to(root).as_posix(), diags))
    return files


def _parse_half(root: Path, paths: list[Path]) -> tuple[list[ParsedFile], list[Diagnostic]]:
    """In the worker: `_parse_all` into diagnostics of its own."""
    mine = Diagnostics()
    return _parse_all(root, paths, mine), mine.items


def _parse_in_two(root: Path, paths: list[Path], diags: Diagnostics) -> list[ParsedFile]:
    """`_parse_all`, the second half parsed by a forked worker meanwhile."""
    half = len(paths) // 2
    with pool.ForkPool(1) as workers:
        theirs = workers.submit(_parse_half, root, paths[half:])
        files = _parse_all(root, paths[:half], diags)
        try:
            parsed, found = theirs.result()
        except Exception:  # the worker failed or died: parse its half here
            return files + _parse_all(root, paths[half:], diags)
    diags.extend(found)
    return files + parsed
