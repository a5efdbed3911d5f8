"""Helpers shared by commands: compile a project and report its diagnostics; the workspace a
command acts on (`workspace`) and the applied definitions that run in it (`applied_run`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from featql.cli.console import UserError, console, print_diagnostics, summary_line
from featql.compiler.project import CompileResult, ViewSink, compile_project

if TYPE_CHECKING:
    from featql.core.config import ProjectConfig
    from featql.registry import Applied
    from featql.registry.store import Registry


def project_root(arg: str) -> Path:
    """The project folder: it must exist and hold featql.toml (a hint names a project nearby)."""
    root = Path(arg)
    if not root.is_dir():
        raise UserError(f"project folder '{arg}' does not exist")
    if not (root / "featql.toml").is_file():
        raise UserError(f"'{arg}' is not a featql project: it has no featql.toml"
                        + _nearby_project(root))
    return root


def _nearby_project(root: Path) -> str:
    """`; did you mean --project X?` for a project just above or below `root`."""
    import os

    here = root.resolve()
    below = sorted(p.parent for p in here.glob("*/featql.toml"))
    above = next((p for p in here.parents if (p / "featql.toml").is_file()), None)
    found = below[0] if below else above
    if found is None:
        return " (create one with `featql init DIR`, or pass --project DIR)"
    return f"; did you mean --project {os.path.relpath(found)}?"


def compile_or_report(project: str, *, quiet_ok: bool = False, sink: ViewSink | None = None,
                      lineage: bool = True, parallel: bool = False) -> CompileResult | None:
    """Compile; print diagnostics; None when there were errors. `sink`, `parallel`: see
    `compile_project`; `lineage=False` leaves the manifest's lineage empty."""
    result = compile_project(project_root(project), sink=sink, with_lineage=lineage,
                             parallel=parallel)
    diags = result.diagnostics
    print_diagnostics(diags.sorted(), result.source_text)
    if diags.has_errors():
        counts = summary_line(len(diags.errors), len(diags.warnings))
        console(stderr=True).print(f"[bold red]featql check failed:[/] {counts}")
        return None
    if not quiet_ok and diags.warnings:
        console(stderr=True).print(summary_line(0, len(diags.warnings)))
    return result


# a project this large leaves its garbage to process exit (`featql.core.pool.GcPause`)
LARGE_PROJECT_VIEWS = 200


def workspace(root: Path, arg: str | None, registry: Registry | None = None, *,
              create_default: bool = False) -> str:
    """The workspace a command acts on: `--workspace`, else the one `featql workspace select`
    chose, else dev. An unknown workspace is an error (with a did-you-mean); "dev" springs into
    existence on first use when `create_default` (with `registry`)."""
    from featql.registry import RegistryError, workspaces

    try:
        if registry is not None:
            return workspaces.resolve(root, arg, registry, create_default=create_default)
        from featql.registry.applied import existing_workspace

        return existing_workspace(root, arg)  # opens no registry that does not exist
    except RegistryError as e:
        raise UserError(str(e)) from e


@dataclass(frozen=True)
class AppliedRun:
    """What a command runs: the workspace's applied definitions, and the project's config."""

    applied: Applied
    config: ProjectConfig
    unapplied: tuple[str, ...]  # objects the working tree changes (not used)

    @property
    def workspace(self) -> str:
        return self.applied.workspace


def applied_run(project: str, arg: str | None) -> AppliedRun:
    """The applied manifest of the command's workspace (PRODUCT §3: what runs is what was
    applied), with a warning on stderr when the working tree differs from it."""
    from featql.registry import RegistryError, load_applied, unapplied_changes, unapplied_warning

    root = project_root(project)
    try:
        applied = load_applied(root, arg)
    except RegistryError as e:
        raise UserError(str(e)) from e
    working = compile_project(root)
    err = console(stderr=True)
    if working.manifest is None or working.diagnostics.has_errors():
        n = len(working.diagnostics.errors)
        err.print(f"[bold yellow]warning:[/] the project does not compile ({n} error"
                  f"{'s' if n != 1 else ''}, see `featql check`); using {applied.label}",
                  highlight=False)
        changed: list[str] = []
    else:
        changed = unapplied_changes(applied.manifest, working.manifest)
        message = unapplied_warning(applied, changed)
        if message:
            from rich.markup import escape

            err.print("[bold yellow]warning:[/] " + escape(message), highlight=False)
    return AppliedRun(applied, working.config, tuple(changed))
