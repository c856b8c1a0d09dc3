"""The HTTP layer: a SPARQL 1.1 query endpoint and the canned-query API, over one store.

Routes:

- ``/sparql``: SPARQL 1.1 Protocol queries by GET, POST form or POST direct;
  results as JSON, XML, CSV or TSV by ``Accept`` (or ``format=``). Read-only.
- ``/api/queries``: the canned queries with their typed parameters (JSON).
- ``/api/queries/<name>`` (``.csv`` or ``.json`` suffix, or ``Accept``): runs
  a canned query with parameters from the query string.
- ``/ontology``: the ontology, as pyLODE HTML for a browser and as Turtle,
  N-Triples, RDF/XML or JSON-LD for an RDF client (``Accept`` or ``format=``);
  ``/ontology/<module>`` is one module, ``/ontology/<version>`` the version IRI.
- ``/``: a small page that lists the above and runs a query.

Every error is answered with the one JSON error shape of
:class:`opportunity_kg.errors.OkgError`.
"""

import hmac
import html
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from datetime import date
from pathlib import Path

import pyoxigraph as ox
from flask import Flask, Response, g, has_request_context, jsonify, request

from . import __version__, settings
from .errors import Busy, Forbidden, NotFound, OkgError, QueryError, Unauthorized
from .ontology_docs import DOC_FORMATS, RDF_FORMATS, documentation_html, modules, ontology_rdf
from .queries import get_query, load_queries
from .results import GRAPH_FORMATS, SELECT_FORMATS, write_boolean, write_solutions, write_table, write_triples
from .history import snapshots
from .snapshots import unread_snapshots
from .remote import is_remote
from .slots import QuerySlots
from .store import ReadOnlyStore, Result, open_store, run_query
from .support import generation

log = logging.getLogger("opportunity_kg.web")

FORMAT_ALIASES = {
    "json": "json", "application/sparql-results+json": "json", "application/json": "json",
    "xml": "xml", "application/sparql-results+xml": "xml", "application/xml": "xml",
    "csv": "csv", "text/csv": "csv",
    "tsv": "tsv", "text/tab-separated-values": "tsv",
}
GRAPH_ALIASES = {
    "application/n-triples": "ntriples", "ntriples": "ntriples", "nt": "ntriples",
    "text/turtle": "turtle", "turtle": "turtle", "ttl": "turtle", "text/plain": "ntriples",
    "application/x-turtle": "turtle", "n3": "turtle", "text/n3": "turtle", "text/rdf+n3": "turtle",
    "application/rdf+xml": "rdfxml", "rdfxml": "rdfxml", "xml": "rdfxml", "rdf": "rdfxml", "rdf+xml": "rdfxml",
    "application/ld+json": "jsonld", "jsonld": "jsonld", "json-ld": "jsonld", "json": "jsonld",
}
NUMERIC = {"http://www.w3.org/2001/XMLSchema#" + t for t in
           ("integer", "decimal", "double", "float", "long", "int", "short", "nonNegativeInteger")}
_JSON_NUMBER = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?$")


def negotiate(accept, fmt_param, choices, default):
    """The format for a request: ``format=`` first, then the Accept header with q-weights."""
    if fmt_param:
        key = fmt_param.strip().lower()
        if key in choices:
            return choices[key]
        raise QueryError(f"unknown format {fmt_param!r}; use one of {', '.join(sorted(set(choices.values())))}",
                         field="format", value=fmt_param)
    best, best_q = None, 0.0
    for position, part in enumerate((accept or "").split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        media = media.lower()
        candidate = choices.get(media) or (default if media in ("*/*", "application/*", "text/*", "") else None)
        if candidate and q > best_q:
            best, best_q = candidate, q
    if best is None and (accept or "").strip():
        raise NotAcceptable(f"cannot answer in any of the formats asked for ({accept}); this answer comes as "
                            f"{', '.join(sorted(set(choices)))}")
    return best or default


#: how often the server looks whether an ingest made a new store generation (to answer ahead again)
WARM_CHECK_SECONDS = 5


class AnswerCache:
    """Whole canned-query answers by (query text, store generation), the least recently used dropped
    past ``entries``."""

    def __init__(self, entries):
        self.entries, self.kept, self.lock = entries, OrderedDict(), threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.kept:
                self.kept.move_to_end(key)
                return self.kept[key]
        return None

    def put(self, key, value):
        if not self.entries:
            return
        with self.lock:
            self.kept[key] = value
            self.kept.move_to_end(key)
            while len(self.kept) > self.entries:
                self.kept.popitem(last=False)


class NotAcceptable(OkgError):
    kind = "not_acceptable"
    status = 406


#: the parameters of a SPARQL protocol GET besides the query
PROTOCOL_PARAMETERS = {"query", "default-graph-uri", "named-graph-uri", "format", "timeout"}


def create_app(store_path=None, *, store=None, config=None):
    """The Flask app over the store at ``store_path`` (or an open ``store``)."""
    app = Flask(__name__)
    overrides = dict(config or {})
    limits = settings.all_settings(overrides)
    app.config["OKG_SETTINGS"] = limits
    app.config["MAX_CONTENT_LENGTH"] = limits["max_request_bytes"]
    if store is None and is_remote(store_path):
        remote = open_store(store_path)
        app.config["OKG_STORE"] = lambda: remote
    elif store is None:
        open_store(store_path, create=False)  # recovers a cut-short write, and names a missing store
        handle = ReadOnlyStore(store_path, writable=bool(limits["update_token"]),
                               memory_triples=limits["serve_memory_triples"], log=log.info)
        app.config["OKG_STORE"] = handle.current
        app.config["OKG_IN_MEMORY"] = lambda: handle.in_memory
    else:
        app.config["OKG_STORE"] = lambda: store
    slots = QuerySlots(limits["max_concurrent_queries"], limits["max_queries_per_client"])
    app.config["OKG_SLOTS"] = slots
    answers = AnswerCache(limits["cache_entries"])

    def execute(query, **kwargs):
        # the thread answering ahead has no request, and no client to count against
        client = request.remote_addr if has_request_context() else "(answering ahead)"
        give_back = slots.take(client, limits["query_timeout"])  # given back when the query's work stops
        started = time.monotonic()
        result = run_query(app.config["OKG_STORE"](), query, timeout=limits["query_timeout"],
                           max_rows=limits["max_rows"], on_done=give_back, **kwargs)
        if has_request_context():
            g.query = (result.kind, (time.monotonic() - started) * 1000)
        return result

    @app.errorhandler(OkgError)
    def okg_error(exc):
        response = jsonify(exc.as_dict())
        if isinstance(exc, Busy):
            response.headers["Retry-After"] = "1"
        return response, exc.status

    @app.errorhandler(413)
    def too_large(_):
        return jsonify({"error": "too_large", "message": f"the request body is over the "
                        f"{limits['max_request_bytes']} byte limit (OKG_MAX_REQUEST_BYTES)"}), 413

    @app.errorhandler(404)
    def not_found(_):
        return jsonify({"error": "not_found", "message": f"no such page: {request.path}"}), 404

    @app.errorhandler(405)
    def bad_method(exc):
        response = jsonify({"error": "method_not_allowed",
                            "message": f"{request.method} is not allowed on {request.path}"})
        response.status_code = 405
        allowed = getattr(exc, "valid_methods", None)
        if allowed:
            response.headers["Allow"] = ", ".join(sorted(allowed))
        return response

    @app.errorhandler(500)
    def server_error(exc):  # whatever failed, the answer is the one JSON error shape, not an HTML page
        log.exception("%s %s failed", request.method, request.path, exc_info=getattr(exc, "original_exception", exc))
        return jsonify({"error": "server_error", "message": "the server failed to answer; the log says why"}), 500

    origins = [o.strip() for o in limits["cors_origins"].split(",") if o.strip()]

    @app.before_request
    def started():
        g.started = time.monotonic()

    @app.after_request
    def log_request(response):
        """One log line per request, written when the (streamed) response is done, with its duration
        (and for a query, its kind and the time to its first answer)."""
        method, path, began = request.method, request.path, g.get("started", time.monotonic())
        query = g.get("query")
        detail = f" ({query[0]} query, first answer in {query[1]:.1f} ms)" if query else ""
        if g.get("cut"):
            detail += f", cut at {g.cut:,} rows (OKG_MAX_ROWS)"
        response.call_on_close(lambda: log.info("%s %s %s in %.1f ms%s", method, path, response.status_code,
                                                (time.monotonic() - began) * 1000, detail))
        return response

    @app.after_request
    def cors(response):
        origin = request.headers.get("Origin")
        if origin and ("*" in origins or origin in origins):
            response.headers["Access-Control-Allow-Origin"] = "*" if "*" in origins else origin
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Accept, Content-Type, Authorization"
            response.headers.add("Vary", "Origin")
        return response

    @app.route("/health")
    def health():
        store_now = app.config["OKG_STORE"]()
        return jsonify({"status": "ok", "version": __version__,
                        "snapshots": [{"graph": g, "system": sy, "as_of": a} for g, sy, a in snapshots(store_now)],
                        "updates": bool(limits["update_token"]),
                        "in_memory": app.config.get("OKG_IN_MEMORY", lambda: False)(),
                        "answered_ahead": answered_ahead(store_now),
                        "queries_running": slots.status()[0]})

    def answered_ahead(store_now):
        """How many canned answers were made ahead for the store's current generation (None: not yet)."""
        made = app.config.get("OKG_ANSWERED_AHEAD")
        return made[1] if made and made[0] == generation(store_now) else None

    @app.route("/update", methods=["POST"])
    def update():
        token = limits["update_token"]
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
            raise _UnsupportedMedia(content_type, "update", "application/sparql-update")
        if len(updates) != 1:
            raise QueryError("send exactly one 'update'")
        scoped = [k for k in ("using-graph-uri", "using-named-graph-uri") if k in request.values]
        if scoped:  # refused rather than ignored: run unscoped, the update would touch every graph
            raise QueryError(f"{scoped[0]} is not supported here; name the graphs in the update itself "
                             "(USING <graph>, USING NAMED <graph> or WITH <graph>)", field=scoped[0])
        try:
            app.config["OKG_STORE"]().update(updates[0])
        except SyntaxError as exc:
            raise QueryError(f"the update is not valid SPARQL: {exc}") from None
        except OSError as exc:
            raise OkgError(f"the update failed: {exc}") from None
        response = Response(status=204)
        del response.headers["Content-Type"]  # no body, so no type
        return response

    @app.route("/rdf-graphs", methods=["GET", "HEAD"])
    def graph_store():
        """SPARQL 1.1 Graph Store Protocol, reading: ?graph=IRI, or ?default for the current dataset."""
        store_now = app.config["OKG_STORE"]()
        graph = request.args.get("graph")
        if graph:
            if not store_now.contains_named_graph(ox.NamedNode(graph)):
                raise NotFound(f"no graph <{graph}> in the store")
            query = f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}"
        elif "default" in request.args:
            query = "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }"
        else:
            raise QueryError("name a graph: ?graph=<IRI>, or ?default for the default graph")
        result = execute(query)
        response = _respond(result, request.headers.get("Accept"), request.args.get("format"), default="turtle",
                            limit=limits["max_rows"])
        if request.method == "HEAD":
            response.set_data(b"")
        return response

    @app.route("/sparql", methods=["GET", "POST"])
    def sparql():
        if request.method == "GET" and "update" in request.args:
            raise QueryError("an update is not run from a GET: POST it to /update", field="update")
        if request.method == "GET" and "query" not in request.args:
            unknown = sorted(set(request.args) - PROTOCOL_PARAMETERS)
            if unknown:
                raise QueryError(f"unknown parameter {unknown[0]!r}: send the query as 'query'", field=unknown[0])
            return _service_description(request.url_root.rstrip("/"), request.headers.get("Accept"),
                                        request.args.get("format"))
        queries, default_graphs, named_graphs = _protocol_arguments()
        if not queries:
            raise QueryError("no query: send one as the 'query' parameter (GET or POST form) "
                             "or as an application/sparql-query body")
        if len(queries) > 1:
            raise QueryError("more than one query in the request; send exactly one 'query'")
        query = queries[0]
        base = request.url_root.rstrip("/") + "/sparql"  # relative IRIs in the query resolve against the endpoint
        if default_graphs or named_graphs:  # the protocol's dataset: exactly the graphs named, each kind
            result = execute(query, default_graph=default_graphs, named_graphs=named_graphs, base_iri=base)
        else:
            result = execute(query, base_iri=base)
        response = _respond(result, request.headers.get("Accept"), request.values.get("format"), limit=limits["max_rows"])
        unread = unread_snapshots(app.config["OKG_STORE"](), query, (default_graphs or []) + (named_graphs or []))
        if unread:  # a past snapshot's graph holds its description only, unless it is materialised
            response.headers["OKG-Snapshots-As-Changes"] = ", ".join(f"<{iri}>" for iri in unread)
            log.info("the query names past snapshots kept as changes (their graphs hold their descriptions "
                     "only; okg snapshot DATE --materialise puts their facts there): %s", ", ".join(unread))
        return response

    def answer(text):
        """A canned query's whole answer, from the cache when the store's generation has it: (result, hit)."""
        store_now = app.config["OKG_STORE"]()
        key = (text, generation(store_now))
        kept = answers.get(key)
        if kept is not None:
            return kept, True
        result = execute(text)
        kept = Result(result.kind, result.variables, _prime(result.rows))
        kept.cut = result.cut
        answers.put(key, kept)
        return kept, False

    def warm():
        """Answer each canned query's defaults, and the current and next quarter, ahead of the first user."""
        from .periods import quarter_label, quarter_of

        store_now = app.config["OKG_STORE"]()
        days = [date.fromisoformat(a) for _, _, a in snapshots(store_now)] or [date.today()]
        now = quarter_of(max(days))
        quarters = [now, quarter_of(now[1])]
        labels = [quarter_label(s) for s, _ in quarters]
        answered = 0
        for query in load_queries().values():
            required = [p for p in query.params if p.required and p.default is None]
            if any(p.type != "period" for p in required):
                continue  # a question about one record or day: nothing to guess
            for label in labels if required else [None]:
                try:
                    answer(query.bind({p.name: label for p in required}))
                    answered += 1
                except OkgError:
                    continue
        return answered

    def keep_warm():
        seen = None
        while True:
            try:
                now = generation(app.config["OKG_STORE"]())
                if now != seen:
                    app.config["OKG_ANSWERED_AHEAD"] = (now, warm())
                    seen = now
            except Exception:  # a store being swapped: try again on the next round
                log.debug("warming the canned queries failed", exc_info=True)
            time.sleep(WARM_CHECK_SECONDS)

    if limits["cache_entries"] and store is None:
        threading.Thread(target=keep_warm, daemon=True, name="okg-warm").start()

    def supported():
        """What the store's data lets each canned query and the forecast answer (kept per store generation)."""
        from .support import support

        return support(app.config["OKG_STORE"]())

    @app.route("/api/queries")
    def list_queries():
        queries = load_queries()
        levels = supported()  # the folder's queries, kept per store generation as for each answer
        return jsonify({"queries": [dict(q.as_dict(), support=levels.get(name)) for name, q in queries.items()]})

    @app.route("/api/openapi.json")
    def openapi():
        return jsonify(openapi_document(load_queries().values(), __version__))

    @app.route("/queries/<name>")
    def canned_page(name):
        query = get_query(name)
        page = (STATIC / "canned.html").read_text(encoding="utf-8")
        page = page.replace("{title}", html.escape(query.title)).replace("{name}", html.escape(name))
        return Response(page, mimetype="text/html")

    @app.route("/api/queries/<path:name>")
    def canned(name):
        if name.endswith(".rq"):  # the query text with its parameters bound, for the query page
            query = get_query(name[:-3])
            return Response(query.bind(request.args.to_dict()), mimetype="application/sparql-query")
        fmt = None
        for suffix in (".csv", ".json"):
            if name.endswith(suffix):
                name, fmt = name[: -len(suffix)], suffix[1:]
        query = get_query(name)
        args = request.args.to_dict()
        fmt = fmt or negotiate(request.headers.get("Accept"), args.get("format"),
                               {"csv": "csv", "text/csv": "csv", "json": "json", "application/json": "json"},
                               "json")
        result, hit = answer(query.bind(args))
        rows = result.rows
        support = supported().get(name, {})
        headers = {"OKG-Support": support.get("level", "full"),  # "partial" or "none": /api/queries says why
                   "OKG-Cache": "hit" if hit else "miss", **_cut_headers(result, limits["max_rows"])}
        if fmt == "csv":
            body = write_solutions(result.variables, rows, "csv", limits["max_rows"], guard=limits["csv_formula_guard"])
            return Response(body, mimetype="text/csv",
                            headers={"Content-Disposition": f'inline; filename="{name}.csv"', **headers})
        return Response(_records(result.variables, rows), mimetype="application/json", headers=headers)

    @app.route("/api/forecast")
    @app.route("/api/forecast.<suffix>")
    def forecast_api(suffix=None):
        from .forecast import forecast, load_book, parse_day

        args = request.args.to_dict()
        if suffix not in (None, "csv", "json"):
            raise OkgError(f"no such format .{suffix}; use .csv or .json", field="format")
        fmt = suffix or negotiate(request.headers.get("Accept"), args.get("format"),
                                  {"csv": "csv", "text/csv": "csv", "json": "json", "application/json": "json"},
                                  "json")
        as_of = parse_day(args.get("as_of"), "as_of")
        listing = args.get("deals", "false").lower() in ("true", "1", "yes")
        give_back = slots.take(request.remote_addr, limits["query_timeout"])  # the forecast's work runs here
        try:
            book = load_book(app.config["OKG_STORE"](), timeout=limits["query_timeout"])
            result = forecast(book, args.get("period"), by=args.get("by", "total"), as_of=as_of, deals=listing)
            result["support"] = supported().get("forecast")
        finally:
            give_back()
        if fmt == "csv":
            return Response(write_table(result["deals"] if listing else result["rows"], "csv",
                                        guard=limits["csv_formula_guard"]), mimetype="text/csv",
                            headers={"Content-Disposition": 'inline; filename="forecast.csv"'})
        return jsonify(result)

    @app.route("/ontology")
    @app.route("/ontology/")
    @app.route("/ontology.<suffix>")
    @app.route("/ontology/<version>")
    def ontology(suffix=None, version=None):
        module = version if version in modules() else None
        if version is not None and module is None and version not in (__version__, "index.html"):
            raise NotFound(f"no ontology version or module {version}; this server has version {__version__} "
                           f"and the modules {', '.join(modules())}")
        fmt = negotiate(request.headers.get("Accept"), request.args.get("format") or suffix, DOC_FORMATS, "html")
        if fmt == "html":
            response = Response(documentation_html(), mimetype="text/html")
        else:
            response = Response(ontology_rdf(fmt, module=module), mimetype=RDF_FORMATS[fmt][1])
        response.headers["Vary"] = "Accept"
        return response

    @app.route("/")
    def index():
        page = (STATIC / "query.html").read_text(encoding="utf-8")
        return Response(page.replace("{version}", __version__), mimetype="text/html")

    return app


def _protocol_arguments():
    """The query, default-graph-uri and named-graph-uri of a SPARQL Protocol request."""
    if request.method == "GET":
        args = request.args
        return args.getlist("query"), args.getlist("default-graph-uri"), args.getlist("named-graph-uri")
    content_type = (request.mimetype or "").lower()
    if content_type == "application/x-www-form-urlencoded":
        form = request.form
        return form.getlist("query"), form.getlist("default-graph-uri"), form.getlist("named-graph-uri")
    if content_type == "application/sparql-query":
        body = request.get_data(as_text=True)
        args = request.args
        return [body], args.getlist("default-graph-uri"), args.getlist("named-graph-uri")
    raise _UnsupportedMedia(content_type)


class _UnsupportedMedia(OkgError):
    kind = "unsupported_media_type"
    status = 415

    def __init__(self, content_type, what="query", direct="application/sparql-query"):
        super().__init__(f"POST {'a' if what == 'query' else 'an'} {what} as application/x-www-form-urlencoded "
                         f"or {direct}, not {content_type or 'no content type'}")


def _prime(rows):
    """Fetch every row (at most the row limit) before the response starts, so an error or the timeout
    is its status rather than a cut-off body, and whether the row limit cut the answer is known."""
    return list(rows)


def _cut_headers(result, limit):
    """``OKG-Rows-Cut: <limit>`` when the row limit (OKG_MAX_ROWS) left rows out of the answer."""
    if result.cut:
        g.cut = limit
        return {"OKG-Rows-Cut": str(limit)}
    return {}


def _service_description(endpoint, accept, fmt_param):
    """The SPARQL 1.1 Service Description of the endpoint (what a plain GET of /sparql answers)."""
    sd = "http://www.w3.org/ns/sparql-service-description#"
    formats = ["SPARQL_Results_JSON", "SPARQL_Results_XML", "SPARQL_Results_CSV", "SPARQL_Results_TSV",
               "Turtle", "N-Triples", "RDF_XML", "JSON-LD"]
    lines = [
        f"<{endpoint}/sparql#service> a <{sd}Service> ;",
        f"  <{sd}endpoint> <{endpoint}/sparql> ;",
        f"  <{sd}supportedLanguage> <{sd}SPARQL11Query> ;",
        f"  <{sd}feature> <{sd}UnionDefaultGraph> ;",
    ] + [f"  <{sd}resultFormat> <http://www.w3.org/ns/formats/{f}> ;" for f in formats] + [
        f"  <{sd}defaultDataset> <{endpoint}/sparql#dataset> .",
        f"<{endpoint}/sparql#dataset> a <{sd}Dataset> ;",
        "  <http://www.w3.org/2000/01/rdf-schema#comment> \"The default graph is the latest snapshot of each "
        "system, the history and stage-intervals graphs, the ontology and the matches graph; every snapshot is "
        "also a named graph.\" .",
    ]
    triples = list(ox.parse("\n".join(lines).encode(), format=ox.RdfFormat.TURTLE))
    fmt = negotiate(accept, fmt_param, GRAPH_ALIASES, "turtle")
    body = ox.serialize([ox.Triple(q.subject, q.predicate, q.object) for q in triples],
                        format={"ntriples": ox.RdfFormat.N_TRIPLES, "turtle": ox.RdfFormat.TURTLE,
                                "rdfxml": ox.RdfFormat.RDF_XML, "jsonld": ox.RdfFormat.JSON_LD}[fmt])
    return Response(body, mimetype=GRAPH_FORMATS[fmt])


def _respond(result, accept, fmt_param, default="ntriples", limit=None):
    if result.kind == "graph":
        fmt = negotiate(accept, fmt_param, GRAPH_ALIASES, default)
        rows = _prime(result.rows)
        body = write_triples(rows, fmt, 10**12)
        return Response(body, mimetype=GRAPH_FORMATS[fmt], headers=_cut_headers(result, limit))
    fmt = negotiate(accept, fmt_param, FORMAT_ALIASES, "json")
    if result.kind == "ask":
        return Response(write_boolean(result.rows, fmt), mimetype=SELECT_FORMATS[fmt])
    rows = _prime(result.rows)
    body = write_solutions(result.variables, rows, fmt, 10**12)
    return Response(body, mimetype=SELECT_FORMATS[fmt], headers=_cut_headers(result, limit))


def _json_value(term):
    if term is None:
        return "null"
    if hasattr(term, "datatype") and term.datatype is not None:
        datatype = term.datatype.value
        if datatype in NUMERIC and _JSON_NUMBER.match(term.value):
            return term.value
        if datatype.endswith("#boolean"):
            return "true" if term.value in ("true", "1") else "false"
    return json.dumps(term.value, ensure_ascii=False)


def _records(variables, rows):
    """A JSON array of objects, numbers as JSON numbers: what BI tools read directly."""
    names = [json.dumps(v.value) for v in variables]
    yield "["
    for count, row in enumerate(rows):
        cells = ",".join(f"{n}:{_json_value(t)}" for n, t in zip(names, row))
        yield ("," if count else "") + "\n{" + cells + "}"
    yield "\n]\n"


STATIC = Path(__file__).parent / "static"


def openapi_document(queries, version):
    """An OpenAPI 3.1 description of the canned-query API: one path per query, its typed parameters."""
    schemas = {"string": {"type": "string"}, "integer": {"type": "integer"}, "number": {"type": "number"},
               "boolean": {"type": "boolean"}, "date": {"type": "string", "format": "date"},
               "iri": {"type": "string", "format": "iri"},
               "period": {"type": "string", "pattern": r"^\d{4}(-(Q[1-4]|H[12]|\d{2}))?$"}}
    error = {"description": "the one error shape",
             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    paths = {}
    for query in queries:
        parameters = []
        for p in query.params:
            schema = dict(schemas.get(p.type, {"type": "string"}))
            if p.choices:
                schema = {"type": "string", "enum": p.choices}
            if p.default is not None:
                schema["default"] = p.default
            parameters.append({"name": p.name, "in": "query", "required": p.required,
                               "description": p.description, "schema": schema})
        for suffix, media, schema in ((".json", "application/json",
                                       {"type": "array", "items": {"type": "object"}}),
                                      (".csv", "text/csv", {"type": "string"})):
            paths[f"/api/queries/{query.name}{suffix}"] = {"get": {
                "operationId": f"{query.name.replace('-', '_')}_{suffix[1:]}", "summary": query.title,
                "description": query.description, "parameters": parameters,
                "responses": {"200": {"description": "the results, a row per record",
                                      "content": {media: {"schema": schema}}},
                              "400": error, "503": error}}}
    from .forecast import DIMENSIONS

    forecast_parameters = [
        {"name": "period", "in": "query", "required": True, "description": "the period to forecast",
         "schema": schemas["period"]},
        {"name": "by", "in": "query", "required": False, "description": "one row per group",
         "schema": {"type": "string", "enum": list(DIMENSIONS), "default": "total"}},
        {"name": "as_of", "in": "query", "required": False,
         "description": "forecast as known at the end of this day (default: the store's as-of date)",
         "schema": schemas["date"]},
        {"name": "deals", "in": "query", "required": False,
         "description": "list each open deal's chances instead of the groups (CSV) or beside them (JSON)",
         "schema": {"type": "boolean", "default": False}}]
    for suffix, media, schema in ((".json", "application/json", {"type": "object"}),
                                  (".csv", "text/csv", {"type": "string"})):
        paths[f"/api/forecast{suffix}"] = {"get": {
            "operationId": f"forecast_{suffix[1:]}", "summary": "Forecast of a period, three ways",
            "description": "The CRM view (closed won, commit, best case, pipeline, cumulative rollups, weighted), "
                           "a historical view and a graph-informed view, with worst, likely and best totals.",
            "parameters": forecast_parameters,
            "responses": {"200": {"description": "the forecast", "content": {media: {"schema": schema}}},
                          "400": error, "503": error}}}
    paths["/api/queries"] = {"get": {"operationId": "list_queries", "summary": "Every canned query",
                                     "responses": {"200": {"description": "the queries with their parameters",
                                                           "content": {"application/json": {}}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "opportunity-kg canned queries and forecast", "version": version,
                 "description": "Pipeline, forecast and win/loss tables as JSON or CSV, for BI tools."},
        "paths": paths,
        "components": {"schemas": {"Error": {"type": "object", "required": ["error", "message"], "properties": {
            "error": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"},
            "value": {"type": "string"}}}}},
    }
