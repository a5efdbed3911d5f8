"""`featql.toml`: the project's configuration (PRODUCT §7)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featql.compiler.diagnostics import Diagnostics, Span, did_you_mean

CONFIG_FILE = "featql.toml"
DEFAULT_EXCLUDE = ("target", ".featql", "data", ".venv", "node_modules", "__pycache__")

_SECTIONS: dict[str, tuple[str, ...]] = {
    "project": ("name", "exclude"),
    "offline": ("engine", "path"),
    "online": ("store", "path", "region", "endpoint_url", "table_prefix"),
    "spark": ("master", "conf"),
    "serve": ("host", "port", "workers", "max_entities", "max_body_bytes"),
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


def load_config(root: Path, display: str, diags: Diagnostics) -> ProjectConfig:
    path = root / CONFIG_FILE
    if not path.exists():
        return ProjectConfig(name=root.resolve().name)
    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+), column (\d+)", str(e))
        line, col = (int(m.group(1)), int(m.group(2))) if m else (1, 1)
        diags.error("E001", f"invalid featql.toml: {str(e).split(' (at')[0]}",
                    Span(display, line, col))
        return ProjectConfig(name=root.resolve().name)
    for section, body in data.items():
        where = _find(text, f"[{section}]", display)
        if section not in _SECTIONS:
            diags.error("E002", f"unknown section [{section}] in featql.toml", where,
                        hint=did_you_mean(section, _SECTIONS))
            continue
        if not isinstance(body, dict):
            diags.error("E002", f"[{section}] must be a table", where)
            continue
        for key in body:
            if key not in _SECTIONS[section]:
                diags.error("E002", f"unknown key '{key}' in [{section}]",
                            _find(text, key, display),
                            hint=did_you_mean(key, _SECTIONS[section]))
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


def _find(text: str, needle: str, display: str) -> Span:
    idx = text.find(needle)
    if idx < 0:
        return Span(display, 1, 1)
    line = text.count("\n", 0, idx) + 1
    return Span(display, line, idx - text.rfind("\n", 0, idx))
