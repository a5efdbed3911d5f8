"""What runs is what was applied (PRODUCT §3): a workspace's applied manifest and hook sources.

`featql apply` stores the manifest and the source text of every Python hook file it was
compiled from (`hook_sources`). `load_applied(root, workspace)` returns them as `Applied`; the
hook sources are written to `.featql/applied/<workspace>/<apply_id>/<module path>` and
`Applied.runnable` is the manifest with each Python transform's module pointing there, so the
online path and training sets import the code that was applied, not the working tree's.

`unapplied_changes(applied, working)` names the objects the working tree changes (the same
diff `featql plan` shows), for the warning of commands that run the applied definitions.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from featql.core.ir import Manifest, RequestTransform
from featql.registry.diff import diff_manifests
from featql.registry.sqlite import SqliteRegistry, registry_path
from featql.registry.store import DEFAULT_WORKSPACE, Registry, RegistryError
from featql.registry.workspaces import check_name, selected, unknown_workspace

APPLIED_DIR = Path(".featql") / "applied"


class HookPathError(RegistryError):
    """A Python hook's module path resolves outside the project."""


@dataclass(frozen=True)
class Applied:
    """The head apply of a workspace."""

    workspace: str
    apply_id: int
    manifest: Manifest  # exactly as applied (what `featql plan` compares with)
    hooks: dict[str, str] = field(default_factory=dict)  # module path -> source text
    runnable: Manifest | None = None  # hooks pointing at the applied copies (None: no hooks)

    @property
    def run_manifest(self) -> Manifest:
        """The manifest to run: Python transforms import the applied hook sources."""
        return self.runnable or self.manifest

    @property
    def label(self) -> str:
        return f"apply #{self.apply_id} of workspace '{self.workspace}'"


def python_transforms(manifest: Manifest) -> list[RequestTransform]:
    return [t for t in manifest.transforms if t.language == "python" and t.module]


def _inside(root: Path, module: str, transform: str) -> Path:
    """The resolved path of a hook module; HookPathError when it leaves the project."""
    base = root.resolve()
    path = (root / module).resolve()
    if PurePosixPath(module).is_absolute() or not path.is_relative_to(base):
        raise HookPathError(
            f"transform {transform}: hook module '{module}' resolves to {path}, outside the "
            f"project {base}; keep hook files inside the project (no symlinks or '..' out)")
    return path


def check_hook_paths(root: Path, manifest: Manifest) -> None:
    """Refuse a manifest whose Python hooks resolve outside the project (HookPathError)."""
    for t in python_transforms(manifest):
        assert t.module is not None
        _inside(root, t.module, t.name)


def hook_sources(root: Path, manifest: Manifest) -> tuple[tuple[str, str], ...]:
    """(module path, source text) of every Python hook file of `manifest`, read from `root`,
    to store with an apply. Refuses hooks outside the project."""
    out: dict[str, str] = {}
    for t in python_transforms(manifest):
        assert t.module is not None
        path = _inside(root, t.module, t.name)
        if t.module in out:
            continue
        try:
            out[t.module] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise RegistryError(f"transform {t.name}: cannot read its hook file "
                                f"'{t.module}': {e}") from e
    return tuple(sorted(out.items()))


def workspace_of(root: Path, arg: str | None) -> str:
    """--workspace when given, else the selected one (`featql workspace select`), else dev."""
    return check_name(arg or selected(root))


def missing_hook_sources(registry: Registry, apply_id: int, manifest: Manifest) -> list[str]:
    """Hook files of `manifest` whose source apply #`apply_id` does not hold (an apply recorded
    before the registry kept hook sources)."""
    have = registry.hooks_of(apply_id)
    return sorted({t.module for t in python_transforms(manifest) if t.module} - set(have))


def existing_workspace(root: Path, arg: str | None) -> str:
    """`workspace_of`, checked: RegistryError (with a did-you-mean) unless the workspace
    exists or is the default one. Creates no file."""
    name = workspace_of(root, arg)
    if name == DEFAULT_WORKSPACE:
        return name
    if not registry_path(root).exists():
        raise unknown_workspace(name, [])
    reg = SqliteRegistry(registry_path(root))
    try:
        if not reg.has_workspace(name):
            raise unknown_workspace(name, [w.name for w in reg.workspaces()])
    finally:
        reg.close()
    return name


def find_applied(root: Path, workspace: str | None = None) -> Applied | None:
    """The head apply of `workspace` (default: the selected one) with its hooks written out,
    or None when nothing is applied to it yet; RegistryError when the workspace does not
    exist (with a did-you-mean over the existing ones)."""
    root = Path(root)
    name = existing_workspace(root, workspace)
    if not registry_path(root).exists():
        return None
    reg = SqliteRegistry(registry_path(root))
    try:
        state = reg.applied(name)
        if state is None:
            return None
        hooks = reg.hooks_of(state.apply_id)
    finally:
        reg.close()
    manifest = state.manifest
    wanted = python_transforms(manifest)
    if not wanted:
        return Applied(name, state.apply_id, manifest, hooks)
    missing = sorted({t.module or "" for t in wanted} - set(hooks))
    if missing:  # `featql apply` records them again (missing_hook_sources)
        raise RegistryError(f"apply #{state.apply_id} of workspace '{name}' holds no source for "
                            f"the hook file(s) {', '.join(missing)} (recorded by an older "
                            "featql); apply the project again")
    folder = APPLIED_DIR / name / str(state.apply_id)
    write_hooks(root, folder, hooks)
    runnable = dataclasses.replace(manifest, transforms=tuple(
        dataclasses.replace(t, module=(folder / t.module).as_posix())
        if t.language == "python" and t.module else t for t in manifest.transforms))
    return Applied(name, state.apply_id, manifest, hooks, runnable)


def load_applied(root: Path, workspace: str | None = None) -> Applied:
    """`find_applied`, required: RegistryError naming the workspace when it does not exist or
    has nothing applied yet."""
    applied = find_applied(root, workspace)
    if applied is None:
        name = workspace_of(Path(root), workspace)
        flag = "" if name == DEFAULT_WORKSPACE and not workspace else f" --workspace {name}"
        raise RegistryError(f"nothing is applied to workspace '{name}' yet: run `featql apply"
                            f"{flag}` first (what runs is what was applied)")
    return applied


def write_hooks(root: Path, folder: Path, hooks: dict[str, str]) -> None:
    """Write the applied hook sources under `root/folder` (each file replaced atomically when
    its text differs), refusing module paths that would land outside that folder."""
    base = (root / folder).resolve()
    for module, text in hooks.items():
        rel = PurePosixPath(module)
        target = (root / folder / module).resolve()
        if rel.is_absolute() or ".." in rel.parts or not target.is_relative_to(base):
            raise HookPathError(f"the registry holds a hook module path '{module}' outside the "
                                "project; refusing to write or run it")
        try:
            if target.read_text(encoding="utf-8") == text:
                continue
        except (OSError, UnicodeDecodeError):
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)


def unapplied_changes(applied: Manifest, working: Manifest) -> list[str]:
    """The objects the working tree adds, changes or deletes against the applied manifest."""
    return [d.name for d in diff_manifests(applied, working)]


def unapplied_warning(applied: Applied, changed: list[str]) -> str | None:
    """`1 unapplied change in the project (user_txn_aggs); using apply #3 of workspace 'dev' —
    run `featql plan``, or None when the working tree matches what is applied."""
    if not changed:
        return None
    n = len(changed)
    shown = ", ".join(changed[:5]) + (f", … {n - 5} more" if n > 5 else "")
    return (f"{n} unapplied change{'s' if n != 1 else ''} in the project ({shown}); using "
            f"{applied.label} — run `featql plan`")
