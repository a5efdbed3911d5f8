"""`featql.toml`: the project's configuration (PRODUCT §7)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featql.core.diagnostics import Diagnostics, Span, did_you_mean

CONFIG_FILE = "featql.toml"
DEFAULT_EXCLUDE = ("target", ".featql", "data", ".venv", "node_modules", "__pycache__")

_SECTIONS: dict[str, tuple[str, ...]] = {
    "project": ("name", "exclude"),
    "offline": ("engine", "path"),
    "online": ("store", "path", "region", "endpoint_url", "table_prefix", "read_deadline_ms",
               "compact"),
    "spark": ("master", "conf"),
    "serve": ("host", "port", "workers", "threads", "max_entities", "max_body_bytes"),
}


@dataclass(frozen=True)
class ProjectConfig:
    name: str = "featql"
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    offline_engine: str = "duckdb"
    offline_path: str = "data/offline"
    online_store: str = "sqlite"
    online_path: str = ".featql/online.db"
    online: dict[str, Any] = field(default_factory=dict)
    spark_master: str = "local[2]"
    spark_conf: dict[str, str] = field(default_factory=dict)
    serve: dict[str, Any] = field(default_factory=dict)

    @property
    def online_compact(self) -> bool:
        """`[online] compact`: whether the online load compacts long windows (default true)."""
        return bool(self.online.get("compact", True))


def load_config(root: Path, display: str, diags: Diagnostics) -> ProjectConfig:
    path = root / CONFIG_FILE
    if not path.exists():
        return ProjectConfig(name=root.resolve().name)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        diags.error("E001", f"cannot read featql.toml: {getattr(e, 'strerror', None) or e}",
                    Span(display, 1, 1))
        return ProjectConfig(name=root.resolve().name)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+), column (\d+)", str(e))
        line, col = (int(m.group(1)), int(m.group(2))) if m else (1, 1)
        diags.error("E001", f"invalid featql.toml: {str(e).split(' (at')[0]}",
                    Span(display, line, col))
        return ProjectConfig(name=root.resolve().name)
    for section, body in data.items():
        where = _find(text, f"[{section}]" if f"[{section}]" in text else section, display)
        if section not in _SECTIONS:
            diags.error("E002", f"unknown section [{section}] in featql.toml", where,
                        hint=did_you_mean(section, _SECTIONS))
            continue
        if not isinstance(body, dict):
            diags.error("E002", f"'{section}' must be a table: [{section}] followed by its keys",
                        where)
            continue
        for key in body:
            if key not in _SECTIONS[section]:
                diags.error("E002", f"unknown key '{key}' in [{section}]",
                            _find_key(text, section, key, display),
                            hint=did_you_mean(key, _SECTIONS[section])
                            or f"keys of [{section}]: {', '.join(_SECTIONS[section])}")
    for section, key, want, check in _VALUE_CHECKS:
        body = data.get(section)
        if isinstance(body, dict) and key in body and not check(body[key]):
            diags.error("E003", f"[{section}] {key} must be {want}, found {body[key]!r}",
                        _find_key(text, section, key, display))
            body.pop(key)  # fall back to the default; the error is reported
    data = {k: v for k, v in data.items() if isinstance(v, dict)}  # non-tables reported above
    project = data.get("project", {})
    offline = data.get("offline", {})
    online = data.get("online", {})
    spark = data.get("spark", {})
    return ProjectConfig(
        name=str(project.get("name", root.resolve().name)),
        exclude=tuple(project.get("exclude", DEFAULT_EXCLUDE)),
        offline_engine=str(offline.get("engine", "duckdb")),
        offline_path=str(offline.get("path", "data/offline")),
        online_store=str(online.get("store", "sqlite")),
        online_path=str(online.get("path", ".featql/online.db")),
        online=dict(online),
        spark_master=str(spark.get("master", "local[2]")),
        spark_conf={str(k): str(v) for k, v in dict(spark.get("conf", {})).items()},
        serve=dict(data.get("serve", {})),
    )


_VALUE_CHECKS: tuple[tuple[str, str, str, Any], ...] = (
    ("project", "name", "a string", lambda v: isinstance(v, str) and v.strip() != ""),
    ("project", "exclude", "a list of folder names",
     lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
    ("offline", "engine", "\"duckdb\" or \"spark\"", lambda v: v in ("duckdb", "spark")),
    ("offline", "path", "a string", lambda v: isinstance(v, str)),
    ("online", "store", "\"sqlite\" or \"dynamodb\"", lambda v: v in ("sqlite", "dynamodb")),
    ("online", "path", "a string", lambda v: isinstance(v, str)),
    ("online", "read_deadline_ms", "a number of milliseconds (0 < ms <= 600000)",
     lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 600_000),
    ("online", "compact", "true or false", lambda v: isinstance(v, bool)),
    ("spark", "master", "a string", lambda v: isinstance(v, str)),
    ("spark", "conf", "a table of settings", lambda v: isinstance(v, dict)),
)


def _find_key(text: str, section: str, key: str, display: str) -> Span:
    """Where `key = ...` is written inside [section] (or as section.key at the top)."""
    header = re.search(rf"(?m)^\s*\[\s*{re.escape(section)}\s*\]", text)
    start = header.end() if header else 0
    nxt = re.compile(r"(?m)^\s*\[").search(text, start) if header else None
    end = nxt.start() if nxt else len(text)
    m = re.compile(rf"(?m)^[ \t]*(\"?){re.escape(key)}\1[ \t]*=").search(text, start, end)
    if m is None:
        return _find(text, key, display)
    idx = m.start() + len(m.group(0)) - len(m.group(0).lstrip())
    line = text.count("\n", 0, idx) + 1
    return Span(display, line, idx - text.rfind("\n", 0, idx))


def _find(text: str, needle: str, display: str) -> Span:
    idx = text.find(needle)
    if idx < 0:
        return Span(display, 1, 1)
    line = text.count("\n", 0, idx) + 1
    return Span(display, line, idx - text.rfind("\n", 0, idx))
