"""LAST_N, LAST_DISTINCT_N, FIRST_N, FIRST_DISTINCT_N and TOP_K: exact, array-valued aggregates.

The ordered functions rank a window's events by (event time, value): LAST_N(x, n) is the values
of the n greatest entries, newest first; FIRST_N(x, n) the n smallest, oldest first. Ties on the
event time are broken by the value (the greater value ranks as newer), which is the tie-break of
`featql.semantics.rows` (event time, then created, then the value) without `created`: aggregate
views do not carry the source's created column (`featql.compiler` sets it for row-level views
only). NULL inputs are skipped. The DISTINCT forms keep each value once, at its best entry (the
newest for LAST, the oldest for FIRST), then the n best. A window with no non-NULL input is
NULL (as SUM), not an empty array. Values order as the engines compare them: integers and
doubles by value, text by its UTF-8 bytes (Python's code point order is the same); NaN and
-0.0 are not given an order of their own (do not rank doubles that hold them).

The partial of a tile is its n best entries, as two aligned arrays: `times` (epoch
microseconds) and `values`, best first (for the DISTINCT forms, n best distinct values). The
window merge collects the entries of its tiles in tile order and selects the n best again:
the n best of a union are among the n best of each part (per value, for DISTINCT).

TOP_K(x, k): the k most frequent non-NULL values, most frequent first, equal counts by the
smaller value first. Its partial is the tile's exact histogram: `hist_values` (the distinct
values, ascending) and `hist_counts`. Its size is the number of distinct values per tile, and a
window reads the histograms of all its tiles: with d distinct values per tile, a 30-day window
on a 1-hour slide reads up to 720 × d (value, count) pairs per entity. Use it on low-cardinality
columns (a channel, a country, a merchant category), not on identifiers.

Result types: ARRAY<BIGINT> (BIGINT, INT inputs), ARRAY<DOUBLE> (DOUBLE, FLOAT), ARRAY<STRING>.
In SQL every merge is a lambda over the list of the window's tiles (`list(...)` in DuckDB,
`collect_list(...)` in Spark, followed by `frame`: the point-in-time join groups the tiles per
spine anchor with `FILTER (WHERE ...)`, as the merge does not depend on the tiles' order,
`order_free`; an `OVER (...)` frame works too); `_let` binds a repeated expression once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from featql.semantics.aggregates import AggregateFunction, Partial, Window, partial_column
from featql.semantics.sql import epoch_us
from featql.semantics.types import python_value

if TYPE_CHECKING:
    from sqlglot import exp

_ELEMENT = {"BIGINT": "BIGINT", "INT": "BIGINT", "DOUBLE": "DOUBLE", "FLOAT": "DOUBLE",
            "STRING": "STRING"}


def _let(dialect: str, value: str, var: str, body: str) -> str:
    """`body` with `var` bound to `value`, evaluated once (a one-element list mapped)."""
    if dialect == "duckdb":
        return f"list_transform([{value}], lambda {var}: {body})[1]"
    return f"transform(array({value}), {var} -> {body})[0]"


def _lam(dialect: str, params: str, body: str) -> str:
    return f"lambda {params}: {body}" if dialect == "duckdb" else \
        (f"({params}) -> {body}" if "," in params else f"{params} -> {body}")


def _fn(dialect: str, duckdb: str, spark: str) -> str:
    return duckdb if dialect == "duckdb" else spark


class _ArrayFunction(AggregateFunction):
    """Shared by the ranked functions: one integer argument, an ARRAY<element> result."""

    arity = ("n",)
    wants = "a BIGINT, INT, DOUBLE, FLOAT or STRING input"
    order_free = True  # entries are ranked, counts added: any tile order merges the same
    parts: ClassVar[tuple[str, str]]  # the two partial arrays
    result_part: ClassVar[str]  # the one finalized

    def sqlglot_class(self) -> type[exp.AggFunc]:
        from featql.semantics import calls

        cls: type[exp.AggFunc] = getattr(calls, type(self).__name__)
        return cls

    def accepts(self, input_type: str | None) -> bool:
        return input_type in _ELEMENT

    def result_type(self, input_type: str | None) -> str:
        return f"ARRAY<{_ELEMENT.get(input_type or '', 'STRING')}>"

    def input_cast(self, input_type: str | None) -> str | None:
        element = _ELEMENT.get(input_type or "")
        return element if element is not None and element != input_type else None

    def check_args(self, args: Sequence[Any]) -> str | None:
        why = super().check_args(args)
        if why is not None:
            return why
        n = args[0]
        if isinstance(n, bool) or not isinstance(n, int):
            return f"{self.sql_name}()'s {self.arity[0]} must be a positive integer literal, " \
                f"not {n!r}"
        if n <= 0:
            return f"{self.sql_name}()'s {self.arity[0]} must be at least 1, not {n}"
        return None

    @property
    def n(self) -> int:
        return int(self.args[0]) if self.args else 1

    def finalize_sql(self, dialect: str, merged: Mapping[str, str]) -> str:
        raise NotImplementedError("merged by merge_sql")

    def _entries_sql(self, dialect: str, columns: Mapping[str, str], frame: str) -> str:
        """The (a, b) entries of every tile of the window frame, flattened in tile order."""
        a, b = (columns[p] for p in self.parts)
        if dialect == "duckdb":
            return (f"flatten(list_transform(list_filter(list(struct_pack(a := {a}, b := {b})) "
                    f"{frame}, lambda s: len(s.a) > 0), lambda s: list_transform("
                    "range(1, len(s.a) + 1), lambda i: struct_pack(a := s.a[i], b := s.b[i]))))")
        return (f"flatten(transform(filter(collect_list(named_struct('a', {a}, 'b', {b})) "
                f"{frame}, s -> size(s.a) > 0), s -> zip_with(s.a, s.b, (x, y) -> "
                "named_struct('a', x, 'b', y))))")

    def finalize(self, merged: Mapping[str, Any], result_type: str) -> Any:
        values = merged[self.result_part]
        if not values:
            return None
        element = result_type[6:-1] if result_type.startswith("ARRAY<") else result_type
        return [python_value(v, element) for v in values]

    def _columns(self, window: Window, aggregation: str) -> list[tuple[Any, Any]]:
        """Every tile's entries, aligned, in tile order."""
        a = window.column(partial_column(aggregation, self.parts[0]))
        b = window.column(partial_column(aggregation, self.parts[1]))
        out: list[tuple[Any, Any]] = []
        for xs, ys in zip(a, b, strict=True):
            if xs:
                out.extend(zip(xs, ys, strict=True))
        return out


class _Ordered(_ArrayFunction):
    """LAST_N / FIRST_N and their DISTINCT forms: entries (event time us, value)."""

    ordered = True
    parts = ("times", "values")
    result_part = "values"
    newest: ClassVar[bool]  # LAST (descending) or FIRST (ascending)
    distinct: ClassVar[bool]

    def partials(self, result_type: str) -> tuple[Partial, ...]:
        return (Partial("times", "ARRAY<BIGINT>", "custom", "custom"),
                Partial("values", result_type, "custom", "custom"))

    def select(self, entries: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
        """The n best entries: sorted by (time, value), newest or oldest first, deduplicated
        by value (keeping the best entry) for the DISTINCT forms."""
        ranked = sorted(entries, reverse=self.newest)
        if self.distinct:
            seen: set[Any] = set()
            kept = []
            for e in ranked:
                if e[1] not in seen:
                    seen.add(e[1])
                    kept.append(e)
            ranked = kept
        return ranked[:self.n]

    def _select_sql(self, dialect: str, entries: str, struct_a: str) -> str:
        """SQL of `select` over a list of structs (`struct_a` is the time field's name, the
        value is `b`), as a list of structs. DISTINCT: sorted by (value, time) the same way,
        the first entry of each value is its best one (one pass, no search per entry)."""
        desc = self.newest
        if self.distinct:
            by_value = _fn(dialect, f"list_sort(list_transform({entries}, lambda e: "
                           f"struct_pack(b := e.b, a := e.a)), '{'DESC' if desc else 'ASC'}')",
                           f"sort_array(transform({entries}, e -> named_struct('b', e.b, "
                           f"'a', e.a)), {'false' if desc else 'true'})")
            firsts = _fn(dialect, "list_transform(list_filter(bv, lambda e, i: i = 1 OR "
                         "bv[i - 1].b <> e.b), lambda e: struct_pack(a := e.a, b := e.b))",
                         "transform(filter(bv, (e, i) -> i = 0 OR bv[i - 1].b != e.b), "
                         "e -> named_struct('a', e.a, 'b', e.b))")
            entries = _let(dialect, by_value, "bv", firsts)
        order = _fn(dialect, f"list_sort({entries}, '{'DESC' if desc else 'ASC'}')",
                    f"sort_array({entries}, {'false' if desc else 'true'})")
        return _fn(dialect, f"list_slice({order}, 1, {self.n})", f"slice({order}, 1, {self.n})")

    def partial_sql(self, dialect: str, partial: str, input_sql: str,
                    time_sql: str | None) -> str:
        if time_sql is None:
            raise ValueError(f"{self.sql_name}'s partials need the event time")
        t = epoch_us(dialect, time_sql)
        if dialect == "duckdb":
            entries = (f"list(struct_pack(a := {t}, b := {input_sql})) "
                       f"FILTER (WHERE {input_sql} IS NOT NULL)")
        else:
            entries = (f"collect_list(CASE WHEN {input_sql} IS NOT NULL THEN "
                       f"named_struct('a', {t}, 'b', {input_sql}) END)")
        field = "a" if partial == "times" else "b"
        picked = _fn(dialect, f"list_transform({self._select_sql(dialect, entries, 'a')}, "
                     f"lambda e: e.{field})",
                     f"transform({self._select_sql(dialect, entries, 'a')}, e -> e.{field})")
        return f"CASE WHEN COUNT({input_sql}) > 0 THEN {picked} END"

    def merge_sql(self, dialect: str, columns: Mapping[str, str], frame: str) -> str:
        picked = self._select_sql(dialect, "es", "a")
        values = _fn(dialect, f"list_transform({picked}, lambda e: e.b)",
                     f"transform({picked}, e -> e.b)")
        size = _fn(dialect, "len(es)", "size(es)")
        return _let(dialect, self._entries_sql(dialect, columns, frame), "es",
                    f"CASE WHEN {size} > 0 THEN {values} END")

    def fold(self, values: Sequence[Any]) -> dict[str, Any]:
        """`values`: (event time us, input value) pairs."""
        picked = self.select([(int(t), v) for t, v in values if v is not None])
        if not picked:
            return {"times": None, "values": None}
        return {"times": [t for t, _ in picked], "values": [v for _, v in picked]}

    def merge(self, window: Window, aggregation: str) -> dict[str, Any]:
        picked = self.select(self._columns(window, aggregation))
        return {"times": [t for t, _ in picked] or None, "values": [v for _, v in picked] or None}


class LastN(_Ordered):
    name, sql_name, newest, distinct = "last_n", "LAST_N", True, False


class LastDistinctN(_Ordered):
    name, sql_name, newest, distinct = "last_distinct_n", "LAST_DISTINCT_N", True, True


class FirstN(_Ordered):
    name, sql_name, newest, distinct = "first_n", "FIRST_N", False, False


class FirstDistinctN(_Ordered):
    name, sql_name, newest, distinct = "first_distinct_n", "FIRST_DISTINCT_N", False, True


class TopK(_ArrayFunction):
    """TOP_K(x, k): the k most frequent values; the partial is the tile's exact histogram."""

    name, sql_name = "top_k", "TOP_K"
    arity = ("k",)
    parts = ("hist_values", "hist_counts")
    result_part = "hist_values"

    def partials(self, result_type: str) -> tuple[Partial, ...]:
        return (Partial("hist_values", result_type, "custom", "custom"),
                Partial("hist_counts", "ARRAY<BIGINT>", "custom", "custom"))

    def top(self, counts: Mapping[Any, int]) -> list[Any]:
        return [v for v, _ in sorted(counts.items(), key=lambda e: (-e[1], e[0]))[:self.n]]

    def partial_sql(self, dialect: str, partial: str, input_sql: str,
                    time_sql: str | None) -> str:
        if dialect == "duckdb":
            field = "key" if partial == "hist_values" else "value"
            built = (f"list_transform(list_sort(map_entries(histogram({input_sql}))), "
                     f"lambda e: e.{field})")
        else:
            s = f"array_sort(collect_list({input_sql}))"
            built = (f"array_distinct({s})" if partial == "hist_values" else
                     f"transform(array_distinct({s}), u -> size(filter({s}, y -> y = u)))")
        return f"CASE WHEN COUNT({input_sql}) > 0 THEN {built} END"

    def merge_sql(self, dialect: str, columns: Mapping[str, str], frame: str) -> str:
        if dialect == "duckdb":
            keys = "list_distinct(list_transform(es, lambda e: e.a))"
            total = "list_sum(list_transform(list_filter(es, lambda e: e.a = u), lambda e: e.b))"
            ranked = f"list_transform({keys}, lambda u: struct_pack(c := -({total}), v := u))"
            top = f"list_transform(list_slice(list_sort({ranked}), 1, {self.n}), lambda e: e.v)"
            size = "len(es)"
        else:
            keys = "array_distinct(transform(es, e -> e.a))"
            total = "aggregate(filter(es, e -> e.a = u), CAST(0 AS BIGINT), (acc, e) -> acc + e.b)"
            ranked = f"transform({keys}, u -> named_struct('c', -({total}), 'v', u))"
            top = f"transform(slice(sort_array({ranked}, true), 1, {self.n}), e -> e.v)"
            size = "size(es)"
        return _let(dialect, self._entries_sql(dialect, columns, frame), "es",
                    f"CASE WHEN {size} > 0 THEN {top} END")

    def fold(self, values: Sequence[Any]) -> dict[str, Any]:
        counts = Counter(v for v in values if v is not None)
        if not counts:
            return {"hist_values": None, "hist_counts": None}
        keys = sorted(counts)
        return {"hist_values": keys, "hist_counts": [counts[k] for k in keys]}

    def merge(self, window: Window, aggregation: str) -> dict[str, Any]:
        """The window's whole histogram (a partial like a tile's: values ascending)."""
        counts: Counter[Any] = Counter()
        for v, c in self._columns(window, aggregation):
            counts[v] += int(c)
        keys = sorted(counts)
        return {"hist_values": keys or None, "hist_counts": [counts[k] for k in keys] or None}

    def finalize(self, merged: Mapping[str, Any], result_type: str) -> Any:
        values, counts = merged["hist_values"], merged["hist_counts"]
        if not values:
            return None
        top = self.top(dict(zip(values, counts, strict=True)))
        return super().finalize({"hist_values": top}, result_type)


RANKED: tuple[AggregateFunction, ...] = (LastN(), LastDistinctN(), FirstN(), FirstDistinctN(),
                                          TopK())
