"""Find Python request transforms (`@request_transform(...)` functions) without importing them.

The compiler is pure: it reads hook files with `ast` and evaluates only the decorator's literal
arguments, so `featql check` never runs user code. The runtime imports the module later.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
from dataclasses import dataclass

from featql.core.diagnostics import Diagnostics, SourceFile, Span, did_you_mean

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
    param_spans: tuple[Span, ...] = ()
    name_span: Span | None = None  # the function's name after `def`
    code: str = ""  # digest of the module's code (AST: no comments, layout or docstrings)


def scan_hooks(src: SourceFile, module: str, diags: Diagnostics) -> list[PyHook]:
    if "request_transform" not in src.text:
        return []
    try:
        tree = ast.parse(src.text, filename=src.path)
    except SyntaxError as e:
        diags.error("E206", f"Python syntax error: {e.msg}",
                    src.line_col_span(e.lineno or 1, e.offset or 1))
        return []
    except (ValueError, RecursionError, MemoryError) as e:  # NUL bytes, absurd nesting
        diags.error("E206", f"cannot parse this Python file: {str(e) or type(e).__name__}",
                    src.line_col_span(1, 1))
        return []
    code = _code_digest(tree)
    hooks: list[PyHook] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        for dec in node.decorator_list:
            if isinstance(dec, ast.Call) and _is_request_transform(dec.func):
                hook = _hook(src, module, node, dec, diags)
                if hook is not None:
                    hooks.append(dataclasses.replace(hook, code=code))
    return hooks


def _code_digest(tree: ast.Module) -> str:
    """What the module computes: its AST without docstrings (the transform may call helpers
    of its module, so the whole module counts; comments and formatting do not)."""
    import hashlib

    tree = copy.deepcopy(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef
                          | ast.ClassDef) or not node.body:
            continue
        first = node.body[0]
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                and isinstance(first.value.value, str):
            node.body = node.body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]


def _is_request_transform(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id == "request_transform") or (
        isinstance(func, ast.Attribute) and func.attr == "request_transform"
    )


def _at(src: SourceFile, node: ast.AST) -> Span:
    return src.line_col_span(getattr(node, "lineno", 1), getattr(node, "col_offset", 0) + 1)


def _hook(src: SourceFile, module: str, fn: ast.FunctionDef, dec: ast.Call,
          diags: Diagnostics) -> PyHook | None:
    values: dict[str, object] = {}
    nodes: dict[str, ast.expr] = {}
    ok = True
    for kw in dec.keywords:
        if kw.arg not in _KEYS:
            diags.error("E103", f"unknown key '{kw.arg}' for @request_transform",
                        _at(src, kw.value),
                        hint=did_you_mean(kw.arg or "", _KEYS) or f"keys: {', '.join(_KEYS)}")
            ok = False
            continue
        nodes[kw.arg] = kw.value
        try:
            values[kw.arg] = ast.literal_eval(kw.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
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
    for key, value in (("request", request), ("outputs", outputs)):
        if not _str_dict(value):
            diags.error("E105", f"'{key}' must map names to type strings, such as "
                        "{'amount': 'DOUBLE'}", _at(src, nodes[key]))
            return None
    if not isinstance(inputs, list | tuple) or not all(isinstance(i, str) for i in inputs):
        diags.error("E105", "'inputs' must be a list of 'view.feature' strings",
                    _at(src, nodes["inputs"]))
        return None
    assert isinstance(request, dict) and isinstance(outputs, dict)
    span = _at(src, fn)
    name = str(values.get("name", fn.name))
    input_nodes = getattr(nodes["inputs"], "elts", [])
    input_spans = [_string_span(src, input_nodes[i]) if i < len(input_nodes) else span
                   for i in range(len(inputs))]
    return PyHook(
        name=name.lower(),
        function=fn.name,
        module=module,
        span=span,
        request=tuple((str(k).lower(), str(v).upper()) for k, v in request.items()),
        inputs=tuple((str(i).lower(), s) for i, s in zip(inputs, input_spans, strict=True)),
        outputs=tuple((str(k).lower(), str(v).upper()) for k, v in outputs.items()),
        params=tuple(a.arg for a in fn.args.args),
        param_spans=tuple(src.line_col_span(a.lineno, a.col_offset + 1, len(a.arg))
                          for a in fn.args.args),
        name_span=_def_name_span(src, fn),
    )


def _string_span(src: SourceFile, node: ast.expr) -> Span:
    """The text inside a string literal's quotes (where 'view.feature' names start)."""
    end_col = getattr(node, "end_col_offset", None)
    length = (end_col - node.col_offset - 2) if end_col is not None \
        and getattr(node, "end_lineno", None) == node.lineno else 1
    return src.line_col_span(node.lineno, node.col_offset + 2, max(1, length))


def _def_name_span(src: SourceFile, fn: ast.FunctionDef) -> Span:
    line = src.text.split("\n")[fn.lineno - 1] if fn.lineno else ""
    col = line.find(fn.name, fn.col_offset + 3)
    if col < 0:
        return _at(src, fn)
    return src.line_col_span(fn.lineno, col + 1, len(fn.name))


def _str_dict(v: object) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, str)
                                       for k, t in v.items())
