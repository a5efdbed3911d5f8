"""Plan against a workspace, record an apply atomically, then run (or queue) its backfills.

The registry write is one transaction (see sqlite.py) holding the manifest and the source of
its Python hooks (applied.py); backfills run after it, outside the lock, through the engine
function the caller passes (the CLI passes `featql.jobs.materialize.materialize`: the registry
sits below the jobs and never imports them). Each backfill's status (pending / done / failed)
is kept in the registry.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from featql.core.ir import Manifest
from featql.core.manifest import dumps
from featql.registry.applied import hook_sources
from featql.registry.planner import Plan, make_plan
from featql.registry.render import change_json, short_summary
from featql.registry.store import NewApply, Registry


def build_plan(root: Path, manifest: Manifest, registry: Registry, workspace: str,
               now: datetime | None = None) -> Plan:
    state = registry.applied(workspace)
    now = now or datetime.now(UTC).replace(tzinfo=None)
    return make_plan(root, workspace, state.record if state else None,
                     state.manifest if state else None, manifest,
                     lambda view, fp: registry.materialized(workspace, view, fp), now)


def git_commit(root: Path) -> str | None:
    """The project's git commit (`+dirty` when its tracked files have edits), or None."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                  text=True, timeout=5, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    head = git("rev-parse", "--short=12", "HEAD")
    if not head:
        return None
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return head + ("+dirty" if dirty else "")


def current_user() -> str:
    try:
        return os.environ.get("FEATQL_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def record(root: Path, registry: Registry, plan: Plan) -> int:
    """Write the plan's manifest and the source of its Python hooks (read from `root` now) as
    the workspace's new state (raises StalePlanError when the workspace changed since the plan
    was made, HookPathError when a hook resolves outside the project)."""
    backfills = tuple((b.view, b.fingerprint) for b in plan.backfills if b.intervals > 0)
    hooks = hook_sources(root, plan.manifest)
    return registry.record_apply(NewApply(
        workspace=plan.workspace, manifest_json=dumps(plan.manifest),
        base_apply=plan.base.id if plan.base else None, user=current_user(),
        git_commit=git_commit(root), summary=short_summary(plan),
        changes_json=json.dumps([change_json(c) for c in plan.changes], sort_keys=True),
        backfills=backfills, hooks=hooks))


@dataclass(frozen=True)
class BackfillOutcome:
    ran: tuple[str, ...]
    pending: tuple[str, ...]
    failed: str | None


Engine = Callable[..., object]
"""`engine(project_root, manifest, workspace, views=[...])`: materializes the views offline."""


def run_backfills(root: Path, registry: Registry, plan: Plan, apply_id: int,
                  say: Callable[[str], None], engine: Engine | None) -> BackfillOutcome:
    """Run the apply's pending backfills with `engine` (None: leave them pending)."""
    rows = [b for b in registry.backfills(plan.workspace)
            if b.apply_id == apply_id and b.status == "pending"]
    views = [b.view for b in rows]
    if not views:
        return BackfillOutcome((), (), None)
    if engine is None:
        for b in rows:
            registry.set_backfill(b.id, "pending", "offline engine not installed")
        return BackfillOutcome((), tuple(views), None)
    say(f"backfilling {', '.join(views)} in workspace '{plan.workspace}' ...")
    for b in rows:
        registry.set_backfill(b.id, "running")
    try:
        engine(root, plan.manifest, plan.workspace, views=views)
    except Exception as e:  # the apply stands; the backfill can be retried
        message = f"{type(e).__name__}: {e}"
        for b in rows:
            registry.set_backfill(b.id, "failed", message[:500])
        return BackfillOutcome((), (), message)
    for b in rows:
        registry.set_backfill(b.id, "done")
    return BackfillOutcome(tuple(views), (), None)
