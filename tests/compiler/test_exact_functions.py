"""The compiler and issue 14's exact functions: accepted calls and their typed manifest, and one
positioned diagnostic per bad argument or input type (exact headline, position, hint)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Compile

AGG = ("-- @feature_view(name = g, entity = user, timestamp = event_ts,\n"
       "--               windows = ['1d', '7d'], slide = '1d', start = '2024-01-01')\n")


def _view(select: str) -> dict[str, str]:
    return {"views/g.sql": AGG + f"SELECT user_id, {select} FROM txns GROUP BY user_id\n"}


def test_every_exact_function_compiles_with_typed_features(project: Compile) -> None:
    result = project(_view(
        "STDDEV(amount) AS a, STDDEV_POP(txn_id) AS b, VARIANCE(amount) AS c, "
        "VAR_POP(amount) AS d, VAR_SAMP(merchant_id) AS e, STDDEV_SAMP(amount) AS f, "
        "last_n(channel, 10) AS g, LAST_DISTINCT_N(amount, 3) AS h, FIRST_N(txn_id, 1) AS i, "
        "FIRST_DISTINCT_N(channel, 2) AS j, TOP_K(merchant_id, 5) AS k"))
    assert result.ok, [d.headline() for d in result.diagnostics]
    view = result.manifest.view("g")
    got = {a.name: (a.function, a.type, a.args) for a in view.aggregations}
    assert got == {"a": ("stddev_samp", "DOUBLE", ()), "b": ("stddev_pop", "DOUBLE", ()),
                   "c": ("var_samp", "DOUBLE", ()), "d": ("var_pop", "DOUBLE", ()),
                   "e": ("var_samp", "DOUBLE", ()), "f": ("stddev_samp", "DOUBLE", ()),
                   "g": ("last_n", "ARRAY<STRING>", (10,)),
                   "h": ("last_distinct_n", "ARRAY<DOUBLE>", (3,)),
                   "i": ("first_n", "ARRAY<BIGINT>", (1,)),
                   "j": ("first_distinct_n", "ARRAY<STRING>", (2,)),
                   "k": ("top_k", "ARRAY<BIGINT>", (5,))}
    assert {f.name: f.type for f in view.features}["g_7d"] == "ARRAY<STRING>"


def test_the_argument_reaches_the_manifest_and_its_fingerprint(project: Compile) -> None:
    from featql.core.manifest import dumps

    three = project(_view("LAST_N(amount, 3) AS l"))
    four = project(_view("LAST_N(amount, 4) AS l"))
    assert three.ok and four.ok
    assert '"args": [\n            3\n          ]' in dumps(three.manifest)
    assert three.manifest.view("g").fingerprint != four.manifest.view("g").fingerprint
    plain = project(_view("SUM(amount) AS s"))
    assert '"args"' not in dumps(plain.manifest)  # left out while empty


BAD = [
    ("n-zero", "LAST_N(amount, 0) AS l", "3:32",
     "E430", "LAST_N()'s n must be at least 1, not 0", "0", "e.g. LAST_N(x, 10)"),
    ("n-negative", "FIRST_N(amount, -2) AS l", "3:33",
     "E430", "FIRST_N()'s n must be at least 1, not -2", "-2", "e.g. FIRST_N(x, 10)"),
    ("n-fraction", "TOP_K(channel, 2.5) AS l", "3:32",
     "E430", "TOP_K()'s k must be a positive integer literal, not 2.5", "2.5",
     "e.g. TOP_K(x, 10)"),
    ("n-column", "LAST_DISTINCT_N(channel, txn_id) AS l", "3:42",
     "E430", "LAST_DISTINCT_N()'s n must be a number written in the query, not txn_id",
     "txn_id", "e.g. LAST_DISTINCT_N(x, 10)"),
    ("n-missing", "LAST_N(amount) AS l", "3:17",
     "E430", "LAST_N() takes 2 arguments: LAST_N(x, n)", "LAST_N(", "e.g. LAST_N(x, 10)"),
    ("n-extra", "TOP_K(amount, 3, 4) AS l", "3:34",
     "E430", "TOP_K() takes 2 arguments: TOP_K(x, k)", "4", "e.g. TOP_K(x, 10)"),
    ("stddev-of-string", "STDDEV_POP(channel) AS l", "3:17",
     "E418", "STDDEV_POP() needs a numeric input; 'l' aggregates STRING", "STDDEV_POP(",
     "CAST the input to a type STDDEV_POP() takes; over STRING, did you mean LAST_N or "
     "LAST_DISTINCT_N?"),
    ("last-of-boolean", "LAST_N(is_fraud, 3) AS l", "3:17",
     "E418", "LAST_N() needs a BIGINT, INT, DOUBLE, FLOAT or STRING input; 'l' aggregates "
     "BOOLEAN", "LAST_N(", None),
]


@pytest.mark.parametrize(("case", "select", "where", "code", "message", "at", "hint"), BAD,
                         ids=[b[0] for b in BAD])
def test_a_bad_argument_or_input_is_one_positioned_error(
        project: Compile, tmp_path: Path, case: str, select: str, where: str, code: str,
        message: str, at: str, hint: str | None) -> None:
    result = project(_view(select))
    errors = result.diagnostics.errors
    assert [d.headline() for d in errors] == [f"views/g.sql:{where}: error[{code}]: {message}"]
    diag = errors[0]
    assert diag.hint == hint or (hint is None and diag.hint is not None
                                 and diag.hint.startswith("CAST the input"))
    line = (tmp_path / diag.span.path).read_text().split("\n")[diag.span.line - 1]
    assert line[diag.span.col - 1:].startswith(at), (line, diag.span.col)


def test_a_misspelt_function_gets_a_did_you_mean(project: Compile) -> None:
    result = project(_view("LAST_M(amount, 3) AS l"))
    [diag] = result.diagnostics.errors
    assert diag.code == "E409" and diag.hint == "did you mean 'LAST_N'?"
