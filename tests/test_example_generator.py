"""The example project's synthetic data: shape, types, determinism and its edge cases."""

from __future__ import annotations

import hashlib
from itertools import pairwise
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from featql.examples.generate import START, generate, write_spine

N, DAYS = 5_000, 10
TS = pa.timestamp("us")

TRANSACTIONS = pa.schema([
    ("txn_id", pa.int64()), ("user_id", pa.int64()), ("merchant_id", pa.int64()),
    ("amount", pa.float64()), ("currency", pa.string()), ("category", pa.string()),
    ("channel", pa.string()), ("ip_address", pa.string()), ("is_fraud", pa.bool_()),
    ("event_ts", TS), ("created_ts", TS),
])
USERS = pa.schema([
    ("user_id", pa.int64()), ("updated_at", TS), ("signup_ts", TS), ("country", pa.string()),
    ("kyc_level", pa.int32()), ("email_domain", pa.string()), ("credit_limit", pa.float64()),
])
MERCHANTS = pa.schema([
    ("merchant_id", pa.int64()), ("updated_at", TS), ("merchant_name", pa.string()),
    ("mcc", pa.string()), ("country", pa.string()), ("risk_tier", pa.int32()),
    ("onboarded_at", TS),
])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("fraud")
    counts = generate(root, transactions=N, days=DAYS)
    return root, counts


def _read(root: Path, source: str) -> pa.Table:
    files = sorted((root / "data" / source).glob("part-*.parquet"))
    assert files, source
    return pa.concat_tables(pq.read_table(f) for f in files)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "data").rglob("*.parquet"))}


def _ts(days: float) -> pa.Scalar:
    return pa.scalar(int(START.astype("int64")) + int(days * 86_400_000_000), TS)


def test_row_counts(project: tuple[Path, dict[str, int]]) -> None:
    root, counts = project
    assert counts["transactions"] == N == _read(root, "transactions").num_rows
    users, merchants = _read(root, "users"), _read(root, "merchants")
    assert counts["users"] == users.num_rows
    assert counts["merchants"] == merchants.num_rows
    n_users, n_merchants = max(50, N // 50), max(10, N // 500)
    assert len(pc.unique(users["user_id"])) == n_users
    assert len(pc.unique(merchants["merchant_id"])) == n_merchants
    per_user = users.group_by("user_id").aggregate([("updated_at", "count")])
    assert pc.min(per_user["updated_at_count"]).as_py() >= 1
    assert pc.max(per_user["updated_at_count"]).as_py() <= 4
    per_merchant = merchants.group_by("merchant_id").aggregate([("updated_at", "count")])
    assert set(per_merchant["updated_at_count"].to_pylist()) <= {1, 2}


def test_schemas_are_exact(project: tuple[Path, dict[str, int]]) -> None:
    root, _ = project
    for source, schema in (("transactions", TRANSACTIONS), ("users", USERS),
                           ("merchants", MERCHANTS)):
        for f in sorted((root / "data" / source).glob("part-*.parquet")):
            assert pq.read_schema(f).remove_metadata() == schema, f


def test_transactions_split_into_ten_day_files(tmp_path: Path) -> None:
    generate(tmp_path, transactions=2_000, days=25)
    files = sorted(p.name for p in (tmp_path / "data" / "transactions").iterdir())
    assert files == ["part-000.parquet", "part-001.parquet", "part-002.parquet"]
    for i, name in enumerate(files):
        ts = pq.read_table(tmp_path / "data" / "transactions" / name)["event_ts"]
        assert pc.min(ts).as_py() >= _ts(10 * i).as_py()
        assert pc.max(ts).as_py() < _ts(min(25, 10 * (i + 1))).as_py()


def test_deterministic_bytes(tmp_path: Path, project: tuple[Path, dict[str, int]]) -> None:
    root, _ = project
    generate(tmp_path, transactions=N, days=DAYS)
    assert _hashes(tmp_path) == _hashes(root)
    other = tmp_path / "other-seed"
    generate(other, transactions=N, days=DAYS, seed=8)
    assert _hashes(other) != _hashes(root)


def test_rerun_with_fewer_days_leaves_no_stale_files(tmp_path: Path) -> None:
    generate(tmp_path, transactions=1_000, days=30)
    generate(tmp_path, transactions=1_000, days=10)
    assert len(list((tmp_path / "data" / "transactions").iterdir())) == 1


def test_timestamps_in_range(project: tuple[Path, dict[str, int]]) -> None:
    root, _ = project
    txns = _read(root, "transactions")
    assert pc.min(txns["event_ts"]).as_py() >= _ts(0).as_py()
    assert pc.max(txns["event_ts"]).as_py() < _ts(DAYS).as_py()
    delay = pc.subtract(txns["created_ts"].cast(pa.int64()), txns["event_ts"].cast(pa.int64()))
    assert pc.min(delay).as_py() >= 0
    assert pc.max(delay).as_py() <= 120_000_000
    assert txns["event_ts"].to_pylist() == sorted(txns["event_ts"].to_pylist())
    assert txns["txn_id"].to_pylist() == list(range(1, N + 1))
    users = _read(root, "users")
    assert pc.all(pc.greater_equal(users["updated_at"], users["signup_ts"])).as_py()
    assert pc.max(users["updated_at"]).as_py() < _ts(DAYS).as_py()
    merchants = _read(root, "merchants")
    assert pc.all(pc.greater_equal(merchants["updated_at"], merchants["onboarded_at"])).as_py()


def test_no_transaction_before_signup(project: tuple[Path, dict[str, int]]) -> None:
    root, _ = project
    signup = _read(root, "users").group_by("user_id").aggregate([("signup_ts", "min")])
    joined = _read(root, "transactions").join(signup, "user_id")
    assert pc.all(pc.greater(joined["event_ts"], joined["signup_ts_min"])).as_py()


def test_users_change_slowly_with_increasing_updates(
        project: tuple[Path, dict[str, int]]) -> None:
    root, _ = project
    users = _read(root, "users").to_pylist()
    changed = 0
    for prev, row in pairwise(users):
        if prev["user_id"] == row["user_id"]:
            assert row["updated_at"] > prev["updated_at"]
            assert row["signup_ts"] == prev["signup_ts"]
            assert row["kyc_level"] >= prev["kyc_level"]
            changed += (row["kyc_level"], row["country"]) != (prev["kyc_level"], prev["country"])
        else:
            assert row["user_id"] > prev["user_id"]
    assert changed > 0
    assert {r["kyc_level"] for r in users} <= {0, 1, 2, 3}


def test_ties_nulls_refunds_and_fraud_present(project: tuple[Path, dict[str, int]]) -> None:
    root, _ = project
    txns = _read(root, "transactions")
    keys = txns.group_by(["user_id", "event_ts"]).aggregate([("created_ts", "count_distinct"),
                                                             ("txn_id", "count")])
    tied = keys.filter(pc.greater(keys["txn_id_count"], 1))
    assert tied.num_rows >= N // 400  # event-time ties for the same user
    assert pc.any(pc.greater(tied["created_ts_count_distinct"], 1)).as_py()  # created breaks some
    assert pc.any(pc.equal(tied["created_ts_count_distinct"], 1)).as_py()  # ...but not all
    assert txns["category"].null_count > 0
    assert txns["ip_address"].null_count > 0  # point-of-sale payments have no IP
    assert _read(root, "users")["credit_limit"].null_count > 0
    assert pc.sum(pc.less_equal(txns["amount"], 0.0)).as_py() > 0  # refunds, card checks
    fraud = pc.sum(txns["is_fraud"].cast(pa.int64())).as_py()
    assert 0.002 * N < fraud < 0.03 * N
    refunds = txns.filter(pc.less_equal(txns["amount"], 0.0))
    assert not pc.any(refunds["is_fraud"]).as_py()
    assert set(txns["channel"].to_pylist()) == {"pos", "online", "mobile"}


def test_spine(project: tuple[Path, dict[str, int]]) -> None:
    root, _ = project
    path = write_spine(root, rows=500, warmup_days=2)
    assert path == root / "data" / "spine.parquet"
    spine = pq.read_table(path)
    assert spine.schema.remove_metadata() == pa.schema([
        ("user_id", pa.int64()), ("merchant_id", pa.int64()), ("amount", pa.float64()),
        ("event_ts", TS), ("is_fraud", pa.bool_()),
    ])
    assert spine.num_rows == 500
    assert pc.min(spine["event_ts"]).as_py() >= _ts(2).as_py()
    assert pc.all(pc.greater(spine["amount"], 0.0)).as_py()
    assert spine["event_ts"].to_pylist() == sorted(spine["event_ts"].to_pylist())
    first = path.read_bytes()
    assert write_spine(root, rows=500, warmup_days=2).read_bytes() == first
