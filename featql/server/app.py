"""The feature server's application (PRODUCT §5). One app per worker process: the manifest
is read and the service plans (incl. compiled transforms) are built once, at worker start,
never per request.

POST /v1/features/<service>   {"entities": [...], "request": [...] | {...}, "at": "ISO time"?}
POST /v1/ingest/<source>      {"records": [{...}, ...] (<= 1,000), "batch_id": "..."?}
GET  /v1/services             GET /v1/services/<service>    GET /healthz    GET /metrics

One routing table serves every route: the Flask app's `url_map` (werkzeug rules), filled by
`Routes.add`, each rule's endpoint naming a handler `(Call, **rule arguments) -> Reply`. A new
route (auth, ingest, catalog) is one `add` with its handler. `Dispatcher` matches a request
against that table (bound once per process), calls the handler and writes its reply, with no
Flask request context, Request or Response object; it is the app's WSGI entry (Flask's dev
server, the test client) and what featql.server.asgi's entry (granian) calls — a
1-entity feature request through Flask's own dispatch cost 0.11 ms more CPU in-process than
matching the same table directly (8 µs), a fifth of the request; the README has the figures.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from featql.core.diagnostics import did_you_mean
from featql.core.ir import Manifest
from featql.online.base import OnlineStore, OnlineStoreError
from featql.online.lookup import MAX_ENTITIES, OnlineService, RequestError, describe, parse_time
from featql.server.metrics import CONTENT_TYPE as METRICS_TYPE
from featql.server.metrics import OTHER, Metrics

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger("featql.serve")
BODY_FIELDS = ("entities", "request", "at")
INGEST_FIELDS = ("records", "batch_id")
MAX_BODY_BYTES = 1 << 20
DRAIN_BYTES = 16 << 20  # a body over the limit declared up to this is read before the 413
MATCHES_KEPT = 1024  # routing-table matches a dispatcher remembers (cleared when full)
JSON = "application/json"


@dataclass(frozen=True)
class ServeSettings:
    root: Path
    workspace: str
    manifest_path: Path
    metrics_dir: Path
    max_entities: int = MAX_ENTITIES
    max_body_bytes: int = MAX_BODY_BYTES
    ingest_socket: Path | None = None  # the ingest process's (featql.server.ingest_host)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = JSON
    service: str | None = None  # the metrics' service label; None: not counted
    entities: int = 0


def error_body(status: int, code: str, message: str, field: str | None = None) -> bytes:
    return orjson.dumps(RequestError(status, code, message, field).to_json())


def json_reply(data: Any, status: int = 200) -> Reply:
    return Reply(status, orjson.dumps(data))


class Call:
    """What a handler gets: the WSGI environ, and the request body read within the limit."""

    __slots__ = ("environ", "max_body")

    def __init__(self, environ: dict[str, Any], max_body: int):
        self.environ, self.max_body = environ, max_body

    def body(self) -> bytes:
        """The body (Content-Length or chunked); a 413 RequestError past the limit."""
        limit, environ = self.max_body, self.environ
        length = environ.get("CONTENT_LENGTH")
        stream = environ["wsgi.input"]
        if length:
            if not length.isdigit():
                raise RequestError(400, "bad_request", "invalid Content-Length", "body")
            if int(length) > limit:
                if int(length) <= DRAIN_BYTES:
                    _drain(stream, int(length))
                raise RequestError(413, "body_too_large", f"request body of {length} bytes "
                                   f"exceeds the limit of {limit}", "body")
            raw = stream.read(int(length))
            if len(raw) != int(length):
                raise RequestError(400, "bad_request", f"the body ended after {len(raw)} of "
                                   f"its {length} bytes (Content-Length)", "body")
        elif environ.get("wsgi.input_terminated") or environ.get("HTTP_TRANSFER_ENCODING"):
            raw = stream.read(limit + 1)  # chunked: the server ends the stream
        else:
            raw = b""
        if len(raw) > limit:
            raise RequestError(413, "body_too_large", "request body exceeds the limit of "
                               f"{limit} bytes", "body")
        return bytes(raw)

    def json_object(self) -> dict[str, Any]:
        return json_object(self.body())


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object (a 400 RequestError otherwise)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise RequestError(400, "invalid_json", f"body is not valid JSON: {e}",
                           "body") from None
    if not isinstance(body, dict):
        raise RequestError(400, "invalid_json", "body must be a JSON object", "body")
    return body


def known_fields(body: Mapping[str, Any], fields: tuple[str, ...]) -> None:
    """A 400 naming the first key of `body` not in `fields`, with a did-you-mean."""
    for key in body:
        if key not in fields:
            hint = did_you_mean(key, fields)
            raise RequestError(400, "unknown_field", f"unknown field '{key}'"
                               + (f": {hint}" if hint else
                                  f" (expected {', '.join(fields)})"), key)


def _drain(stream: Any, size: int) -> None:
    """Read and drop a refused body of a declared size up to DRAIN_BYTES: a client that sends
    its whole body before reading (most do) then reads the 413 instead of a broken pipe. A
    larger or chunked one is answered at once (the server then closes the connection)."""
    left = size
    while left > 0:
        got = stream.read(min(left, 1 << 16))
        if not got:
            return
        left -= len(got)


Handler = Callable[..., Reply]


class Routes:
    """The one routing table: rules in the Flask app's url_map, handlers by endpoint."""

    def __init__(self, flask: Flask):
        self.flask = flask
        self.handlers: dict[str, Handler] = {}

    def add(self, method: str, rule: str, handler: Handler) -> None:
        from werkzeug.routing import Rule

        endpoint = handler.__name__
        self.flask.url_map.add(Rule(rule, endpoint=endpoint, methods=[method]))
        self.handlers[endpoint] = handler


def reason(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Error"


# RFC 9110 §7.2 uri-host [":" port]: a reg-name (without ",", which joins repeated Host lines
# here) or an IP literal
_HOST = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+;=%-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?\Z")


def refusal(environ: dict[str, Any], method: str, path: str) -> Reply | None:
    """What the HTTP server lets through but a request must not be (RFC 9112): a 4xx or 501,
    else None. granian hands missing Host as "", repeated Host lines joined by ",", the
    target's path percent-decoded (so a raw byte over 0x7F is a non-ASCII character, and so is an
    encoded one: no route of ours has one) and the query as it came (a raw byte over 0x7F is
    one there, an encoded one is not)."""
    host = environ.get("HTTP_HOST")
    if not method.isupper():
        return Reply(400, error_body(400, "bad_request", f"method {method!r}: methods are "
                                     "case-sensitive (GET, POST)", "method"), service=OTHER)
    if not host:
        if environ.get("SERVER_PROTOCOL") == "HTTP/1.1":  # HTTP/1.0 needs none
            return Reply(400, error_body(400, "bad_request", "an HTTP/1.1 request needs a "
                                         "Host header", "host"), service=OTHER)
    elif not _HOST.match(host):
        return Reply(400, error_body(400, "bad_request", "invalid Host header (or more than "
                                     "one)", "host"), service=OTHER)
    if not (path.isascii() and environ.get("QUERY_STRING", "").isascii()):
        return Reply(400, error_body(400, "bad_request", "the request target must be ASCII "
                                     "(RFC 3986)", "path"), service=OTHER)
    coding = environ.get("HTTP_TRANSFER_ENCODING")
    if coding is not None and coding.strip().lower() != "chunked":
        return Reply(501, error_body(501, "not_implemented", f"Transfer-Encoding {coding!r}: "
                                     "only chunked is supported", "transfer-encoding"),
                     service=OTHER)
    return None


class Dispatcher:
    """The WSGI entry: match the table, call the handler, write the reply, count it."""

    def __init__(self, routes: Routes, metrics: Metrics, max_body: int):
        self.routes, self.metrics, self.max_body = routes, metrics, max_body
        self.adapter = routes.flask.url_map.bind("featql")  # hosts do not matter here
        # (method, path) -> what the table matched: feature requests name a few paths, and
        # werkzeug's matcher builds a recursive closure per call (a reference cycle: 8 objects
        # per request left to the cyclic GC); bounded, only successful matches kept
        self._matched: dict[tuple[str, str], tuple[str, Mapping[str, Any]]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """The WSGI entry (Flask's dev server and test client)."""
        reply = self.reply_for(environ, time.perf_counter())
        headers = [("Content-Type", reply.content_type),
                   ("Content-Length", str(len(reply.body)))]
        start_response(reason(reply.status), headers)
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else reply.body]

    def reply_for(self, environ: dict[str, Any], started: float, check: bool = True
                  ) -> Reply:
        """The reply to a request (counted in the metrics), whichever entry it came through;
        `check` False: the entry has already found no `refusal` for it."""
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO") or "/"
        reply = (check and refusal(environ, method, path)) or self._route(method, path,
                                                                          environ)
        self.count(reply, started)
        return reply

    def count(self, reply: Reply, started: float) -> None:
        if reply.service is not None:
            self.metrics.observe(reply.service, reply.status, time.perf_counter() - started,
                                 reply.entities)

    def _route(self, method: str, path: str, environ: dict[str, Any]) -> Reply:
        hit = self._matched.get((method, path))
        if hit is not None:
            return self._call(hit[0], hit[1], environ)
        from werkzeug.exceptions import MethodNotAllowed, NotFound

        try:
            endpoint, args = self.adapter.match(path, method)
        except NotFound:
            return Reply(404, error_body(404, "not_found", f"no route {method} {path}; see "
                                         "GET /v1/services", "path"), service=OTHER)
        except MethodNotAllowed:
            return Reply(405, error_body(405, "method_not_allowed", f"{method} is not "
                                         f"allowed on {path}", "method"),
                         service=OTHER if path.startswith("/v1/features/") else None)
        except Exception:  # any other routing exception (a redirect): no such route either
            return Reply(404, error_body(404, "not_found", f"no route {method} {path}",
                                         "path"), service=OTHER)
        if len(self._matched) >= MATCHES_KEPT:
            self._matched.clear()
        self._matched[(method, path)] = (endpoint, args)
        return self._call(endpoint, args, environ)

    def _call(self, endpoint: str, args: Mapping[str, Any], environ: dict[str, Any]) -> Reply:
        try:
            return self.routes.handlers[endpoint](Call(environ, self.max_body), **args)
        except Exception as e:
            return error_reply(e, OTHER)


def create_app(settings: ServeSettings, manifest: Manifest | None = None,
               store: OnlineStore | None = None) -> Flask:
    """The Flask app (its `test_client()` and `run()` work as usual) whose WSGI entry is the
    Dispatcher over its routing table."""
    from flask import Flask

    from featql.core.config import load_config
    from featql.core.diagnostics import Diagnostics
    from featql.core.manifest import load_manifest
    from featql.online.stores import open_store

    if manifest is None:
        manifest = load_manifest(settings.manifest_path)
    if store is None:
        config = load_config(settings.root, "featql.toml", Diagnostics())
        store = open_store(config, settings.root, settings.workspace, create=False)
    service = OnlineService(manifest, store, settings.root, settings.max_entities)
    metrics = Metrics(settings.metrics_dir, [s.name for s in manifest.services])
    unloaded = service.unloaded_views()
    if unloaded:
        log.warning("views never loaded into the %s online store of workspace %s (their "
                    "features are NULL): %s", store.kind, settings.workspace,
                    ", ".join(unloaded))
    app = Flask("featql.serve", static_folder=None)  # every route is in the table below
    routes = Routes(app)

    def features(call: Call, service_name: str) -> Reply:
        label = service_name if service_name in service.reads else OTHER
        try:
            service.service_read(service_name)  # unknown service first: 404 with a hint
            body = call.json_object()
            known_fields(body, BODY_FIELDS)
            if "entities" not in body:
                raise RequestError(400, "missing_field", "body lacks 'entities'", "entities")
            at = parse_time(body["at"]) if body.get("at") is not None else None
            rows, meta = service.lookup(service_name, body["entities"], body.get("request"), at)
        except Exception as e:
            return error_reply(e, label)
        return Reply(200, orjson.dumps({"features": rows, "metadata": meta}), service=label,
                     entities=len(rows))

    def services(call: Call) -> Reply:
        return json_reply({"services": [
            {"name": p.service.name, "description": p.service.meta.description,
             "keys": [k.name for k in p.keys], "features": len(p.columns)}
            for p in service.reads.values()]})

    def service_schema(call: Call, service_name: str) -> Reply:
        try:
            return json_reply(describe(service.service_read(service_name)))
        except RequestError as e:
            return json_reply(e.to_json(), e.status)

    forwarder = None
    if settings.ingest_socket is not None:  # a multi-worker server's (featql.server.ingest_host)
        from featql.server.ingest_host import Forwarder

        forwarder = Forwarder(settings.ingest_socket)

    def ingest(call: Call, source_name: str) -> Reply:
        """POST /v1/ingest/<source>: validated, deduplicated, logged, answered once the online
        store holds the values (featql.jobs.ingest); applied by the server's ingest process
        when it has one (featql.server.ingest_host), else here."""
        from featql.jobs.ingest import find_source
        from featql.server.ingest_host import ingest_reply

        try:
            find_source(manifest, source_name)  # unknown source first: 404 with a hint
            raw = call.body()
            if forwarder is not None:
                status, body = forwarder.forward(source_name, raw)
                return Reply(status, body, service=OTHER)
        except RequestError as e:
            return error_reply(e, OTHER)
        return ingest_reply(settings, manifest, store, source_name, raw)

    def healthz(call: Call) -> Reply:
        return json_reply({"status": "ok", "project": manifest.project, "pid": os.getpid(),
                           "workspace": settings.workspace, "store": store.kind,
                           "services": len(service.reads), "not_loaded": unloaded})

    def prometheus(call: Call) -> Reply:
        return Reply(200, metrics.render(), METRICS_TYPE)

    routes.add("POST", "/v1/features/<service_name>", features)
    routes.add("GET", "/v1/services", services)
    routes.add("GET", "/v1/services/<service_name>", service_schema)
    routes.add("POST", "/v1/ingest/<source_name>", ingest)
    routes.add("GET", "/healthz", healthz)
    routes.add("GET", "/metrics", prometheus)
    dispatcher = Dispatcher(routes, metrics, settings.max_body_bytes)
    app.wsgi_app = dispatcher  # type: ignore[method-assign]
    app.extensions["featql"] = routes
    app.extensions["featql.dispatcher"] = dispatcher  # what the ASGI entry wraps

    # Everything built so far (manifest, plans, compiled transforms) lives as long as the
    # worker: keep it out of the cyclic GC's full scans, which otherwise add ms-long pauses to
    # the latency tail.
    gc.collect()
    gc.freeze()
    return app


def error_reply(e: Exception, label: str) -> Reply:
    """The reply to an exception raised while answering: a user mistake's 4xx JSON, 503 for an
    online store that cannot answer, else a logged internal error (500)."""
    if isinstance(e, RequestError):
        return Reply(e.status, orjson.dumps(e.to_json()), service=label)
    if isinstance(e, OnlineStoreError):
        log.error("online store: %s", e)
        return Reply(503, error_body(503, "store_unavailable", str(e)), service=label)
    log.exception("internal error", exc_info=e)
    return Reply(500, error_body(500, "internal", f"internal error: {type(e).__name__}"),
                 service=label)
