"""Fuzzing the front end: mutated example files, random headers and random text.

Whatever the input, only featql diagnostics come out: no exception escapes `parse_file` or
`compile_project`, no input hangs (hypothesis deadline), every diagnostic has a code, a message
and a position inside the file. The size and nesting caps are tested explicitly.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from featql.compiler.body import MAX_SQL_NESTING
from featql.compiler.decorators import SCHEMAS
from featql.compiler.header import MAX_HEADER_CHARS, MAX_NESTING, extract_header, parse_header
from featql.compiler.header_fast import parse_fast
from featql.compiler.loader import MAX_FILE_BYTES, parse_file
from featql.compiler.project import compile_project
from featql.core.diagnostics import Diagnostic, Diagnostics, SourceFile
from featql.examples.scaffold import example_dir

from .projects import AGG_VIEW, ROW_VIEW, SOURCES, write_project

EXAMPLES = sorted(p.read_text() for p in example_dir().rglob("*.sql"))
BASE = {**SOURCES, "views/user_last.sql": ROW_VIEW, "views/user_aggs.sql": AGG_VIEW,
        "transforms/t.sql": "-- @request_transform(name = t, request = [amount DOUBLE])\n"
        "SELECT request.amount / NULLIF(user_last.last_amount, 0) AS ratio\n",
        "services/s.sql": "-- @feature_service(name = s, features = [user_last.*, "
        "user_aggs.txn_count_1d, t])\n"}
TEXTS = EXAMPLES + sorted(BASE.values())

FRAGMENTS = ["(", ")", "[", "]", "'", '"', ",", "=", "@", "--", "-- @", "\n", "\n-- ", " ",
             ";", "*", ".", ":", "<", ">", "\\", "\t", "\x00", "é", "SELECT", "FROM", "WHERE",
             "GROUP BY", "HAVING", "JOIN", "AS", "CASE WHEN", "END", "OVER (", "WITH x AS (",
             "@feature_view(", "@source(", "@entity(", "@feature_service(", "CREATE TABLE",
             "windows = ['1d']", "slide = '1h'", "ttl = '9x'", "NOW()", "COUNT(", "SUM(",
             "user_id", "event_ts", "txns", "request.", "UNION ALL", "'2024-01-01'", "/*", "*/"]
CODE = re.compile(r"^[EW]\d{3}$")

SCALE = int(os.environ.get("FEATQL_FUZZ_SCALE", "1"))  # more examples for a long local run


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples * SCALE, deadline=5000, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """An example file with 1-6 character-level edits: delete, insert, duplicate, swap."""
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["delete", "insert", "insert", "duplicate", "swap"]))
        i = draw(st.integers(0, len(text)))
        if op == "delete":
            text = text[:i] + text[min(len(text), i + draw(st.integers(1, 12))):]
        elif op == "insert":
            piece = draw(st.sampled_from(FRAGMENTS) | st.text(max_size=4))
            text = text[:i] + piece + text[i:]
        elif op == "duplicate":
            j = min(len(text), i + draw(st.integers(1, 40)))
            text = text[:j] + text[i:j] + text[j:]
        else:
            j = draw(st.integers(0, len(text)))
            lo, hi = sorted((i, j))
            if hi - lo > 1:
                text = text[:lo] + text[hi - 1] + text[lo + 1:hi - 1] + text[lo] + text[hi:]
    return text


def _values(depth: int) -> st.SearchStrategy[str]:
    leaf = st.one_of(
        st.sampled_from(["user", "event_ts", "txns", "true", "false", "x.y", "v:w", "a.*",
                         "user_id BIGINT", "tags ARRAY<STRING>", "1", "-2.5e3", "0"]),
        st.sampled_from(["'1d'", "'90m'", "'9x'", "'2024-01-01'", "'2024-13-01'", "''",
                         "'it''s'", '"dq"', "'1h30m'", "'0d'"]),
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
    )
    if depth == 0:
        return leaf
    inner = _values(depth - 1)
    return st.one_of(
        leaf,
        st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.tuples(st.sampled_from(["parquet", "csv", "json", "files", "parket"]),
                  st.lists(inner, max_size=3)).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
    )


@st.composite
def headers(draw: st.DrawFn) -> str:
    """Well-formed-looking headers with random decorators, keys and values, and a body."""
    kinds = [*SCHEMAS, "owner", "tags", "description", "pii", "featur_view", "x"]
    keys = sorted({k for schema in SCHEMAS.values() for k in schema} | {"timestmp", "foo"})
    lines = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(kinds))
        args = [f"{draw(st.sampled_from(keys))} = {draw(_values(2))}"
                for _ in range(draw(st.integers(0, 7)))]
        if draw(st.booleans()):
            args.append(draw(_values(1)))
        sep = draw(st.sampled_from([", ", ",\n--   ", " "]))
        lines.append(f"-- @{kind}({sep.join(args)})")
    body = draw(st.sampled_from([
        "", "SELECT user_id, event_ts, amount AS a FROM txns",
        "SELECT user_id, COUNT(*) AS n FROM txns GROUP BY user_id",
        "CREATE TABLE s (id BIGINT, ts TIMESTAMP)", "SELECT request.amount * 2 AS y",
        "SELECT 1; SELECT 2"]))
    return "\n".join(lines) + "\n" + body + "\n"


random_text = st.lists(
    st.one_of(st.text(max_size=60).map(lambda s: "-- " + s),
              st.text(alphabet=st.sampled_from(list("@()[]'\",= .:*<>-\n\tabcxyz_019")),
                      max_size=60).map(lambda s: "-- @" + s),
              st.text(max_size=60)),
    max_size=12,
).map("\n".join)


def check_diagnostics(diags: Diagnostics, path: str, text: str) -> None:
    n_lines = text.count("\n") + 1
    for d in diags.items:
        assert isinstance(d, Diagnostic)
        assert CODE.match(d.code), d
        assert d.message and "<class" not in d.message and "Traceback" not in d.message, d
        assert d.span.path == path
        assert 1 <= d.span.line <= n_lines and d.span.col >= 1, (d, n_lines)
        d.render(text)  # renders without error


def parse(text: str) -> Diagnostics:
    diags = Diagnostics()
    parse_file(SourceFile("views/x.sql", text), "views/x.sql", diags)
    check_diagnostics(diags, "views/x.sql", text)
    return diags


@fuzz(1000)
@given(mutated())
def test_parse_file_survives_mutated_examples(text: str) -> None:
    parse(text)


@fuzz(500)
@given(headers())
def test_parse_file_survives_random_headers(text: str) -> None:
    parse(text)


@fuzz(500)
@given(random_text)
def test_parse_file_survives_random_text(text: str) -> None:
    parse(text)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="featql-fuzz-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@fuzz(300)
@given(st.sampled_from(sorted(BASE)), mutated() | headers())
def test_compile_project_survives_a_mutated_file(scratch: Path, target: str, text: str) -> None:
    root = Path(tempfile.mkdtemp(dir=scratch))
    write_project(root, {**BASE, target: text}, base=False)
    result = compile_project(root)
    for d in result.diagnostics.items:
        assert CODE.match(d.code) and d.message, d
        assert d.span.line >= 1 and d.span.col >= 1, d
    if not result.diagnostics.has_errors():
        assert result.manifest is not None
    shutil.rmtree(root, ignore_errors=True)


# ---- caps -----------------------------------------------------------------------------------


def test_header_larger_than_the_cap_is_one_error() -> None:
    values = ", ".join(f"'{i:06d}'" for i in range(MAX_HEADER_CHARS // 9 + 10))
    text = f"-- @feature_service(name = s, features = [{values}])\n"
    assert len(text) > MAX_HEADER_CHARS
    diags = parse(text)
    assert [d.headline() for d in diags.items] == [
        f"views/x.sql:1:4: error[E110]: decorator header is too large ({len(text) - 3} "
        f"characters, at most {MAX_HEADER_CHARS})"]


def test_header_just_under_the_cap_parses() -> None:
    values = ", ".join(f"a.f{i:05d}" for i in range((MAX_HEADER_CHARS - 200) // 10))
    text = f"-- @feature_service(name = s, features = [{values}])\n"
    assert len(text) < MAX_HEADER_CHARS
    assert parse(text).items == []


@pytest.mark.parametrize("depth", [MAX_NESTING, MAX_NESTING + 1, 5_000])
def test_header_nesting_cap(depth: int) -> None:
    text = "-- @tags(" + "[" * (depth - 1) + "'x'" + "]" * (depth - 1) + ")\n"
    diags = parse(text)
    if depth <= MAX_NESTING:
        assert all(d.code != "E110" for d in diags.items)
    else:
        assert [d.headline() for d in diags.items] == [
            f"views/x.sql:1:{9 + MAX_NESTING}: error[E110]: decorator header nests deeper "
            f"than {MAX_NESTING} levels"]


@pytest.mark.parametrize("depth", [MAX_SQL_NESTING, MAX_SQL_NESTING + 1, 5_000])
@pytest.mark.parametrize("opener", ["(", "ABS(", "(SELECT user_id, event_ts, amount FROM "])
def test_sql_nesting_cap(project, depth: int, opener: str) -> None:  # type: ignore[no-untyped-def]
    """At the cap a query still compiles (parse, types, lineage); one level more is one error."""
    inner = "txns" if "SELECT" in opener else "amount"
    nested = opener * depth + inner + ")" * depth
    sql = f"SELECT user_id, event_ts, amount AS a FROM {nested}" if "SELECT" in opener \
        else f"SELECT user_id, event_ts, {nested} AS a FROM txns"
    result = project({"views/v.sql": ROW_VIEW.split("SELECT")[0] + sql + "\n"})
    if depth <= MAX_SQL_NESTING:
        assert result.ok, [d.headline() for d in result.diagnostics]
        return
    too_deep = [i for i, ch in enumerate(sql) if ch == "("][MAX_SQL_NESTING]
    assert [d.headline() for d in result.diagnostics.errors] == [
        f"views/v.sql:3:{too_deep + 1}: error[E201]: SQL nests brackets deeper than "
        f"{MAX_SQL_NESTING} levels"]


def test_file_larger_than_the_cap(project) -> None:  # type: ignore[no-untyped-def]
    big = "-- @entity(name = e, keys = [k BIGINT])\n" + ("-- padding\n" * (MAX_FILE_BYTES // 11))
    result = project({"entities/e.sql": big})
    assert [d.headline() for d in result.diagnostics.errors] == [
        f"entities/e.sql:1:1: error[E112]: definition file is too large ({len(big)} bytes, "
        f"at most {MAX_FILE_BYTES})"]


def test_file_that_is_not_utf8(project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "views").mkdir()
    (tmp_path / "views/bad.sql").write_bytes(b"-- @entity(name = e, keys = [k])\n\xff\xfe")
    result = project({})
    assert [d.headline() for d in result.diagnostics.errors] == [
        "views/bad.sql:1:1: error[E112]: definition file is not UTF-8 text"]


# ---- the header fast path agrees with the lark grammar ---------------------------------------


def both_paths(text: str) -> tuple[object, object]:
    src = SourceFile("views/x.sql", text)
    fast, slow = Diagnostics(), Diagnostics()
    return (parse_header(src, fast, fast=True), fast.items), \
        (parse_header(src, slow, fast=False), slow.items)


@fuzz(600)
@given(mutated() | headers() | random_text)
def test_header_fast_path_agrees_with_lark(text: str) -> None:
    fast, slow = both_paths(text)
    assert fast == slow
    event("fast path" if parse_fast(extract_header(text).text, lambda *a: a) is not None
          else "lark path")


def test_header_fast_path_agrees_on_every_example() -> None:
    for text in TEXTS:
        fast, slow = both_paths(text)
        assert fast == slow
        assert fast[0][0], text  # every example has decorators
        header = extract_header(text)
        assert parse_fast(header.text, lambda *a: a) is not None, text  # and took the fast path
