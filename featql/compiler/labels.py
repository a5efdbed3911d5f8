"""Label columns are what models predict: a feature view that reads one serves the answer.

A source marks them with `labels = [is_fraud]`. Any use of a label column in a feature query
(a value, a filter, a join or group key) is an error (E422) at the column: training sets take
labels from the spine, never from features. A view reading another view cannot reach a label
that way, since the upstream view is refused itself.
"""

from __future__ import annotations

from sqlglot import exp

from featql.compiler.body import node_span
from featql.core.diagnostics import Diagnostics, SourceFile
from featql.core.ir import Source


def check_labels(src: SourceFile, qualified: exp.Expr, view: str, sources: dict[str, Source],
                 diags: Diagnostics) -> bool:
    """Report every label column the (qualified) query reads; False when there is one."""
    labelled: dict[str, Source] = {}  # alias -> source with labels
    for table in qualified.find_all(exp.Table):
        source = sources.get(table.name.lower())
        if source is not None and source.labels:
            labelled[table.alias_or_name.lower()] = source
    if not labelled:
        return True
    ok = True
    for col in qualified.find_all(exp.Column):
        source = labelled.get(col.table.lower())
        if source is None or col.name.lower() not in source.labels:
            continue
        diags.error("E422", f"feature view '{view}' reads label column "
                    f"'{source.name}.{col.name.lower()}': its features would give the model the "
                    "answer", node_span(src, col),
                    hint="labels belong in the training set's spine; remove it from the view "
                    f"(it is a label because {source.name}'s @source says labels = "
                    f"[{', '.join(source.labels)}])")
        ok = False
    return ok
