"""The HTTP layer's formats: content negotiation, the SPARQL protocol's arguments and answers, the
JSON records BI tools read, the service description and the OpenAPI document."""

import json
import re

import pyoxigraph as ox
from flask import Response

from ..errors import OkgError, QueryError
from ..vocabulary import XSD
from ..analytics.results import GRAPH_FORMATS, SELECT_FORMATS, write_boolean, write_solutions, write_triples

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
#: the formats of a canned query's table, by suffix, Accept or format=
TABLE_FORMATS = {"csv": "csv", "text/csv": "csv", "json": "json", "application/json": "json"}
NUMERIC = {XSD + t for t in
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


class NotAcceptable(OkgError):
    kind = "not_acceptable"
    status = 406


#: the parameters of a SPARQL protocol GET besides the query
PROTOCOL_PARAMETERS = {"query", "default-graph-uri", "named-graph-uri", "format", "timeout"}


def protocol_arguments(request):
    """The query, default-graph-uri and named-graph-uri of a SPARQL Protocol request (a werkzeug Request)."""
    if request.method in ("GET", "HEAD"):
        args = request.args
        return args.getlist("query"), args.getlist("default-graph-uri"), args.getlist("named-graph-uri")
    content_type = (request.mimetype or "").lower()
    if content_type == "application/x-www-form-urlencoded":
        form = request.form
        return form.getlist("query"), form.getlist("default-graph-uri"), form.getlist("named-graph-uri")
    if content_type == "application/sparql-query":
        body = utf8_body(request, "query")
        args = request.args
        return [body], args.getlist("default-graph-uri"), args.getlist("named-graph-uri")
    raise UnsupportedMedia(content_type)


def utf8_body(request, what):
    """A direct POST's body (``what``: "query" or "update") as text. The SPARQL protocol sends it
    as UTF-8: a body that says another charset is refused with 415, one that is not UTF-8 with 400,
    instead of being read as garbled text that fails to parse."""
    charset = (request.mimetype_params.get("charset") or "utf-8").strip().lower()
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedCharset(charset, what)
    try:
        return request.get_data().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise QueryError(f"the {what} is not UTF-8 text (byte {exc.start + 1} of the body): send it as UTF-8",
                         field=what) from None


class UnsupportedMedia(OkgError):
    kind = "unsupported_media_type"
    status = 415

    def __init__(self, content_type, what="query", direct="application/sparql-query"):
        super().__init__(f"POST {'a' if what == 'query' else 'an'} {what} as application/x-www-form-urlencoded "
                         f"or {direct}, not {content_type or 'no content type'}")


class UnsupportedCharset(OkgError):
    kind = "unsupported_media_type"
    status = 415

    def __init__(self, charset, what):
        super().__init__(f"send the {what} as UTF-8 (charset=utf-8), as the SPARQL protocol says, not {charset}")


def prime(rows):
    """Fetch every row (at most the row limit) before the response starts, so an error or the timeout
    is its status rather than a cut-off body, and whether the row limit cut the answer is known."""
    return list(rows)


def cut_headers(result, limit):
    """``OKG-Rows-Cut: <limit>`` when the row limit (OKG_MAX_ROWS) left rows out of the answer (the
    request's log line says so too)."""
    if result.cut:
        return {"OKG-Rows-Cut": str(limit)}
    return {}


def service_description(endpoint, accept, fmt_param):
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


def respond(result, accept, fmt_param, default="ntriples", limit=None):
    """The answer to a query as a Response (see :func:`answer_parts`)."""
    body, media, headers = answer_parts(result, accept, fmt_param, default, limit)
    return Response(body, mimetype=media, headers=headers)


def answer_parts(result, accept, fmt_param, default="ntriples", limit=None):
    """(body, media type, extra headers) of a query's answer in the format the request asks for:
    SELECT and ASK results by ``FORMAT_ALIASES``, graphs by ``GRAPH_ALIASES`` (``default`` when
    nothing is asked). The body is text, or an iterable of text for a graph."""
    if result.kind == "graph":
        fmt = negotiate(accept, fmt_param, GRAPH_ALIASES, default)
        rows = prime(result.rows)
        return write_triples(rows, fmt, 10**12), GRAPH_FORMATS[fmt], cut_headers(result, limit)
    fmt = negotiate(accept, fmt_param, FORMAT_ALIASES, "json")
    if result.kind == "ask":
        return write_boolean(result.rows, fmt), SELECT_FORMATS[fmt], {}
    rows = prime(result.rows)
    return write_solutions(result.variables, rows, fmt, 10**12), SELECT_FORMATS[fmt], cut_headers(result, limit)


def table_body(result, fmt, limits):
    """A canned query's whole answer as a table, UTF-8 bytes: CSV (guarded against spreadsheet
    formulas when ``csv_formula_guard`` is on) or JSON records. A kept answer (one with ``bodies``,
    :meth:`~opportunity_kg.web.runner.QueryRunner.answer`) keeps what was written, so a repeat
    costs no writing."""
    key = (fmt, limits["csv_formula_guard"])
    bodies = result.bodies
    if bodies is not None and key in bodies:
        return bodies[key]
    if fmt == "csv":
        text = write_solutions(result.variables, result.rows, "csv", limits["max_rows"],
                               guard=limits["csv_formula_guard"])
    else:
        text = records(result.variables, result.rows)
    data = "".join(text).encode("utf-8")
    if bodies is not None:
        bodies[key] = data
    return data


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


def records(variables, rows):
    """A JSON array of objects, numbers as JSON numbers: what BI tools read directly."""
    names = [json.dumps(v.value) for v in variables]
    yield "["
    for count, row in enumerate(rows):
        cells = ",".join(f"{n}:{_json_value(t)}" for n, t in zip(names, row))
        yield ("," if count else "") + "\n{" + cells + "}"
    yield "\n]\n"


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
    from ..analytics.forecast import DIMENSIONS

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
