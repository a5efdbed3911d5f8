"""One mistake gives one error, on the full example project (issue 15 item 1).

Each case mutates one place of a copy of features/ (its generated data shared by a link) and
compiles it: the errors must be exactly the expected ones, the first pointing at the mutated
text. Mutations that really break several places list every error; each names a real problem
(a column a query reads that is gone, a key a view does not output, a reference to a deleted
view), never a consequence of another error ("unknown feature view" for a view that exists
but failed).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from featql.compiler.project import compile_project
from featql.semantics.aggregates import supported


@dataclass(frozen=True)
class Mutation:
    id: str
    file: str
    old: str | None  # None: delete the file
    new: str
    errors: tuple[str, ...]  # headlines, in sorted diagnostic order
    at: str  # the text the first error points at


TXN_BATCH = "batch = parquet('data/transactions/'))"

ONE = [
    Mutation("column-typo", "views/user_txn_aggs.sql", "SUM(amount)", "SUM(amout)",
             ("views/user_txn_aggs.sql:7:12: error[E401]: unknown column 'amout' in "
              "'transactions'",), "amout"),
    Mutation("ttl-unquoted", "views/user_profile.sql", "ttl = '90d'", "ttl = 90d",
             ("views/user_profile.sql:2:24: error[E101]: value 90d must be quoted",), "90d"),
    Mutation("kafka-half-typed", "sources/transactions.sql", TXN_BATCH,
             "batch = parquet('data/transactions/'), stream = kafka(topic = ))",
             ("sources/transactions.sql:2:74: error[E101]: missing value after 'kafka(topic ='",),
             ")"),
    Mutation("kafka-unclosed", "sources/transactions.sql", TXN_BATCH,
             "batch = parquet('data/transactions/'), stream = kafka(topic = 'txns'",
             ("sources/transactions.sql:2:65: error[E101]: unclosed '(' in decorator header",),
             "(topic"),
    Mutation("table-typo", "views/user_last_txn.sql", "FROM transactions", "FROM transaction",
             ("views/user_last_txn.sql:11:6: error[E301]: unknown table 'transaction': not a "
              "source or feature view",), "transaction"),
    Mutation("entity-typo", "views/user_txn_aggs.sql", "entity = user,", "entity = usr,",
             ("views/user_txn_aggs.sql:1:49: error[E307]: unknown entity 'usr'",), "usr"),
    Mutation("key-typo", "views/user_txn_aggs.sql", "SELECT user_id,", "SELECT userid,",
             ("views/user_txn_aggs.sql:5:8: error[E401]: unknown column 'userid' in "
              "'transactions'",), "userid"),
    Mutation("group-by-typo", "views/user_txn_aggs.sql", "GROUP BY user_id", "GROUP BY user_idd",
             ("views/user_txn_aggs.sql:12:10: error[E408]: an aggregate view must GROUP BY "
              "exactly the entity keys (user_id); found user_idd",), "user_idd"),
    Mutation("window-typo", "views/user_txn_aggs.sql", "'30d'], slide", "'30x'], slide",
             ("views/user_txn_aggs.sql:2:47: error[E106]: invalid duration '30x'",), "'30x'"),
    Mutation("slide-unquoted", "views/user_txn_aggs.sql", "slide = '1h'", "slide = 1h",
             ("views/user_txn_aggs.sql:2:63: error[E101]: value 1h must be quoted",), "1h"),
    Mutation("start-date", "views/user_txn_aggs.sql", "start = '2024-01-01'",
             "start = '2024-13-01'",
             ("views/user_txn_aggs.sql:2:77: error[E111]: invalid start date '2024-13-01'",),
             "'2024-13-01'"),
    Mutation("timestamp-typo", "views/user_profile.sql", "timestamp = updated_at",
             "timestamp = updatd_at",
             ("views/user_profile.sql:1:66: error[E406]: timestamp column 'updatd_at' is not in "
              "the view's output",), "updatd_at"),
    Mutation("source-column-type", "sources/transactions.sql", "amount      DOUBLE",
             "amount      DOUBL",
             ("sources/transactions.sql:10:15: error[E305]: column 'amount' has type DOUBL, "
              "which featql does not support",), "DOUBL"),
    Mutation("service-feature-typo", "services/fraud_detection.sql", "user_profile.country",
             "user_profile.countr",
             ("services/fraud_detection.sql:3:31: error[E501]: feature view 'user_profile' has "
              "no feature 'countr'",), "countr"),
    Mutation("service-view-typo", "services/fraud_detection.sql", "user_last_txn.*",
             "user_last_tx.*",
             ("services/fraud_detection.sql:4:18: error[E502]: unknown feature view "
              "'user_last_tx' in 'user_last_tx.*'",), "user_last_tx"),
    Mutation("transform-feature-typo", "transforms/amount_vs_avg.sql",
             "user_txn_aggs.amount_avg_7d", "user_txn_aggs.amount_avg_7",
             ("transforms/amount_vs_avg.sql:4:46: error[E401]: unknown column 'amount_avg_7' in "
              "'user_txn_aggs'",), "amount_avg_7"),
    Mutation("transform-request-typo", "transforms/amount_vs_avg.sql", "request.amount /",
             "request.amout /",
             ("transforms/amount_vs_avg.sql:4:16: error[E401]: unknown column 'amout' in "
              "'request'",), "amout"),
    Mutation("hook-input-typo", "hooks/amount_features.py", '"user_profile.credit_limit"',
             '"user_profile.credit_limt"',
             ("hooks/amount_features.py:12:59: error[E503]: feature view 'user_profile' has no "
              "feature 'credit_limt'",), "credit_limt"),
    Mutation("upstream-column-typo", "views/user_risk_flags.sql", "account_age_days < 30",
             "account_age_dys < 30",
             ("views/user_risk_flags.sql:8:8: error[E401]: unknown column 'account_age_dys' in "
              "'user_profile'",), "account_age_dys"),
    Mutation("upstream-table-typo", "views/user_risk_flags.sql", "FROM user_profile",
             "FROM user_profil",
             ("views/user_risk_flags.sql:10:6: error[E301]: unknown table 'user_profil': not a "
              "source or feature view",), "user_profil"),
    Mutation("function-typo", "views/user_txn_aggs.sql", "MAX(amount)", "MAXX(amount)",
             ("views/user_txn_aggs.sql:9:8: error[E409]: feature 'amount_max' of an aggregate "
              f"view must be one of {supported()}, found MAXX",), "MAXX("),
    Mutation("decorator-typo", "views/user_txn_aggs.sql", "-- @feature_view(",
             "-- @feature_veiw(",
             ("views/user_txn_aggs.sql:1:4: error[E102]: unknown decorator '@feature_veiw'",),
             "@feature_veiw"),
    Mutation("header-key-typo", "views/user_txn_aggs.sql", "windows =", "windws =",
             ("views/user_txn_aggs.sql:2:18: error[E103]: unknown key 'windws' for "
              "@feature_view",), "windws"),
    Mutation("created-typo", "sources/transactions.sql", "created = created_ts",
             "created = created_t",
             ("sources/transactions.sql:1:65: error[E306]: source 'transactions' has no column "
              "'created_t' (its created column)",), "created_t"),
    Mutation("location-kind-typo", "sources/transactions.sql", "parquet('data/transactions/')",
             "parquett('data/transactions/')",
             ("sources/transactions.sql:2:20: error[E105]: unknown location kind 'parquett'",),
             "parquett"),
    Mutation("missing-comma", "views/user_txn_aggs.sql", "entity = user, timestamp",
             "entity = user timestamp",
             ("views/user_txn_aggs.sql:1:54: error[E101]: missing ',' before 'timestamp'",),
             "timestamp"),
    Mutation("sql-syntax", "views/user_txn_aggs.sql", "WHERE amount > 0", "WHERE amount >",
             ("views/user_txn_aggs.sql:12:1: error[E201]: SQL syntax error: incomplete GROUP "
              "BY",), "GROUP BY"),
]

SEVERAL = [  # one edit that breaks every place that used what it removed
    Mutation("source-column-dropped", "sources/transactions.sql", "  amount      DOUBLE,\n", "",
             tuple(f"views/{v}:{pos}: error[E401]: unknown column 'amount' in 'transactions'"
                   for v, pos in [
                       ("merchant_txn_aggs.sql", "7:12"), ("merchant_txn_aggs.sql", "8:12"),
                       ("merchant_txn_aggs.sql", "9:12"), ("user_channel_aggs.sql", "8:22"),
                       ("user_channel_aggs.sql", "10:12"), ("user_channel_aggs.sql", "12:7"),
                       ("user_last_txn.sql", "7:8"), ("user_txn_aggs.sql", "7:12"),
                       ("user_txn_aggs.sql", "8:12"), ("user_txn_aggs.sql", "9:12"),
                       ("user_txn_aggs.sql", "11:7")]), "amount"),
    Mutation("entity-key-renamed", "entities/user.sql", "keys = [user_id BIGINT]",
             "keys = [usr_id BIGINT]",
             ("views/user_channel_aggs.sql:13:10: error[E408]: an aggregate view must GROUP BY "
              "exactly the entity keys (usr_id); found user_id",
              "views/user_last_txn.sql:1:49: error[E404]: entity key 'usr_id' of 'user' is not in "
              "the view's output",
              "views/user_profile.sql:1:48: error[E404]: entity key 'usr_id' of 'user' is not in "
              "the view's output",
              "views/user_txn_aggs.sql:12:10: error[E408]: an aggregate view must GROUP BY "
              "exactly the entity keys (usr_id); found user_id"), "user_id"),
    Mutation("view-deleted", "views/user_profile.sql", None, "",
             ("hooks/amount_features.py:12:46: error[E503]: unknown feature view 'user_profile' "
              "in input 'user_profile.credit_limit'",
              "services/fraud_detection.sql:3:18: error[E502]: unknown feature view "
              "'user_profile' in 'user_profile.country'",
              "services/fraud_detection.sql:3:40: error[E502]: unknown feature view "
              "'user_profile' in 'user_profile.kyc_level'",
              "services/fraud_detection.sql:3:64: error[E502]: unknown feature view "
              "'user_profile' in 'user_profile.account_age_days'",
              "views/user_risk_flags.sql:10:6: error[E301]: unknown table 'user_profile': not a "
              "source or feature view"), "user_profile"),
]


@pytest.fixture
def mutated(example_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def make(m: Mutation) -> Path:
        root = tmp_path / "features"
        shutil.copytree(example_project, root,
                        ignore=shutil.ignore_patterns("data", "target", ".featql"))
        (root / "data").symlink_to(example_project / "data", target_is_directory=True)
        path = root / m.file
        if m.old is None:
            path.unlink()
        else:
            text = path.read_text()
            assert text.count(m.old) >= 1, (m.id, m.old)
            path.write_text(text.replace(m.old, m.new, 1))
        monkeypatch.chdir(root)  # diagnostics name files as a user in the project sees them
        return root
    return make


def test_the_unmutated_example_has_no_error(example_project: Path) -> None:
    assert compile_project(example_project).diagnostics.errors == []


def test_there_are_enough_mutations() -> None:
    assert len(ONE) + len(SEVERAL) >= 25
    assert len({m.id for m in ONE + SEVERAL}) == len(ONE) + len(SEVERAL)


@pytest.mark.parametrize("m", ONE + SEVERAL, ids=[m.id for m in ONE + SEVERAL])
def test_one_mutation_gives_its_errors_only(m: Mutation, mutated) -> None:  # type: ignore[no-untyped-def]
    root = mutated(m)
    errors = compile_project(root).diagnostics.errors
    assert sorted(d.headline() for d in errors) == sorted(m.errors)
    first = next(d for d in errors if d.headline() == m.errors[0])
    line = (root / first.span.path).read_text().split("\n")[first.span.line - 1]
    assert line[first.span.col - 1:].startswith(m.at), (line, first.span.col)
