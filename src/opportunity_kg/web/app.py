"""The app factory: the store, the one query runner, the error shape, the request log, CORS, and the
blueprints (the SPARQL protocol, the API, the pages)."""

import logging
import threading
import time
from pathlib import Path

from flask import Flask, g, request
from werkzeug.exceptions import HTTPException

from .. import settings
from ..errors import OkgError
from ..store.remote import is_remote
from ..store import ReadOnlyStore, check_is_store, open_store, recover_if_free
from ..store.processes import QueryProcesses
from .api import api
from .endpoint import SparqlEndpoint
from .pages import STATIC, pages
from .protocol import protocol
from .replies import (allowed_origins, cors_headers, error_response, http_error_response, log_answer,
                      server_error_response)
from .runner import QueryRunner

log = logging.getLogger("opportunity_kg.web")


def create_app(store_path=None, *, store=None, config=None):
    """The Flask app over the store at ``store_path`` (or an open ``store``); ``config`` overrides settings."""
    app = Flask(__name__, static_folder=str(STATIC))  # the pages' scripts, styles and YASGUI, at /static/
    limits = settings.all_settings(dict(config or {}))
    app.config["OKG_SETTINGS"] = limits
    app.config["MAX_CONTENT_LENGTH"] = limits["max_request_bytes"]
    store_now, in_memory, workers = _store_of(store_path, store, limits)
    app.extensions["okg"] = run = QueryRunner(store_now, limits, in_memory, workers)
    for blueprint in (protocol, api, pages):
        app.register_blueprint(blueprint)
    _add_error_handlers(app, limits)
    _add_request_hooks(app, limits)
    app.wsgi_app = SparqlEndpoint(app.wsgi_app, run)  # /sparql on a short path, the rest through Flask
    if limits["cache_entries"] and store is None:
        threading.Thread(target=run.keep_warm, daemon=True, name="okg-warm").start()
    return app


def _store_of(store_path, store, limits):
    """(a function giving the store as it is now, one telling whether queries read an in-memory copy,
    one giving the worker processes queries run in, or None): an open store as it is, a SPARQL server,
    or a store path read-only (reopened after an ingest swaps in a new one; copied into memory when it
    fits; its queries in worker processes, see :mod:`opportunity_kg.store.processes`)."""
    if store is not None:
        return (lambda: store), (lambda: False), (lambda: None)
    if is_remote(store_path):
        remote = open_store(store_path)
        return (lambda: remote), (lambda: False), (lambda: None)
    if limits["update_token"]:
        open_store(store_path, create=False)  # recovers a cut-short write, and names a missing store
    else:  # without opening it for writing: several server processes may start side by side
        recover_if_free(Path(store_path))
        check_is_store(Path(store_path))

    def workers(path):
        return QueryProcesses(path, limits["serve_memory_triples"], log.info, limits["query_processes"],
                              limits["query_memory_mb"])

    handle = ReadOnlyStore(store_path, writable=bool(limits["update_token"]),
                           memory_triples=limits["serve_memory_triples"], log=log.info,
                           workers=workers if limits["query_processes"] else None)
    return handle.current, (lambda: handle.in_memory), handle.workers


def _add_error_handlers(app, limits):
    """Every error in the one JSON shape of :class:`~opportunity_kg.errors.OkgError` (:mod:`.replies`)."""

    @app.errorhandler(OkgError)
    def okg_error(exc):
        return error_response(exc)

    @app.errorhandler(HTTPException)
    def http_error(exc):  # no such page, a method not allowed, a body too large, a request werkzeug cannot read
        return http_error_response(exc, request.method, request.path, limits["max_request_bytes"])

    @app.errorhandler(500)
    def server_error(exc):  # whatever failed, the answer is the one JSON error shape, not an HTML page
        return server_error_response(request.method, request.path, getattr(exc, "original_exception", exc))


def _add_request_hooks(app, limits):
    """The request log (one line per request, when its answer is done) and CORS."""
    origins = allowed_origins(limits["cors_origins"])

    @app.before_request
    def started():
        g.started = time.monotonic()

    @app.after_request
    def log_request(response):
        """One log line per request, written when the (streamed) response is done, with its duration
        (and for a query, its kind and the time to its first answer)."""
        method, path, began, query = request.method, request.path, g.get("started", time.monotonic()), g.get("query")
        response.call_on_close(lambda: log_answer(method, path, response.status_code, began, query,
                                                  response.headers.get("OKG-Rows-Cut")))
        return response

    @app.after_request
    def cors(response):
        response.headers.extend(cors_headers(request.headers.get("Origin"), origins))
        return response
