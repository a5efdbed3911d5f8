"""Validate decorators against their schemas and turn them into declarations.

Each definition file has exactly one *kind* decorator (`@source`, `@entity`, `@feature_view`,
`@request_transform`, `@feature_service`) and any number of metadata decorators (`@owner`,
`@tags`, `@description`, `@pii`). Unknown decorators and keys get a "did you mean".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from featql.compiler.header import (
    Bool,
    Call,
    Decorator,
    Ident,
    ListV,
    Num,
    Str,
    Typed,
    Value,
    describe,
)
from featql.core.diagnostics import Diagnostics, Span, did_you_mean
from featql.core.durations import LIFETIME_SECONDS, parse_duration, parse_start
from featql.core.ir import Meta

KINDS = ("source", "entity", "feature_view", "request_transform", "feature_service")
METADATA = ("owner", "tags", "description", "pii")


@dataclass
class Decl:
    """A validated kind decorator: python values and the span of each key's value."""

    kind: str
    name: str
    span: Span
    values: dict[str, Any] = field(default_factory=dict)
    spans: dict[str, Span] = field(default_factory=dict)
    meta: Meta = field(default_factory=Meta)
    pii: tuple[str, ...] = ()

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def at(self, key: str) -> Span:
        return self.spans.get(key, self.span)


Check = Callable[[Value, Diagnostics], Any]
_INVALID = object()


def _err(diags: Diagnostics, v: Value, want: str, hint: str | None = None) -> object:
    diags.error("E105", f"expected {want}, found {_found(v)}", v.span, hint=hint)
    return _INVALID


def _found(v: Value) -> str:
    """`a string ('user x')`, `the name 'user.x'`: what the user wrote, named."""
    if isinstance(v, Str):
        return f"the string '{v.value}'"
    if isinstance(v, Ident):
        return f"the name '{v.name}'"
    if isinstance(v, Num | Bool):
        return f"{describe(v)} ({str(v.value).lower()})"
    if isinstance(v, Call):
        return f"the call {v.name}(...)"
    return describe(v)


def view_ref(v: Value, diags: Diagnostics) -> Any:
    """A feature view name, possibly with its variant: user_profile or user_profile:v2."""
    if isinstance(v, Ident) and "." not in v.name:
        return v.name.lower()
    if isinstance(v, Str) and v.value.replace(":", "_").isidentifier():
        return v.value.lower()
    return _err(diags, v, "a feature view name such as user_profile or user_profile:v2")


def ident(v: Value, diags: Diagnostics) -> Any:
    if isinstance(v, Ident) and "." not in v.name and ":" not in v.name:
        return v.name.lower()
    if isinstance(v, Str) and v.value.isidentifier():
        return v.value.lower()
    if isinstance(v, Ident):
        return _err(diags, v, "a plain name (letters, digits and _)",
                    hint=f"write {v.name.split('.')[0].split(':')[0]}")
    return _err(diags, v, "a name")


def string(v: Value, diags: Diagnostics) -> Any:
    return v.value if isinstance(v, Str) else _err(diags, v, "a string")


def boolean(v: Value, diags: Diagnostics) -> Any:
    return v.value if isinstance(v, Bool) else _err(diags, v, "true or false")


def positive_number(v: Value, diags: Diagnostics) -> Any:
    """A number greater than 0 (a budget such as `max_read_kb = 256`)."""
    if isinstance(v, Num) and not isinstance(v.value, bool) and v.value > 0:
        return v.value
    return _err(diags, v, "a number greater than 0")


def duration(v: Value, diags: Diagnostics) -> Any:
    if isinstance(v, Num):
        return _err(diags, v, "a duration string such as '1d'",
                    hint=f"add a unit and quotes: '{v.value}d', '{v.value}h', '{v.value}m'")
    if not isinstance(v, Str):
        return _err(diags, v, "a duration string such as '1d'")
    seconds = parse_duration(v.value)
    if seconds is None:
        diags.error("E106", f"invalid duration '{v.value}'", v.span,
                    hint="use a number and a unit: '30s', '15m', '1h', '7d', '2w'")
        return _INVALID
    return seconds


def window(v: Value, diags: Diagnostics) -> Any:
    """A window: a duration, or 'lifetime' (every event since the view's start)."""
    if isinstance(v, Str) and v.value.strip().lower() == "lifetime":
        return LIFETIME_SECONDS
    return duration(v, diags)


def start_date(v: Value, diags: Diagnostics) -> Any:
    if not isinstance(v, Str):
        return _err(diags, v, "a date string such as '2024-01-01'")
    parsed = parse_start(v.value)
    if parsed is None:
        diags.error("E111", f"invalid start date '{v.value}'", v.span,
                    hint="use ISO form: '2024-01-01' or '2024-01-01 06:00:00'")
        return _INVALID
    return parsed


def list_of(item: Check, what: str) -> Check:
    def check(v: Value, diags: Diagnostics) -> Any:
        if not isinstance(v, ListV):
            return _err(diags, v, f"a list of {what}", hint="put it in brackets: [...]")
        out = [item(i, diags) for i in v.items]
        return _INVALID if any(o is _INVALID for o in out) else out

    return check


def ref(v: Value, diags: Diagnostics) -> Any:
    """A feature reference in a service or transform: view, view.*, view.feature, transform."""
    if isinstance(v, Ident):
        return (v.name.lower(), v.span)
    return _err(diags, v, "a feature reference such as view.feature or view.*")


def field_decl(v: Value, diags: Diagnostics) -> Any:
    """`name TYPE` (a typed field) or a bare name whose type is inferred."""
    if isinstance(v, Typed):
        return (v.name.lower(), v.type, v.span)
    if isinstance(v, Ident) and "." not in v.name:
        return (v.name.lower(), None, v.span)
    return _err(diags, v, "a column such as user_id BIGINT")


BATCH_FORMATS = ("parquet", "csv", "json")
STREAM_KINDS = ("files", "kafka")
STREAM_FORMATS = {"files": ("json", "csv", "parquet"), "kafka": ("json", "avro")}
KAFKA_KEYS = ("topic", "bootstrap", "format")


def location(kinds: tuple[str, ...]) -> Check:
    def check(v: Value, diags: Diagnostics) -> Any:
        if not isinstance(v, Call):
            return _err(diags, v, f"a location such as {kinds[0]}('path/')")
        name = v.name.lower()
        if name not in kinds:
            diags.error("E105", f"unknown location kind '{v.name}'", v.span,
                        hint=did_you_mean(name, kinds) or f"use one of: {', '.join(kinds)}")
            return _INVALID
        if name == "kafka":
            return _kafka(v, diags)
        if len(v.args) != 1 or not isinstance(v.args[0], Str):
            diags.error("E105", f"{name}(...) takes one path string", v.span)
            return _INVALID
        opts: dict[str, str] = {}
        for kw in v.kwargs:
            val = kw.value
            if isinstance(val, Str | Ident | Num | Bool):
                raw = getattr(val, "value", getattr(val, "name", None))
                opts[kw.key.lower()] = str(raw).lower() if isinstance(val, Bool) else str(raw)
            else:
                return _err(diags, val, "a simple option value")
        formats = STREAM_FORMATS.get(name)
        fmt = opts.get("format", "json")
        if formats is not None and fmt not in formats:
            at = next(kw.value.span for kw in v.kwargs if kw.key.lower() == "format")
            diags.error("E105", f"unknown format '{fmt}' for a {name}(...) stream", at,
                        hint=did_you_mean(fmt, formats) or f"use one of: {', '.join(formats)}")
            return _INVALID
        return (name, v.args[0].value, tuple(sorted(opts.items())))

    return check


def _kafka(v: Call, diags: Diagnostics) -> Any:
    """`kafka(topic = 'txns', bootstrap = 'host:port,...', format = json|avro)`: the location
    triple with an empty path and the three settings as options."""
    if v.args:
        diags.error("E105", "kafka(...) takes named settings only", v.args[0].span,
                    hint="write kafka(topic = 'transactions', bootstrap = '127.0.0.1:9092', "
                    "format = json)")
        return _INVALID
    opts: dict[str, str] = {}
    for kw in v.kwargs:
        key = kw.key.lower()
        if key not in KAFKA_KEYS:
            diags.error("E103", f"unknown key '{kw.key}' for kafka(...)", kw.key_span,
                        hint=did_you_mean(key, KAFKA_KEYS)
                        or f"keys of kafka(...): {', '.join(KAFKA_KEYS)}")
            return _INVALID
        val = kw.value
        if key == "format":
            fmt = val.name.lower() if isinstance(val, Ident) else (
                val.value.lower() if isinstance(val, Str) else "")
            if fmt not in STREAM_FORMATS["kafka"]:
                formats = STREAM_FORMATS["kafka"]
                shown = f"'{fmt}'" if fmt else _found(val)
                diags.error("E105", f"unknown format {shown} for a kafka(...) stream",
                            val.span, hint=did_you_mean(fmt or "", formats)
                            or f"use one of: {', '.join(formats)}")
                return _INVALID
            opts[key] = fmt
        elif isinstance(val, Str) and val.value.strip():
            if key == "bootstrap" and not all(_host_port(h) for h in val.value.split(",")):
                diags.error("E105", f"bootstrap '{val.value}' is not a list of host:port",
                            val.span, hint="write bootstrap = '127.0.0.1:9092' (several: "
                            "'host1:9092,host2:9092')")
                return _INVALID
            opts[key] = val.value.strip()
        else:
            return _err(diags, val, f"a {key} string such as "
                        + ("'transactions'" if key == "topic" else "'127.0.0.1:9092'"))
    missing = [k for k in ("topic", "bootstrap") if k not in opts]
    if missing:
        diags.error("E104", f"kafka(...) is missing {' and '.join(missing)}", v.span,
                    hint="write kafka(topic = 'transactions', bootstrap = '127.0.0.1:9092', "
                    "format = json)")
        return _INVALID
    opts.setdefault("format", "json")
    return ("kafka", "", tuple(sorted(opts.items())))


def _host_port(text: str) -> bool:
    host, _, port = text.strip().rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


# key → (check, required)
SCHEMAS: dict[str, dict[str, tuple[Check, bool]]] = {
    "source": {
        "name": (ident, True),
        "timestamp": (ident, True),
        "created": (ident, False),
        "known_at": (ident, False),
        "batch": (location(BATCH_FORMATS), True),
        "stream": (location(STREAM_KINDS), False),
        "lateness": (duration, False),
        "key": (ident, False),
        "prevent_destroy": (boolean, False),
        "labels": (list_of(ident, "label column names"), False),
    },
    "entity": {
        "name": (ident, True),
        "keys": (list_of(field_decl, "key columns"), True),
    },
    "feature_view": {
        "name": (ident, True),
        "entity": (ident, True),
        "timestamp": (ident, True),
        "ttl": (duration, False),
        "schedule": (duration, False),
        "start": (start_date, True),
        "windows": (list_of(window, "durations"), False),
        "slide": (duration, False),
        "lookback": (duration, False),
        "variant": (string, False),
        "deprecated": (boolean, False),
        "replacement": (view_ref, False),
        "duplicate_of": (view_ref, False),
        "online": (boolean, False),
        "offline": (boolean, False),
        "prevent_destroy": (boolean, False),
    },
    "request_transform": {
        "name": (ident, True),
        "request": (list_of(field_decl, "request fields"), True),
    },
    "feature_service": {
        "name": (ident, True),
        "features": (list_of(ref, "feature references"), True),
        "prevent_destroy": (boolean, False),
        "max_read_kb": (positive_number, False),
    },
}


def build_decl(decorators: list[Decorator], file_span: Span, diags: Diagnostics) -> Decl | None:
    """The file's declaration, or None when it has no (valid) kind decorator."""
    kinds = [d for d in decorators if d.name in KINDS]
    for d in decorators:
        if d.name not in KINDS and d.name not in METADATA:
            hint = did_you_mean(d.name, KINDS + METADATA)
            diags.error("E102", f"unknown decorator '@{d.name}'", d.span,
                        hint=hint or f"known decorators: {', '.join('@' + k for k in KINDS)}")
    if not kinds:
        if not any(d.name not in METADATA for d in decorators):
            diags.error("E108", "definition file has no @source, @entity, @feature_view, "
                        "@request_transform or @feature_service decorator", file_span,
                        hint="start the file with a header such as "
                        "-- @feature_view(name = ..., entity = ..., timestamp = ..., start = ...)")
        return None
    for extra in kinds[1:]:
        diags.error("E109", f"a file defines one object; found a second kind decorator "
                    f"'@{extra.name}'", extra.span, hint="move it to a file of its own")
    decl = _validate(kinds[0], diags)
    if decl is None:
        return None
    meta, pii = _metadata([d for d in decorators if d.name in METADATA], diags)
    decl.meta = meta
    decl.pii = pii
    if pii and decl.kind != "source":
        diags.error("E105", "@pii applies to source columns only",
                    next(d.span for d in decorators if d.name == "pii"))
    return decl


def _validate(dec: Decorator, diags: Diagnostics) -> Decl | None:
    schema = SCHEMAS[dec.name]
    values: dict[str, Any] = {}
    spans: dict[str, Span] = {}
    for i, v in enumerate(dec.args):
        named = i == 0 and dec.kwarg("name") is None and isinstance(v, Ident | Str)
        diags.error("E105", f"@{dec.name} takes named arguments only (key = value)", v.span,
                    hint=f"write name = {getattr(v, 'name', None) or getattr(v, 'value', '')}"
                    if named else f"keys of @{dec.name}: {', '.join(schema)}")
    seen: set[str] = set()
    typo_of: set[str] = set()  # required keys the user misspelled: reported once, as a typo
    ok = True
    for kw in dec.kwargs:
        key = kw.key.lower()
        if key not in schema:
            close = _closest(key, schema)
            if close is not None:
                typo_of.add(close)
            hint = (f"did you mean '{close}'?" if close
                    else f"keys of @{dec.name}: {', '.join(schema)}")
            diags.error("E103", f"unknown key '{kw.key}' for @{dec.name}", kw.key_span, hint=hint)
            ok = False
            continue
        if key in seen:
            diags.error("E107", f"key '{key}' given twice in @{dec.name}", kw.key_span,
                        hint="remove one of them")
            ok = False
            continue
        seen.add(key)
        value = schema[key][0](kw.value, diags)
        if value is _INVALID:
            ok = False
            continue
        values[key] = value
        spans[key] = kw.value.span
        if isinstance(kw.value, ListV):
            for i, item in enumerate(kw.value.items):
                spans[f"{key}[{i}]"] = item.span
    missing = [key for key, (_check, required) in schema.items()
               if required and key not in seen and key not in typo_of]
    if missing and not dec.args:  # positional arguments were reported instead
        shown = ", ".join(f"'{k}'" for k in missing)
        diags.error("E104", f"@{dec.name} is missing required key{'s' if len(missing) > 1 else ''} "
                    f"{shown}", dec.span,
                    hint="add " + ", ".join(f"{k} = {_EXAMPLES.get(k, '...')}" for k in missing))
        ok = False
    elif missing:
        ok = False
    if not ok or "name" not in values:
        return None
    return Decl(dec.name, values["name"], dec.span, values, spans)


_EXAMPLES = {
    "name": "<name>",
    "entity": "<entity>",
    "timestamp": "<timestamp column>",
    "start": "'2024-01-01'",
    "batch": "parquet('data/<folder>/')",
    "keys": "[<key column> BIGINT]",
    "request": "[<field> DOUBLE]",
    "features": "[<view>.<feature>, ...]",
}


def _closest(word: str, candidates: Any) -> str | None:
    hint = did_you_mean(word, candidates)
    return hint.split("'")[1] if hint else None


def _metadata(decs: list[Decorator], diags: Diagnostics) -> tuple[Meta, tuple[str, ...]]:
    owner: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    pii: tuple[str, ...] = ()
    for d in decs:
        if d.kwargs or len(d.args) != 1:
            diags.error("E105", f"@{d.name} takes exactly one value", d.span,
                        hint=_META_HINTS[d.name])
            continue
        v = d.args[0]
        if d.name in ("owner", "description"):
            s = string(v, diags)
            if s is _INVALID:
                continue
            if d.name == "owner":
                owner = s
            else:
                description = s
        elif d.name == "tags":
            t = list_of(string, "strings")(v, diags)
            if t is not _INVALID:
                tags = tuple(t)
        else:
            p = list_of(ident, "column names")(v, diags)
            if p is not _INVALID:
                pii = tuple(p)
    return Meta(owner, tags, description), pii


_META_HINTS = {
    "owner": "@owner('team-name')",
    "description": "@description('what this is')",
    "tags": "@tags(['tag', ...])",
    "pii": "@pii([column, ...])",
}
