"""The endpoint as real clients use it: SPARQLWrapper in every return format, rdflib's SPARQLStore,
pandas reading CSV from a URL; the service description, Graph Store reads, CORS and the update URL."""

import logging
import os
import shutil
import threading
import time
from pathlib import Path

import pandas
import pytest
import rdflib
import requests
from rdflib.plugins.stores.sparqlstore import SPARQLStore
from SPARQLWrapper import CSV, JSON, N3, RDFXML, TSV, TURTLE, XML, SPARQLWrapper

from .conftest import copy_store, free_port, stop_waitress, wait_for

OKG = "https://w3id.org/opportunity-kg/ontology#"
STAGES = f"PREFIX okg: <{OKG}> SELECT ?stage (COUNT(?o) AS ?n) WHERE {{ ?o a okg:Opportunity ; okg:stage ?stage }} " \
         "GROUP BY ?stage ORDER BY ?stage"
CONSTRUCT = f"PREFIX okg: <{OKG}> CONSTRUCT {{ ?o okg:stage ?s }} WHERE {{ ?o okg:stage ?s }} LIMIT 50"


@pytest.fixture(scope="module")
def expected(open_sample_store):
    from opportunity_kg.store import run_query

    return {r[0].value: int(r[1].value) for r in run_query(open_sample_store, STAGES).rows}


@pytest.mark.parametrize("fmt", [JSON, XML, CSV, TSV])
def test_sparqlwrapper_select_in_every_results_format(server, expected, fmt):
    client = SPARQLWrapper(server + "/sparql")
    client.setQuery(STAGES)
    client.setReturnFormat(fmt)
    result = client.query().convert()
    if fmt == JSON:
        got = {b["stage"]["value"]: int(b["n"]["value"]) for b in result["results"]["bindings"]}
    elif fmt == XML:
        got = {}
        for solution in result.getElementsByTagName("result"):
            cells = {b.getAttribute("name"): b.firstChild.firstChild.data for b in solution.getElementsByTagName("binding")}
            got[cells["stage"]] = int(cells["n"])
    else:
        sep = "," if fmt == CSV else "\t"
        lines = result.decode("utf-8").strip().splitlines()[1:]
        got = {}
        for line in lines:
            stage, n = line.split(sep)
            got[stage.strip("<>")] = int(n.split("^^")[0].strip('"'))
    assert got == expected


@pytest.mark.parametrize("fmt", [TURTLE, N3, RDFXML])
def test_sparqlwrapper_construct_in_rdf_formats(server, fmt):
    client = SPARQLWrapper(server + "/sparql")
    client.setQuery(CONSTRUCT)
    client.setReturnFormat(fmt)
    result = client.query().convert()
    graph = result if isinstance(result, rdflib.Graph) else rdflib.Graph().parse(data=result, format="turtle")
    assert len(graph) == 50 and all(str(p) == OKG + "stage" for _, p, _ in graph)


def test_construct_as_json_ld(server):
    response = requests.get(server + "/sparql", params={"query": CONSTRUCT}, headers={"Accept": "application/ld+json"})
    assert response.headers["Content-Type"].startswith("application/ld+json")
    assert len(rdflib.Graph().parse(data=response.text, format="json-ld")) == 50


def test_rdflib_sparqlstore(server, expected):
    graph = rdflib.Graph(store=SPARQLStore(server + "/sparql"))
    got = {str(stage): int(n) for stage, n in graph.query(STAGES)}
    assert got == expected


def test_pandas_reads_a_canned_query_url(server):
    frame = pandas.read_csv(server + "/api/queries/weighted-pipeline.csv?period=2026-Q4")
    assert list(frame.columns) == ["owner", "opportunities", "amount", "weighted_amount"]
    assert len(frame) > 5 and frame["amount"].dtype.kind in "if" and (frame["weighted_amount"] <= frame["amount"]).all()


def test_service_description_on_a_plain_get(server):
    response = requests.get(server + "/sparql", headers={"Accept": "text/turtle"})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/turtle")
    graph = rdflib.Graph().parse(data=response.text, format="turtle")
    sd = rdflib.Namespace("http://www.w3.org/ns/sparql-service-description#")
    service = graph.value(None, rdflib.RDF.type, sd.Service)
    assert str(graph.value(service, sd.endpoint)) == server + "/sparql"
    assert (service, sd.supportedLanguage, sd.SPARQL11Query) in graph


def test_graph_store_protocol_reads_a_named_graph(server, sample_store):
    _, report = sample_store
    response = requests.get(server + "/rdf-graphs", params={"graph": report.graph}, headers={"Accept": "text/turtle"})
    assert response.status_code == 200
    graph = rdflib.Graph().parse(data=response.text, format="turtle")
    assert (rdflib.URIRef(report.graph), rdflib.RDF.type, rdflib.URIRef(OKG + "Snapshot")) in graph
    head = requests.head(server + "/rdf-graphs", params={"graph": report.graph})
    assert head.status_code == 200 and head.text == ""
    missing = requests.get(server + "/rdf-graphs", params={"graph": "http://example.com/none"})
    assert missing.status_code == 404 and "no graph" in missing.json()["message"]


def test_health(server):
    body = requests.get(server + "/health").json()
    assert body["status"] == "ok" and body["updates"] is False and body["snapshots"][0]["system"] == "salesforce"


def test_updates_are_off_without_a_token(server):
    response = requests.post(server + "/update", data={"update": "CLEAR ALL"})
    assert response.status_code == 403 and "OKG_UPDATE_TOKEN" in response.json()["message"]


@pytest.fixture
def app_with(open_sample_store, tmp_path):
    """A real server over a copy of the sample store with the given settings; yields its URL."""
    from waitress.server import create_server

    from opportunity_kg.web import create_app

    servers = []

    def start(**config):
        copy = tmp_path / f"store-{len(servers)}"
        copy_store(open_sample_store, copy)
        srv = create_server(create_app(copy, config=config), host="127.0.0.1", port=free_port(), threads=2)
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{srv.effective_port}"
        wait_for(base + "/health")
        servers.append((srv, thread))
        return base

    yield start
    for srv, thread in servers:
        stop_waitress(srv, thread)


def test_update_needs_the_bearer_token(app_with):
    base = app_with(update_token="s3cret")
    update = 'INSERT DATA { GRAPH <http://example.com/g> { <http://example.com/a> <http://example.com/p> "x" } }'
    assert requests.post(base + "/update", data={"update": update}).status_code == 401
    wrong = requests.post(base + "/update", data={"update": update}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    ok = requests.post(base + "/update", data=update, headers={"Authorization": "Bearer s3cret",
                                                               "Content-Type": "application/sparql-update"})
    assert ok.status_code == 204
    ask = requests.get(base + "/sparql", params={"query": 'ASK { GRAPH ?g { ?s ?p "x" } }'}).json()
    assert ask["boolean"] is True
    bad = requests.post(base + "/update", data={"update": "INSERT nonsense"}, headers={"Authorization": "Bearer s3cret"})
    assert bad.status_code == 400
    utf16 = requests.post(base + "/update", data=update.encode("utf-16"), headers={
        "Authorization": "Bearer s3cret", "Content-Type": "application/sparql-update; charset=utf-16"})
    assert utf16.status_code == 415 and "UTF-8" in utf16.json()["message"]


def test_cors_only_for_configured_origins(app_with, server):
    base = app_with(cors_origins="https://bi.example.com")
    allowed = requests.get(base + "/api/queries", headers={"Origin": "https://bi.example.com"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://bi.example.com"
    other = requests.get(base + "/api/queries", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Access-Control-Allow-Origin" not in requests.get(server + "/api/queries",
                                                             headers={"Origin": "https://bi.example.com"}).headers


def test_openapi_describes_every_canned_query_with_typed_parameters(server):
    from opportunity_kg.analytics.queries import load_queries

    document = requests.get(server + "/api/openapi.json").json()
    assert document["openapi"].startswith("3.") and "Error" in document["components"]["schemas"]
    for query in load_queries().values():
        for suffix in (".json", ".csv"):
            operation = document["paths"][f"/api/queries/{query.name}{suffix}"]["get"]
            params = {p["name"]: p for p in operation["parameters"]}
            assert set(params) == {p.name for p in query.params}
            assert {"400", "503"} <= set(operation["responses"])
    period = document["paths"]["/api/queries/weighted-pipeline.json"]["get"]["parameters"][0]
    assert period["required"] is True and period["schema"]["pattern"].startswith("^")


def test_openapi_describes_the_forecast(server):
    document = requests.get(server + "/api/openapi.json").json()
    for suffix in (".json", ".csv"):
        operation = document["paths"][f"/api/forecast{suffix}"]["get"]
        params = {p["name"]: p for p in operation["parameters"]}
        assert set(params) == {"period", "by", "as_of", "deals"} and params["period"]["required"] is True
        got = requests.get(server + f"/api/forecast{suffix}", params={"period": "2026-Q4", "by": "team"}, timeout=120)
        assert got.status_code == 200 and got.headers["Content-Type"].startswith(
            list(operation["responses"]["200"]["content"])[0])


def test_update_protocol_details(app_with):
    """'bearer' in any case, a 204 with no content type, and a scoped update refused, not run unscoped."""
    base = app_with(update_token="s3cret")
    update = 'INSERT DATA { GRAPH <http://example.com/g> { <http://example.com/a> <http://example.com/p> "y" } }'
    ok = requests.post(base + "/update", data={"update": update}, headers={"Authorization": "bearer s3cret"})
    assert ok.status_code == 204 and "Content-Type" not in ok.headers
    scoped = requests.post(base + "/update", data={"update": "DELETE { ?s ?p ?o } WHERE { ?s ?p ?o }",
                                                   "using-graph-uri": "http://example.com/g"},
                           headers={"Authorization": "Bearer s3cret"})
    assert scoped.status_code == 400 and scoped.json()["field"] == "using-graph-uri"
    still = requests.get(base + "/sparql", params={"query": 'ASK { GRAPH ?g { ?s ?p "y" } }'}).json()
    assert still["boolean"] is True  # the refused update deleted nothing


def test_query_protocol_details(server):
    """Relative IRIs resolve against the endpoint; TSV numbers in short form; GET with update= or a
    misspelled query parameter is a 400; 405 says what is allowed; an Accept that cannot be met is a
    406; a malformed graph IRI is a 400 in the JSON error shape."""
    r = requests.get(server + "/sparql", params={"query": "CONSTRUCT { <s> <p> 1 } WHERE {}"},
                     headers={"Accept": "application/n-triples"})
    assert r.status_code == 200 and f"<{server}/s> <{server}/p>" in r.text
    r = requests.get(server + "/sparql", params={"query": 'SELECT ?n ?d ?b ?s WHERE { VALUES (?n ?d ?b ?s) '
                                                          '{ (1 2.5 true "1") } }'},
                     headers={"Accept": "text/tab-separated-values"})
    assert r.text.splitlines()[1] == '1\t2.5\ttrue\t"1"'
    for params in ({"update": "CLEAR ALL"}, {"qeury": "ASK {}"}):
        r = requests.get(server + "/sparql", params=params)
        assert r.status_code == 400 and r.json()["field"] == next(iter(params)), params
    r = requests.put(server + "/sparql", data="ASK {}")
    assert r.status_code == 405 and set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    r = requests.get(server + "/sparql", params={"query": "ASK {}"}, headers={"Accept": "image/png"})
    assert r.status_code == 406 and r.json()["error"] == "not_acceptable"
    r = requests.get(server + "/sparql", params={"query": "ASK {}", "default-graph-uri": "not an iri"})
    assert r.status_code == 400 and r.headers["Content-Type"].startswith("application/json")
    assert r.json()["field"] == "default-graph-uri"


def test_an_answer_cut_at_the_row_limit_says_so(app_with):
    base = app_with(max_rows=5)
    many = "SELECT ?i WHERE { VALUES ?i { 1 2 3 4 5 6 7 } }"
    r = requests.get(base + "/sparql", params={"query": many}, headers={"Accept": "text/csv"})
    assert r.status_code == 200 and r.headers["OKG-Rows-Cut"] == "5" and len(r.text.splitlines()) == 6
    exact = "SELECT ?i WHERE { VALUES ?i { 1 2 3 4 5 } }"
    r = requests.get(base + "/sparql", params={"query": exact}, headers={"Accept": "text/csv"})
    assert "OKG-Rows-Cut" not in r.headers and len(r.text.splitlines()) == 6
    r = requests.get(base + "/api/queries/win-rate.json")
    assert r.headers["OKG-Rows-Cut"] == "5" and len(r.json()) == 5


def test_canned_answers_are_kept_per_store_generation(app_with, sample_export, tmp_path):
    """A repeated canned question is answered from memory; an ingest (a new generation) makes the kept
    answers stale, and the server answers the new store's defaults ahead."""
    import time

    from opportunity_kg.ingest import ingest

    base = app_with()
    store_path = tmp_path / "store-0"
    url = base + "/api/queries/weighted-pipeline.json?period=2026-Q3"
    first = requests.get(url)
    again = requests.get(url)
    assert again.headers["OKG-Cache"] == "hit" and again.json() == first.json()
    ingest(sample_export, store_path, as_of="2026-11-30")  # a second snapshot: a new generation
    deadline = time.monotonic() + 60
    while len(requests.get(base + "/health").json()["snapshots"]) < 2:  # the server reopens the swapped store
        assert time.monotonic() < deadline, "the server never saw the new snapshot"
        time.sleep(0.5)
    assert requests.get(url).headers["OKG-Cache"] == "miss"  # kept for the old generation only
    assert requests.get(url).headers["OKG-Cache"] == "hit"
    # the current quarter of the newest as-of date was answered ahead: its first request is a hit
    deadline = time.monotonic() + 120
    while not requests.get(base + "/health").json()["answered_ahead"]:
        assert time.monotonic() < deadline, "nothing was answered ahead for the new store"
        time.sleep(0.5)
    first_ask = requests.get(base + "/api/queries/pipeline-by-stage.json?period=2026-Q4")
    assert first_ask.headers["OKG-Cache"] == "hit"
    # and each choice of a choice parameter, as a dashboard's drop-down asks
    assert requests.get(base + "/api/queries/win-rate.json?by=team").headers["OKG-Cache"] == "hit"
    assert requests.get(base + "/api/queries/days-in-stage.csv?by=territory").headers["OKG-Cache"] == "hit"


def test_a_kept_answer_sends_the_same_bytes_in_each_format_as_one_written_afresh(app_with):
    """A kept canned answer keeps its CSV and JSON as written (made ahead for the dashboards' first
    calls): each format's bytes are those a server keeping nothing writes for the same question."""
    kept, fresh = app_with(), app_with(cache_entries=0)
    for path in ("weighted-pipeline.csv?period=2026-Q4", "weighted-pipeline.json?period=2026-Q4",
                 "shared-contacts.csv", "shared-contacts.json", "win-rate.csv?by=team"):
        first, again = requests.get(f"{kept}/api/queries/{path}"), requests.get(f"{kept}/api/queries/{path}")
        plain = requests.get(f"{fresh}/api/queries/{path}")
        assert again.headers["OKG-Cache"] == "hit" and plain.headers["OKG-Cache"] == "miss", path
        assert first.content == again.content == plain.content, path
        assert first.headers["Content-Type"] == plain.headers["Content-Type"], path
        assert int(again.headers["Content-Length"]) == len(plain.content), path


def test_canned_csv_is_safe_in_a_spreadsheet_and_sparql_is_untouched(tmp_path):
    """An account named like a formula (CSV injection): the canned-query CSV, over HTTP and from
    `okg query`, starts that cell with ' (numbers, negative ones too, stay numbers); /sparql and the
    setting turned off write the value as it is."""
    from opportunity_kg.ingest import ingest

    from .conftest import okg, okg_serve

    export = tmp_path / "export"
    shutil.copytree(Path(__file__).parent / "corpus" / "dataloader", export)
    text = (export / "account.csv").read_text(encoding="utf-8")
    (export / "account.csv").write_text(text.replace('"Northwind Traders"', '"=HYPERLINK(""http://x"",""y"")"'),
                                        encoding="utf-8")
    ingest(export, tmp_path / "store")
    guarded = '"\'=HYPERLINK(""http://x"",""y"")"'
    cli = okg("query", "account-hierarchy-pipeline", "--store", tmp_path / "store", "--format", "csv").stdout
    assert cli.splitlines()[1].startswith(guarded + ",")
    with okg_serve(tmp_path / "store", wait="/health") as (base, _):
        canned = requests.get(base + "/api/queries/account-hierarchy-pipeline.csv").text
        assert canned.splitlines()[1].startswith(guarded + ",")
        sparql = requests.get(base + "/sparql", headers={"Accept": "text/csv"}, params={
            "query": 'SELECT ?n (-5 AS ?x) WHERE { ?a <http://www.w3.org/2000/01/rdf-schema#label> ?n '
                     'FILTER(STRSTARTS(?n, "=")) }'}).text
        assert sparql.splitlines()[1] == '"=HYPERLINK(""http://x"",""y"")",-5'
    env = dict(os.environ, OKG_CSV_FORMULA_GUARD="0")
    plain = okg("query", "account-hierarchy-pipeline", "--store", tmp_path / "store", "--format", "csv", env=env).stdout
    assert plain.splitlines()[1].startswith('"=HYPERLINK(""http://x"",""y"")",')


def test_a_spreadsheet_guard_leaves_numbers_alone():
    from opportunity_kg.analytics.results import guard_cell

    assert [guard_cell(v) for v in ["-500", "+1.5", "-", "@x", "=1+1", "Acme", -3.0, None]] == \
        ["-500", "+1.5", "'-", "'@x", "'=1+1", "Acme", -3.0, None]


def test_the_query_endpoint_answers_preflight_head_and_oversized_bodies_as_other_routes(app_with, caplog):
    """/sparql is answered off Flask's routing (web/endpoint.py): a browser's CORS preflight, a HEAD,
    a body over the size limit, an unreadable form and the request log line still behave as on
    every other route."""
    base = app_with(cors_origins="https://bi.example.com", max_request_bytes=2000, max_rows=5)
    pre = requests.options(base + "/sparql", headers={"Origin": "https://bi.example.com",
                                                      "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 200 and pre.headers["Access-Control-Allow-Origin"] == "https://bi.example.com"
    assert {"GET", "POST"} <= set(pre.headers["Allow"].replace(" ", "").split(","))
    stranger = requests.get(base + "/sparql", params={"query": "ASK {}"}, headers={"Origin": "https://evil.example.com"})
    assert stranger.status_code == 200 and "Access-Control-Allow-Origin" not in stranger.headers
    head = requests.head(base + "/sparql", params={"query": "ASK {}"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Type"].startswith("application/sparql-results+json")
    odd_host = requests.get(base + "/sparql", params={"query": "ASK {}"}, headers={"Host": "bi tool"})
    assert odd_host.status_code == 200 and odd_host.json()["boolean"] is True  # no base IRI, no failure
    big = requests.post(base + "/sparql", data={"query": "ASK { ?s ?p " + "?o " * 1000 + "}"})
    assert big.status_code == 413 and big.json()["error"] == "too_large"
    assert "OKG_MAX_REQUEST_BYTES" in big.json()["message"]
    with caplog.at_level(logging.INFO, logger="opportunity_kg.web"):
        cut = requests.get(base + "/sparql", params={"query": "SELECT ?i WHERE { VALUES ?i { 1 2 3 4 5 6 } }"})
        assert cut.headers["OKG-Rows-Cut"] == "5"
        for _ in range(50):  # the line is written when the answer is done, on the server's thread
            if any("GET /sparql 200" in r.getMessage() for r in caplog.records):
                break
            time.sleep(0.1)
    line = next(r.getMessage() for r in caplog.records if "GET /sparql 200" in r.getMessage())
    assert "select query" in line and "cut at 5 rows (OKG_MAX_ROWS)" in line


def test_an_answer_made_ahead_that_fails_is_logged_with_its_query_and_parameters(open_sample_store, caplog):
    """A canned answer the server could not make ahead is not silently skipped: the log names the
    query, its parameters and the error, so an operator sees why a dashboard's first call is slow."""
    from opportunity_kg.web.app import create_app

    app = create_app(store=open_sample_store, config={"warm_timeout": 0.000001, "cache_entries": 256})
    with caplog.at_level(logging.WARNING, logger="opportunity_kg.web"):
        answered = app.extensions["okg"].warm()
    failed = [r.getMessage() for r in caplog.records if "ahead" in r.getMessage()]
    assert failed and answered < len(failed)
    assert any(m.startswith("answering days-in-stage ahead (by=owner) failed: ") for m in failed), failed
    assert all("answers made ahead run under OKG_WARM_TIMEOUT, 1e-06 s" in m for m in failed), failed[:3]
