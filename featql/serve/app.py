"""The Flask feature server (PRODUCT §5). One app per worker process: the manifest is read and
the service plans (incl. compiled transforms) are built once, at worker start, never per
request.

POST /v1/features/<service>   {"entities": [...], "request": [...] | {...}, "at": "ISO time"?}
GET  /v1/services             GET /v1/services/<service>    GET /healthz    GET /metrics
"""

from __future__ import annotations

import gc
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from flask import Flask, Response, request

from featql.compiler.diagnostics import did_you_mean
from featql.compiler.ir import Manifest
from featql.serve.lookup import MAX_ENTITIES, OnlineService, RequestError, describe, parse_time
from featql.serve.metrics import OTHER, Metrics
from featql.serve.online.base import OnlineStore, OnlineStoreError

log = logging.getLogger("featql.serve")
BODY_FIELDS = ("entities", "request", "at")
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class ServeSettings:
    root: Path
    workspace: str
    manifest_path: Path
    metrics_dir: Path
    max_entities: int = MAX_ENTITIES
    max_body_bytes: int = MAX_BODY_BYTES


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status=status, mimetype="application/json")


def _error(status: int, code: str, message: str, field: str | None = None) -> Response:
    return _json(RequestError(status, code, message, field).to_json(), status)


def create_app(settings: ServeSettings, manifest: Manifest | None = None,
               store: OnlineStore | None = None) -> Flask:
    from featql.compiler.config import load_config
    from featql.compiler.diagnostics import Diagnostics
    from featql.compiler.manifest import load_manifest
    from featql.serve.online import open_store

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
    app = Flask("featql.serve")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]

    @app.post("/v1/features/<name>")
    def features(name: str) -> Response:
        started = time.perf_counter()
        label = name if name in service.plans else OTHER
        n = 0
        status = 500
        try:
            resp = _features(name)
            status = resp.status_code
            if status == 200:
                n = resp.headers.get("X-Featql-Entities", 0, type=int)
            return resp
        finally:
            metrics.observe(label, status, time.perf_counter() - started, n)

    def _features(name: str) -> Response:
        try:
            plan_exists = service.plan(name)  # unknown service first: 404 with a hint
            del plan_exists
            length = request.content_length
            if length is not None and length > settings.max_body_bytes:
                raise RequestError(413, "body_too_large", f"request body of {length} bytes "
                                   f"exceeds the limit of {settings.max_body_bytes}", "body")
            raw = request.get_data(cache=False)
            if len(raw) > settings.max_body_bytes:
                raise RequestError(413, "body_too_large", "request body exceeds the limit of "
                                   f"{settings.max_body_bytes} bytes", "body")
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as e:
                raise RequestError(400, "invalid_json", f"body is not valid JSON: {e}",
                                   "body") from None
            if not isinstance(body, dict):
                raise RequestError(400, "invalid_json", "body must be a JSON object with "
                                   "'entities'", "body")
            for key in body:
                if key not in BODY_FIELDS:
                    hint = did_you_mean(key, BODY_FIELDS)
                    raise RequestError(400, "unknown_field", f"unknown field '{key}'"
                                       + (f": {hint}" if hint else
                                          f" (expected {', '.join(BODY_FIELDS)})"), key)
            if "entities" not in body:
                raise RequestError(400, "missing_field", "body lacks 'entities'", "entities")
            at = parse_time(body["at"]) if body.get("at") is not None else None
            rows, meta = service.lookup(name, body["entities"], body.get("request"), at)
        except RequestError as e:
            return _json(e.to_json(), e.status)
        except OnlineStoreError as e:
            log.error("online store: %s", e)
            return _error(503, "store_unavailable", str(e))
        resp = _json({"features": rows, "metadata": meta})
        resp.headers["X-Featql-Entities"] = str(len(rows))
        return resp

    @app.get("/v1/services")
    def services() -> Response:
        return _json({"services": [
            {"name": p.service.name, "description": p.service.meta.description,
             "keys": [k.name for k in p.keys], "features": len(p.columns)}
            for p in service.plans.values()]})

    @app.get("/v1/services/<name>")
    def service_schema(name: str) -> Response:
        try:
            return _json(describe(service.plan(name)))
        except RequestError as e:
            return _json(e.to_json(), e.status)

    @app.get("/healthz")
    def healthz() -> Response:
        return _json({"status": "ok", "project": manifest.project, "pid": os.getpid(),
                      "workspace": settings.workspace, "store": store.kind,
                      "services": len(service.plans), "not_loaded": unloaded})

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), mimetype="text/plain; version=0.0.4")

    @app.errorhandler(404)
    def not_found(_e: Exception) -> Response:
        return _error(404, "not_found", f"no route {request.method} {request.path}; see "
                      "GET /v1/services", "path")

    @app.errorhandler(405)
    def bad_method(_e: Exception) -> Response:
        return _error(405, "method_not_allowed", f"{request.method} is not allowed on "
                      f"{request.path}", "method")

    @app.errorhandler(413)
    def too_large(_e: Exception) -> Response:
        return _error(413, "body_too_large", "request body exceeds the limit of "
                      f"{settings.max_body_bytes} bytes", "body")

    @app.errorhandler(Exception)
    def internal(e: Exception) -> Response:
        from werkzeug.exceptions import HTTPException

        if isinstance(e, HTTPException):
            return _error(e.code or 500, "http_error", e.description or str(e))
        log.exception("internal error")
        return _error(500, "internal", f"internal error: {type(e).__name__}")

    # Everything built so far (manifest, plans, compiled transforms) lives as long as the
    # worker: keep it out of the cyclic GC's full scans, which otherwise add ms-long pauses to
    # the latency tail.
    gc.collect()
    gc.freeze()
    return app
