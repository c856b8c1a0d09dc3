"""The SPARQL side of the HTTP layer: the SPARQL 1.1 Protocol query endpoint (``/sparql``), updates
(``/update``, with a token), the Graph Store Protocol for reading (``/rdf-graphs``), and ``/health``."""

import hmac
import logging

import pyoxigraph as ox
from flask import Blueprint, Response, jsonify, request

from .. import __version__
from ..errors import Forbidden, NotFound, OkgError, QueryError, Unauthorized
from ..store.history import snapshots
from ..store.snapshots import unread_snapshots
from .formats import PROTOCOL_PARAMETERS, UnsupportedMedia, protocol_arguments, respond, service_description
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
        updates = [request.get_data(as_text=True)]
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


@protocol.route("/sparql", methods=["GET", "POST"])
def sparql():
    run = runner()
    if request.method == "GET" and "update" in request.args:
        raise QueryError("an update is not run from a GET: POST it to /update", field="update")
    if request.method == "GET" and "query" not in request.args:
        unknown = sorted(set(request.args) - PROTOCOL_PARAMETERS)
        if unknown:
            raise QueryError(f"unknown parameter {unknown[0]!r}: send the query as 'query'", field=unknown[0])
        return service_description(request.url_root.rstrip("/"), request.headers.get("Accept"),
                                   request.args.get("format"))
    queries, default_graphs, named_graphs = protocol_arguments()
    if not queries:
        raise QueryError("no query: send one as the 'query' parameter (GET or POST form) "
                         "or as an application/sparql-query body")
    if len(queries) > 1:
        raise QueryError("more than one query in the request; send exactly one 'query'")
    query = queries[0]
    base = request.url_root.rstrip("/") + "/sparql"  # relative IRIs in the query resolve against the endpoint
    if default_graphs or named_graphs:  # the protocol's dataset: exactly the graphs named, each kind
        result = run.execute(query, default_graph=default_graphs, named_graphs=named_graphs, base_iri=base)
    else:
        result = run.execute(query, base_iri=base)
    response = respond(result, request.headers.get("Accept"), request.values.get("format"),
                       limit=run.limits["max_rows"])
    unread = unread_snapshots(run.store(), query, (default_graphs or []) + (named_graphs or []))
    if unread:  # a past snapshot's graph holds its description only, unless it is materialised
        response.headers["OKG-Snapshots-As-Changes"] = ", ".join(f"<{iri}>" for iri in unread)
        log.info("the query names past snapshots kept as changes (their graphs hold their descriptions "
                 "only; okg snapshot DATE --materialise puts their facts there): %s", ", ".join(unread))
    return response
