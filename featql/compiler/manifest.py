"""`target/manifest.json`: the one serialisable compiled artifact, and its reader.

The JSON is a versioned, deterministic rendering of the IR (sorted keys, no timestamps), so the
same project always gives the same bytes. `load_manifest` rebuilds the frozen IR from it, which
is how the runtime, the registry and the server read a compiled project without the compiler.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from featql.compiler import ir

FORMAT_VERSION = 1
T = TypeVar("T")


class ManifestError(Exception):
    pass


def to_data(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [to_data(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_data(v) for k, v in value.items()}
    return value


def manifest_data(manifest: ir.Manifest) -> dict[str, Any]:
    data = to_data(manifest)
    data["format"] = "featql-manifest"
    data["version"] = FORMAT_VERSION
    data["dag"] = [list(e) for e in manifest.dag]
    data["features"] = [
        {"view": v.name, "name": f.name, "type": f.type, "fingerprint": f.fingerprint}
        for v in manifest.views for f in v.features
    ]
    return data


def dumps(manifest: ir.Manifest) -> str:
    return json.dumps(manifest_data(manifest), indent=2, sort_keys=True) + "\n"


def write_manifest(manifest: ir.Manifest, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "manifest.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(dumps(manifest))
    tmp.replace(path)
    return path


def _build(tp: Any, data: Any) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if data is None:
            return None
        inner = [a for a in get_args(tp) if a is not type(None)]
        return _build(inner[0], data)
    if origin is typing.Literal:
        return data
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v) for v in data)
        return tuple(_build(a, v) for a, v in zip(args, data, strict=True))
    if origin is dict:
        _k, vt = get_args(tp)
        return {k: _build(vt, v) for k, v in data.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = get_type_hints(tp, vars(ir))
        kwargs = {f.name: _build(hints[f.name], data[f.name])
                  for f in dataclasses.fields(tp) if f.name in data}
        return tp(**kwargs)
    return data


def from_data(data: dict[str, Any]) -> ir.Manifest:
    if data.get("format") != "featql-manifest":
        raise ManifestError("not a featql manifest")
    if data.get("version") != FORMAT_VERSION:
        raise ManifestError(f"manifest format version {data.get('version')} is not supported "
                            f"(this featql reads version {FORMAT_VERSION}); run featql compile")
    result: ir.Manifest = _build(ir.Manifest, data)
    return result


def load_manifest(path: Path) -> ir.Manifest:
    try:
        return from_data(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ManifestError(f"cannot read manifest {path}: {e}") from e
