"""Find Python request transforms (`@request_transform(...)` functions) without importing them.

The compiler is pure: it reads hook files with `ast` and evaluates only the decorator's literal
arguments, so `featql check` never runs user code. The runtime imports the module later.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from featql.compiler.diagnostics import Diagnostics, SourceFile, Span, did_you_mean

_KEYS = ("request", "inputs", "outputs", "name")


@dataclass(frozen=True)
class PyHook:
    name: str
    function: str
    module: str  # project-relative path of the .py file
    span: Span
    request: tuple[tuple[str, str], ...]
    inputs: tuple[tuple[str, Span], ...]
    outputs: tuple[tuple[str, str], ...]
    params: tuple[str, ...]


def scan_hooks(src: SourceFile, module: str, diags: Diagnostics) -> list[PyHook]:
    if "request_transform" not in src.text:
        return []
    try:
        tree = ast.parse(src.text, filename=src.path)
    except SyntaxError as e:
        diags.error("E206", f"Python syntax error: {e.msg}",
                    src.line_col_span(e.lineno or 1, e.offset or 1))
        return []
    hooks: list[PyHook] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        for dec in node.decorator_list:
            if isinstance(dec, ast.Call) and _is_request_transform(dec.func):
                hook = _hook(src, module, node, dec, diags)
                if hook is not None:
                    hooks.append(hook)
    return hooks


def _is_request_transform(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id == "request_transform") or (
        isinstance(func, ast.Attribute) and func.attr == "request_transform"
    )


def _at(src: SourceFile, node: ast.AST) -> Span:
    return src.line_col_span(getattr(node, "lineno", 1), getattr(node, "col_offset", 0) + 1)


def _hook(src: SourceFile, module: str, fn: ast.FunctionDef, dec: ast.Call,
          diags: Diagnostics) -> PyHook | None:
    values: dict[str, object] = {}
    ok = True
    for kw in dec.keywords:
        if kw.arg not in _KEYS:
            diags.error("E103", f"unknown key '{kw.arg}' for @request_transform", _at(src, kw.value),
                        hint=did_you_mean(kw.arg or "", _KEYS) or f"keys: {', '.join(_KEYS)}")
            ok = False
            continue
        try:
            values[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            diags.error("E105", f"'{kw.arg}' must be a literal (no variables or calls)",
                        _at(src, kw.value))
            ok = False
    for key in ("request", "inputs", "outputs"):
        if key not in values and ok:
            diags.error("E104", f"@request_transform is missing required key '{key}'",
                        _at(src, dec))
            ok = False
    if not ok:
        return None
    request, outputs, inputs = values["request"], values["outputs"], values["inputs"]
    if not _str_dict(request) or not _str_dict(outputs):
        diags.error("E105", "'request' and 'outputs' must map names to type strings",
                    _at(src, dec))
        return None
    if not isinstance(inputs, list | tuple) or not all(isinstance(i, str) for i in inputs):
        diags.error("E105", "'inputs' must be a list of 'view.feature' strings", _at(src, dec))
        return None
    assert isinstance(request, dict) and isinstance(outputs, dict)
    span = _at(src, fn)
    name = str(values.get("name", fn.name))
    return PyHook(
        name=name.lower(),
        function=fn.name,
        module=module,
        span=span,
        request=tuple((str(k).lower(), str(v).upper()) for k, v in request.items()),
        inputs=tuple((str(i).lower(), span) for i in inputs),
        outputs=tuple((str(k).lower(), str(v).upper()) for k, v in outputs.items()),
        params=tuple(a.arg for a in fn.args.args),
    )


def _str_dict(v: object) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, str)
                                       for k, t in v.items())
