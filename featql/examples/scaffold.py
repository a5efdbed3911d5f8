"""Locate the bundled example project and copy it into a new folder (`featql init`)."""

from __future__ import annotations

import shutil
from pathlib import Path

SKIP = {"data", "target", ".featql", "__pycache__"}


def example_dir() -> Path:
    """The example project: packaged in a wheel as featql/_example, in a checkout features/."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_example", here.parent / "features"):
        if (candidate / "featql.toml").exists():
            return candidate
    raise FileNotFoundError("the bundled example project is missing from this installation")


def copy_example(dest: Path) -> list[Path]:
    """Copy the example's definitions (not its data) into dest; returns the files written."""
    src = example_dir()
    written: list[Path] = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part in SKIP for part in rel.parts) or path.is_dir():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        written.append(target)
    return written
