"""featql: a SQL-first feature store.

Feature definitions are annotated `.sql` files; `featql.compiler` turns a project into a typed
manifest, `featql.dialects` lowers it to engine SQL, `featql.runtime` executes it and
`featql.serve` serves it. This module stays light: engines are imported only when used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Project", "request_transform"]
__version__ = "0.1.0"

F = TypeVar("F", bound=Callable[..., Any])


def request_transform(*, request: dict[str, str], inputs: list[str], outputs: dict[str, str],
                      name: str | None = None) -> Callable[[F], F]:
    """Mark a function as a Python request transform.

    The compiler reads these arguments from the source file without importing it; at run time
    the decorator only records them on the function, which is then called row by row online
    and over Arrow batches offline.
    """

    def mark(fn: F) -> F:
        fn.__featql_transform__ = {  # type: ignore[attr-defined]
            "name": name or fn.__name__,
            "request": dict(request),
            "inputs": list(inputs),
            "outputs": dict(outputs),
        }
        return fn

    return mark


def __getattr__(name: str) -> Any:
    if name == "Project":
        from featql.api import Project

        return Project
    raise AttributeError(f"module 'featql' has no attribute {name!r}")
