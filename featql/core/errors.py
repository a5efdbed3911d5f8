"""The one base class of every user-facing error.

A `UserError` is a mistake of the user's (or of their environment: a corrupt file, an
unreachable store) that the CLI reports as `error: ...` with exit code 1 and the server as a
4xx; anything else that escapes is an internal bug (exit code 2). Errors tied to a file
position carry `Diagnostic`s (`featql.core.diagnostics.FeatqlError`, a subclass).
"""

from __future__ import annotations


class UserError(Exception):
    """A user mistake, reported without a traceback (exit code 1)."""
