"""A plan as text (deterministic: kind order, then name) and as JSON for machines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from featql.core.durations import format_duration
from featql.registry.backfill import BackfillEstimate
from featql.registry.planner import Change, Plan

SYMBOLS = {"create": "+", "update": "~", "recreate": "-/+", "delete": "-"}
STYLES = {"create": "green", "update": "yellow", "recreate": "bold magenta", "delete": "red"}
LEVEL_STYLES = {"metadata": "dim", "non-breaking": "cyan", "breaking": "bold red"}

Line = tuple[str, str]  # (text, rich style)


def _ts(t: datetime) -> str:
    return t.isoformat(sep=" ", timespec="minutes")


def backfill_text(b: BackfillEstimate) -> str:
    step = format_duration(b.interval_seconds)
    srcs = ", ".join(b.sources) or "no sources"
    if b.end is None:
        return (f"backfill: from {_ts(b.start)} every {step}, once data arrives "
                f"(no rows in {srcs} yet)")
    total = b.intervals + b.done
    if total == 0:
        return f"backfill: nothing to compute (the data ends before {_ts(b.start)})"
    if b.intervals == 0:
        if b.note and not b.note.startswith("no reuse"):
            return (f"backfill: none, {b.note} (the {total} × {step} intervals stored under "
                    f"{b.fingerprint} are kept)")
        return (f"backfill: none, all {total} × {step} intervals are already materialized "
                "for this definition")
    done = f" ({b.done} already materialized)" if b.done else ""
    until = "end of data" if b.until == "data" else "now"
    rows = (f"{b.source_rows:,} source rows to scan ({srcs})" if b.source_rows is not None
            else f"source rows unknown ({srcs}: not local Parquet)")
    return (f"backfill: {b.intervals} × {step} intervals{done}, {_ts(b.start)} → "
            f"{_ts(b.end)} ({until}), {rows}")


def reuse_text(b: BackfillEstimate) -> str | None:
    """What the backfill takes from the old definition's stored data, or why nothing."""
    if not b.intervals or b.end is None:
        return None
    if b.reuse is None:
        return b.note
    r = b.reuse
    total = b.intervals
    if not b.reused:
        return (f"reuse: none, no interval of the {total} is stored under {r.base} (the old "
                f"definition), so every column is computed")
    kept = f"{len(r.kept)} aggregation{'s' if len(r.kept) != 1 else ''}"
    kept_features = len(r.kept_features)
    reused = (f"{kept} ({', '.join(r.kept)}: {kept_features} "
              f"feature{'s' if kept_features != 1 else ''}) reused from {r.base}")
    if not r.computed:
        return f"reuse: {b.reused} of {total} intervals compute nothing; {reused}"
    computed = list(r.computed_features)
    what = (f"{len(r.computed)} aggregation{'s' if len(r.computed) != 1 else ''}, "
            f"{', '.join(r.computed)} ({names_of(computed)})")
    return f"reuse: {b.reused} of {total} intervals compute only {what}; {reused}"


def names_of(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def change_lines(c: Change) -> list[Line]:
    head = f"{SYMBOLS[c.action]:<3} {c.action:<8} {c.kind} {c.name} ({c.level})"
    out: list[Line] = [(head, STYLES[c.action])]
    for d in c.details:
        out.append((f"      {d.text}", LEVEL_STYLES[d.level] if d.level == "breaking" else ""))
    if c.downstream:
        out.append((f"      downstream: {', '.join(c.downstream)}", "yellow"))
    if c.backfill is not None:
        out.append((f"      {backfill_text(c.backfill)}", "cyan"))
        extra = reuse_text(c.backfill)
        if extra:
            out.append((f"      {extra}", "cyan"))
    for n in c.notes:
        out.append((f"      {n}", "cyan"))
    for w in c.warnings:
        out.append((f"      {w}", "bold yellow"))
    if c.refused:
        out.append((f"      {c.refused}", "bold red"))
    return out


def header(plan: Plan) -> str:
    if plan.base is None:
        return f"Plan for workspace '{plan.workspace}' (nothing applied yet):"
    commit = f", commit {plan.base.git_commit}" if plan.base.git_commit else ""
    return f"Plan for workspace '{plan.workspace}' against apply #{plan.base.id}{commit}:"


def summary(plan: Plan) -> str:
    return (f"Plan: {plan.count('create')} to create, {plan.count('update')} to update, "
            f"{plan.count('recreate')} to recreate, {plan.count('delete')} to delete "
            f"({plan.level_count('breaking')} breaking, {plan.level_count('non-breaking')} "
            f"non-breaking, {plan.level_count('metadata')} metadata).")


def plan_lines(plan: Plan) -> list[Line]:
    if not plan.has_changes:
        where = f"apply #{plan.base.id}" if plan.base else "an empty workspace"
        return [(f"No changes: workspace '{plan.workspace}' matches the project ({where}).",
                 "green")]
    out: list[Line] = [(header(plan), "bold"), ("", "")]
    for c in plan.changes:
        out.extend(change_lines(c))
    out.append(("", ""))
    out.append((summary(plan), "bold"))
    return out


def plan_text(plan: Plan) -> str:
    return "\n".join(text for text, _ in plan_lines(plan)) + "\n"


def short_summary(plan: Plan) -> str:
    """One line for the history: "+2 ~1 -/+1 -0 (1 breaking)"."""
    return (f"+{plan.count('create')} ~{plan.count('update')} -/+{plan.count('recreate')} "
            f"-{plan.count('delete')} ({plan.level_count('breaking')} breaking)")


def backfill_json(b: BackfillEstimate | None) -> dict[str, Any] | None:
    if b is None:
        return None
    return {
        "view": b.view, "fingerprint": b.fingerprint, "start": b.start.isoformat(),
        "end": b.end.isoformat() if b.end else None, "interval_seconds": b.interval_seconds,
        "intervals": b.intervals, "already_materialized": b.done,
        "source_rows": b.source_rows, "sources": list(b.sources), "until": b.until,
        "reuse": None if b.reuse is None else {
            "base": b.reuse.base, "kept": list(b.reuse.kept),
            "computed": list(b.reuse.computed), "intervals": b.reused},
        "note": b.note,
    }


def change_json(c: Change) -> dict[str, Any]:
    return {
        "kind": c.kind, "name": c.name, "action": c.action, "classification": c.level,
        "details": [{"classification": d.level, "text": d.text} for d in c.details],
        "downstream": list(c.downstream), "backfill": backfill_json(c.backfill),
        "warnings": list(c.warnings), "refused": c.refused, "notes": list(c.notes),
    }


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "workspace": plan.workspace,
        "base_apply": plan.base.id if plan.base else None,
        "changes": [change_json(c) for c in plan.changes],
        "summary": {a: plan.count(a) for a in ("create", "update", "recreate", "delete")}
        | {lv: plan.level_count(lv) for lv in ("breaking", "non-breaking", "metadata")},
        "has_changes": plan.has_changes,
    }
