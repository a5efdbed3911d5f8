"""The compiler and issue 14's exact functions: accepted calls and their typed manifest, and one
positioned diagnostic per bad argument or input type (exact headline, position, hint)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Compile
from .functions import BAD_FIELDS, assert_misspelt, assert_one_positioned_error, typed_aggregations
from .functions import view as _view


def test_every_exact_function_compiles_with_typed_features(project: Compile) -> None:
    result = project(_view(
        "STDDEV(amount) AS a, STDDEV_POP(txn_id) AS b, VARIANCE(amount) AS c, "
        "VAR_POP(amount) AS d, VAR_SAMP(merchant_id) AS e, STDDEV_SAMP(amount) AS f, "
        "last_n(channel, 10) AS g, LAST_DISTINCT_N(amount, 3) AS h, FIRST_N(txn_id, 1) AS i, "
        "FIRST_DISTINCT_N(channel, 2) AS j, TOP_K(merchant_id, 5) AS k"))
    got = typed_aggregations(result)
    assert got == {"a": ("stddev_samp", "DOUBLE", ()), "b": ("stddev_pop", "DOUBLE", ()),
                   "c": ("var_samp", "DOUBLE", ()), "d": ("var_pop", "DOUBLE", ()),
                   "e": ("var_samp", "DOUBLE", ()), "f": ("stddev_samp", "DOUBLE", ()),
                   "g": ("last_n", "ARRAY<STRING>", (10,)),
                   "h": ("last_distinct_n", "ARRAY<DOUBLE>", (3,)),
                   "i": ("first_n", "ARRAY<BIGINT>", (1,)),
                   "j": ("first_distinct_n", "ARRAY<STRING>", (2,)),
                   "k": ("top_k", "ARRAY<BIGINT>", (5,))}
    assert {f.name: f.type for f in result.manifest.view("g").features}["g_7d"] == "ARRAY<STRING>"


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


@pytest.mark.parametrize(BAD_FIELDS, BAD, ids=[b[0] for b in BAD])
def test_a_bad_argument_or_input_is_one_positioned_error(
        project: Compile, tmp_path: Path, case: str, select: str, where: str, code: str,
        message: str, at: str, hint: str | None) -> None:
    assert_one_positioned_error(project(_view(select)), tmp_path, where, code, message, at, hint)


def test_a_misspelt_function_gets_a_did_you_mean(project: Compile) -> None:
    assert_misspelt(project(_view("LAST_M(amount, 3) AS l")), "did you mean 'LAST_N'?")
