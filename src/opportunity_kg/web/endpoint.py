"""The SPARQL 1.1 Protocol query endpoint, ``/sparql``, on a short path.

:class:`SparqlEndpoint` is a WSGI app in front of the Flask app: it answers ``/sparql`` itself and
hands every other path to Flask. A plain query is the request BI tools and SPARQL clients send most
often; through Flask's routing, request context and hooks an ASK took 0.35 ms of CPU, here 0.13 ms
(docs/benchmarks.md, "Endpoint"). A request is one werkzeug ``Request`` read once, the query run in
the one query runner (slots, timeout, row limit, worker processes), and the answer written
straight to the server. The request log line, CORS headers and the JSON error shape are the same
functions the Flask side uses (:mod:`opportunity_kg.web.app`)."""

import logging
import time

import pyoxigraph as ox
from werkzeug.exceptions import HTTPException
from werkzeug.utils import get_content_type
from werkzeug.wrappers import Request, Response

from ..errors import OkgError, QueryError
from ..store.snapshots import unread_snapshots
from .formats import PROTOCOL_PARAMETERS, answer_parts, protocol_arguments, service_description
from .replies import (allowed_origins, cors_headers, error_response, http_error_response, log_answer,
                      server_error_response)

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
        self.origins = allowed_origins(limits["cors_origins"])

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
            answered = answer(self.run, request, seen)
        except OkgError as exc:
            answered = error_response(exc)
        except HTTPException as exc:  # a body over the size limit, a form that cannot be read
            answered = http_error_response(exc, request.method, PATH, self.run.limits["max_request_bytes"])
        except Exception as exc:  # noqa: BLE001 -- whatever failed, the answer is the JSON error shape
            answered = server_error_response(request.method, PATH, exc)
        if isinstance(answered, Response):  # the rarer answers: a service description, an error, a preflight
            body, status, headers = answered.get_wsgi_response(environ)
            headers = list(headers)
        else:  # a query's answer: written here, without a Response object
            text, media, extra = answered
            status, headers = "200 OK", [("Content-Type", get_content_type(media, "utf-8")), *extra.items()]
            if isinstance(text, str):  # a whole answer (an ASK's, say): its length is known
                data = text.encode("utf-8")
                headers.append(("Content-Length", str(len(data))))
                body = [data]
            else:
                body = _pieces(text)
            if request.method == "HEAD":
                body = []
        headers += cors_headers(environ.get("HTTP_ORIGIN"), self.origins)
        start_response(status, headers)
        return _Logged(body, request.method, status, headers, began, seen.get("query"))


class _Logged:
    """A response body that writes the request's log line when the server closes it (the answer is done)."""

    def __init__(self, body, method, status, headers, began, query):
        self.body, self.method, self.status, self.headers = body, method, status, headers
        self.began, self.query = began, query

    def __iter__(self):
        return iter(self.body)

    def close(self):
        try:
            if hasattr(self.body, "close"):
                self.body.close()
        finally:
            cut = next((v for k, v in self.headers if k == "OKG-Rows-Cut"), None)
            log_answer(self.method, PATH, int(self.status[:3]), self.began, self.query, cut)


#: bytes gathered before a piece of a long answer is handed to the server
CHUNK_BYTES = 64 * 1024


def _pieces(text):
    """An answer's text (an iterable of strings) as UTF-8 bytes in pieces of about :data:`CHUNK_BYTES`."""
    gathered, size = [], 0
    for chunk in text:
        gathered.append(chunk)
        size += len(chunk)
        if size >= CHUNK_BYTES:
            yield "".join(gathered).encode("utf-8")
            gathered, size = [], 0
    if gathered:
        yield "".join(gathered).encode("utf-8")


def answer(run, request, seen):
    """The answer to one ``/sparql`` request: a query's (body, media type, headers), see
    :func:`~opportunity_kg.web.formats.answer_parts`, or a werkzeug Response (a service description,
    a preflight); ``seen["query"]`` is set to (the query's kind, ms to its answer) when a query ran.
    Raises OkgError for the error shape."""
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
    base = _iri_or_none(root + PATH)  # relative IRIs in the query resolve against the endpoint
    dataset = {"default_graph": default_graphs, "named_graphs": named_graphs} \
        if default_graphs or named_graphs else {}  # the protocol's dataset: exactly the graphs named, each kind
    started = time.monotonic()
    result = run.execute(query, client=request.remote_addr, base_iri=base, **dataset)
    seen["query"] = (result.kind, (time.monotonic() - started) * 1000)
    body, media, headers = answer_parts(result, request.headers.get("Accept"), request.values.get("format"),
                                        limit=run.limits["max_rows"])
    unread = unread_snapshots(run.store(), query, (default_graphs or []) + (named_graphs or []))
    if unread:  # a past snapshot's graph holds its description only, unless it is materialised
        headers["OKG-Snapshots-As-Changes"] = ", ".join(f"<{iri}>" for iri in unread)
        log.info("the query names past snapshots kept as changes (their graphs hold their descriptions "
                 "only; okg snapshot DATE --materialise puts their facts there): %s", ", ".join(unread))
    return body, media, headers


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


def _iri_or_none(text):
    """``text`` if it is an IRI, else None: a Host header that makes no IRI gives the query no base
    (a query with a relative IRI then says it needs one) rather than failing every query."""
    try:
        ox.NamedNode(text)
        return text
    except ValueError:
        return None


def _bare(status, headers):
    response = Response(status=status, headers=headers)
    del response.headers["Content-Type"]  # no body, so no type
    return response
