"""Fingerprints change with meaning, not with formatting, comments or table aliases."""

from __future__ import annotations

from featql.compiler.project import compile_project

PROFILE = "views/profile.sql"
HEADER = (
    "-- @feature_view(name = profile, entity = user, timestamp = updated_at,\n"
    "--               ttl = '30d', start = '2024-01-01')\n"
)


def fingerprints(root):
    result = compile_project(root)
    assert result.ok, [d.headline() for d in result.diagnostics]
    view = result.manifest.view("profile")
    return view.fingerprint, {f.name: f.fingerprint for f in view.features}


def test_reformatting_alias_rename_and_comments_keep_fingerprints(write_project):
    base = fingerprints(write_project())
    edited = fingerprints(write_project({PROFILE: HEADER + (
        "-- a comment\n"
        "select   x.user_id,\n  x.updated_at , x.country,\n"
        "  length(x.country) as country_len  -- trailing\n"
        "from users x where x.country is not null\n")}))
    assert edited == base


def test_changing_a_filter_changes_every_feature(write_project):
    view_fp, feats = fingerprints(write_project())
    view_fp2, feats2 = fingerprints(write_project({PROFILE: HEADER + (
        "SELECT u.user_id, u.updated_at, u.country, LENGTH(u.country) AS country_len\n"
        "FROM users AS u WHERE u.country <> 'US'\n")}))
    assert view_fp2 != view_fp
    assert all(feats[n] != feats2[n] for n in feats)


def test_adding_a_feature_keeps_the_others(write_project):
    _, feats = fingerprints(write_project())
    _, feats2 = fingerprints(write_project({PROFILE: HEADER + (
        "SELECT u.user_id, u.updated_at, u.country, LENGTH(u.country) AS country_len,\n"
        "       UPPER(u.country) AS country_upper\n"
        "FROM users AS u WHERE u.country IS NOT NULL\n")}))
    assert set(feats2) == set(feats) | {"country_upper"}
    assert all(feats[n] == feats2[n] for n in feats)


def test_ttl_changes_fingerprint_and_owner_does_not(write_project):
    base = fingerprints(write_project())
    body = (
        "SELECT u.user_id, u.updated_at, u.country, LENGTH(u.country) AS country_len\n"
        "FROM users AS u\nWHERE u.country IS NOT NULL\n")
    ttl = fingerprints(write_project({PROFILE: HEADER.replace("'30d'", "'7d'") + body}))
    owner = fingerprints(write_project({PROFILE: HEADER + "-- @owner('team-b')\n" + body}))
    assert ttl[0] != base[0] and ttl[1]["country"] != base[1]["country"]
    assert owner == base


def test_upstream_change_reaches_downstream(write_project):
    reader = (
        "-- @feature_view(name = flags, entity = user, timestamp = updated_at, ttl = '30d',\n"
        "--               start = '2024-01-01')\n"
        "SELECT user_id, updated_at, country_len > 2 AS long_country FROM profile\n")
    a = compile_project(write_project({"views/flags.sql": reader})).manifest.view("flags")
    b = compile_project(write_project({"views/flags.sql": reader, PROFILE: HEADER + (
        "SELECT u.user_id, u.updated_at, u.country, LENGTH(u.country) + 1 AS country_len\n"
        "FROM users AS u\n")})).manifest.view("flags")
    assert a.fingerprint != b.fingerprint


def test_window_and_aggregate_changes_are_per_feature(write_project):
    def spend(text):
        result = compile_project(write_project({"views/spend.sql": text}))
        assert result.ok, [d.headline() for d in result.diagnostics]
        return {f.name: f.fingerprint for f in result.manifest.view("spend").features}

    head = ("-- @feature_view(name = spend, entity = user, timestamp = ts,\n"
            "--               windows = ['1d', '7d'], slide = '1d', start = '2024-01-01')\n")
    tail = ", AVG(amount) AS mean\nFROM events WHERE amount > 0 GROUP BY user_id\n"
    base = spend(head + "SELECT user_id, COUNT(*) AS n, SUM(amount) AS total" + tail)
    changed = spend(head + "SELECT user_id, COUNT(*) AS n, MAX(amount) AS total" + tail)
    assert changed["total_7d"] != base["total_7d"]
    assert changed["n_7d"] == base["n_7d"] and changed["mean_1d"] == base["mean_1d"]
