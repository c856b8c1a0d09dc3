"""The SPARQL 1.1 Protocol query endpoint, ``/sparql``, on a short path.

:class:`SparqlEndpoint` is a WSGI app in front of the Flask app: it answers ``/sparql`` itself and
hands every other path to Flask. A plain query is the request BI tools and SPARQL clients send most
often, and Flask's routing, request context and hooks cost about three times the Python of the
answer itself (docs/benchmarks.md, "Endpoint"); here a request is one werkzeug ``Request`` read
once, the query run in the one query runner (slots, timeout, row limit, worker processes), and
the answer written. The request log line, CORS headers and the JSON error shape are the same
functions the Flask side uses (:mod:`opportunity_kg.web.app`)."""

import logging
import time

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from ..errors import OkgError, QueryError
from ..store.snapshots import unread_snapshots
from .formats import PROTOCOL_PARAMETERS, protocol_arguments, respond, service_description
from .replies import cors_headers, error_response, http_error_response, log_answer, server_error_response

log = logging.getLogger("opportunity_kg.web")

PATH = "/sparql"
#: the methods ``/sparql`` answers (HEAD as GET without the body; OPTIONS for a browser's CORS preflight)
METHODS = ("GET", "HEAD", "OPTIONS", "POST")


class SparqlEndpoint:
    """WSGI: ``/sparql`` answered by :func:`answer`, anything else by ``inner`` (the Flask app's own
    WSGI callable). ``run`` is the app's :class:`~opportunity_kg.web.runner.QueryRunner`."""

    def __init__(self, inner, run):
        self.inner, self.run = inner, run
        limits = run.limits
        self.origins = [o.strip() for o in limits["cors_origins"].split(",") if o.strip()]

        class Limited(Request):  # a form body past OKG_MAX_REQUEST_BYTES is refused, as on Flask's routes
            max_content_length = limits["max_request_bytes"]

        self.request_class = Limited

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != PATH:
            return self.inner(environ, start_response)
        began = time.monotonic()
        request = self.request_class(environ)
        seen = {}
        try:
            response = answer(self.run, request, seen)
        except OkgError as exc:
            response = error_response(exc)
        except HTTPException as exc:  # a body over the size limit, a form that cannot be read
            response = http_error_response(exc, request.method, PATH, self.run.limits["max_request_bytes"])
        except Exception as exc:  # noqa: BLE001 -- whatever failed, the answer is the JSON error shape
            response = server_error_response(request.method, PATH, exc)
        response.headers.extend(cors_headers(environ.get("HTTP_ORIGIN"), self.origins))
        response.call_on_close(lambda: log_answer(request.method, PATH, response, began, seen.get("query")))
        return response(environ, start_response)


def answer(run, request, seen):
    """The answer to one ``/sparql`` request (a werkzeug Response); ``seen["query"]`` is set to
    (the query's kind, ms to its answer) when a query ran. Raises OkgError for the error shape."""
    method = request.method
    if method not in METHODS:
        raise MethodNotAllowed(method)
    if method == "OPTIONS":
        return _bare(200, {"Allow": ", ".join(METHODS)})
    args = request.args
    if method in ("GET", "HEAD") and "update" in args:
        raise QueryError("an update is not run from a GET: POST it to /update", field="update")
    root = _root(request.environ)
    if method in ("GET", "HEAD") and "query" not in args:
        unknown = sorted(set(args) - PROTOCOL_PARAMETERS)
        if unknown:
            raise QueryError(f"unknown parameter {unknown[0]!r}: send the query as 'query'", field=unknown[0])
        return service_description(root, request.headers.get("Accept"), args.get("format"))
    queries, default_graphs, named_graphs = protocol_arguments(request)
    if not queries:
        raise QueryError("no query: send one as the 'query' parameter (GET or POST form) "
                         "or as an application/sparql-query body")
    if len(queries) > 1:
        raise QueryError("more than one query in the request; send exactly one 'query'")
    query = queries[0]
    base = root + PATH  # relative IRIs in the query resolve against the endpoint
    dataset = {"default_graph": default_graphs, "named_graphs": named_graphs} \
        if default_graphs or named_graphs else {}  # the protocol's dataset: exactly the graphs named, each kind
    started = time.monotonic()
    result = run.execute(query, client=request.remote_addr, base_iri=base, **dataset)
    seen["query"] = (result.kind, (time.monotonic() - started) * 1000)
    response = respond(result, request.headers.get("Accept"), request.values.get("format"),
                       limit=run.limits["max_rows"])
    unread = unread_snapshots(run.store(), query, (default_graphs or []) + (named_graphs or []))
    if unread:  # a past snapshot's graph holds its description only, unless it is materialised
        response.headers["OKG-Snapshots-As-Changes"] = ", ".join(f"<{iri}>" for iri in unread)
        log.info("the query names past snapshots kept as changes (their graphs hold their descriptions "
                 "only; okg snapshot DATE --materialise puts their facts there): %s", ", ".join(unread))
    return response


class MethodNotAllowed(OkgError):
    kind = "method_not_allowed"
    status = 405

    def __init__(self, method):
        super().__init__(f"{method} is not allowed on {PATH}")
        self.headers = {"Allow": ", ".join(METHODS)}


def _root(environ):
    """The server's root URL as the client named it (scheme, Host and the app's mount point)."""
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    return f"{environ['wsgi.url_scheme']}://{host}{environ.get('SCRIPT_NAME', '').rstrip('/')}"


def _bare(status, headers):
    response = Response(status=status, headers=headers)
    del response.headers["Content-Type"]  # no body, so no type
    return response
