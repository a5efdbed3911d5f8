"""The compiler and the sketch functions (APPROX_COUNT_DISTINCT, APPROX_PERCENTILE): accepted
calls and their typed manifest, and one positioned diagnostic per bad argument or input type
(exact headline, position, hint)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Compile
from .functions import BAD_FIELDS, assert_misspelt, assert_one_positioned_error, typed_aggregations
from .functions import view as _view


def test_the_sketch_functions_compile_with_typed_features(project: Compile) -> None:
    result = project(_view(
        "APPROX_COUNT_DISTINCT(merchant_id) AS a, approx_count_distinct(channel) AS b, "
        "APPROX_COUNT_DISTINCT(amount) AS c, APPROX_COUNT_DISTINCT(is_fraud) AS d, "
        "APPROX_PERCENTILE(amount, 0.5) AS e, approx_percentile(txn_id, .99) AS f, "
        "APPROX_PERCENTILE(amount, 1e-3) AS g"))
    got = typed_aggregations(result)
    assert got == {"a": ("approx_count_distinct", "BIGINT", ()),
                   "b": ("approx_count_distinct", "BIGINT", ()),
                   "c": ("approx_count_distinct", "BIGINT", ()),
                   "d": ("approx_count_distinct", "BIGINT", ()),
                   "e": ("approx_percentile", "DOUBLE", (0.5,)),
                   "f": ("approx_percentile", "DOUBLE", (0.99,)),
                   "g": ("approx_percentile", "DOUBLE", (0.001,))}
    assert {f.name: f.type for f in result.manifest.view("g").features}["e_7d"] == "DOUBLE"


def test_p_reaches_the_fingerprint(project: Compile) -> None:
    half = project(_view("APPROX_PERCENTILE(amount, 0.5) AS p"))
    most = project(_view("APPROX_PERCENTILE(amount, 0.9) AS p"))
    assert half.ok and most.ok
    assert half.manifest.view("g").fingerprint != most.manifest.view("g").fingerprint


P_RANGE = "APPROX_PERCENTILE's p must be a number strictly between 0 and 1, got {}"
BAD = [
    ("p-one", "APPROX_PERCENTILE(amount, 1) AS l", "3:43",
     "E430", P_RANGE.format(1), "1", "e.g. APPROX_PERCENTILE(x, 0.5)"),
    ("p-zero", "APPROX_PERCENTILE(amount, 0.0) AS l", "3:43",
     "E430", P_RANGE.format(0.0), "0.0", "e.g. APPROX_PERCENTILE(x, 0.5)"),
    ("p-percent", "APPROX_PERCENTILE(amount, 95) AS l", "3:43",
     "E430", P_RANGE.format(95), "95", "e.g. APPROX_PERCENTILE(x, 0.5)"),
    ("p-negative", "APPROX_PERCENTILE(amount, -0.5) AS l", "3:43",
     "E430", P_RANGE.format(-0.5), "-0.5", "e.g. APPROX_PERCENTILE(x, 0.5)"),
    ("p-column", "APPROX_PERCENTILE(amount, amount) AS l", "3:43",
     "E430", "APPROX_PERCENTILE()'s p must be a number written in the query, not amount",
     "amount", "e.g. APPROX_PERCENTILE(x, 0.5)"),
    ("p-missing", "APPROX_PERCENTILE(amount) AS l", "3:17",
     "E430", "APPROX_PERCENTILE() takes 2 arguments: APPROX_PERCENTILE(x, p)",
     "APPROX_PERCENTILE(", "e.g. APPROX_PERCENTILE(x, 0.5)"),
    ("p-extra", "APPROX_PERCENTILE(amount, 0.5, 100) AS l", "3:48",
     "E430", "APPROX_PERCENTILE() takes 2 arguments: APPROX_PERCENTILE(x, p)", "100",
     "e.g. APPROX_PERCENTILE(x, 0.5)"),
    ("percentile-of-string", "APPROX_PERCENTILE(channel, 0.5) AS l", "3:17",
     "E418", "APPROX_PERCENTILE() needs a numeric input (BIGINT, INT, DOUBLE, FLOAT); 'l' "
     "aggregates STRING", "APPROX_PERCENTILE(", None),
    ("distinct-of-timestamp", "APPROX_COUNT_DISTINCT(event_ts) AS l", "3:17",
     "E418", "APPROX_COUNT_DISTINCT() needs a BIGINT, INT, DOUBLE, FLOAT, BOOLEAN or STRING "
     "input; 'l' aggregates TIMESTAMP", "APPROX_COUNT_DISTINCT(", None),
]


@pytest.mark.parametrize(BAD_FIELDS, BAD, ids=[b[0] for b in BAD])
def test_a_bad_argument_or_input_is_one_positioned_error(
        project: Compile, tmp_path: Path, case: str, select: str, where: str, code: str,
        message: str, at: str, hint: str | None) -> None:
    assert_one_positioned_error(project(_view(select)), tmp_path, where, code, message, at, hint)


def test_a_misspelt_sketch_function_gets_a_did_you_mean(project: Compile) -> None:
    assert_misspelt(project(_view("APPROX_PERCENTIL(amount, 0.5) AS l")),
                    "did you mean 'APPROX_PERCENTILE'?")
