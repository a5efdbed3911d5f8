"""Training sets of the example project: engines agree, spines of every shape, request
transforms, the Python API, and sources and offline store on S3 (moto on 127.0.0.1)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from featql.api import Project
from featql.cli.console import UserError
from featql.jobs.training import TrainingReport, training_set
from runtime.conftest import compiled, same_tables
from runtime.moto_s3 import moto_bucket


@pytest.mark.slow
def test_example_services_identical_on_duckdb_and_spark(small_example: Path,
                                                        spark_engine: Any) -> None:
    c = compiled(small_example)
    spine = pq.read_table(small_example / "data" / "spine.parquet")
    for service in ("fraud_detection", "merchant_risk"):
        duck = training_set(small_example, c.manifest, c.config, service, spine,
                            engine="duckdb")
        spark = training_set(small_example, c.manifest, c.config, service, spine,
                             engine=spark_engine)
        assert duck.num_rows == spine.num_rows
        assert duck.slice(0, 0).schema == spark.slice(0, 0).schema
        # DOUBLE sums may differ in the last bit (engines add in different orders)
        assert same_tables(duck, spark, rel=1e-12) == [], service
        assert duck.select(spine.column_names).equals(spine)


def test_spine_order_duplicates_and_rows_before_any_feature(small_example: Path) -> None:
    c = compiled(small_example)
    spine = pq.read_table(small_example / "data" / "spine.parquet").slice(0, 200)
    base = training_set(small_example, c.manifest, c.config, "fraud_detection", spine)
    order = [7, 3, 3, 150, 0, 199, 7, 42, *range(100, 60, -1)]
    shuffled = spine.take(pa.array(order))
    early = spine.slice(0, 3).set_column(
        spine.column_names.index("event_ts"), "event_ts",
        pa.array([datetime(2023, 6, 1)] * 3, pa.timestamp("us")))
    got = training_set(small_example, c.manifest, c.config, "fraud_detection",
                       pa.concat_tables([shuffled, early]))
    assert same_tables(got.slice(0, len(order)), base.take(pa.array(order))) == []
    tail = got.slice(len(order)).to_pylist()
    assert all(r["user_txn_aggs__txn_count_30d"] == 0 for r in tail)  # COUNT of nothing
    assert all(r["user_txn_aggs__amount_sum_30d"] is None for r in tail)  # SUM of nothing
    assert all(r["user_last_txn__last_amount"] is None for r in tail)


def test_request_transforms_use_fetched_features(small_example: Path) -> None:
    c = compiled(small_example)
    table = Project(small_example).training_set(
        "fraud_detection", small_example / "data" / "spine.parquet")
    cols = table.column_names
    assert "amount_vs_avg__amount_vs_avg_7d" in cols
    assert "amount_features__credit_utilization" in cols
    assert "user_profile__credit_limit" not in cols  # a transform input, not a service feature
    checked = 0
    for row in table.to_pylist():
        avg = row["user_txn_aggs__amount_avg_7d"]
        got = row["amount_vs_avg__amount_vs_avg_7d"]
        if avg:
            assert math.isclose(got, row["amount"] / avg, rel_tol=1e-12)
            checked += 1
        else:
            assert got is None
    assert checked > 100
    assert c.manifest.service("fraud_detection").transforms


def test_spine_formats_and_mistakes(small_example: Path, tmp_path: Path) -> None:
    c = compiled(small_example)
    spine = pq.read_table(small_example / "data" / "spine.parquet").slice(0, 50)
    base = training_set(small_example, c.manifest, c.config, "merchant_risk", spine)
    csv_path = tmp_path / "spine.csv"
    pcsv.write_csv(spine.select(["merchant_id", "event_ts"]), csv_path)
    from_csv = training_set(small_example, c.manifest, c.config, "merchant_risk", csv_path)
    assert same_tables(from_csv.drop_columns(["merchant_id", "event_ts"]),
                       base.drop_columns(spine.column_names)) == []
    two = spine.append_column("scored_at", spine.column("event_ts"))
    with pytest.raises(UserError, match="several timestamp columns"):
        training_set(small_example, c.manifest, c.config, "merchant_risk", two)
    named = training_set(small_example, c.manifest, c.config, "merchant_risk", two,
                         timestamp="scored_at")
    assert named.num_rows == 50
    with pytest.raises(UserError, match=r"lacks the key column 'merchant_id'.*did you mean"):
        training_set(small_example, c.manifest, c.config, "merchant_risk",
                     spine.rename_columns(["user_id", "merchant", *spine.column_names[2:]]))
    with pytest.raises(UserError, match="did you mean 'merchant_risk'"):
        training_set(small_example, c.manifest, c.config, "merchant_risks", spine)


@pytest.fixture()
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A bucket `featql` on moto's server on 127.0.0.1; AWS_* point at it."""
    with moto_bucket(monkeypatch, "featql") as endpoint:
        yield endpoint


def test_sources_and_offline_store_on_s3(small_example: Path, s3: str) -> None:
    from featql.engines.sources import s3_filesystem
    from featql.jobs.materialize import materialize
    from featql.offline.store import OfflineStore

    c = compiled(small_example)
    spine = pq.read_table(small_example / "data" / "spine.parquet").slice(0, 100)
    local = training_set(small_example, c.manifest, c.config, "fraud_detection", spine)
    fs = s3_filesystem()
    for f in sorted((small_example / "data" / "transactions").glob("*.parquet")):
        with fs.open_output_stream(f"featql/raw/transactions/{f.name}") as out:
            out.write(f.read_bytes())
    src = small_example / "sources" / "transactions.sql"
    src.write_text(src.read_text().replace("parquet('data/transactions/')",
                                           "parquet('s3://featql/raw/transactions/')"))
    toml = small_example / "featql.toml"
    toml.write_text(toml.read_text().replace('path = "data/offline"',
                                             'path = "s3://featql/offline"'))
    c = compiled(small_example)
    assert c.manifest.source("transactions").batch.path.startswith("s3://")
    remote = training_set(small_example, c.manifest, c.config, "fraud_detection", spine)
    assert same_tables(local, remote) == []
    report = materialize(small_example, c.manifest, views=["user_last_txn"],
                         config=c.config)
    assert report.views[0].written > 0
    store = OfflineStore(small_example, c.config, "dev", c.manifest)
    assert store.path.startswith("s3://")
    scanned = store.scan("user_last_txn", columns=["user_id", "last_amount"])
    assert 7900 < scanned.num_rows <= 8000  # one row per (user, time)
    rep = TrainingReport()
    again = training_set(small_example, c.manifest, c.config, "fraud_detection", spine,
                         report=rep)
    assert rep.reads["user_last_txn"] == "store"
    assert same_tables(local, again) == []
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
