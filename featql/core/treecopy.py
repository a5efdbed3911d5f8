"""`light_copy`: a copy of a sqlglot tree for generating SQL from, at a third of the cost.

`Expression.copy()` deep-copies every node's type annotation (a `DataType` tree of its own),
position metadata and comments. SQL generation only reads types, so the copy shares them
with the original; metadata dicts are copied one level deep and comments are dropped (featql
strips them from every parsed tree and never prints them).
"""

from __future__ import annotations

from typing import TypeVar

from sqlglot import exp

E = TypeVar("E", bound=exp.Expr)


def light_copy(tree: E) -> E:
    """A new tree equal to `tree` (without comments), sharing its `DataType` annotations."""
    root = tree.__class__()
    stack: list[tuple[exp.Expr, exp.Expr]] = [(tree, root)]
    expr = exp.Expr
    while stack:
        node, copy = stack.pop()
        copy._type = node._type
        if node._meta is not None:
            copy._meta = dict(node._meta)
        args = copy.args
        for key, value in node.args.items():
            if isinstance(value, expr):
                child = value.__class__()
                stack.append((value, child))
                copy.set(key, child)
            elif type(value) is list:
                args[key] = []
                for v in value:
                    if isinstance(v, expr):
                        child = v.__class__()
                        stack.append((v, child))
                        copy.append(key, child)
                    else:
                        copy.append(key, v)
            else:
                args[key] = value
    return root
