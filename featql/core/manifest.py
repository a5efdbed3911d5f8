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

from featql.core import ir
from featql.core.errors import UserError
from featql.core.pool import gc_paused

try:  # optional: a faster encoder (installed with the serve extra)
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the installation
    _orjson = None  # type: ignore[assignment]

FORMAT_VERSION = 1
_ORJSON_OPTIONS = (_orjson.OPT_INDENT_2 | _orjson.OPT_SORT_KEYS | _orjson.OPT_APPEND_NEWLINE
                   if _orjson is not None else 0)
T = TypeVar("T")


class ManifestError(UserError):
    pass


_FIELDS: dict[type, tuple[str, ...]] = {}  # dataclass -> its field names, looked up once
_OMITTED: dict[type, tuple[tuple[str, Any], ...]] = {}  # dataclass -> (field, default) left out
_SCALARS = (str, int, float, bool, type(None))


def to_data(value: Any) -> Any:
    """The IR as JSON-ready dicts, lists and scalars (dataclass fields in declaration order)."""
    cls = type(value)
    if cls in _SCALARS:
        return value
    names = _FIELDS.get(cls)
    if names is None and dataclasses.is_dataclass(cls):
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
        _OMITTED[cls] = tuple((f.name, f.default) for f in dataclasses.fields(cls)
                              if f.metadata.get(ir.OMIT_DEFAULT))
    if names is not None:
        data = {n: to_data(getattr(value, n)) for n in names}
        for n, default in _OMITTED[cls]:
            if getattr(value, n) == default:
                del data[n]
        return data
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
    """Sorted keys, two-space indent, ASCII only (`json.dumps(..., indent=2, sort_keys=True)`).

    orjson, when installed, writes the same bytes about ten times faster; text it would write
    differently (any character from DEL up, which `json` escapes) goes through `json`.
    """
    with gc_paused():  # the data is acyclic (freed by reference counts); the heap may be large
        data = manifest_data(manifest)
    if _orjson is not None:
        try:
            blob = _orjson.dumps(data, option=_ORJSON_OPTIONS)
        except TypeError:  # e.g. an integer beyond 64 bits
            blob = None
        if blob is not None and blob.isascii() and b"\x7f" not in blob:
            return blob.decode("ascii")
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def write_manifest(manifest: ir.Manifest, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "manifest.json"
    text = dumps(manifest)
    if unchanged(path, text):
        return path  # no rewrite: replacing a file on ext4 waits for the new data to be flushed
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def unchanged(path: Path, text: str) -> bool:
    """Does the file already hold exactly this text? (Reading costs far less than rewriting.)"""
    try:
        return path.read_text() == text
    except (OSError, UnicodeDecodeError):
        return False


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
