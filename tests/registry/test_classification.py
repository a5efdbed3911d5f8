"""The classification matrix: each edit of the small project gives exactly this plan."""

from __future__ import annotations

from .helpers import Proj

NO_CHANGE = "No changes: workspace 'dev' matches the project (apply #1).\n"
HEAD = "Plan for workspace 'dev' against apply #1:\n\n"
NO_DATA = ("      backfill: from 2024-01-01 00:00 every 1d, once data arrives "
           "(no rows in txns yet)\n")
AGGS_BODY = """\
SELECT user_id,
       COUNT(*)    AS txn_count,
       SUM(amount) AS amount_sum
FROM txns
WHERE amount > 0
GROUP BY user_id
"""


def test_first_plan_creates_everything(proj: Proj) -> None:
    assert proj.plan_text() == (
        "Plan for workspace 'dev' (nothing applied yet):\n\n"
        "+   create   source txns (non-breaking)\n"
        "+   create   entity user (non-breaking)\n"
        "+   create   feature view user_aggs (non-breaking)\n" + NO_DATA +
        "+   create   feature view user_last (non-breaking)\n" + NO_DATA +
        "+   create   service scoring (non-breaking)\n\n"
        "Plan: 5 to create, 0 to update, 0 to recreate, 0 to delete "
        "(0 breaking, 5 non-breaking, 0 metadata).\n")


def test_reformatting_is_no_change(applied: Proj) -> None:
    applied.edit("views/user_aggs.sql", AGGS_BODY,
                 "select user_id, count(*) as txn_count,\n  sum(amount) as amount_sum\n"
                 "    from txns where amount > 0 group by user_id\n")
    assert applied.plan_text() == NO_CHANGE


def test_renaming_a_table_alias_is_no_change(applied: Proj) -> None:
    text = applied.read("views/user_last.sql")
    applied.write("views/user_last.sql", text.replace("t.", "tx.").replace("AS t\n", "AS tx\n"))
    assert "tx.amount" in applied.read("views/user_last.sql")
    assert applied.plan_text() == NO_CHANGE


def test_adding_comments_is_no_change(applied: Proj) -> None:
    applied.edit("views/user_aggs.sql", "FROM txns", "-- purchases only\nFROM txns /* raw */")
    applied.edit("views/user_aggs.sql", "-- @feature_view",
                 "-- Velocity features.\n-- @feature_view")
    assert applied.plan_text() == NO_CHANGE


def test_adding_a_feature_is_non_breaking(applied: Proj) -> None:
    applied.edit("views/user_aggs.sql", "SUM(amount) AS amount_sum",
                 "SUM(amount) AS amount_sum,\n       MAX(amount) AS amount_max")
    assert applied.plan_text() == HEAD + (
        "~   update   feature view user_aggs (non-breaking)\n"
        "      query changed; existing features keep their meaning\n"
        "      features added: amount_max_1d, amount_max_7d\n" + NO_DATA +
        "~   update   service scoring (non-breaking)\n"
        "      features added: user_aggs.amount_max_1d, user_aggs.amount_max_7d\n\n"
        "Plan: 0 to create, 2 to update, 0 to recreate, 0 to delete "
        "(0 breaking, 2 non-breaking, 0 metadata).\n")


def _recreate_aggs(detail: str, reached: int) -> str:
    return HEAD + (
        "-/+ recreate feature view user_aggs (breaking)\n"
        f"{detail}"
        f"      downstream: service scoring ({reached} of 5 features)\n" + NO_DATA + "\n"
        "Plan: 0 to create, 0 to update, 1 to recreate, 0 to delete "
        "(1 breaking, 0 non-breaking, 0 metadata).\n")


def test_changing_a_filter_is_breaking(applied: Proj) -> None:
    applied.edit("views/user_aggs.sql", "amount > 0", "amount > 10")
    assert applied.plan_text() == _recreate_aggs(
        "      query changed\n      all 4 features change meaning\n", reached=4)


def test_changing_an_aggregate_is_breaking(applied: Proj) -> None:
    applied.edit("views/user_aggs.sql", "SUM(amount) AS amount_sum", "AVG(amount) AS amount_sum")
    assert applied.plan_text() == _recreate_aggs(
        "      query changed\n"
        "      features change meaning: amount_sum_1d, amount_sum_7d\n", reached=2)


def test_changing_a_window_is_breaking(applied: Proj) -> None:
    applied.edit("views/user_aggs.sql", "'7d'", "'14d'")
    assert applied.plan_text() == HEAD + (
        "-/+ recreate feature view user_aggs (breaking)\n"
        "      windows: [1d, 7d] → [1d, 14d]\n"
        "      features removed: txn_count_7d, amount_sum_7d\n"
        "      features added: txn_count_14d, amount_sum_14d\n"
        "      downstream: service scoring (2 of 5 features)\n" + NO_DATA +
        "~   update   service scoring (breaking)\n"
        "      features removed: user_aggs.txn_count_7d, user_aggs.amount_sum_7d\n"
        "      features added: user_aggs.txn_count_14d, user_aggs.amount_sum_14d\n\n"
        "Plan: 0 to create, 1 to update, 1 to recreate, 0 to delete "
        "(2 breaking, 0 non-breaking, 0 metadata).\n")


def test_changing_a_type_with_cast_is_breaking(applied: Proj) -> None:
    applied.edit("views/user_last.sql", "t.amount AS last_amount",
                 "CAST(t.amount AS BIGINT) AS last_amount")
    assert applied.plan_text() == HEAD + (
        "-/+ recreate feature view user_last (breaking)\n"
        "      query changed\n"
        "      feature type last_amount: DOUBLE → BIGINT\n"
        "      downstream: service scoring (1 of 5 features)\n" + NO_DATA +
        "~   update   service scoring (breaking)\n"
        "      feature type user_last.last_amount: DOUBLE → BIGINT\n\n"
        "Plan: 0 to create, 1 to update, 1 to recreate, 0 to delete "
        "(2 breaking, 0 non-breaking, 0 metadata).\n")


def test_changing_a_ttl_is_breaking(applied: Proj) -> None:
    applied.edit("views/user_last.sql", "'30d'", "'7d'")
    assert applied.plan_text() == HEAD + (
        "-/+ recreate feature view user_last (breaking)\n"
        "      ttl: 30d → 7d\n"
        "      all 2 features change meaning\n"
        "      downstream: service scoring (1 of 5 features)\n" + NO_DATA + "\n"
        "Plan: 0 to create, 0 to update, 1 to recreate, 0 to delete "
        "(1 breaking, 0 non-breaking, 0 metadata).\n")


def test_owner_and_tags_are_metadata(applied: Proj) -> None:
    applied.edit("views/user_aggs.sql", "@owner('risk')  @tags(['velocity'])",
                 "@owner('fraud-team')  @tags(['velocity', 'daily'])\n"
                 "-- @description('Spend velocity')")
    assert applied.plan_text() == HEAD + (
        "~   update   feature view user_aggs (metadata)\n"
        "      owner: 'risk' → 'fraud-team'\n"
        "      tags: ['velocity'] → ['velocity', 'daily']\n"
        "      description: none → 'Spend velocity'\n\n"
        "Plan: 0 to create, 1 to update, 0 to recreate, 0 to delete "
        "(0 breaking, 0 non-breaking, 1 metadata).\n")


def test_a_lookback_is_metadata(applied: Proj) -> None:
    applied.edit("views/user_last.sql", "schedule = '1d', start = '2024-01-01'",
                 "schedule = '1d', start = '2024-01-01', lookback = '2d'")
    assert applied.plan_text() == HEAD + (
        "~   update   feature view user_last (metadata)\n"
        "      lookback: none → 2d\n\n"
        "Plan: 0 to create, 1 to update, 0 to recreate, 0 to delete "
        "(0 breaking, 0 non-breaking, 1 metadata).\n")


def test_schedule_is_non_breaking_and_start_earlier_backfills(applied: Proj) -> None:
    applied.edit("views/user_last.sql", "schedule = '1d', start = '2024-01-01'",
                 "schedule = '6h', start = '2023-06-01'")
    assert applied.plan_text() == HEAD + (
        "~   update   feature view user_last (non-breaking)\n"
        "      schedule: 1d → 6h\n"
        "      start: '2024-01-01' → '2023-06-01'\n"
        "      backfill: from 2023-06-01 00:00 every 6h, once data arrives "
        "(no rows in txns yet)\n\n"
        "Plan: 0 to create, 1 to update, 0 to recreate, 0 to delete "
        "(0 breaking, 1 non-breaking, 0 metadata).\n")


def test_entity_key_type_change_is_breaking_downstream(applied: Proj) -> None:
    applied.write("entities/user.sql", "-- @entity(name = user, keys = [user_id STRING])\n")
    applied.edit("sources/txns.sql", "user_id  BIGINT", "user_id  STRING")
    plan = applied.plan()
    entity = next(c for c in plan.changes if c.kind == "entity")
    assert (entity.action, entity.level) == ("update", "breaking")
    assert [d.text for d in entity.details] == ["keys: [user_id BIGINT] → [user_id STRING]"]
    assert entity.downstream == ("feature view user_aggs", "feature view user_last",
                                 "service scoring")
    assert {(c.name, c.action) for c in plan.changes if c.kind == "feature view"} == {
        ("user_aggs", "recreate"), ("user_last", "recreate")}


def test_deleting_a_view_lists_it_and_the_service_change(applied: Proj) -> None:
    (applied.root / "views/user_last.sql").unlink()
    applied.write("services/scoring.sql",
                  "-- @feature_service(name = scoring, features = [user_aggs.*])\n")
    assert applied.plan_text() == HEAD + (
        "-   delete   feature view user_last (breaking)\n"
        "      downstream: service scoring (1 of 5 features)\n"
        "~   update   service scoring (breaking)\n"
        "      features removed: user_last.last_amount\n\n"
        "Plan: 0 to create, 1 to update, 0 to recreate, 1 to delete "
        "(2 breaking, 0 non-breaking, 0 metadata).\n")


def test_sql_transform_outputs_added_vs_logic_changed(applied: Proj) -> None:
    applied.write("transforms/ratio.sql",
                  "-- @request_transform(name = ratio, request = [amount DOUBLE])\n"
                  "SELECT request.amount / NULLIF(user_last.last_amount, 0) AS ratio\n")
    applied.apply()
    applied.edit("transforms/ratio.sql", "AS ratio",
                 "AS ratio,\n       request.amount > 100 AS big")
    (change,) = applied.plan().changes
    assert (change.kind, change.action, change.level) == ("transform", "update", "non-breaking")
    assert [d.text for d in change.details] == ["outputs added: big"]
    applied.edit("transforms/ratio.sql", "NULLIF(user_last.last_amount, 0)",
                 "NULLIF(user_last.last_amount, 1)")
    (change,) = applied.plan().changes
    assert change.level == "breaking"
    assert [d.text for d in change.details] == ["logic changed", "outputs added: big"]


def test_deprecated_view_warns_in_the_plan(applied: Proj) -> None:
    applied.write("views/user_last_v2.sql", applied.read("views/user_last.sql").replace(
        "name = user_last,", "name = user_last, variant = 'v2',"))
    applied.edit("views/user_last.sql", "start = '2024-01-01'",
                 "start = '2024-01-01',\n--   deprecated = true, replacement = user_last")
    plan = applied.plan()
    names = {(c.name, c.action) for c in plan.changes}
    assert ("user_last:v2", "create") in names
    view = next(c for c in plan.changes if c.name == "user_last")
    assert view.level == "metadata"
    assert view.warnings == ("warning[W801]: feature view 'user_last' is deprecated; "
                             "use 'user_last'",)
    assert "warning[W801]: feature view 'user_last' is deprecated" in applied.plan_text()


def test_source_owner_is_metadata_only(applied: Proj) -> None:
    applied.edit("sources/txns.sql", "CREATE", "-- @owner('payments')\nCREATE")
    assert [(c.name, c.level) for c in applied.plan().changes] == [("txns", "metadata")]


def test_feature_added_upstream_keeps_downstream_view(applied: Proj) -> None:
    applied.write("views/flags.sql",
                  "-- @feature_view(name = flags, entity = user, timestamp = event_ts,\n"
                  "--   ttl = '30d', start = '2024-01-01')\n"
                  "SELECT user_id, event_ts, last_amount > 100 AS big_spender FROM user_last\n")
    applied.apply()
    applied.edit("views/user_last.sql", "t.channel AS last_channel",
                 "t.channel AS last_channel, t.amount * 2 AS double_amount")
    assert [(c.name, c.level) for c in applied.plan().changes] == [
        ("user_last", "non-breaking")]


def test_renaming_a_table_alias_in_an_aggregate_view_is_no_change(applied: Proj) -> None:
    applied.edit("views/user_aggs.sql", "SUM(amount)", "SUM(x.amount)")
    applied.edit("views/user_aggs.sql", "FROM txns", "FROM txns AS x")
    assert applied.plan_text() == NO_CHANGE


def test_downstream_impact_follows_column_lineage(applied: Proj) -> None:
    applied.write("views/flags.sql",
                  "-- @feature_view(name = flags, entity = user, timestamp = event_ts,\n"
                  "--   ttl = '30d', start = '2024-01-01')\n"
                  "SELECT user_id, event_ts, last_amount > 100 AS big_spender FROM user_last\n")
    applied.write("transforms/ratio.sql",
                  "-- @request_transform(name = ratio, request = [amount DOUBLE])\n"
                  "SELECT request.amount / NULLIF(user_last.last_amount, 0) AS ratio\n")
    applied.write("services/alerts.sql",
                  "-- @feature_service(name = alerts, features = [flags.*, ratio])\n")
    applied.apply()
    applied.edit("views/user_last.sql", "t.channel AS last_channel",
                 "UPPER(t.channel) AS last_channel")
    change = next(c for c in applied.plan().changes if c.name == "user_last")
    assert [d.text for d in change.details] == [
        "query changed", "features change meaning: last_channel"]
    assert change.downstream == ("feature view flags (0 of 1 features)",
                                 "transform ratio (0 of 1 outputs)",
                                 "service alerts (0 of 2 features)",
                                 "service scoring (0 of 5 features)")
    applied.edit("views/user_last.sql", "t.amount AS last_amount", "-t.amount AS last_amount")
    change = next(c for c in applied.plan().changes if c.name == "user_last")
    assert change.downstream == ("feature view flags (1 of 1 features)",
                                 "transform ratio (1 of 1 outputs)",
                                 "service alerts (2 of 2 features)",
                                 "service scoring (1 of 5 features)")


PY_HOOK = '''\
from featql import request_transform


@request_transform(request={"amount": "DOUBLE"}, inputs=["user_last.last_amount"],
                   outputs={"ratio": "DOUBLE"})
def ratio(amount, last_amount):
    """Amount over the previous amount."""
    return {"ratio": amount / last_amount if last_amount else None}
'''


def test_python_transform_logic_change_is_breaking(applied: Proj) -> None:
    applied.write("hooks/ratio.py", PY_HOOK)
    applied.apply()
    applied.write("hooks/ratio.py", PY_HOOK.replace('"""Amount', '# cosmetic\n    """The amount'))
    assert applied.plan_text() == "No changes: workspace 'dev' matches the project (apply #2).\n"
    applied.write("hooks/ratio.py", PY_HOOK.replace("amount / last_amount", "amount - last_amount"))
    (change,) = applied.plan().changes
    assert (change.name, change.level, [d.text for d in change.details]) == (
        "ratio", "breaking", ["logic changed"])


def test_column_added_to_a_source_is_non_breaking(applied: Proj) -> None:
    applied.edit("sources/txns.sql", "event_ts TIMESTAMP", "event_ts TIMESTAMP,\n  extra STRING")
    assert applied.plan_text() == HEAD + (
        "~   update   source txns (non-breaking)\n"
        "      columns added: extra STRING\n\n"
        "Plan: 0 to create, 1 to update, 0 to recreate, 0 to delete "
        "(0 breaking, 1 non-breaking, 0 metadata).\n")


def test_source_column_type_change_reaches_the_features_reading_it(applied: Proj) -> None:
    applied.edit("sources/txns.sql", "channel  STRING", "channel  INT")
    plan = applied.plan()
    source = plan.changes[0]
    assert (source.name, source.action, source.level) == ("txns", "update", "breaking")
    assert [d.text for d in source.details] == ["column channel: STRING → INT"]
    assert source.downstream == ("feature view user_aggs (0 of 4 features)",
                                 "feature view user_last (1 of 2 features)",
                                 "service scoring (0 of 5 features)")
    last = next(c for c in plan.changes if c.name == "user_last")
    assert "feature type last_channel: STRING → INT" in [d.text for d in last.details]
