"""Lowering of a `PointInTimeJoin` to SQL, per engine.

- DuckDB: one `ASOF LEFT JOIN` per row-level view (the LEFT form, so no spine row is dropped),
  over the view's rows deduplicated on (keys, ts) by the tie-break order.
- Spark (no ASOF): per row-level view, the spine rows and the view's rows are unioned, ordered
  by (keys, time, spine-before-rows, created, features) and `last(row, ignoreNulls)` over the
  running window gives each spine row the latest earlier row (one pass for all views on the
  same keys); the spine rows, with the columns found so far, feed the next pass.
- Aggregate views, both engines: the spine's (keys, floor(t, S)) anchors are inserted among the
  tiles as empty rows at position anchor - S, and a RANGE window of W - S before each anchor row
  merges exactly the tiles in [anchor - W, anchor).
- `known_at` aggregate views: each distinct (keys, t) of the spine joined to the partials of
  its window known by t, merged over that partition in (tile start, known) order.
- `known_at` row-level views: a row is seen from max(ts + 1us, created); the winner at t is
  the running best (tie-break order) over the rows seen by then: DuckDB ranks the rows, takes
  the running minimum rank and an `ASOF JOIN` on the time seen; Spark a running max of the
  tie-break struct over spine and rows unioned by that time.

The spine relation `_featql_spine` holds RID, the join keys and SPINE_TS; the output is RID then
one column per feature, ordered by RID.
"""

from __future__ import annotations

from dataclasses import replace

from featql.dialects.pit import (
    CREATED,
    KNOWN,
    RID,
    SPINE_TS,
    OutputFeature,
    PointInTimeJoin,
    ViewJoin,
)
from featql.semantics import rows, sql
from featql.semantics.aggregates import FUNCTIONS, partial_column
from featql.semantics.time import floor_us_sql
from featql.semantics.types import sql_type

SPINE = "_featql_spine"
_US = sql.US


class _Dialect:
    """featql.semantics' SQL helpers bound to one dialect."""

    def __init__(self, name: str) -> None:
        self.name = name

    def q(self, ident: str) -> str:
        return sql.quote(self.name, ident)

    def epoch_us(self, expr: str) -> str:
        return sql.epoch_us(self.name, expr)

    def type(self, featql_type: str) -> str:
        return sql_type(self.name, featql_type)


def duckdb_sql(node: PointInTimeJoin) -> str:
    """Views joined with `verify` also return the event time of the row each spine row got,
    as `_featql_m<i>` (i: the view's position), and the spine's keys, for `duckdb_twins_sql`."""
    return _lower_duckdb(node, _Dialect("duckdb"))


def matched_column(i: int) -> str:
    return f"_featql_m{i}"


def _key_column(key: str) -> str:
    return f"_featql_key_{key}"


def duckdb_twins_sql(view: ViewJoin, i: int, result: str) -> str:
    """Does a row that some spine row got (from a join without deduplication) share its
    (keys, ts) with another row of the view? If not, no tie mattered and the join stands.
    The view's rows whose (keys, ts) some spine row got, minus the distinct such pairs: above
    0 exactly when one has a twin. Costs a semi-join of the view's rows against the matched
    pairs, not an aggregate over all of the view's rows."""
    d = _Dialect("duckdb")
    keys = [d.q(k) for k in view.keys]
    ts, m = d.q(view.timestamp), matched_column(i)
    on = " AND ".join([*(f"r.{k} = m.{k}" for k in keys), f"r.{ts} = m._featql_ts"])
    matched = (f"(SELECT {', '.join(f'{d.q(_key_column(k))} AS {d.q(k)}' for k in view.keys)}, "
               f"{m} AS _featql_ts FROM {result} WHERE {m} IS NOT NULL)")
    return (f"SELECT (SELECT count(*) FROM {d.q(view.relation)} r SEMI JOIN {matched} m "
            f"ON {on}) - (SELECT count(*) FROM (SELECT DISTINCT * FROM {matched} p) q) AS n")


def spark_sql(node: PointInTimeJoin) -> str:
    """Row-level views on the same keys share one window pass; passes are chained, each
    carrying the spine rows (with the columns found so far) through, so no join back is
    needed. The result is unordered: the caller sorts by RID."""
    d = _Dialect("spark")
    carried = [RID, *node.keys, SPINE_TS]
    ctes = [f"c0 AS (SELECT {', '.join(d.q(c) for c in carried)} FROM {SPINE})"]
    t_us = d.epoch_us(SPINE_TS)
    n = 0
    selects = [f"s.{RID}"]
    groups: dict[tuple[str, ...], list[ViewJoin]] = {}
    for view in node.views:
        if view.kind == "row" and not view.known_at:
            groups.setdefault(view.keys, []).append(view)
    for group in groups.values():
        ctes.append(_spark_chain_cte(group, f"c{n}", f"c{n + 1}", carried, d))
        for view in group:
            carried = [*carried, *(f.column for f in view.features)]
            selects.extend(f"s.{d.q(f.column)}" for f in view.features)
        n += 1
    joins: list[str] = []
    for i, view in enumerate(node.views):
        if view.kind == "aggregate":
            _join_aggregate(view, f"v{i}", t_us, d, ctes, joins, selects)
        elif view.known_at:
            _join_known(view, f"v{i}", d, ctes, joins, selects)
    order = {c: i for i, c in enumerate([RID, *node.columns])}
    selects.sort(key=lambda e: order[e.rsplit(".", 1)[1].strip("`")])
    return ("WITH " + ",\n".join(ctes) + f"\nSELECT {', '.join(selects)}\nFROM c{n} s\n"
            + "\n".join(joins))


def _spark_chain_cte(views: list[ViewJoin], src: str, dst: str, carried: list[str],
                     d: _Dialect) -> str:
    """One window pass for row-level views sharing their keys. Each view's rows carry a struct
    (ts, created, every feature) in a column of their own; ordering by those structs breaks ties
    (Spark orders struct fields with NULL first; other views' columns are NULL), and one
    `last(..., ignoreNulls)` per view picks its latest earlier row."""
    keys = [d.q(k) for k in views[0].keys]
    spine_cols = ", ".join(d.q(c) for c in carried)
    n = len(views)
    nulls = ", ".join(f"NULL AS _featql_r{i}" for i in range(n))
    sides = [f"SELECT {spine_cols}, {d.epoch_us(SPINE_TS)} AS _featql_o, 0 AS _featql_kind, "
             f"{nulls} FROM {src}"]
    outs: list[str] = []
    for i, view in enumerate(views):
        ts = d.q(view.timestamp)
        names = list(view.tiebreak) or [f.feature for f in view.features]
        struct = rows.tiebreak_struct_sql(d.epoch_us(ts), "_featql_created",
                                          [d.q(f) for f in names])
        row_cols = ", ".join(d.q(c) if c in view.keys else f"NULL AS {d.q(c)}" for c in carried)
        structs = ", ".join(f"{struct} AS _featql_r{j}" if j == i
                            else f"NULL AS _featql_r{j}" for j in range(n))
        sides.append(f"SELECT {row_cols}, {d.epoch_us(ts)} AS _featql_o, 1 AS _featql_kind, "
                     f"{structs} FROM {d.q(view.relation)} WHERE {_not_null([*keys, ts])}")
        fresh = rows.ttl_sql(d.epoch_us(SPINE_TS), f"_featql_r{i}.ts", view.ttl_seconds)
        for f in view.features:
            value = f"_featql_r{i}.t{names.index(f.feature)}"
            outs.append(f"CASE WHEN {fresh} THEN {value} END AS {d.q(f.column)}" if fresh
                        else f"{value} AS {d.q(f.column)}")
    order = ", ".join(["_featql_o ASC NULLS FIRST", "_featql_kind",
                       *(f"_featql_r{i} ASC NULLS FIRST" for i, v in enumerate(views)
                         if not v.unique)])
    lasts = ", ".join(f"last(_featql_r{i}, true) OVER w AS _featql_r{i}" for i in range(n))
    return (f"{dst} AS (SELECT {spine_cols}, {', '.join(outs)} FROM (SELECT {spine_cols}, "
            f"_featql_kind, {lasts} FROM ({' UNION ALL '.join(sides)}) u "
            f"WINDOW w AS (PARTITION BY {', '.join(keys)} ORDER BY {order} "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) w WHERE _featql_kind = 0)")


def _lower_duckdb(node: PointInTimeJoin, d: _Dialect) -> str:
    ctes: list[str] = []
    joins: list[str] = []
    selects: list[str] = [f"s.{RID}"]
    t_us = d.epoch_us(f"s.{SPINE_TS}")
    for i, view in enumerate(node.views):
        alias = f"v{i}"
        if view.kind == "aggregate":
            _join_aggregate(view, alias, t_us, d, ctes, joins, selects)
            continue
        if view.known_at:
            _join_known(view, alias, d, ctes, joins, selects)
            continue
        ctes.append(_duck_rows_cte(view, alias, d))
        on = " AND ".join([*(f"s.{d.q(k)} = {alias}.{d.q(k)}" for k in view.keys),
                           rows.before_sql(f"s.{SPINE_TS}", f"{alias}._featql_ts")])
        joins.append(f"ASOF LEFT JOIN {alias} ON {on}")
        if view.verify:
            for k in view.keys:
                if (key := f"s.{d.q(k)} AS {d.q(_key_column(k))}") not in selects:
                    selects.append(key)
            selects.append(f"{alias}._featql_ts AS {matched_column(i)}")
        fresh = rows.ttl_sql(t_us, d.epoch_us(f"{alias}._featql_ts"), view.ttl_seconds)
        for f in view.features:
            value = f"{alias}.{d.q(f.column)}"
            selects.append(f"CASE WHEN {fresh} THEN {value} END AS {d.q(f.column)}"
                           if fresh else f"{value} AS {d.q(f.column)}")
    with_clause = ("WITH " + ",\n".join(ctes) + "\n") if ctes else ""
    return (f"{with_clause}SELECT {', '.join(selects)}\nFROM {SPINE} s\n"
            + "\n".join(joins) + f"\nORDER BY s.{RID}")


def _join_aggregate(view: ViewJoin, alias: str, t_us: str, d: _Dialect, ctes: list[str],
                    joins: list[str], selects: list[str]) -> None:
    """An aggregate view's merged windows, joined on the spine's keys and tile anchor
    (the same on both engines; `t_us` is the spine time in microseconds)."""
    if view.known_at:
        _join_known_aggregate(view, alias, t_us, d, ctes, joins, selects)
        return
    ctes.extend(_aggregate_ctes(view, alias, d))
    anchor = floor_us_sql(d.name, t_us, view.slide_seconds or 1)
    for rel, feats in ((alias, _framed(view)), (f"{alias}_j", _grouped(view))):
        if not feats:
            continue
        on = " AND ".join([*(f"s.{d.q(k)} = {rel}.{d.q(k)}" for k in view.keys),
                           f"{anchor} = {rel}._featql_anchor"])
        joins.append(f"LEFT JOIN {rel} ON {on}")
        selects.extend(f"{rel}.{d.q(f.column)}" for f in feats)


def _join_known_aggregate(view: ViewJoin, alias: str, t_us: str, d: _Dialect, ctes: list[str],
                          joins: list[str], selects: list[str]) -> None:
    """A `known_at` aggregate view (both engines). Its tiles hold several partials per tile,
    one per time known (`_featql_known`); which ones a spine row sees depends on its own t, not
    only on its anchor, so the RANGE-frame trick cannot filter them. Each distinct (keys, t) of
    the spine is joined to the partials with `anchor - W <= start < anchor` (the longest
    window) and `known <= t` (a LEFT JOIN: an empty window still gets its row), and every
    feature is merged by its function's SQL over the whole partition of that (keys, t), in
    (start, known) order: the order the online cells keep, so order-sensitive merges (Chan's
    VAR, LAST_N) fold the same partials in the same order. A shorter window masks the partials
    of the tiles before its own start (NULL partials merge as nothing)."""
    keys = [d.q(k) for k in view.keys]
    partials = _merged_partials(view)
    longest = max((f.window_seconds or 0) for f in view.features) * _US
    spine_t = d.epoch_us(SPINE_TS)
    anchor = floor_us_sql(d.name, spine_t, view.slide_seconds or 1)
    ctes.append(f"{alias}_a AS (SELECT DISTINCT {', '.join(keys)}, {spine_t} AS _featql_tus, "
                f"{anchor} AS _featql_anchor FROM {SPINE} WHERE {_not_null([*keys, SPINE_TS])})")
    start, known = d.q(view.timestamp), d.q(KNOWN)
    tiles = (f"SELECT {', '.join(keys)}, {d.epoch_us(start)} AS _featql_p, {d.epoch_us(known)} "
             f"AS _featql_kn, {', '.join(d.q(p) for p in partials)} FROM {d.q(view.relation)} "
             f"WHERE {_not_null([*keys, start, known])}")
    on = " AND ".join([*(f"a.{k} = t.{k}" for k in keys),
                       f"t._featql_p >= a._featql_anchor - {longest}",
                       "t._featql_p < a._featql_anchor", "t._featql_kn <= a._featql_tus"])
    ctes.append(f"{alias}_x AS (SELECT {', '.join(f'a.{k}' for k in keys)}, a._featql_tus, "
                f"a._featql_anchor, t._featql_p, t._featql_kn, "
                f"{', '.join(f't.{d.q(p)}' for p in partials)} FROM {alias}_a a "
                f"LEFT JOIN ({tiles}) t ON {on})")
    part = f"PARTITION BY {', '.join(keys)}, _featql_tus ORDER BY _featql_p, _featql_kn"
    frame = f"OVER ({part} ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)"
    exprs: list[str] = []
    for f in view.features:
        fn = FUNCTIONS[f.function or "count"].bind(f.args)
        w = (f.window_seconds or 0) * _US
        columns = {p: d.q(partial_column(f.aggregation or "", p)) for p in fn.merge_ops()}
        if w < longest:
            columns = {p: f"CASE WHEN _featql_p >= _featql_anchor - {w} THEN {c} END"
                       for p, c in columns.items()}
        exprs.append(f"CAST({fn.merge_sql(d.name, columns, frame)} "
                     f"AS {d.type(f.type)}) AS {d.q(f.column)}")
    cols = ", ".join(d.q(f.column) for f in view.features)
    ctes.append(f"{alias} AS (SELECT {', '.join(keys)}, _featql_tus, {cols} FROM (SELECT "
                f"{', '.join(keys)}, _featql_tus, {', '.join(exprs)}, row_number() OVER ({part}) "
                f"AS _featql_rn FROM {alias}_x) w WHERE _featql_rn = 1)")
    on = " AND ".join([*(f"s.{k} = {alias}.{k}" for k in keys),
                       f"{t_us} = {alias}._featql_tus"])
    joins.append(f"LEFT JOIN {alias} ON {on}")
    selects.extend(f"{alias}.{d.q(f.column)}" for f in view.features)


def _join_known(view: ViewJoin, alias: str, d: _Dialect, ctes: list[str], joins: list[str],
                selects: list[str]) -> None:
    """A `known_at` row-level view (both engines). A row is seen from `visible_from = max(ts +
    1us, created)` on (`ts < t` and `created <= t` at once), so the rows seen at t are those
    with visible_from <= t, a prefix in visible_from order: the winner at t is the running
    best, by the tie-break order, over that prefix. DuckDB ranks each entity's rows by the
    tie-break (1 = best), takes the running minimum rank in visible_from order (peers share
    it: RANGE), picks the prefix with an `ASOF JOIN` and the winning row back by its rank;
    Spark unions spine and rows by (visible_from, rows first) and takes the running maximum of
    the tie-break struct (whose ascending order puts the winner last). The TTL is measured on
    the winner's ts afterwards, as for every row-level view."""
    keys = [d.q(k) for k in view.keys]
    ts = d.q(view.timestamp)
    names = list(view.tiebreak) or [f.feature for f in view.features]
    valid = _not_null([*keys, ts, CREATED])
    vis = rows.visible_from_sql(d.epoch_us(ts), d.epoch_us(CREATED))
    if d.name == "spark":
        struct = rows.tiebreak_struct_sql(d.epoch_us(ts), CREATED, [d.q(n) for n in names])
        spine_side = (f"SELECT {', '.join(keys)}, {d.epoch_us(SPINE_TS)} AS _featql_o, "
                      f"1 AS _featql_kind, {RID} AS _featql_k, NULL AS _featql_r FROM {SPINE} "
                      f"WHERE {_not_null([*keys, SPINE_TS])}")
        rows_side = (f"SELECT {', '.join(keys)}, {vis} AS _featql_o, 0 AS _featql_kind, "
                     f"NULL AS _featql_k, {struct} AS _featql_r FROM {d.q(view.relation)} "
                     f"WHERE {valid}")
        fresh = rows.ttl_sql("_featql_o", "_featql_best.ts", view.ttl_seconds)
        outs = _outputs(view, fresh, {f.column: f"_featql_best.t{names.index(f.feature)}"
                                      for f in view.features}, d)
        ctes.append(f"{alias} AS (SELECT _featql_k, {outs} FROM (SELECT _featql_k, _featql_o, "
                    f"_featql_kind, max(_featql_r) OVER (PARTITION BY {', '.join(keys)} ORDER BY "
                    "_featql_o, _featql_kind ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) "
                    f"AS _featql_best FROM ({spine_side} UNION ALL {rows_side}) u) w "
                    "WHERE _featql_kind = 1)")
    else:
        order = rows.tiebreak_order_sql(d.name, CREATED, names, timestamp=view.timestamp)
        feats = ", ".join(f"{d.q(f.feature)} AS {d.q(f.column)}" for f in view.features)
        on = " AND ".join(f"p.{k} = r.{k}" for k in keys)
        spine_on = " AND ".join([*(f"s.{k} = p.{k}" for k in keys),
                                 "s._featql_tus >= p._featql_v"])
        ctes.append(f"{alias}_r AS (SELECT {', '.join(keys)}, {ts} AS _featql_ts, {feats}, "
                    f"{vis} AS _featql_v, row_number() OVER (PARTITION BY {', '.join(keys)} "
                    f"ORDER BY {order}) AS _featql_rank FROM {d.q(view.relation)} "
                    f"WHERE {valid})")
        ctes.append(f"{alias}_p AS (SELECT {', '.join(keys)}, _featql_v, min(_featql_rank) "
                    f"OVER (PARTITION BY {', '.join(keys)} ORDER BY _featql_v RANGE BETWEEN "
                    f"UNBOUNDED PRECEDING AND CURRENT ROW) AS _featql_best FROM {alias}_r)")
        fresh = rows.ttl_sql("s._featql_tus", d.epoch_us("r._featql_ts"), view.ttl_seconds)
        outs = _outputs(view, fresh, {f.column: f"r.{d.q(f.column)}" for f in view.features}, d)
        ctes.append(f"{alias} AS (SELECT s.{RID} AS _featql_k, {outs} FROM "
                    f"(SELECT {RID}, {', '.join(keys)}, {d.epoch_us(SPINE_TS)} AS _featql_tus "
                    f"FROM {SPINE}) s ASOF JOIN {alias}_p p ON {spine_on} JOIN {alias}_r r ON "
                    f"{on} AND r._featql_rank = p._featql_best)")
    joins.append(f"LEFT JOIN {alias} ON s.{RID} = {alias}._featql_k")
    selects.extend(f"{alias}.{d.q(f.column)}" for f in view.features)


def _outputs(view: ViewJoin, fresh: str, values: dict[str, str], d: _Dialect) -> str:
    """Each feature's value, NULL when the TTL test `fresh` fails ('' without a TTL)."""
    return ", ".join(f"CASE WHEN {fresh} THEN {values[f.column]} END AS {d.q(f.column)}"
                     if fresh else f"{values[f.column]} AS {d.q(f.column)}"
                     for f in view.features)


def _not_null(cols: list[str], prefix: str = "") -> str:
    return " AND ".join(f"{prefix}{c} IS NOT NULL" for c in cols)


def _duck_rows_cte(view: ViewJoin, alias: str, d: _Dialect) -> str:
    keys = [d.q(k) for k in view.keys]
    ts = d.q(view.timestamp)
    order = rows.tiebreak_order_sql(d.name, "_featql_created", view.tiebreak)
    feats = ", ".join(f"{d.q(f.feature)} AS {d.q(f.column)}" for f in view.features)
    dedup = "" if view.unique else (f" QUALIFY row_number() OVER (PARTITION BY "
                                    f"{', '.join(keys)}, {ts} ORDER BY {order}) = 1")
    return (f"{alias} AS (SELECT {', '.join(keys)}, {ts} AS _featql_ts, {feats} "
            f"FROM {d.q(view.relation)} WHERE {_not_null([*keys, ts])}{dedup})")


def dedup_rows_sql(engine: str, sql: str, columns: list[str], keys: list[str], ts: str,
                   tiebreak: list[str]) -> str:
    """A row-level view's rows with only the tie winner per (keys, ts) kept: what the offline
    store holds, so training sets from the store need no deduplication."""
    d = _Dialect(engine)
    order = rows.tiebreak_order_sql(engine, "_featql_created", tiebreak)
    cols = ", ".join(d.q(c) for c in columns)
    return (f"SELECT {cols} FROM (SELECT *, row_number() OVER (PARTITION BY "
            f"{', '.join(d.q(k) for k in keys)}, {d.q(ts)} ORDER BY {order}) AS _featql_rn "
            f"FROM ({sql}) x) y WHERE _featql_rn = 1")


def _grouped(view: ViewJoin) -> list[OutputFeature]:
    """Features merged by a join of anchors and tiles grouped per anchor (`_grouped_cte`):
    functions whose merge does not depend on the tiles' order (LAST_N, TOP_K: `order_free`).
    A list over a window frame is built for every tile row too; grouped, once per anchor."""
    return [f for f in view.features if FUNCTIONS[f.function or "count"].order_free]


def _framed(view: ViewJoin) -> list[OutputFeature]:
    """Features merged over a window frame of the tiles and anchors (`_aggregate_ctes`)."""
    return [f for f in view.features if not FUNCTIONS[f.function or "count"].order_free]


def _grouped_cte(view: ViewJoin, alias: str, d: _Dialect, feats: list[OutputFeature]) -> str:
    """`<alias>_j`: per anchor, the tiles with `anchor - W <= start < anchor` of the longest
    window joined and grouped; each feature's merge gets the tiles of its own window through
    `FILTER (WHERE ...)` (both engines)."""
    keys = [d.q(k) for k in view.keys]
    partials: list[str] = []
    for f in feats:
        for p in FUNCTIONS[f.function or "count"].bind(f.args).merge_ops():
            col = partial_column(f.aggregation or "", p)
            if col not in partials:
                partials.append(col)
    tiles = (f"SELECT {', '.join(keys)}, {d.epoch_us(d.q(view.timestamp))} AS _featql_p, "
             f"{', '.join(d.q(p) for p in partials)} FROM {d.q(view.relation)} "
             f"WHERE {_not_null([*keys, d.q(view.timestamp)])}")
    longest = max((f.window_seconds or 0) for f in feats) * _US
    on = " AND ".join([*(f"a.{k} = t.{k}" for k in keys),
                       f"t._featql_p >= a._featql_anchor - {longest}",
                       "t._featql_p < a._featql_anchor"])
    exprs = []
    for f in feats:
        fn = FUNCTIONS[f.function or "count"].bind(f.args)
        columns = {p: d.q(partial_column(f.aggregation or "", p)) for p in fn.merge_ops()}
        frame = f"FILTER (WHERE t._featql_p >= a._featql_anchor - {(f.window_seconds or 0) * _US})"
        exprs.append(f"CAST({fn.merge_sql(d.name, columns, frame)} "
                     f"AS {d.type(f.type)}) AS {d.q(f.column)}")
    group = [*(f"a.{k}" for k in keys), "a._featql_anchor"]
    return (f"{alias}_j AS (SELECT {', '.join(group)}, {', '.join(exprs)} "
            f"FROM {alias}_a a JOIN ({tiles}) t ON {on} GROUP BY {', '.join(group)})")


def _aggregate_ctes(view: ViewJoin, alias: str, d: _Dialect) -> list[str]:
    grouped = _grouped(view)
    if grouped:  # the frame below merges the other features only
        view = replace(view, features=tuple(_framed(view)))
    ctes = _frame_ctes(view, alias, d)
    if grouped:
        ctes.append(_grouped_cte(view, alias, d, grouped))
    return ctes


def _merged_partials(view: ViewJoin) -> list[str]:
    """The partial columns the view's features merge, each once, in feature order."""
    partials: list[str] = []
    for f in view.features:
        for p in FUNCTIONS[f.function or "count"].bind(f.args).merge_ops():
            col = partial_column(f.aggregation or "", p)
            if col not in partials:
                partials.append(col)
    return partials


def _frame_ctes(view: ViewJoin, alias: str, d: _Dialect) -> list[str]:
    keys = [d.q(k) for k in view.keys]
    slide_us = (view.slide_seconds or 1) * _US
    partials = _merged_partials(view)
    anchor = floor_us_sql(d.name, d.epoch_us(SPINE_TS), view.slide_seconds or 1)
    anchors = (f"{alias}_a AS (SELECT DISTINCT {', '.join(keys)}, {anchor} AS _featql_anchor "
               f"FROM {SPINE} WHERE {_not_null([*keys, SPINE_TS])})")
    if not view.features:  # every feature is merged by `_grouped_cte`
        return [anchors]
    tiles_side = (f"SELECT {', '.join(keys)}, {d.epoch_us(d.q(view.timestamp))} AS _featql_p, "
                  f"0 AS _featql_is_anchor, {', '.join(d.q(p) for p in partials)} "
                  f"FROM {d.q(view.relation)} WHERE {_not_null([*keys, d.q(view.timestamp)])}")
    anchor_side = (f"SELECT {', '.join(keys)}, _featql_anchor - {slide_us} AS _featql_p, "
                   f"1 AS _featql_is_anchor, {', '.join('NULL' for _ in partials)} "
                   f"FROM {alias}_a")
    exprs: list[str] = []
    for f in view.features:
        frame = (f"OVER (PARTITION BY {', '.join(keys)} ORDER BY _featql_p RANGE BETWEEN "
                 f"{(f.window_seconds or 0) * _US - slide_us} PRECEDING AND CURRENT ROW)")
        fn = FUNCTIONS[f.function or "count"].bind(f.args)
        columns = {p: d.q(partial_column(f.aggregation or "", p)) for p in fn.merge_ops()}
        exprs.append(f"CAST({fn.merge_sql(d.name, columns, frame)} "
                     f"AS {d.type(f.type)}) AS {d.q(f.column)}")
    cols = ", ".join(d.q(f.column) for f in view.features)
    merged = (f"{alias} AS (SELECT {', '.join(keys)}, _featql_p + {slide_us} AS _featql_anchor, "
              f"{cols} FROM (SELECT {', '.join(keys)}, _featql_p, _featql_is_anchor, "
              f"{', '.join(exprs)} FROM ({tiles_side} UNION ALL {anchor_side}) u) w "
              "WHERE _featql_is_anchor = 1)")
    return [anchors, merged]

