"""SQL value semantics shared by the request-transform evaluator (DuckDB's behaviour).

Coarse types, the errors, and the run-time helpers the compiled closures call: division by
zero as IEEE (±inf, NaN), truncating `//` and `%` that raise on an integer zero, BIGINT overflow
checks, ROUND half away from zero on the exact binary value, casts, and case mapping.
"""

from __future__ import annotations

import decimal
import math
import re
from typing import Any

from featql.core.errors import UserError

INT, DBL, STR, BOOL, NULL, TS = "BIGINT", "DOUBLE", "VARCHAR", "BOOLEAN", "NULL", "TIMESTAMP"
NUM = (INT, DBL, NULL)
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


class TransformCompileError(UserError):
    """The transform uses SQL the serving evaluator does not support (or mistypes it)."""


class EvalError(UserError):
    """A value-dependent SQL error at run time (overflow, integer division by zero, bad cast)."""


def sql_type(t: str) -> str:
    """Coarse evaluator type of a manifest type name."""
    t = t.upper()
    if t in ("BIGINT", "INT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT"):
        return INT
    if t in ("DOUBLE", "FLOAT", "REAL", "DECIMAL"):
        return DBL
    if t in ("STRING", "VARCHAR", "TEXT"):
        return STR
    if t == "BOOLEAN":
        return BOOL
    return TS


def _int_result(v: int, op: str) -> int:
    if v < _I64_MIN or v > _I64_MAX:
        raise EvalError(f"Out of Range Error: overflow in {op} of BIGINT")
    return v


def _div(a: Any, b: Any) -> float:
    a, b = float(a), float(b)
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _intdiv(a: Any, b: Any) -> Any:
    if b == 0:
        raise EvalError("Division by zero in expression (//)")
    if isinstance(a, int) and isinstance(b, int):
        q = abs(a) // abs(b)
        return _int_result(q if (a >= 0) == (b >= 0) else -q, "division")
    return float(a) / float(b)  # DuckDB's // on doubles is plain division


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int):
        if b == 0:
            raise EvalError("Division by zero in expression (%)")
        r = abs(a) % abs(b)
        return r if a >= 0 else -r
    if float(b) == 0:
        return math.nan
    return math.fmod(float(a), float(b))


def _cmp_norm(a: Any, b: Any) -> tuple[Any, Any]:
    if isinstance(a, float) != isinstance(b, float) and not isinstance(a, str | bool):
        return float(a), float(b)
    return a, b


def _round(x: Any, digits: int) -> Any:
    if isinstance(x, int):
        if digits >= 0:
            return x
        m = 10 ** (-digits)
        q = (abs(x) + m // 2) // m * m
        return _int_result(q if x >= 0 else -q, "round")
    if math.isnan(x) or math.isinf(x):
        return x
    if digits == 0:
        return _round_half_away(x)
    if abs(x) >= 2.0**52:
        return x
    # DuckDB rounds the exact binary value (2.675 is 2.67499999... -> 2.67)
    with decimal.localcontext() as ctx:
        ctx.prec = 800
        q = decimal.Decimal(x).quantize(decimal.Decimal(1).scaleb(-digits),
                                        rounding=decimal.ROUND_HALF_UP)
    return math.copysign(float(q), x) if q == 0 else float(q)


def _round_half_away(v: float) -> float:
    """C's round(): half away from zero, exact for every double."""
    if not math.isfinite(v) or abs(v) >= 2.0**52:
        return v
    a = abs(v)
    r = math.floor(a)
    if a - r >= 0.5:
        r += 1
    return math.copysign(float(r), v)


def _to_int(v: Any) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float):
        if not (math.isfinite(v) and -9.223372036854776e18 <= v < 9.223372036854776e18):
            raise EvalError(f"Conversion Error: DOUBLE {v} out of range for BIGINT")
        return round(v)  # DuckDB casts DOUBLE to BIGINT rounding half to even
    if isinstance(v, str):
        try:
            return _to_int(float(v.strip())) if re.search(r"[.eE]", v) else _int_result(
                int(v.strip()), "cast")
        except ValueError as e:
            raise EvalError(f"Conversion Error: could not convert string '{v}' to BIGINT") from e
    return _int_result(int(v), "cast")


def _to_float(v: Any) -> float:
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError as e:
            raise EvalError(f"Conversion Error: could not convert string '{v}' to DOUBLE") from e
    return float(v)


def _to_bool(v: Any) -> bool:
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("true", "t", "1", "yes", "y"):
            return True
        if s in ("false", "f", "0", "no", "n"):
            return False
        raise EvalError(f"Conversion Error: could not convert string '{v}' to BOOLEAN")
    return bool(v)


def _to_str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _upper(s: str) -> str:
    return "".join("ẞ" if ch == "ß" else (u if len(u := ch.upper()) == 1 else ch) for ch in s)


def _lower(s: str) -> str:
    return "".join(lo if len(lo := ch.lower()) == 1 else ch for ch in s)


def _like_regex(pattern: str) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(out), re.DOTALL)
