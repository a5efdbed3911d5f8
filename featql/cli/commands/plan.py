"""`featql plan [--workspace W] [--json]`: diff the project against a workspace, classified.

Every source, entity, feature view, transform and service is listed as create / update /
recreate / delete, classified metadata / non-breaking / breaking, with its downstream impact
and the backfill a new or recreated view implies. Exit code 0: no changes; 3: changes pending.
"""

from __future__ import annotations

import argparse
import json

from featql.cli.commands._common import compile_or_report, project_root, workspace
from featql.cli.commands._registry import add_workspace_argument, print_plan, registry_for

CHANGES_PENDING = 3


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_workspace_argument(p)
    p.add_argument("--json", action="store_true", help="the plan as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    from featql.registry.applier import build_plan
    from featql.registry.render import plan_json

    result = compile_or_report(args.project, quiet_ok=True)
    if result is None:
        return 1
    assert result.manifest is not None
    root = project_root(args.project)
    with registry_for(root) as reg:
        ws = workspace(root, args.workspace, reg)
        plan = build_plan(root, result.manifest, reg, ws)
    if args.json:
        print(json.dumps(plan_json(plan), indent=2, sort_keys=True))
    else:
        print_plan(plan)
    return CHANGES_PENDING if plan.has_changes else 0
