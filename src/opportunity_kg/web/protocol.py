"""The SPARQL side of the HTTP layer besides the query endpoint (``/sparql``, :mod:`.endpoint`):
updates (``/update``, with a token), the Graph Store Protocol for reading (``/rdf-graphs``), and
``/health``."""

import hmac
import logging

import pyoxigraph as ox
from flask import Blueprint, Response, jsonify, request

from .. import __version__
from ..errors import Forbidden, NotFound, OkgError, QueryError, Unauthorized
from ..store.history import snapshots
from .formats import UnsupportedMedia, respond, utf8_body
from .runner import runner

log = logging.getLogger("opportunity_kg.web")
protocol = Blueprint("protocol", __name__)


@protocol.route("/health")
def health():
    run = runner()
    store_now, workers = run.store(), run.workers()
    return jsonify({"status": "ok", "version": __version__,
                    "snapshots": [{"graph": g, "system": sy, "as_of": a} for g, sy, a in snapshots(store_now)],
                    "updates": bool(run.limits["update_token"]),
                    "in_memory": run.in_memory(),
                    "answered_ahead": run.answered_ahead(store_now),
                    "queries_running": run.slots.status()[0],
                    "query_processes": workers.status() if workers is not None else None})


@protocol.route("/update", methods=["POST"])
def update():
    run = runner()
    token = run.limits["update_token"]
    if not token:
        raise Forbidden("updates are off: the server was started without OKG_UPDATE_TOKEN")
    scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        error = Unauthorized("send the update token as 'Authorization: Bearer <token>'")
        response = jsonify(error.as_dict())
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="opportunity-kg"'
        return response
    content_type = (request.mimetype or "").lower()
    if content_type == "application/x-www-form-urlencoded":
        updates = request.form.getlist("update")
    elif content_type == "application/sparql-update":
        updates = [utf8_body(request, "update")]
    else:
        raise UnsupportedMedia(content_type, "update", "application/sparql-update")
    if len(updates) != 1:
        raise QueryError("send exactly one 'update'")
    scoped = [k for k in ("using-graph-uri", "using-named-graph-uri") if k in request.values]
    if scoped:  # refused rather than ignored: run unscoped, the update would touch every graph
        raise QueryError(f"{scoped[0]} is not supported here; name the graphs in the update itself "
                         "(USING <graph>, USING NAMED <graph> or WITH <graph>)", field=scoped[0])
    try:
        run.store().update(updates[0])
    except SyntaxError as exc:
        raise QueryError(f"the update is not valid SPARQL: {exc}") from None
    except OSError as exc:
        raise OkgError(f"the update failed: {exc}") from None
    response = Response(status=204)
    del response.headers["Content-Type"]  # no body, so no type
    return response


@protocol.route("/rdf-graphs", methods=["GET", "HEAD"])
def graph_store():
    """SPARQL 1.1 Graph Store Protocol, reading: ?graph=IRI, or ?default for the current dataset."""
    run = runner()
    graph = request.args.get("graph")
    if graph:
        if not run.store().contains_named_graph(ox.NamedNode(graph)):
            raise NotFound(f"no graph <{graph}> in the store")
        query = f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}"
    elif "default" in request.args:
        query = "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }"
    else:
        raise QueryError("name a graph: ?graph=<IRI>, or ?default for the default graph")
    result = run.execute(query)
    response = respond(result, request.headers.get("Accept"), request.args.get("format"), default="turtle",
                       limit=run.limits["max_rows"])
    if request.method == "HEAD":
        response.set_data(b"")
    return response
