"""Request transforms, identical online and in training sets.

`compile_transforms(manifest, root, names)` compiles each transform once: SQL transforms into
Python closures (`sql_eval`), Python hooks by importing their file. A compiled transform maps an
environment `{"request.<field>": v, "<view>.<feature>": v}` to its outputs;
`CompiledTransform.columns` computes the same over many rows at once (environment columns: SQL
transforms column-wise, `sql_columns`), and falls back to the row closures for the exact error
of the first failing row. The server calls it over a lookup's entities, `apply_transforms` over
the batches of an Arrow table for training sets (columns `<transform>__<output>`).

The SQL subset the evaluator supports is `SUPPORTED_FUNCTIONS` and `SUPPORTED_CONSTRUCTS`;
`check_sql_transform(tree, types)` lists every refusal the evaluator would raise, by node, so
that `featql check` reports them where they are written (featql.compiler.services).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featql.core.errors import UserError
from featql.core.ir import Column, Manifest, RequestTransform
from featql.transforms.sql_columns import Batch
from featql.transforms.sql_eval import (
    DBL,
    SUPPORTED_CONSTRUCTS,
    SUPPORTED_FUNCTIONS,
    EvalError,
    TransformCompileError,
    UnsupportedSql,
    check_sql_transform,
    compile_sql_transform,
    sql_type,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["SUPPORTED_CONSTRUCTS", "SUPPORTED_FUNCTIONS", "CompiledTransform",
           "TransformCompileError", "TransformError", "UnsupportedSql", "apply_transforms",
           "check_sql_transform", "compile_transforms"]


class TransformError(UserError):
    """A transform raised (or returned something unusable) for one row (`row`: its index in
    the columns `CompiledTransform.columns` was given, when it was)."""

    def __init__(self, transform: str, message: str, row: int | None = None):
        super().__init__(f"transform {transform} failed: {message}")
        self.transform = transform
        self.row = row


@dataclass(frozen=True)
class CompiledTransform:
    name: str
    request: tuple[Column, ...]
    inputs: tuple[str, ...]  # "view.feature"
    outputs: tuple[Column, ...]
    fn: Callable[[Mapping[str, Any]], dict[str, Any]]
    source: str | None = None  # a Python hook's file, to name the line that raised
    # environment columns -> the outputs' columns (declared order), as `fn` row by row would
    # give them; any exception: evaluate row by row for the exact error (None: always do)
    batch: Callable[[Batch], list[Sequence[Any]]] | None = None

    def __call__(self, env: Mapping[str, Any]) -> dict[str, Any]:
        try:
            out = self.fn(env)
        except TransformError:
            raise
        except EvalError as e:
            raise TransformError(self.name, str(e)) from e
        except Exception as e:
            where = _raised_at(e, self.source)
            raise TransformError(self.name, f"{type(e).__name__}: {e}"
                                 + (f" (at {where})" if where else "")) from e
        return out

    def columns(self, cols: Mapping[str, Sequence[Any]], n: int) -> list[Sequence[Any]]:
        """The outputs over `n` rows of environment columns (`{"request.amount": [...],
        "view.feature": [...]}`; a key absent is NULL), one column per output in declared
        order. Raises what `self(env)` raises for the first row that fails, with its `row`."""
        b = Batch(cols, n)
        if self.batch is not None:
            try:
                return self.batch(b)
            except Exception:
                pass  # row by row below finds the failing row and its error
        names = [c.name for c in self.outputs]
        out: list[list[Any]] = [[] for _ in names]
        for i, env in enumerate(b.envs()):
            try:
                res = self(env)
            except TransformError as e:
                e.row = i
                raise
            for col, k in zip(out, names, strict=True):
                col.append(res.get(k))
        return list(out)


def _raised_at(e: BaseException, source: str | None) -> str | None:
    """`hooks/f.py:12`: the deepest line of the hook's own file in the traceback."""
    if source is None:
        return None
    import traceback

    path = Path(source).resolve()
    lines = [f.lineno for f in traceback.extract_tb(e.__traceback__)
             if Path(f.filename).resolve() == path]
    if not lines:
        return None
    try:
        shown = str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        shown = str(path)
    return f"{shown}:{lines[-1]}"


_NONE = type(None)


def _fast_types(featql_type: str) -> frozenset[type]:
    """Python types every value of which `output_fits` the featql type (as it is, no coercion):
    a value of another type takes the full check."""
    import datetime as dt

    t = featql_type.upper().strip()
    simple = {"DOUBLE": float, "FLOAT": float, "DECIMAL": float, "BOOLEAN": bool,
              "STRING": str, "VARCHAR": str, "TIMESTAMP": str, "DATE": str}.get(t)
    extra = {"TIMESTAMP": dt.datetime, "DATE": dt.date}.get(t)
    return frozenset(x for x in (_NONE, simple, extra) if x is not None)


def _coerce_outputs(t: RequestTransform) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Each output checked against its declared type (an int for a DOUBLE becomes a float):
    the same check online and in training sets, so a wrong value never reaches either."""
    plan = [(c.name, c.type, sql_type(c.type) == DBL, _fast_types(c.type)) for c in t.outputs]

    def coerce(values: dict[str, Any]) -> dict[str, Any]:
        for k, typ, double, fast in plan:  # converting then checking each in turn: the
            v = values.get(k)  # same outcome as converting all, then checking all
            if type(v) in fast:
                continue
            if double and isinstance(v, int) and not isinstance(v, bool):
                v = values[k] = float(v)
            if not output_fits(v, typ):
                shown = repr(v)
                shown = shown if len(shown) <= 60 else shown[:57] + "..."
                raise TransformError(t.name, f"output '{k}' is {type(v).__name__} {shown}, "
                                             f"but is declared {typ}")
        return values
    return coerce


def _coerce_columns(t: RequestTransform) -> Callable[[list[Sequence[Any]]], list[Sequence[Any]]]:
    """`_coerce_outputs` over output columns (declared order); raises a bare ValueError when
    some value does not fit (the caller then finds the row, and the error, row by row)."""
    plan = [(c.type, sql_type(c.type) == DBL, _fast_types(c.type)) for c in t.outputs]

    def coerce(cols: list[Sequence[Any]]) -> list[Sequence[Any]]:
        out = []
        for col, (typ, double, fast) in zip(cols, plan, strict=True):
            if not fast.issuperset(map(type, col)):
                if double:
                    col = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                           for v in col]
                if not all(output_fits(v, typ) for v in col):
                    raise ValueError("an output does not fit its type")
            out.append(col)
        return out
    return coerce


def output_fits(value: Any, featql_type: str) -> bool:
    """Is a Python value a transform computed a value of its declared featql type?"""
    import datetime as dt

    from featql.semantics.types import python_accepts

    if value is None:
        return True
    t = featql_type.upper().strip()
    if t.startswith("ARRAY<") and t.endswith(">"):
        return isinstance(value, list | tuple) and all(output_fits(v, t[6:-1]) for v in value)
    if t == "TIMESTAMP":
        return isinstance(value, dt.datetime | str)
    if t == "DATE":
        return (isinstance(value, dt.date) and not isinstance(value, dt.datetime)) \
            or isinstance(value, str)
    return python_accepts(value, t)


def _compile_sql(manifest: Manifest, t: RequestTransform) -> CompiledTransform:
    types = {f"request.{c.name}": c.type for c in t.request}
    for ref in t.inputs:
        view, feat = ref.split(".", 1)
        v = manifest.view(view)
        f = v.feature(feat) if v else None
        if f is None:
            raise TransformCompileError(f"transform {t.name}: unknown input {ref}")
        types[ref] = f.type
    try:
        compiled = compile_sql_transform(t.sql or "", types)
    except TransformCompileError as e:
        raise TransformCompileError(f"transform {t.name} ({t.location.path}): {e}") from e
    coerce = _coerce_outputs(t)
    fns = compiled.outputs

    def run(env: Mapping[str, Any]) -> dict[str, Any]:
        return coerce({name: fn(env) for name, fn, _t in fns})

    # declared output -> the SQL output giving it (the last of that name, as `run`'s dict)
    given = {name: i for i, (name, _fn, _t) in enumerate(fns)}
    where = [given.get(c.name) for c in t.outputs]
    coerce_columns = _coerce_columns(t)

    def batch(b: Batch) -> list[Sequence[Any]]:
        cols = compiled.columns(b)
        return coerce_columns([cols[i] if i is not None else [None] * b.n for i in where])
    return CompiledTransform(t.name, t.request, t.inputs, t.outputs, run, batch=batch)


def _compile_python(root: Path, t: RequestTransform) -> CompiledTransform:
    from featql.transforms.python_hooks import argument_keys, load_hook

    fn = load_hook(root, t)
    pairs = argument_keys(t, fn)
    names = [c.name for c in t.outputs]
    coerce = _coerce_outputs(t)

    def run(env: Mapping[str, Any]) -> dict[str, Any]:
        result = fn(**{p: env.get(k) for p, k in pairs})
        if len(names) == 1 and not isinstance(result, dict):
            result = {names[0]: result}
        if not isinstance(result, dict):
            raise TransformError(t.name, f"returned {type(result).__name__}, expected a dict "
                                         f"with keys {', '.join(names)}")
        missing = [n for n in names if n not in result]
        if missing:
            raise TransformError(t.name, f"result lacks output(s) {', '.join(missing)}")
        return coerce({n: result[n] for n in names})

    params, keys = [p for p, _k in pairs], [k for _p, k in pairs]
    single = names[0] if len(names) == 1 else None
    coerce_columns = _coerce_columns(t)
    # the arguments in the signature's order (argument_keys): passed by position when every
    # parameter may be, the same call without a dict per row
    import inspect

    positional = all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                     for p in inspect.signature(fn).parameters.values())

    def batch(b: Batch) -> list[Sequence[Any]]:
        """`run` over the rows, without a dict per row but the hook's arguments and result;
        anything unexpected (the hook raised, a result lacks an output) is an exception
        (`CompiledTransform.columns` then calls the hook again row by row for the error)."""
        args = [b.column(k) for k in keys]
        out: list[list[Any]] = [[] for _ in names]
        for vals in zip(*args, strict=True) if args else [()] * b.n:
            result = fn(*vals) if positional else fn(**dict(zip(params, vals, strict=True)))
            if not isinstance(result, dict):
                if single is None:
                    raise ValueError("not a dict")
                result = {single: result}
            for col, n in zip(out, names, strict=True):
                col.append(result[n])
        return coerce_columns(list(out))
    return CompiledTransform(t.name, t.request, t.inputs, t.outputs, run,
                             str(root / t.module) if t.module else None, batch)


def compile_transforms(manifest: Manifest, root: Path,
                       names: Iterable[str] | None = None) -> dict[str, CompiledTransform]:
    wanted = list(names) if names is not None else [t.name for t in manifest.transforms]
    out: dict[str, CompiledTransform] = {}
    for name in wanted:
        t = manifest.transform(name)
        if t is None:
            raise TransformCompileError(f"unknown transform {name}")
        out[name] = _compile_sql(manifest, t) if t.language == "sql" else _compile_python(root, t)
    return out


def _arrow_type(t: str) -> pa.DataType:
    from featql.semantics.types import arrow_type  # the one type map

    return arrow_type(t)


def _feature_column(ref: str) -> str:
    view, feat = ref.split(".", 1)
    return f"{view.replace(':', '_')}__{feat}"


def apply_transforms(manifest: Manifest, project_root: Path | str, table: pa.Table,
                     transforms: Iterable[str] | None = None) -> pa.Table:
    """Append `<transform>__<output>` columns computed with the serving code (column-wise,
    `CompiledTransform.columns`, as the server does for a lookup's entities).

    `table` holds the request fields as columns named like the field (`amount`) and the input
    features as `<view>__<feature>`; `transforms` defaults to every transform whose inputs the
    table holds. Raises TransformError (with the row number) when a transform raises.
    """
    import pyarrow as pa

    have = set(table.column_names)
    compiled = compile_transforms(manifest, Path(project_root), transforms)
    for name, ct in compiled.items():
        needed = {f"request.{c.name}": c.name for c in ct.request}
        needed.update({ref: _feature_column(ref) for ref in ct.inputs})
        absent = [col for col in needed.values() if col not in have]
        if absent:
            if transforms is None:
                continue
            raise TransformError(name, f"the table lacks input column(s) {', '.join(absent)}")
        results: dict[str, list[Any]] = {c.name: [] for c in ct.outputs}
        row_no = 0
        for batch in table.select(list(dict.fromkeys(needed.values()))).to_batches():
            cols = {key: batch.column(col).to_pylist() for key, col in needed.items()}
            try:
                outs = ct.columns(cols, batch.num_rows)
            except TransformError as e:
                raise TransformError(name, f"row {row_no + (e.row or 0)}: {e}") from e
            for c, col in zip(ct.outputs, outs, strict=True):
                results[c.name].extend(col)
            row_no += batch.num_rows
        for c in ct.outputs:
            table = table.append_column(
                f"{name}__{c.name}", pa.array(results[c.name], type=_arrow_type(c.type)))
    return table
