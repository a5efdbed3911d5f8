"""Which HTTP server `featql serve` runs (kept apart from runner.py so that the CLI can name
the choices without importing the app)."""

from __future__ import annotations

import os

SERVER_ENV = "FEATQL_SERVER"  # overrides `[serve] server` (the tests and the bench use it)
SERVERS = ("granian", "uvicorn")
DEFAULT_SERVER = "granian"


def chosen_server(server: str | None = None) -> str:
    name = server or os.environ.get(SERVER_ENV) or DEFAULT_SERVER
    if name not in SERVERS:
        raise ValueError(f"{SERVER_ENV}={name!r}: not one of {', '.join(SERVERS)}")
    return name
