"""`featql serve [--host H] [--port P] [--workers N] [--workspace W] [--reload]`: the online
feature server (granian serving the Flask app; Flask's dev server with --reload).

Serves the definitions applied to the workspace (`featql apply`), never unapplied edits: the
master loads the applied manifest once, validates it (store, transforms), writes it into its
temporary folder, and every worker builds its app from that very file."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from featql.cli.commands._registry import add_workspace_argument
from featql.cli.console import UserError, console
from featql.server.choice import DEFAULT_SERVER, SERVER_ENV, SERVERS

if TYPE_CHECKING:
    from featql.core.config import ProjectConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8080)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: number of CPUs)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads per worker (default: 1 when the online store answers from "
                        "this machine: SQLite, or DynamoDB at a loopback endpoint_url; 2 for "
                        "DynamoDB across the network; [serve] threads in featql.toml)")
    p.add_argument("--server", choices=SERVERS, default=None,
                   help="the HTTP server (default: [serve] server in featql.toml, else "
                        f"{DEFAULT_SERVER}; the FEATQL_SERVER environment variable overrides "
                        "featql.toml)")
    add_workspace_argument(p)
    p.add_argument("--reload", action="store_true",
                   help="development: Flask's reloading server instead of granian")
    p.add_argument("--demo", action="store_true",
                   help="start the server in the background, query it like curl, stop it")
    p.add_argument("--push", action="store_true",
                   help="with --demo: also push a few events (POST /v1/ingest/<source>) and "
                        "show a feature change at once; the events go to the source's log")


def default_threads(store: str, endpoint_url: str | None = None) -> int:
    """Threads per worker when neither --threads nor `[serve] threads` says: 1 when a read
    does not leave the machine, 2 when it waits on the network.

    With one thread the handler runs inline in the worker's event loop (featql.server.asgi).
    A SQLite read is CPU work in the worker (and Python's sqlite3 releases the GIL around every
    row it steps: with a second thread waiting, each release is a thread switch); so is a read
    from a DynamoDB endpoint on a loopback address (DynamoDB Local, dynalite), which answers in
    well under a millisecond (measured with the former event-loop worker against dynalite,
    1 entity, 4 clients: 1,250 rps at p99 9.1 ms and 0.35 ms of server CPU per request, 2
    gthread threads 780 rps at p99 11.4 ms and 0.80 ms). A read from DynamoDB across the
    network waits for milliseconds, and a second thread serves another request meanwhile."""
    if store == "sqlite" or (endpoint_url and _loopback(endpoint_url)):
        return 1
    return 2


def _loopback(url: str) -> bool:
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _setting(conf: dict[str, object], key: str, default: int) -> int:
    """An integer of `[serve]` in featql.toml (`default` when absent)."""
    value = conf.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"featql.toml: serve.{key} must be an integer, got {value!r}")
    return value


def run(args: argparse.Namespace) -> int:
    from featql.cli.commands._common import applied_run, workspace
    from featql.core.manifest import write_manifest
    from featql.online.lookup import MAX_ENTITIES
    from featql.online.stores import OnlineStoreError
    from featql.server.app import MAX_BODY_BYTES, ServeSettings
    from featql.server.runner import describe, metrics_directory, serve

    root = Path(args.project)
    if args.demo:
        from featql.cli.serve_demo import serve_demo

        out = console()
        ws = workspace(root, args.workspace)
        return 0 if serve_demo(root, ws, say=lambda line: out.print(line, markup=False),
                               push=args.push) else 1
    config = _config(root)
    conf = config.serve
    host = args.host or str(conf.get("host", "127.0.0.1"))
    port = args.port or _setting(conf, "port", 8080)
    workers = args.workers or _setting(conf, "workers", os.cpu_count() or 1)
    store = config.online_store
    endpoint = config.online.get("endpoint_url")
    threads = (args.threads or _setting(conf, "threads", 0)
               or default_threads(store, str(endpoint) if endpoint else None))
    if workers < 1 or threads < 1:
        raise UserError("--workers and --threads must be at least 1")
    server = args.server or os.environ.get(SERVER_ENV) or str(conf.get("server", DEFAULT_SERVER))
    if server not in SERVERS:
        raise UserError(f"the server must be one of {', '.join(SERVERS)}, got {server!r}")
    max_entities = _setting(conf, "max_entities", MAX_ENTITIES)
    max_body = _setting(conf, "max_body_bytes", MAX_BODY_BYTES)
    run_ = applied_run(args.project, args.workspace)
    manifest = run_.applied.run_manifest
    ws = run_.workspace
    with metrics_directory() as tmp:
        # the workers read this file: exactly the manifest validated below
        manifest_path = write_manifest(manifest, tmp / "manifest")
        settings = ServeSettings(
            root=root.resolve(), workspace=ws, manifest_path=manifest_path,
            metrics_dir=tmp / "metrics", max_entities=max_entities, max_body_bytes=max_body)
        try:  # fail fast on a misconfigured store or a transform that does not compile
            from featql.server.app import create_app

            quiet = logging.getLogger("featql.serve")
            level = quiet.level
            quiet.setLevel(logging.ERROR)  # the warning below says it once, in colour
            try:
                app = create_app(settings)
            finally:
                quiet.setLevel(level)
        except OnlineStoreError as e:
            raise UserError(str(e)) from e
        except Exception as e:
            from featql.transforms import TransformCompileError

            if isinstance(e, TransformCompileError):
                raise UserError(str(e)) from e
            raise
        with app.test_client() as probe:
            missing = (probe.get("/healthz").get_json() or {}).get("not_loaded") or []
        if missing:
            console(stderr=True).print(
                f"[bold yellow]warning:[/] not loaded into the online store (NULL until "
                f"`featql materialize --online --workspace {ws}`): {', '.join(missing)}")
        mode = describe(workers, threads, args.reload, server)
        console(stderr=True).print(
            f"[bold green]featql serve[/] {manifest.project} workspace [bold]{ws}[/] "
            f"({run_.applied.label}, {config.online_store} online store) on "
            f"http://{host}:{port} — {mode}")
        serve(settings, host, port, 1 if args.reload else workers, threads, args.reload,
              server_name=server)
    return 0


def _config(root: Path) -> ProjectConfig:
    """featql.toml (its problems reported like `featql check` does)."""
    from featql.cli.commands._common import project_root
    from featql.cli.console import print_diagnostics
    from featql.core.config import CONFIG_FILE, load_config
    from featql.core.diagnostics import Diagnostics

    diags = Diagnostics()
    config = load_config(project_root(str(root)), CONFIG_FILE, diags)
    if diags.has_errors():
        print_diagnostics(diags.sorted())
        raise UserError("featql.toml has errors (see above)")
    return config
