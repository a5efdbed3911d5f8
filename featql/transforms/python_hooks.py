"""Python `@request_transform` hooks: imported by file path once, called row by row."""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from featql.core.errors import UserError
from featql.core.ir import RequestTransform

_CACHE: dict[tuple[str, str], Callable[..., Any]] = {}


class HookLoadError(UserError):
    """The hook's file cannot be imported or does not define the function."""


def load_hook(root: Path, t: RequestTransform) -> Callable[..., Any]:
    assert t.module and t.function
    path = (root / t.module).resolve()
    key = (str(path), t.function)
    if key in _CACHE:
        return _CACHE[key]
    mod_name = "featql_hooks_" + hashlib.blake2b(str(path).encode(), digest_size=6).hexdigest()
    module = sys.modules.get(mod_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise HookLoadError(f"cannot import {t.module} for transform {t.name}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            del sys.modules[mod_name]
            raise HookLoadError(
                f"importing {t.module} for transform {t.name} failed: "
                f"{type(e).__name__}: {e}") from e
    fn = getattr(module, t.function, None)
    if not callable(fn):
        raise HookLoadError(f"{t.module} defines no function {t.function} (transform {t.name})")
    _CACHE[key] = fn
    return fn


def argument_keys(t: RequestTransform, fn: Callable[..., Any]) -> list[tuple[str, str]]:
    """(parameter name, environment key) pairs: request fields then inputs, by name."""
    env_by_name: dict[str, str] = {c.name: f"request.{c.name}" for c in t.request}
    for ref in t.inputs:
        env_by_name.setdefault(ref.split(".", 1)[1], ref)
    pairs = []
    for p in inspect.signature(fn).parameters:
        if p.lower() not in env_by_name:
            raise HookLoadError(
                f"parameter '{p}' of {t.function} is neither a request field nor an input "
                f"(have: {', '.join(env_by_name)})")
        pairs.append((p, env_by_name[p.lower()]))
    return pairs
