"""`featql apply [--workspace W] [--yes]`: apply the plan to a workspace and run its backfills.

Asks for confirmation unless --yes; refuses to delete what a service still uses or what is
marked prevent_destroy; records the apply in the workspace's history.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from featql.cli.commands._common import compile_or_report, project_root, workspace
from featql.cli.commands._registry import add_workspace_argument, print_plan, registry_for
from featql.cli.console import UserError, console

if TYPE_CHECKING:
    from featql.registry.applier import Engine

REPLANS = 3  # with --yes, plan again when another apply got in first


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_workspace_argument(p)
    p.add_argument("--yes", "-y", action="store_true", help="apply without asking")


def run(args: argparse.Namespace) -> int:
    from featql.registry import StalePlanError
    from featql.registry.applied import check_hook_paths, missing_hook_sources
    from featql.registry.applier import build_plan, record, run_backfills

    result = compile_or_report(args.project, quiet_ok=True)
    if result is None:
        return 1
    assert result.manifest is not None
    root = project_root(args.project)
    out = console()
    with registry_for(root) as reg:
        check_hook_paths(root, result.manifest)  # before the plan: refused, nothing asked
        ws = workspace(root, args.workspace, reg, create_default=True)
        for attempt in range(1, REPLANS + 1):
            plan = build_plan(root, result.manifest, reg, ws)
            print_plan(plan)
            if not plan.has_changes:
                if plan.base is None or not missing_hook_sources(reg, plan.base.id,
                                                                 plan.manifest):
                    return 0
                out.print(f"apply #{plan.base.id} lacks the source of its Python hooks "
                          "(an older featql): applying again records them", style="yellow",
                          markup=False)
            if plan.refusals:
                raise UserError(f"nothing applied: {len(plan.refusals)} change"
                                f"{'s' if len(plan.refusals) != 1 else ''} refused (see above)")
            if not args.yes and not _confirm(ws):
                out.print("Apply cancelled; nothing changed.")
                return 1
            try:
                apply_id = record(root, reg, plan)
                break
            except StalePlanError as e:
                # interactive: the user approved another plan; with --yes: plan again
                if not args.yes or attempt == REPLANS:
                    raise UserError(f"nothing applied: {e}; run featql plan again") from e
                out.print(f"{e}; planning again", style="yellow", markup=False)
        out.print(f"Applied #{apply_id} to workspace '{ws}'.", style="bold green",
                  markup=False)
        done = run_backfills(root, reg, plan, apply_id, lambda s: out.print(s, markup=False),
                             offline_engine())
    if done.ran:
        out.print(f"Backfilled: {', '.join(done.ran)}.", markup=False)
    if done.pending:
        out.print(f"Backfill pending for {', '.join(done.pending)}: the offline engine "
                  "(featql.jobs.materialize) is not installed; it is recorded in the "
                  "registry and runs with `featql materialize`.", style="yellow", markup=False)
    if done.failed:
        console(stderr=True).print(
            f"applied, but the backfill failed: {done.failed}\nrerun it with "
            "`featql materialize`", style="bold red", markup=False)
        return 1
    return 0


def offline_engine() -> Engine | None:
    """The backfill engine the registry runs: `featql.jobs.materialize.materialize` (the
    registry sits below the jobs and is handed it; imported here, when an apply runs)."""
    from featql.jobs.materialize import materialize

    return materialize


def _confirm(workspace: str) -> bool:
    if not sys.stdin.isatty():
        raise UserError(f"featql apply asks before changing workspace '{workspace}', but stdin "
                        "is not a terminal; review the plan above and rerun with --yes")
    answer = input(f"Apply these changes to workspace '{workspace}'? [y/N] ")
    return answer.strip().lower() in ("y", "yes")
