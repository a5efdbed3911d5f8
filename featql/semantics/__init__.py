"""featql.semantics: what a feature means, defined once (see README.md): aggregate functions,
tile time and windows, row visibility and tie-break, and the one type map."""
