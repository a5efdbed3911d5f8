"""One user mistake per case: the exact diagnostic headline, the token it points at, the hint.

Each case is a tiny project (the base sources and entities of conftest plus the files below).
Every case must produce exactly one error (no cascade), with the headline
`path:line:col: error[CODE]: message`, pointing at `at` (the text found at line:col), and
with the given hint (None when the message says it all).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from featql.semantics.aggregates import supported

from .conftest import Compile
from .projects import AGG_VIEW, ROW_VIEW

ROW = ("-- @feature_view(name = v, entity = user, timestamp = event_ts, ttl = '30d', "
       "start = '2024-01-01')\n")
AGG = ("-- @feature_view(name = g, entity = user, timestamp = event_ts,\n"
       "--               windows = ['1d', '7d'], slide = '1d', start = '2024-01-01')\n")
OK_VIEW = {"views/user_last.sql": ROW_VIEW}
HOOK = ('from featql import request_transform\n\n\n'
        '@request_transform(request={"amount": "DOUBLE"}, inputs=["user_last.last_amount"],\n'
        '                   outputs={"ratio": "DOUBLE"})\n')
CAST_HINT = "wrap it in CAST(... AS BIGINT | DOUBLE | STRING | BOOLEAN | TIMESTAMP | DATE)"
COMMA_HINT = "separate arguments with commas: @name(key = value, key = value)"
LEAK_HINT = ("use the event timestamp column; featql evaluates features as of each spine "
             "row's time")


@dataclass(frozen=True)
class Case:
    id: str
    files: dict[str, str]
    headline: str
    at: str  # the text the position points at
    hint: str | None = None


CASES = [
    # ---- headers: syntax -------------------------------------------------------------------
    Case("header-unclosed-paren",
         {"views/v.sql": ROW.replace("'2024-01-01')", "'2024-01-01'")
          + "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:17: error[E101]: unclosed '(' in decorator header", "(",
         "close it with ')' before the SQL starts"),
    Case("header-unmatched-paren",
         {"views/v.sql": ROW.replace("'2024-01-01')", "'2024-01-01'))")
          + "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:99: error[E101]: unmatched ')' in decorator header", ")",
         "remove it, or open it with '('"),
    Case("header-missing-comma",
         {"views/v.sql": ROW.replace("entity = user,", "entity = user")
          + "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:42: error[E101]: missing ',' before 'timestamp'", "timestamp",
         COMMA_HINT),
    Case("header-missing-comma-across-lines",
         {"views/v.sql": "-- @feature_view(name = v, entity = user, timestamp = event_ts,\n"
          "--               start = '2024-01-01'\n--               ttl = '30d')\n"
          "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:3:18: error[E101]: missing ',' before 'ttl'", "ttl", COMMA_HINT),
    Case("header-unexpected-token",
         {"views/v.sql": ROW.replace("ttl = '30d', ", "ttl = '30d', = 3, ")
          + "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:78: error[E101]: missing key before '='", "= 3", "write key = value"),
    Case("header-missing-value",
         {"views/v.sql": ROW.replace("ttl = '30d'", "ttl = ")
          + "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:71: error[E101]: missing value after 'ttl ='", ",",
         "write ttl = <value>"),
    Case("header-bad-character",
         {"views/v.sql": ROW.replace("ttl = '30d'", "ttl = $30d")
          + "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:71: error[E101]: unexpected character '$' in decorator header", "$30d",
         "values are names, 'strings', numbers, [lists] and calls such as parquet('path/')"),
    Case("header-unquoted-duration",
         {"views/v.sql": ROW.replace("ttl = '30d'", "ttl = 30d")
          + "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:71: error[E101]: value 30d must be quoted", "30d", "write '30d'"),
    Case("header-unquoted-date",
         {"views/v.sql": ROW.replace("'2024-01-01'", "2024-01-01")
          + "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:86: error[E101]: value 2024-01-01 must be quoted", "2024-01-01",
         "write '2024-01-01'"),
    Case("header-no-brackets",
         {"views/v.sql": "-- @feature_view name = v\nSELECT 1 AS x\n"},
         "views/v.sql:1:18: error[E101]: arguments of @feature_view go in brackets", "name",
         "write @feature_view(key = value, ...)"),
    # ---- headers: decorators and keys -------------------------------------------------------
    Case("unknown-decorator",
         {"views/v.sql": ROW.replace("@feature_view", "@featur_view")
          + "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:4: error[E102]: unknown decorator '@featur_view'", "@featur_view",
         "did you mean 'feature_view'?"),
    Case("unknown-metadata-decorator",
         {"views/v.sql": ROW + "-- @ownr('risk')\n"
          "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:2:4: error[E102]: unknown decorator '@ownr'", "@ownr",
         "did you mean 'owner'?"),
    Case("unknown-key",
         {"views/v.sql": ROW.replace("timestamp =", "timestmp =")
          + "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:43: error[E103]: unknown key 'timestmp' for @feature_view", "timestmp",
         "did you mean 'timestamp'?"),
    Case("missing-required-key",
         {"views/v.sql": ROW.replace("timestamp = event_ts, ", "")
          + "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:4: error[E104]: @feature_view is missing required key 'timestamp'",
         "@feature_view", "add timestamp = <timestamp column>"),
    Case("missing-all-keys",
         {"views/v.sql": "-- @feature_view\nSELECT 1 AS x\n"},
         "views/v.sql:1:4: error[E104]: @feature_view is missing required keys 'name', "
         "'entity', 'timestamp', 'start'", "@feature_view",
         "add name = <name>, entity = <entity>, timestamp = <timestamp column>, "
         "start = '2024-01-01'"),
    Case("duplicate-key",
         {"views/v.sql": ROW.replace("ttl = '30d'", "entity = user")
          + "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:65: error[E107]: key 'entity' given twice in @feature_view", "entity",
         "remove one of them"),
    Case("string-where-name-expected",
         {"views/v.sql": ROW.replace("entity = user", "entity = 'user profile'")
          + "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:37: error[E105]: expected a name, found the string 'user profile'",
         "'user profile'"),
    Case("dotted-name-where-name-expected",
         {"views/v.sql": ROW.replace("entity = user", "entity = user.id")
          + "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:37: error[E105]: expected a plain name (letters, digits and _), "
         "found the name 'user.id'", "user.id", "write user"),
    Case("number-where-duration-expected",
         {"views/v.sql": ROW.replace("ttl = '30d'", "ttl = 30")
          + "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:71: error[E105]: expected a duration string such as '1d', found a "
         "number (30)", "30", "add a unit and quotes: '30d', '30h', '30m'"),
    Case("positional-argument",
         {"views/v.sql": ROW.replace("name = v", "'v'")
          + "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:18: error[E105]: @feature_view takes named arguments only "
         "(key = value)", "'v'", "write name = v"),
    Case("bad-duration",
         {"views/v.sql": ROW.replace("'30d'", "'9x'")
          + "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:71: error[E106]: invalid duration '9x'", "'9x'",
         "use a number and a unit: '30s', '15m', '1h', '7d', '2w'"),
    Case("bad-start-date",
         {"views/v.sql": ROW.replace("'2024-01-01'", "'2024-13-01'")
          + "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:86: error[E111]: invalid start date '2024-13-01'", "'2024-13-01'",
         "use ISO form: '2024-01-01' or '2024-01-01 06:00:00'"),
    Case("two-kind-decorators",
         {"views/v.sql": ROW + "-- @entity(name = e, keys = [user_id])\n"
          "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:2:4: error[E109]: a file defines one object; found a second kind "
         "decorator '@entity'", "@entity", "move it to a file of its own"),
    Case("no-kind-decorator",
         {"views/v.sql": "-- @owner('risk')\nSELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:1: error[E108]: definition file has no @source, @entity, @feature_view, "
         "@request_transform or @feature_service decorator", "-- @owner",
         "start the file with a header such as -- @feature_view(name = ..., entity = ..., "
         "timestamp = ..., start = ...)"),
    Case("metadata-wrong-kind",
         {"views/v.sql": ROW + "-- @tags('risk')\n"
          "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:2:10: error[E105]: expected a list of strings, found the string 'risk'",
         "'risk'", "put it in brackets: [...]"),
    Case("pii-on-a-view",
         {"views/v.sql": ROW + "-- @pii([a])\nSELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:2:4: error[E105]: @pii applies to source columns only", "@pii"),
    Case("unknown-location-kind",
         {"sources/s.sql": "-- @source(name = s, timestamp = ts, batch = parket('d/'))\n"
          "CREATE TABLE s (id BIGINT, ts TIMESTAMP)\n"},
         "sources/s.sql:1:46: error[E105]: unknown location kind 'parket'", "parket('d/')",
         "did you mean 'parquet'?"),
    # ---- SQL bodies -------------------------------------------------------------------------
    Case("two-statements",
         {"views/v.sql": ROW + "SELECT user_id, event_ts, amount AS a FROM txns;\n"
          "SELECT 1 AS b\n"},
         "views/v.sql:3:1: error[E202]: a definition file holds one SQL statement; found 2",
         "SELECT 1", "move each statement to a file of its own"),
    Case("sql-in-entity-file",
         {"entities/e.sql": "-- @entity(name = e, keys = [user_id BIGINT])\n\n  SELECT 1\n"},
         "entities/e.sql:3:3: error[E204]: @entity files hold no SQL statement", "SELECT",
         "remove the statement after the header"),
    Case("view-without-select",
         {"views/v.sql": ROW + "INSERT INTO txns VALUES (1)\n"},
         "views/v.sql:2:1: error[E205]: @feature_view expects a SELECT statement, found INSERT",
         "INSERT"),
    Case("source-create-view",
         {"sources/s.sql": "-- @source(name = s, timestamp = ts, batch = parquet('d/'))\n"
          "CREATE VIEW s AS SELECT 1\n"},
         "sources/s.sql:2:1: error[E205]: @source expects a CREATE TABLE statement, found "
         "CREATE VIEW", "CREATE VIEW"),
    Case("sql-unterminated-string",
         {"views/v.sql": ROW + "SELECT user_id, event_ts, 'abc AS a FROM txns\n"},
         "views/v.sql:2:27: error[E201]: SQL syntax error: unterminated string", "'abc",
         "close it with '"),
    Case("sql-unexpected-token",
         {"views/v.sql": ROW + "SELECT user_id event_ts amount FROM txns\n"},
         "views/v.sql:2:25: error[E201]: SQL syntax error: unexpected 'amount'", "amount"),
    Case("sql-too-deep",
         {"views/v.sql": ROW + "SELECT user_id, event_ts, " + "(" * 40 + "1" + ")" * 40
          + " AS a FROM txns\n"},
         "views/v.sql:2:59: error[E201]: SQL nests brackets deeper than 32 levels", "(",
         "split the query into feature views"),
    # ---- sources ----------------------------------------------------------------------------
    Case("create-table-name-differs",
         {"sources/s.sql": "-- @source(name = s, timestamp = ts, batch = parquet('d/'))\n"
          "CREATE TABLE other (id BIGINT, ts TIMESTAMP)\n"},
         "sources/s.sql:2:14: error[E113]: CREATE TABLE names 'other' but @source names 's'",
         "other", "rename the table to 's'"),
    Case("unsupported-column-type",
         {"sources/s.sql": "-- @source(name = s, timestamp = ts, batch = parquet('d/'))\n"
          "CREATE TABLE s (\n  id BIGINT,\n  attrs MAP(VARCHAR, INT),\n  ts TIMESTAMP\n)\n"},
         "sources/s.sql:4:9: error[E305]: column 'attrs' has type MAP(VARCHAR, INT), which "
         "featql does not support", "MAP(VARCHAR, INT)",
         "featql types: BIGINT, INT, DOUBLE, FLOAT, STRING, BOOLEAN, TIMESTAMP, DATE, "
         "ARRAY<STRING>, ARRAY<BIGINT>, ARRAY<DOUBLE>"),
    Case("zoned-timestamp-column",
         {"sources/s.sql": "-- @source(name = s, timestamp = ts, batch = parquet('d/'))\n"
          "CREATE TABLE s (id BIGINT, ts TIMESTAMPTZ)\n"},
         "sources/s.sql:2:31: error[E305]: column 'ts' has type TIMESTAMPTZ, which featql does "
         "not support", "TIMESTAMPTZ", "use TIMESTAMP: featql event times are UTC without a zone"),
    Case("duplicate-source-column",
         {"sources/s.sql": "-- @source(name = s, timestamp = ts, batch = parquet('d/'))\n"
          "CREATE TABLE s (id BIGINT, ID BIGINT, ts TIMESTAMP)\n"},
         "sources/s.sql:2:28: error[E412]: column 'id' declared twice", "ID"),
    Case("source-timestamp-column-missing",
         {"sources/s.sql": "-- @source(name = s, timestamp = tss, batch = parquet('d/'))\n"
          "CREATE TABLE s (id BIGINT, ts TIMESTAMP)\n"},
         "sources/s.sql:1:34: error[E306]: source 's' has no column 'tss' (its timestamp "
         "column)", "tss", "did you mean 'ts'?"),
    Case("source-without-schema-or-files",
         {"sources/s.sql": "-- @source(name = s, timestamp = ts, batch = parquet('d/'))\n"},
         "sources/s.sql:1:46: error[E304]: cannot read the schema of source 's' from 'd/': "
         "no files found", "parquet('d/')",
         "generate the data first, or declare the columns with CREATE TABLE"),
    # ---- names ------------------------------------------------------------------------------
    Case("unknown-table",
         {"views/v.sql": ROW + "SELECT user_id, event_ts, amount AS a FROM txn\n"},
         "views/v.sql:2:44: error[E301]: unknown table 'txn': not a source or feature view",
         "txn", "did you mean 'txns'?"),
    Case("unknown-entity",
         {"views/v.sql": ROW.replace("entity = user", "entity = usr")
          + "SELECT user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:37: error[E307]: unknown entity 'usr'", "usr", "did you mean 'user'?"),
    Case("duplicate-object-name",
         {"views/a.sql": ROW + "SELECT user_id, event_ts, amount AS a FROM txns\n",
          "views/b.sql": ROW + "SELECT user_id, event_ts, amount AS b FROM txns\n"},
         "views/b.sql:1:25: error[E303]: 'v' is already defined at views/a.sql:1:4", "v,",
         "names of sources, views and transforms are unique"),
    Case("view-named-like-a-source",
         {"views/a.sql": ROW.replace("name = v", "name = txns")
          + "SELECT user_id, updated_at AS event_ts, country FROM users\n"},
         "views/a.sql:1:25: error[E303]: 'txns' is already defined at sources/txns.sql:1:4",
         "txns", "names of sources, views and transforms are unique"),
    Case("dependency-cycle",
         {f"views/{n}.sql": ROW.replace("name = v", f"name = {n}")
          + f"SELECT user_id, event_ts, a FROM {src}\n"
          for n, src in (("a", "c"), ("b", "a"), ("c", "b"))},
         "views/a.sql:2:34: error[E302]: dependency cycle: a -> c -> b -> a", "c",
         "a feature view cannot read, directly or not, a view that reads it"),
    Case("self-read",
         {"views/v.sql": ROW + "SELECT user_id, event_ts, a FROM v\n"},
         "views/v.sql:2:34: error[E302]: feature view 'v' reads itself", "v",
         "read the source it is computed from instead"),
    # ---- columns ----------------------------------------------------------------------------
    Case("unknown-column",
         {"views/v.sql": ROW + "SELECT user_id, event_ts, amout AS a FROM txns\n"},
         "views/v.sql:2:27: error[E401]: unknown column 'amout' in 'txns'", "amout",
         "did you mean 'amount'?"),
    Case("qualified-missing-column",
         {"views/v.sql": ROW + "SELECT t.user_id, t.event_ts, t.amout AS a FROM txns AS t\n"},
         "views/v.sql:2:33: error[E401]: unknown column 'amout' in 't'", "amout",
         "did you mean 'amount'?"),
    Case("unknown-alias",
         {"views/v.sql": ROW + "SELECT t.user_id, t.event_ts, x.amount AS a FROM txns AS t\n"},
         "views/v.sql:2:31: error[E401]: unknown table or alias 'x' in 'x.amount'", "x.amount",
         "tables in scope: t"),
    Case("ambiguous-column",
         {"views/v.sql": ROW + "SELECT user_id, t.event_ts, country AS c\n"
          "FROM txns AS t JOIN users AS u ON t.user_id = u.user_id\n"},
         "views/v.sql:2:8: error[E402]: ambiguous column 'user_id': it is in 't' and 'u'",
         "user_id", "qualify it, for example t.user_id"),
    Case("unknown-column-in-subquery",
         {"views/v.sql": ROW + "SELECT user_id, event_ts, a\n"
          "FROM (SELECT user_id, event_ts, amout AS a FROM txns)\n"},
         "views/v.sql:3:33: error[E401]: unknown column 'amout' in 'txns'", "amout",
         "did you mean 'amount'?"),
    Case("unknown-column-through-star",
         {"views/v.sql": ROW + "SELECT user_id, event_ts, amout AS a FROM (SELECT * FROM txns)\n"},
         "views/v.sql:2:27: error[E401]: unknown column 'amout' in the subquery", "amout",
         "did you mean 'amount'?"),
    # ---- types and view contracts ----------------------------------------------------------
    Case("wrong-key-type",
         {"views/v.sql": ROW.replace("event_ts", "updated_at")
          + "SELECT user_code AS user_id, updated_at, country FROM users\n"},
         "views/v.sql:2:8: error[E405]: entity key 'user_id' is STRING here but BIGINT in "
         "entity 'user'", "user_code AS user_id", "CAST(user_id AS BIGINT)"),
    Case("key-of-unkeyable-type",
         {"views/v.sql": ROW + "SELECT event_ts AS user_id, event_ts, amount AS a FROM txns\n"},
         "views/v.sql:2:8: error[E405]: entity key 'user_id' is TIMESTAMP; keys must be "
         "BIGINT, INT or STRING", "event_ts AS user_id"),
    Case("entity-key-type",
         {"entities/e.sql": "-- @entity(name = e, keys = [k DOUBLE])\n"},
         "entities/e.sql:1:30: error[E405]: key 'k' of entity 'e': is DOUBLE; keys must be "
         "BIGINT, INT or STRING", "k DOUBLE"),
    Case("entity-key-unknown-type",
         {"entities/e.sql": "-- @entity(name = e, keys = [k FOO])\n"},
         "entities/e.sql:1:30: error[E405]: key 'k' of entity 'e': unknown type FOO; keys must "
         "be BIGINT, INT or STRING", "k FOO"),
    Case("aggregate-view-limit",
         {"views/v.sql": "-- @feature_view(name = v, entity = user, timestamp = event_ts,\n"
          "--   windows = ['1d'], slide = '1d', start = '2024-01-01')\n"
          "SELECT user_id, COUNT(*) AS n FROM txns GROUP BY user_id LIMIT 10\n"},
         "views/v.sql:3:58: error[E417]: LIMIT is not supported in aggregate views: an aggregate "
         "view is computed per tile and merged per window", "LIMIT", "remove the LIMIT clause"),
    Case("key-missing-from-output",
         {"views/v.sql": ROW + "SELECT event_ts, amount AS a FROM txns\n"},
         "views/v.sql:1:37: error[E404]: entity key 'user_id' of 'user' is not in the view's "
         "output", "user", "select it: SELECT user_id, ..."),
    Case("timestamp-missing-from-output",
         {"views/v.sql": ROW + "SELECT user_id, amount AS a FROM txns\n"},
         "views/v.sql:1:55: error[E406]: timestamp column 'event_ts' is not in the view's "
         "output", "event_ts", "select it: SELECT ..., event_ts FROM ..."),
    Case("timestamp-not-timestamp",
         {"views/v.sql": ROW.replace("event_ts", "signup_day")
          + "SELECT user_id, signup_day, country FROM users\n"},
         "views/v.sql:2:17: error[E407]: timestamp column 'signup_day' is DATE, expected "
         "TIMESTAMP", "signup_day", "CAST(signup_day AS TIMESTAMP)"),
    Case("untyped-null",
         {"views/v.sql": ROW + "SELECT user_id, event_ts, NULL AS a FROM txns\n"},
         "views/v.sql:2:27: error[E403]: cannot infer the type of 'a': NULL has no type", "NULL",
         "write CAST(NULL AS <type>) AS a"),
    Case("untyped-unknown-function",
         {"views/v.sql": ROW + "SELECT user_id, event_ts, my_udf(amount) AS a FROM txns\n"},
         "views/v.sql:2:27: error[E403]: cannot infer the type of 'a': featql does not know the "
         "function my_udf()", "my_udf", CAST_HINT),
    Case("unnamed-expression",
         {"views/v.sql": ROW + "SELECT user_id, event_ts, CAST(amount AS INT) FROM txns\n"},
         "views/v.sql:2:27: error[E413]: this expression needs a name", "CAST(",
         "add AS <feature_name> after it"),
    Case("duplicate-output-column",
         {"views/v.sql": ROW + "SELECT user_id, event_ts, amount AS a, channel AS a FROM txns\n"},
         "views/v.sql:2:40: error[E412]: output column 'a' appears twice", "channel AS a",
         "give each output column its own name"),
    Case("no-feature-columns",
         {"views/v.sql": ROW + "SELECT user_id, event_ts FROM txns\n"},
         "views/v.sql:2:1: error[E415]: the view outputs no feature columns (only keys and "
         "timestamp)", "SELECT"),
    # ---- aggregate views --------------------------------------------------------------------
    Case("group-by-not-the-keys",
         {"views/g.sql": AGG + "SELECT user_id, COUNT(*) AS n FROM txns GROUP BY user_id, "
          "channel\n"},
         "views/g.sql:3:59: error[E408]: an aggregate view must GROUP BY exactly the entity keys "
         "(user_id); found user_id, channel", "channel", "GROUP BY user_id"),
    Case("group-by-missing",
         {"views/g.sql": AGG + "SELECT user_id, COUNT(*) AS n FROM txns\n"},
         "views/g.sql:3:1: error[E408]: an aggregate view must GROUP BY exactly the entity keys "
         "(user_id); found none", "SELECT", "GROUP BY user_id"),
    Case("unsupported-aggregate-median",
         {"views/g.sql": AGG + "SELECT user_id, MEDIAN(amount) AS m FROM txns GROUP BY user_id\n"},
         "views/g.sql:3:17: error[E409]: unsupported aggregate MEDIAN() in an aggregate view",
         "MEDIAN(", f"supported (mergeable across tiles): {supported()}"),
    Case("count-distinct",
         {"views/g.sql": AGG + "SELECT user_id, COUNT(DISTINCT channel) AS m FROM txns "
          "GROUP BY user_id\n"},
         "views/g.sql:3:17: error[E409]: COUNT(DISTINCT ...) cannot be merged across tiles",
         "COUNT(DISTINCT", f"supported: {supported()}"),
    Case("expression-over-aggregates",
         {"views/g.sql": AGG + "SELECT user_id, SUM(amount) / COUNT(*) AS m FROM txns "
          "GROUP BY user_id\n"},
         "views/g.sql:3:17: error[E409]: feature 'm' must be a single aggregate call, not an "
         "expression over aggregates", "SUM(amount) /",
         "split it into separate aggregates; combine them in a request transform"),
    Case("window-function-in-aggregate-view",
         {"views/g.sql": AGG + "SELECT user_id, SUM(amount) OVER () AS s FROM txns "
          "GROUP BY user_id\n"},
         "views/g.sql:3:17: error[E409]: feature 's': window functions (OVER) are not allowed "
         "in aggregate views", "SUM(amount) OVER",
         f"the header's windows define the aggregation windows; use one of {supported()}"),
    Case("sum-of-strings",
         {"views/g.sql": AGG + "SELECT user_id, SUM(channel) AS s FROM txns GROUP BY user_id\n"},
         "views/g.sql:3:17: error[E418]: SUM() needs a numeric input; 's' aggregates STRING",
         "SUM(channel)"),
    Case("window-not-multiple-of-slide",
         {"views/g.sql": AGG.replace("['1d', '7d'], slide = '1d'", "['1d', '90m'], slide = '1h'")
          + "SELECT user_id, COUNT(*) AS n FROM txns GROUP BY user_id\n"},
         "views/g.sql:2:35: error[E410]: window 90m is not a multiple of the slide 1h", "'90m'",
         "each window must be a whole number of slides; use slide = '30m' or change the window"),
    Case("windows-without-slide",
         {"views/g.sql": AGG.replace(", slide = '1d'", "")
          + "SELECT user_id, COUNT(*) AS n FROM txns GROUP BY user_id\n"},
         "views/g.sql:2:28: error[E411]: an aggregate view needs both windows and slide; "
         "'slide' is missing", "['1d', '7d']",
         "add slide = '1d' (each window is a whole number of slides)"),
    Case("slide-without-windows",
         {"views/g.sql": AGG.replace("windows = ['1d', '7d'], ", "")
          + "SELECT user_id, COUNT(*) AS n FROM txns GROUP BY user_id\n"},
         "views/g.sql:2:26: error[E411]: an aggregate view needs both windows and slide; "
         "'windows' is missing", "'1d'", "add windows = ['1d', '7d'] or remove slide"),
    Case("ttl-on-aggregate-view",
         {"views/g.sql": AGG.replace("slide = '1d',", "slide = '1d', ttl = '7d',")
          + "SELECT user_id, COUNT(*) AS n FROM txns GROUP BY user_id\n"},
         "views/g.sql:2:62: error[E416]: ttl applies to row-level views; an aggregate view's "
         "windows bound its features", "'7d'", "remove ttl"),
    Case("having-in-aggregate-view",
         {"views/g.sql": AGG + "SELECT user_id, COUNT(*) AS n FROM txns GROUP BY user_id\n"
          "HAVING COUNT(*) > 1\n"},
         "views/g.sql:4:1: error[E417]: HAVING is not supported in aggregate views: it would "
         "filter tiles, not windows", "HAVING"),
    Case("aggregate-without-windows",
         {"views/v.sql": ROW + "SELECT user_id, COUNT(*) AS n FROM txns GROUP BY user_id\n"},
         "views/v.sql:2:41: error[E414]: this view aggregates but its header has no windows",
         "GROUP BY", "add windows = ['1d', ...] and slide = '1h' to @feature_view, or remove the "
         "aggregation"),
    Case("aggregate-timestamp-not-an-input",
         {"views/g.sql": AGG.replace("event_ts", "evt_ts")
          + "SELECT user_id, SUM(amount) AS s FROM txns GROUP BY user_id\n"},
         "views/g.sql:1:55: error[E406]: timestamp column 'evt_ts' is not a column of the "
         "tables the view reads", "evt_ts"),
    Case("view-reads-aggregate-view",
         {"views/g.sql": AGG_VIEW,
          "views/v.sql": ROW + "SELECT user_id, event_ts, txn_count AS a FROM user_aggs\n"},
         "views/v.sql:2:47: error[E419]: feature view 'v' reads aggregate view 'user_aggs'; "
         "aggregate features are served per window and cannot be read as a table",
         "user_aggs", "read the source it aggregates, or use a request transform"),
    # ---- leakage ----------------------------------------------------------------------------
    Case("now-in-view",
         {"views/v.sql": ROW + "SELECT user_id, event_ts, NOW() AS t FROM txns\n"},
         "views/v.sql:2:27: error[E601]: non-deterministic function NOW() in a feature query: "
         "training data would depend on when it was computed", "NOW()", LEAK_HINT),
    Case("current-timestamp-in-view",
         {"views/v.sql": ROW + "-- not CURRENT_TIMESTAMP here\n"
          "SELECT user_id, event_ts, CURRENT_TIMESTAMP - event_ts AS age FROM txns\n"},
         "views/v.sql:3:27: error[E601]: non-deterministic function CURRENT_TIMESTAMP in a "
         "feature query: training data would depend on when it was computed",
         "CURRENT_TIMESTAMP", LEAK_HINT),
    Case("random-in-view",
         {"views/v.sql": ROW + "SELECT user_id, event_ts, amount * RANDOM() AS r FROM txns\n"},
         "views/v.sql:2:36: error[E601]: non-deterministic function RANDOM() in a feature query: "
         "training data would depend on when it was computed", "RANDOM()", LEAK_HINT),
    # ---- request transforms -----------------------------------------------------------------
    Case("transform-with-from",
         {**OK_VIEW, "t/t.sql": "-- @request_transform(name = t, request = [amount DOUBLE])\n"
          "SELECT request.amount * 2 AS y FROM txns\n"},
         "t/t.sql:2:32: error[E420]: a request transform reads request.<field> and "
         "<view>.<feature>; it has no FROM", "FROM txns"),
    Case("transform-unqualified-column",
         {**OK_VIEW, "t/t.sql": "-- @request_transform(name = t, request = [amount DOUBLE])\n"
          "SELECT amount * 2 AS y\n"},
         "t/t.sql:2:8: error[E421]: column 'amount' must be qualified: request.amount or "
         "<view>.amount", "amount"),
    Case("transform-unknown-view",
         {**OK_VIEW, "t/t.sql": "-- @request_transform(name = t, request = [amount DOUBLE])\n"
          "SELECT request.amount / user_lst.last_amount AS y\n"},
         "t/t.sql:2:25: error[E503]: unknown feature view 'user_lst' in "
         "'user_lst.last_amount'", "user_lst", "did you mean 'user_last'?"),
    Case("transform-unknown-request-field",
         {**OK_VIEW, "t/t.sql": "-- @request_transform(name = t, request = [amount DOUBLE])\n"
          "SELECT request.amt / user_last.last_amount AS y\n"},
         "t/t.sql:2:16: error[E401]: unknown column 'amt' in 'request'", "amt",
         "did you mean 'amount'?"),
    Case("transform-untyped-request-field",
         {**OK_VIEW, "t/t.sql": "-- @request_transform(name = t, request = [amount])\n"
          "SELECT request.amount * 2 AS y\n"},
         "t/t.sql:1:44: error[E305]: request field 'amount' needs a featql type", "amount",
         "for example amount DOUBLE; types: BIGINT, INT, DOUBLE, FLOAT, STRING, BOOLEAN, "
         "TIMESTAMP, DATE, ARRAY<STRING>, ARRAY<BIGINT>, ARRAY<DOUBLE>"),
    # the SQL the serving evaluator runs: refused at check time, not when the server starts
    Case("transform-regexp-function",
         {**OK_VIEW, "t/t.sql": "-- @request_transform(name = t, request = [note STRING])\n"
          "SELECT request.note LIKE 'a%' AS a, REGEXP_MATCHES(request.note, '^a.*') AS m\n"},
         "t/t.sql:2:37: error[E507]: function REGEXP_MATCHES is not supported in request "
         "transforms", "REGEXP_MATCHES(",
         "did you mean LIKE? (no regular expressions; LIKE matches % and _ patterns)"),
    Case("transform-function-spelled-like-a-supported-one",
         {**OK_VIEW, "t/t.sql": "-- @request_transform(name = t, request = [note STRING])\n"
          "SELECT CONCAT_WS('-', request.note, 'x') AS c\n"},
         "t/t.sql:2:8: error[E507]: function CONCAT_WS is not supported in request transforms",
         "CONCAT_WS(", "did you mean 'CONCAT'?"),
    Case("transform-function-form-not-evaluated",
         {**OK_VIEW, "t/t.sql": "-- @request_transform(name = t, request = [note STRING])\n"
          "SELECT LTRIM(request.note) AS c\n"},
         "t/t.sql:2:8: error[E508]: 'LTRIM(request.note)' is not supported (only TRIM(s)) in "
         "request transforms", "LTRIM("),
    Case("python-hook-wrong-parameter",
         {**OK_VIEW, "hooks/h.py": HOOK + "def ratio(amount, last_amt):\n"
          "    return {'ratio': 1.0}\n"},
         "hooks/h.py:6:19: error[E504]: parameter 'last_amt' of 'ratio' is not a request field "
         "or input feature", "last_amt", "did you mean 'last_amount'?"),
    Case("python-hook-missing-parameter",
         {**OK_VIEW, "hooks/h.py": HOOK + "def ratio(amount):\n    return {'ratio': 1.0}\n"},
         "hooks/h.py:6:5: error[E504]: 'ratio' has no parameter for 'last_amount'", "ratio",
         "name one parameter per request field and per input feature"),
    Case("python-hook-unknown-input",
         {**OK_VIEW, "hooks/h.py": HOOK.replace("user_last.last_amount", "user_last.last_amt")
          + "def ratio(amount, last_amt):\n    return {'ratio': 1.0}\n"},
         "hooks/h.py:4:69: error[E503]: feature view 'user_last' has no feature 'last_amt'",
         "last_amt", "did you mean 'last_amount'?"),
    Case("python-hook-syntax-error",
         {**OK_VIEW, "hooks/h.py": HOOK + "def ratio(amount, last_amount:\n"
          "    return {'ratio': 1.0}\n"},
         "hooks/h.py:6:10: error[E206]: Python syntax error: '(' was never closed", "("),
    Case("python-hook-unknown-key",
         {**OK_VIEW, "hooks/h.py": HOOK.replace("outputs=", "output=")
          + "def ratio(amount, last_amount):\n    return {'ratio': 1.0}\n"},
         "hooks/h.py:5:27: error[E103]: unknown key 'output' for @request_transform",
         '{"ratio"', "did you mean 'outputs'?"),
    # ---- services ---------------------------------------------------------------------------
    Case("service-unknown-feature",
         {**OK_VIEW, "s/s.sql": "-- @feature_service(name = s, features = [user_last.last_amt])\n"},
         "s/s.sql:1:53: error[E501]: feature view 'user_last' has no feature 'last_amt'",
         "last_amt", "did you mean 'last_amount'?"),
    Case("service-unknown-view",
         {**OK_VIEW, "s/s.sql": "-- @feature_service(name = s, features = [user_lst.*])\n"},
         "s/s.sql:1:43: error[E502]: unknown feature view 'user_lst' in 'user_lst.*'",
         "user_lst", "did you mean 'user_last'?"),
    Case("service-bare-view-name",
         {**OK_VIEW, "s/s.sql": "-- @feature_service(name = s, features = [user_last])\n"},
         "s/s.sql:1:43: error[E501]: 'user_last' is a feature view; name its features",
         "user_last", "use user_last.* for all of them, or user_last.<feature>"),
    Case("service-unknown-transform",
         {**OK_VIEW, "s/s.sql": "-- @feature_service(name = s, features = [zzz])\n"},
         "s/s.sql:1:43: error[E502]: unknown feature view or transform 'zzz'", "zzz",
         "known feature views and transforms: user_last"),
    Case("service-feature-listed-twice",
         {**OK_VIEW, "s/s.sql": "-- @feature_service(name = s,\n"
          "--   features = [user_last.last_amount, user_last.*])\n"},
         "s/s.sql:2:41: error[E505]: feature 'user_last.last_amount' is listed twice",
         "user_last.*"),
    # ---- featql.toml ------------------------------------------------------------------------
    Case("toml-unknown-key",
         {"featql.toml": '[project]\nname = "t"\n\n[offline]\nengine = "duckdb"\nengin = "x"\n'},
         "featql.toml:6:1: error[E002]: unknown key 'engin' in [offline]", "engin",
         "did you mean 'engine'?"),
    Case("toml-unknown-section",
         {"featql.toml": '[project]\nname = "t"\n[onlin]\nstore = "sqlite"\n'},
         "featql.toml:3:1: error[E002]: unknown section [onlin] in featql.toml", "[onlin]",
         "did you mean 'online'?"),
    Case("toml-bad-value",
         {"featql.toml": '[project]\nname = "t"\n[online]\n  store = "redis"\n'},
         "featql.toml:4:3: error[E003]: [online] store must be \"sqlite\" or \"dynamodb\", "
         "found 'redis'", "store"),
    Case("toml-syntax",
         {"featql.toml": '[project]\nname = "t\n'},
         "featql.toml:2:10: error[E001]: invalid featql.toml: Illegal character '\\n'", ""),
]


def test_cases_are_distinct() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
    assert len({c.headline for c in CASES}) == len(CASES)
    assert len(CASES) >= 35


def test_each_unsupported_function_of_a_transform_is_one_error(project: Compile) -> None:
    result = project({**OK_VIEW, "t/t.sql": (
        "-- @request_transform(name = t, request = [amount DOUBLE, note STRING])\n"
        "SELECT SUBSTR(request.note, 1, 2) AS a,\n"
        "       request.amount * user_last.last_amount + LOG(request.amount) AS b,\n"
        "       ABS(request.amount) + STRPOS(SUBSTR(request.note, 2), 'x') AS c\n")})
    assert [(d.headline(), d.hint) for d in result.diagnostics.errors] == [
        ("t/t.sql:2:8: error[E507]: function SUBSTR is not supported in request transforms",
         "supported functions: ABS, CAST, CEIL, CEILING, CHARACTER_LENGTH, CHAR_LENGTH, "
         "COALESCE, CONCAT, CONTAINS, EXP, FLOOR, GREATEST, IF, IFNULL, IIF, LCASE, LEAST, LEN, "
         "LENGTH, LN, LOWER, NULLIF, NVL, POW, POWER, REPLACE, ROUND, SQRT, STARTSWITH, "
         "STARTS_WITH, TRIM, TRY_CAST, UCASE, UPPER"),
        ("t/t.sql:3:49: error[E507]: function LOG is not supported in request transforms",
         "did you mean LN?"),
        # the outer call is the mistake; what it wraps is not reported again
        ("t/t.sql:4:30: error[E507]: function STRPOS is not supported in request transforms",
         "did you mean CONTAINS?"),
    ]
    assert result.manifest is None or not result.ok


def test_the_evaluator_s_subset_is_exposed_and_accepted_by_check(project: Compile) -> None:
    from featql.transforms import SUPPORTED_CONSTRUCTS, SUPPORTED_FUNCTIONS

    assert {"ABS", "COALESCE", "LOWER", "ROUND", "CAST"} <= SUPPORTED_FUNCTIONS
    assert "REGEXP_MATCHES" not in SUPPORTED_FUNCTIONS
    assert {"Case", "Like", "In", "Between", "Add"} <= SUPPORTED_CONSTRUCTS
    result = project({**OK_VIEW, "t/t.sql": (
        "-- @request_transform(name = t, request = [amount DOUBLE, note STRING])\n"
        "SELECT ROUND(ABS(request.amount - user_last.last_amount), 2) AS d,\n"
        "       CASE WHEN LOWER(request.note) LIKE 'a%' THEN 1 ELSE 0 END AS a,\n"
        "       COALESCE(NULLIF(TRIM(request.note), ''), 'none') AS n\n")})
    assert [d.headline() for d in result.diagnostics] == []
    assert result.ok


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_mistake(case: Case, project: Compile, tmp_path: Path) -> None:
    result = project(case.files)
    errors = result.diagnostics.errors
    assert [d.headline() for d in errors] == [case.headline]
    diag = errors[0]
    assert diag.hint == case.hint
    # the position points at the mistake itself
    text = (tmp_path / diag.span.path).read_text()
    line = text.split("\n")[diag.span.line - 1]
    assert line[diag.span.col - 1:].startswith(case.at), (line, diag.span.col)
    assert result.manifest is None or not result.ok
