"""Column-level lineage: edges built from qualified queries, trace trees, rendering, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlglot
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import build_scope

from featql.compiler.lineage import (
    Direction,
    LineageNode,
    _expand,
    _graph,
    _QueryWalk,
    render_tree,
    trace,
    unknown_target,
)
from featql.compiler.project import compile_project
from featql.compiler.typecheck import make_schema
from featql.core.ir import LineageEdge, Manifest
from featql.examples.generate import generate

EXAMPLE = Path(__file__).resolve().parents[1] / "features"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """The example project on a little generated data (the users source reads its schema)."""
    root = tmp_path_factory.mktemp("lineage") / "features"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("data", "target", ".featql"))
    generate(root, transactions=500, days=3)
    result = compile_project(root)
    assert result.ok, [d.headline() for d in result.diagnostics]
    assert result.manifest is not None
    return result.manifest


SHOP = {
    "featql.toml": '[project]\nname = "shop"\n',
    "sources/orders.sql": """\
-- @source(name = orders, timestamp = order_ts, batch = parquet('data/orders/'))
CREATE TABLE orders (order_id BIGINT, customer_id BIGINT, store_id BIGINT, total DOUBLE,
                     status STRING, order_ts TIMESTAMP);
""",
    "sources/stores.sql": """\
-- @source(name = stores, timestamp = updated_at, batch = parquet('data/stores/'))
CREATE TABLE stores (store_id BIGINT, region STRING, is_open BOOLEAN, updated_at TIMESTAMP);
""",
    "sources/returns.sql": """\
-- @source(name = returns, timestamp = returned_ts, batch = parquet('data/returns/'))
CREATE TABLE returns (customer_id BIGINT, amount DOUBLE, returned_ts TIMESTAMP);
""",
    "entities/customer.sql": "-- @entity(name = customer, keys = [customer_id BIGINT])\n",
    "entities/store.sql": "-- @entity(name = store, keys = [store_id BIGINT])\n",
    # a CTE with a WHERE, joined to a source on a key, filtered again outside
    "views/customer_orders.sql": """\
-- @feature_view(name = customer_orders, entity = customer, timestamp = order_ts,
--               ttl = '30d', schedule = '1d', start = '2024-01-01')
WITH paid AS (
  SELECT customer_id, store_id, total * 1.2 AS gross, order_ts
  FROM orders
  WHERE status = 'paid'
)
SELECT p.customer_id, p.order_ts, p.gross AS last_gross, s.region AS last_region
FROM paid AS p
JOIN stores AS s ON p.store_id = s.store_id
WHERE s.is_open
""",
    # a derived table, and an IN subquery over another source in the WHERE
    "views/store_flags.sql": """\
-- @feature_view(name = store_flags, entity = store, timestamp = updated_at,
--               ttl = '365d', schedule = '1d', start = '2024-01-01')
SELECT q.store_id, q.updated_at, q.region_code
FROM (SELECT store_id, updated_at, UPPER(region) AS region_code FROM stores) AS q
WHERE q.store_id IN (SELECT o.store_id FROM orders AS o WHERE o.total > 100)
""",
    # a set operation: column i of every branch, whatever the branch calls it
    "views/customer_money.sql": """\
-- @feature_view(name = customer_money, entity = customer, timestamp = ts,
--               ttl = '30d', schedule = '1d', start = '2024-01-01')
SELECT customer_id, order_ts AS ts, total AS amount FROM orders
UNION ALL
SELECT customer_id, returned_ts, -amount FROM returns
""",
    "transforms/gross_ratio.sql": """\
-- @request_transform(name = gross_ratio, request = [amount DOUBLE, currency STRING])
SELECT request.amount / customer_orders.last_gross AS gross_ratio
""",
    "services/checkout.sql": """\
-- @feature_service(name = checkout,
--   features = [customer_orders.last_gross, store_flags.region_code, gross_ratio])
""",
}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    root = tmp_path_factory.mktemp("shop")
    for rel, text in SHOP.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    result = compile_project(root)
    assert result.ok, [d.headline() for d in result.diagnostics]
    assert result.manifest is not None
    return result.manifest


def upstream(m: Manifest, node: str) -> set[tuple[str, str]]:
    """Direct (src, kind) edges into `node`."""
    return {(e.src, e.kind) for e in m.lineage if e.dst == node}


def reachable(root: LineageNode) -> set[str]:
    names = {root.name}
    for child in root.children:
        names |= reachable(child)
    return names


def text(m: Manifest, target: str, direction: Direction = "upstream") -> str:
    return "\n".join(render_tree(trace(m, target, direction)))


# -- the example project ------------------------------------------------------------------------


def test_aggregate_feature_reads_value_filter_group_and_time(example: Manifest) -> None:
    got = upstream(example, "user_txn_aggs.amount_sum_7d")
    assert got == {
        ("transactions.amount", "value"),  # SUM(amount)
        ("transactions.amount", "filter"),  # WHERE amount > 0
        ("transactions.user_id", "group"),
        ("transactions.event_ts", "time"),
    }
    # COUNT(*) reads no column, but its rows are still filtered, grouped and windowed
    assert upstream(example, "user_txn_aggs.txn_count_1h") == {
        ("transactions.amount", "filter"),
        ("transactions.user_id", "group"),
        ("transactions.event_ts", "time"),
    }
    # the key column is a key pass-through, not a windowed feature: no time edge
    assert ("transactions.user_id", "key") in upstream(example, "user_txn_aggs.user_id")
    assert all(k != "time" for _, k in upstream(example, "user_txn_aggs.user_id"))


def test_row_view_through_another_view_to_the_source(example: Manifest) -> None:
    assert upstream(example, "user_risk_flags.high_risk_country") == {
        ("user_profile.country", "value")}
    assert upstream(example, "user_profile.country") == {("users.country", "value")}
    assert upstream(example, "user_profile.account_age_days") == {
        ("users.signup_ts", "value"), ("users.updated_at", "value")}
    assert upstream(example, "user_profile.updated_at") == {("users.updated_at", "time")}
    assert upstream(example, "user_profile.user_id") == {("users.user_id", "key")}
    tree = trace(example, "user_risk_flags.high_risk_country", "upstream")
    assert tree.children == (LineageNode("user_profile.country", "value", (
        LineageNode("users.country", "value"),)),)


def test_downstream_reaches_views_and_the_service(example: Manifest) -> None:
    tree = trace(example, "users.country", "downstream")
    assert {"user_profile.country", "user_risk_flags.high_risk_country",
            "fraud_detection"} <= reachable(tree)
    # the risk flag is served by fraud_detection: a service edge under it
    flag = next(c for c in tree.children[0].children
                if c.name == "user_risk_flags.high_risk_country")
    assert ("fraud_detection", "service") in {(c.name, c.kind) for c in flag.children}


def test_unused_column_has_no_downstream(example: Manifest) -> None:
    tree = trace(example, "transactions.ip_address", "downstream")
    assert tree == LineageNode("transactions.ip_address", "source")
    assert render_tree(tree) == ["transactions.ip_address"]


def test_request_transforms(example: Manifest) -> None:
    # SQL: each output reads only what its own expression reads
    assert upstream(example, "amount_vs_avg.amount_vs_avg_7d") == {
        ("amount_vs_avg.request.amount", "value"), ("user_txn_aggs.amount_avg_7d", "value")}
    # Python is opaque: every output reads every input and request field
    everything = {("amount_features.request.amount", "value"),
                  ("user_txn_aggs.amount_avg_30d", "value"), ("user_profile.credit_limit", "value")}
    assert upstream(example, "amount_features.amount_log_ratio") == everything
    assert upstream(example, "amount_features.credit_utilization") == everything
    assert upstream(example, "fraud_detection") >= {
        ("amount_vs_avg.amount_vs_avg_7d", "service"), ("amount_features.amount_log_ratio",
                                                         "service")}


def test_every_edge_names_a_traceable_node(example: Manifest) -> None:
    assert example.lineage == tuple(sorted(set(example.lineage),
                                           key=lambda e: (e.dst, e.src, e.kind)))
    for e in example.lineage:
        assert unknown_target(example, e.src) is None, e
        assert unknown_target(example, e.dst) is None, e
    services = {s.name for s in example.services}
    assert all((e.kind == "service") == (e.dst in services) for e in example.lineage)


def test_whole_object_targets(example: Manifest) -> None:
    view = trace(example, "user_profile", "upstream")
    assert (view.name, view.kind) == ("user_profile", "view")
    assert [c.name for c in view.children] == [
        f"user_profile.{c.name}" for c in example.view("user_profile").output_columns]  # type: ignore[union-attr]
    assert all(c.kind == "column" for c in view.children)
    # a transform as a whole is its outputs
    transform = trace(example, "amount_vs_avg", "upstream")
    assert [c.name for c in transform.children] == [
        "amount_vs_avg.amount_vs_avg_7d", "amount_vs_avg.exceeds_max_30d"]
    service = trace(example, "fraud_detection", "upstream")
    assert {"transactions.amount", "users.country", "amount_features.request.amount"} <= (
        reachable(service))


def test_unknown_targets(example: Manifest) -> None:
    assert unknown_target(example, "user_profile") is None
    assert unknown_target(example, "user_profile.country") is None
    assert unknown_target(example, "amount_vs_avg.request.amount") is None
    assert unknown_target(example, "usr_profile") == (
        "unknown source, feature view, transform or service 'usr_profile': "
        "did you mean 'user_profile'?")
    assert unknown_target(example, "user_profile.contry") == (
        "feature view 'user_profile' has no column 'contry': did you mean 'country'?")
    assert unknown_target(example, "user") == (
        "'user' is an entity; trace a source, feature view, transform or service that uses it")
    assert unknown_target(example, "fraud_detection.txn_count_1h") == (
        "service 'fraud_detection' has no columns: trace it as 'fraud_detection'")
    assert unknown_target(example, "zzz") == (
        "unknown source, feature view, transform or service 'zzz'")
    with pytest.raises(ValueError, match="did you mean 'country'"):
        trace(example, "users.contry", "upstream")


# -- joins, CTEs, subqueries and unions on a small inline project -------------------------------


def test_join_keys_and_cte_filters(shop: Manifest) -> None:
    assert upstream(shop, "customer_orders.last_gross") == {
        ("orders.total", "value"),  # through the CTE's gross
        ("orders.status", "filter"),  # the CTE's WHERE stays a filter outside
        ("orders.store_id", "join"),  # p.store_id in the ON, traced into the CTE
        ("stores.store_id", "join"),
        ("stores.is_open", "filter"),
    }
    assert ("orders.customer_id", "key") in upstream(shop, "customer_orders.customer_id")
    assert ("orders.order_ts", "time") in upstream(shop, "customer_orders.order_ts")
    # a join key feeds every output column, even one that reads only the other table
    assert ("orders.store_id", "join") in upstream(shop, "customer_orders.last_region")


def test_derived_table_and_in_subquery(shop: Manifest) -> None:
    assert upstream(shop, "store_flags.region_code") == {
        ("stores.region", "value"),
        ("stores.store_id", "filter"),  # q.store_id IN (...)
        ("orders.store_id", "filter"),  # what the subquery returns
        ("orders.total", "filter"),  # the subquery's own WHERE
    }


def test_union_branches_by_position(shop: Manifest) -> None:
    assert upstream(shop, "customer_money.amount") == {
        ("orders.total", "value"), ("returns.amount", "value")}
    assert upstream(shop, "customer_money.ts") == {
        ("orders.order_ts", "time"), ("returns.returned_ts", "time")}


def test_rendered_trees(shop: Manifest) -> None:
    assert text(shop, "customer_orders.last_gross") == """\
customer_orders.last_gross
├── orders.status  (filter)
├── orders.store_id  (join)
├── orders.total  (value)
├── stores.is_open  (filter)
└── stores.store_id  (join)"""
    # a column reached twice is expanded once, then marked
    assert text(shop, "checkout") == """\
checkout
├── customer_orders.last_gross  (service)
│   ├── orders.status  (filter)
│   ├── orders.store_id  (join)
│   ├── orders.total  (value)
│   ├── stores.is_open  (filter)
│   └── stores.store_id  (join)
├── gross_ratio.gross_ratio  (service)
│   ├── customer_orders.last_gross  (value)  (see above)
│   └── gross_ratio.request.amount  (value)
└── store_flags.region_code  (service)
    ├── orders.store_id  (filter)
    ├── orders.total  (filter)
    ├── stores.region  (value)
    └── stores.store_id  (filter)"""
    assert text(shop, "orders.status", "downstream") == """\
orders.status
├── customer_orders.customer_id  (filter)
├── customer_orders.last_gross  (filter)
│   ├── checkout  (service)
│   └── gross_ratio.gross_ratio  (value)
│       └── checkout  (service)
├── customer_orders.last_region  (filter)
└── customer_orders.order_ts  (filter)"""


def test_unused_request_field_feeds_nothing(shop: Manifest) -> None:
    assert unknown_target(shop, "gross_ratio.request.currency") is None
    assert trace(shop, "gross_ratio.request.currency", "downstream").children == ()


def test_kinds_of_one_column_used_twice_are_merged() -> None:
    edges = (LineageEdge("t.a", "v.x", "value"), LineageEdge("t.a", "v.x", "filter"),
             LineageEdge("t.b", "v.x", "join"))
    m = Manifest("p", (), (), (), (), (), lineage=edges)
    # no object is declared: trace refuses, but the tree helpers work on the edges alone
    assert unknown_target(m, "v.x") is not None
    tree = _expand("v.x", "view", _graph(edges, "upstream"), (), set())
    assert render_tree(tree) == ["v.x", "├── t.a  (filter, value)", "└── t.b  (join)"]


def test_correlated_scalar_subquery() -> None:
    # The type checker does not accept this shape in a view yet (it sees the MAX as a view
    # aggregate), so the walk is tested on the qualified query directly.
    tables = {"stores": {"store_id": "BIGINT", "updated_at": "TIMESTAMP"},
              "orders": {"store_id": "BIGINT", "total": "DOUBLE", "status": "STRING"}}
    q = qualify(sqlglot.parse_one(
        "SELECT s.store_id, (SELECT MAX(o.total) FROM orders AS o "
        "WHERE o.store_id = s.store_id AND o.status = 'ok') AS max_total FROM stores AS s",
        read="duckdb"), schema=make_schema(tables), dialect="duckdb")
    root = build_scope(q)
    assert root is not None
    assert _QueryWalk().output(root, "max_total") == {
        ("orders.total", "value"),
        ("orders.store_id", "filter"),
        ("stores.store_id", "filter"),  # the correlated outer column
        ("orders.status", "filter"),
    }


def test_a_cycle_in_a_malformed_graph_stops() -> None:
    edges = (LineageEdge("a.x", "b.x", "value"), LineageEdge("b.x", "a.x", "value"))
    tree = _expand("a.x", "view", _graph(edges, "downstream"), (), set())
    assert render_tree(tree) == ["a.x", "└── b.x  (value)", "    └── a.x  (value)  (see above)"]


@pytest.mark.parametrize("project", ["example", "shop"])
def test_lineage_from_the_canonical_sql_equals_lineage_from_the_typed_query(
        project: str, tmp_path: Path) -> None:
    """`featql compile`'s lowering worker computes each view's lineage from its canonical SQL
    parsed again; that must give exactly what the typed query gives (CTEs, joins, derived
    tables, IN subqueries, UNION branches, aggregates, views over views)."""
    from featql.compiler.lineage import table_columns, view_edges
    from featql.dialects.render import parse

    root = tmp_path / project
    if project == "example":
        shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("data", "target", ".featql"))
        generate(root, transactions=500, days=3)
    else:
        for rel, body in SHOP.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(body)
    result = compile_project(root)
    assert result.manifest is not None and result.ok
    columns = table_columns(result.manifest.sources, result.manifest.views)
    for view in result.manifest.views:
        typed = view_edges(view, result.typed[view.name].query.qualified, columns)
        assert typed, view.name
        assert set(view_edges(view, parse(view.sql), columns)) == set(typed), view.name
