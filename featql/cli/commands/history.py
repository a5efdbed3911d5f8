"""`featql history [--workspace W] [--json]`: the applies of a workspace, oldest first.

Each apply keeps its full manifest, time, user and git commit; to roll back, check out the
older commit and run `featql apply` (the plan shows exactly the reverse diff).
"""

from __future__ import annotations

import argparse
import json

from featql.cli.commands._common import project_root, workspace
from featql.cli.commands._registry import add_workspace_argument, registry_for
from featql.cli.console import console


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_workspace_argument(p)
    p.add_argument("--json", action="store_true", help="the history as JSON on stdout")


def run(args: argparse.Namespace) -> int:

    root = project_root(args.project)
    with registry_for(root) as reg:
        ws = workspace(root, args.workspace, reg)
        records = reg.history(ws)
        by_apply: dict[int, list[str]] = {}
        for b in reg.backfills(ws):
            status = b.status
            if status == "pending" and reg.materialized(ws, b.view, b.fingerprint):
                status = "materialized since"  # by a later `featql materialize`
            by_apply.setdefault(b.apply_id, []).append(f"{b.view}: {status}")
    if args.json:
        print(json.dumps([{
            "id": r.id, "workspace": r.workspace, "applied_at": r.applied_at, "user": r.user,
            "git_commit": r.git_commit, "summary": r.summary,
            "changes": json.loads(r.changes), "backfills": by_apply.get(r.id, []),
        } for r in records], indent=2, sort_keys=True))
        return 0
    out = console()
    if not records:
        out.print(f"Nothing applied to workspace '{ws}' yet.", markup=False)
        return 0
    out.print(f"History of workspace '{ws}':", style="bold", markup=False)
    for r in records:
        commit = r.git_commit or "no commit"
        out.print(f"#{r.id:<4} {r.applied_at} UTC  {r.user:<12} {commit:<20} {r.summary}",
                  markup=False)
        if by_apply.get(r.id):
            out.print(f"      backfills: {', '.join(by_apply[r.id])}", style="dim",
                      markup=False)
    return 0
