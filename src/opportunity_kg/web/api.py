"""The API BI tools pull tables from: the canned queries with their typed parameters, each one's
answer as CSV or JSON records, the forecast, and the OpenAPI document describing them."""

from flask import Blueprint, Response, jsonify, request

from .. import __version__
from ..errors import OkgError
from ..analytics.queries import get_query, load_queries
from ..analytics.results import write_table
from .formats import TABLE_FORMATS, cut_headers, negotiate, openapi_document, table_body
from .runner import runner

api = Blueprint("api", __name__)


@api.route("/api/queries")
def list_queries():
    queries = load_queries()
    levels = runner().supported()  # the folder's queries, kept per store generation as for each answer
    return jsonify({"queries": [dict(q.as_dict(), support=levels.get(name)) for name, q in queries.items()]})


@api.route("/api/openapi.json")
def openapi():
    return jsonify(openapi_document(load_queries().values(), __version__))


@api.route("/api/queries/<path:name>")
def canned(name):
    run = runner()
    if name.endswith(".rq"):  # the query text with its parameters bound, for the query page
        query = get_query(name[:-3])
        return Response(query.bind(request.args.to_dict()), mimetype="application/sparql-query")
    fmt = None
    for suffix in (".csv", ".json"):
        if name.endswith(suffix):
            name, fmt = name[: -len(suffix)], suffix[1:]
    query = get_query(name)
    args = request.args.to_dict()
    fmt = fmt or negotiate(request.headers.get("Accept"), args.get("format"), TABLE_FORMATS, "json")
    result, hit = run.answer(query.bind(args))
    support = run.supported().get(name, {})
    headers = {"OKG-Support": support.get("level", "full"),  # "partial" or "none": /api/queries says why
               "OKG-Cache": "hit" if hit else "miss", **cut_headers(result, run.limits["max_rows"])}
    body = table_body(result, fmt, run.limits)  # written once per kept answer and format
    if fmt == "csv":
        return Response(body, mimetype="text/csv",
                        headers={"Content-Disposition": f'inline; filename="{name}.csv"', **headers})
    return Response(body, mimetype="application/json", headers=headers)


@api.route("/api/forecast")
@api.route("/api/forecast.<suffix>")
def forecast_api(suffix=None):
    from ..analytics.forecast import forecast, load_book, parse_day

    run = runner()
    args = request.args.to_dict()
    if suffix not in (None, "csv", "json"):
        raise OkgError(f"no such format .{suffix}; use .csv or .json", field="format")
    fmt = suffix or negotiate(request.headers.get("Accept"), args.get("format"), TABLE_FORMATS, "json")
    as_of = parse_day(args.get("as_of"), "as_of")
    listing = args.get("deals", "false").lower() in ("true", "1", "yes")
    give_back = run.slots.take(request.remote_addr, run.limits["query_timeout"])  # the forecast's work runs here
    try:
        book = load_book(run.store(), timeout=run.limits["query_timeout"])
        result = forecast(book, args.get("period"), by=args.get("by", "total"), as_of=as_of, deals=listing)
        result["support"] = run.supported().get("forecast")
    finally:
        give_back()
    if fmt == "csv":
        return Response(write_table(result["deals"] if listing else result["rows"], "csv",
                                    guard=run.limits["csv_formula_guard"]), mimetype="text/csv",
                        headers={"Content-Disposition": 'inline; filename="forecast.csv"'})
    return jsonify(result)
