"""Read budgets: a service's `max_read_kb` against what one lookup reads at most (E509).

`featql.semantics.read_cost` bounds the bytes of every cell a lookup of one entity row reads
(per view of the service, compacted as the online load writes it). A service declaring
`max_read_kb = N` whose bound exceeds N KB (1 KB = 1,024 bytes), or that reads a cell with no
bound (TOP_K's histogram, STRING values, a stream view's events), is an error at the budget's
position naming the view and the window that read the most (the unbounded one first).
"""

from __future__ import annotations

from collections.abc import Mapping

from featql.compiler.loader import ParsedFile
from featql.core.diagnostics import Diagnostics
from featql.core.durations import format_duration
from featql.core.ir import Manifest
from featql.semantics.read_cost import ServiceRead, ViewRead, service_read


def kb(n: int) -> str:
    """Bytes as KB with one decimal (1 KB = 1,024 bytes)."""
    return f"{n / 1024:,.1f} KB"


def _what(v: ViewRead) -> str:
    if v.window is None:
        return f"view '{v.view}' (its row values)"
    return f"view '{v.view}', window {format_duration(v.window)}"


def check_budgets(manifest: Manifest, files: Mapping[str, ParsedFile],
                  diags: Diagnostics) -> None:
    """E509 for every service whose `max_read_kb` one lookup may exceed."""
    for service in manifest.services:
        budget = service.max_read_kb
        f = files.get(service.name)
        if budget is None or f is None or f.decl is None:
            continue
        read: ServiceRead = service_read(manifest, service)
        span = f.decl.at("max_read_kb")
        unbounded = next((v for v in read.views if v.bytes is None), None)
        if unbounded is not None:
            diags.error("E509", f"service '{service.name}' has max_read_kb = {budget:g}, but "
                        f"{_what(unbounded)} has no size bound: {unbounded.why}", span,
                        hint="a budget needs every cell bounded: drop max_read_kb, or read a "
                        "bounded function (LAST_DISTINCT_N, APPROX_COUNT_DISTINCT) instead")
            continue
        total = read.bytes or 0
        if total <= budget * 1024:
            continue
        worst = max(read.views, key=lambda v: v.bytes or 0)
        diags.error("E509", f"service '{service.name}' reads up to {kb(total)} per lookup, "
                    f"over its max_read_kb = {budget:g}: {_what(worst)} reads up to "
                    f"{kb(worst.bytes or 0)} ({worst.tiles} tiles)", span,
                    hint="raise max_read_kb, shorten the window or use a longer slide; "
                    "`featql compile` shows what each view reads")
