"""featql.semantics: what a feature means, defined once (see README.md): aggregate functions,
tile time and windows, row visibility and tie-break, and the one type map."""

# aggregates registers the functions of spread, ranked and sketches, which import it: importing
# it first, whichever module is asked for, completes it before they need its names
from featql.semantics import aggregates as _aggregates  # noqa: F401
