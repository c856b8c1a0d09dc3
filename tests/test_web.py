"""The HTTP layer over a real waitress server: SPARQL Protocol, formats, errors, the canned-query API."""

import csv
import io
import json
import xml.etree.ElementTree as ET

import requests

COUNT = ("PREFIX okg: <https://w3id.org/opportunity-kg/ontology#> "
         "SELECT (COUNT(?o) AS ?n) WHERE { ?o a okg:Opportunity }")


def count_from_json(response):
    return int(response.json()["results"]["bindings"][0]["n"]["value"])


def test_get_post_form_and_post_direct_agree(server):
    a = requests.get(server + "/sparql", params={"query": COUNT})
    b = requests.post(server + "/sparql", data={"query": COUNT})
    c = requests.post(server + "/sparql", data=COUNT.encode(), headers={"Content-Type": "application/sparql-query"})
    assert a.status_code == b.status_code == c.status_code == 200
    assert count_from_json(a) == count_from_json(b) == count_from_json(c) == 300


def test_accept_header_picks_the_format(server):
    def ask(accept):
        return requests.get(server + "/sparql", params={"query": COUNT}, headers={"Accept": accept})

    r = ask("text/csv")
    assert r.headers["Content-Type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(r.text))) == [["n"], ["300"]]
    r = ask("text/tab-separated-values")
    assert r.text.splitlines()[0] == "?n" and "300" in r.text.splitlines()[1]
    r = ask("application/sparql-results+xml")
    root = ET.fromstring(r.content)
    assert root.find(".//{http://www.w3.org/2005/sparql-results#}literal").text == "300"
    r = ask("text/csv;q=0.5, application/sparql-results+json;q=0.9")
    assert r.headers["Content-Type"].startswith("application/sparql-results+json")
    r = requests.get(server + "/sparql", params={"query": COUNT, "format": "csv"})
    assert r.text.splitlines() == ["n", "300"]


def test_ask_and_construct(server):
    r = requests.get(server + "/sparql", params={"query": "ASK { ?s ?p ?o }"})
    assert r.json()["boolean"] is True
    r = requests.get(server + "/sparql", params={
        "query": "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o } LIMIT 3"}, headers={"Accept": "text/turtle"})
    assert r.status_code == 200 and len(r.text.strip().splitlines()) == 3


def test_protocol_errors(server):
    r = requests.get(server + "/sparql", params={"query": "SELEC * WHERE"})
    assert r.status_code == 400 and "not valid SPARQL" in r.json()["message"]
    r = requests.get(server + "/sparql", params=[("query", COUNT), ("query", COUNT)])
    assert r.status_code == 400 and "more than one" in r.json()["message"]
    r = requests.put(server + "/sparql", data=COUNT)
    assert r.status_code == 405
    r = requests.post(server + "/sparql", data=COUNT.encode(), headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "application/sparql-query" in r.json()["message"]


def test_a_direct_post_is_utf8(server):
    """The protocol sends a direct POST's query as UTF-8: another charset is a 415 that says so, bytes
    that are not UTF-8 a 400 that says so (not a parse error about garbled text)."""
    def post(body, content_type):
        return requests.post(server + "/sparql", data=body, headers={"Content-Type": content_type})

    query = 'ASK { ?s ?p "Café" }'
    r = post(query.encode("utf-16"), "application/sparql-query; charset=UTF-16")
    assert r.status_code == 415 and "UTF-8" in r.json()["message"] and "utf-16" in r.json()["message"]
    r = post(query.encode("latin-1"), "application/sparql-query")
    assert r.status_code == 400 and r.json()["message"].startswith("the query is not UTF-8 text")
    for content_type in ("application/sparql-query; charset=utf-8", "application/sparql-query;charset=UTF8"):
        r = post(query.encode("utf-8"), content_type)
        assert r.status_code == 200 and r.json()["boolean"] is False


def test_endpoint_is_read_only(server):
    update = "INSERT DATA { <http://x/a> <http://x/b> <http://x/c> }"
    r = requests.post(server + "/sparql", data={"query": update})
    assert r.status_code == 400
    r = requests.get(server + "/sparql", params={"query": "ASK { <http://x/a> ?p ?o }"})
    assert r.json()["boolean"] is False


def test_query_list(server):
    body = requests.get(server + "/api/queries").json()
    pipeline = next(q for q in body["queries"] if q["name"] == "weighted-pipeline")
    assert pipeline["title"] and pipeline["description"]
    assert pipeline["parameters"] == [{
        "name": "period", "type": "period", "required": True,
        "description": pipeline["parameters"][0]["description"]}]


def test_canned_query_formats_and_errors(server):
    url = server + "/api/queries/weighted-pipeline"
    as_json = requests.get(url + ".json", params={"period": "2026-Q4"}).json()
    as_csv = list(csv.DictReader(io.StringIO(requests.get(url + ".csv", params={"period": "2026-Q4"}).text)))
    assert [r["owner"] for r in as_json] == [r["owner"] for r in as_csv]
    assert all(isinstance(r["opportunities"], int) for r in as_json)
    for params, status, field in [({}, 400, "period"), ({"period": "Q4"}, 400, "period"),
                                  ({"period": "2026-Q4", "colour": "red"}, 400, "colour")]:
        r = requests.get(url, params=params)
        assert r.status_code == status
        body = r.json()
        assert body["error"] == "query_error" and body["field"] == field and body["message"]
    r = requests.get(server + "/api/queries/no-such-query")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_every_error_has_the_one_shape(server):
    responses = [
        requests.get(server + "/sparql", params={"query": ""}),
        requests.post(server + "/update", data={"update": "CLEAR ALL"}),
        requests.get(server + "/rdf-graphs"),
        requests.get(server + "/rdf-graphs", params={"graph": "http://example.com/none"}),
        requests.get(server + "/sparql", params={"query": "nonsense"}),
        requests.delete(server + "/sparql"),
        requests.get(server + "/nowhere"),
        requests.get(server + "/api/queries/weighted-pipeline", params={"period": "x"}),
    ]
    for r in responses:
        assert r.status_code >= 400
        body = json.loads(r.text)
        assert set(body) >= {"error", "message"} and isinstance(body["message"], str)


def test_protocol_dataset_is_exactly_the_graphs_named(server, sample_store):
    """default-graph-uri and named-graph-uri set the dataset as the SPARQL 1.1 Protocol says: the named
    graphs are only those named (none when only default-graph-uri is given)."""
    _, report = sample_store
    ontology = "https://w3id.org/opportunity-kg/graph/ontology"
    graphs = "SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } } ORDER BY ?g"

    def ask(params):
        body = requests.get(server + "/sparql", params=params,
                            headers={"Accept": "application/sparql-results+json"}).json()
        return [b["g"]["value"] for b in body["results"]["bindings"]]

    intervals = "https://w3id.org/opportunity-kg/graph/salesforce/intervals"
    current = "https://w3id.org/opportunity-kg/graph/salesforce/current"
    kept = "https://w3id.org/opportunity-kg/graph/salesforce/snapshots"  # the record digests
    assert ask({"query": graphs}) == sorted([ontology, report.graph, current, kept, intervals])  # every graph
    assert ask({"query": graphs, "default-graph-uri": report.graph}) == []
    assert ask({"query": graphs, "named-graph-uri": ontology}) == [ontology]
    count = "SELECT (COUNT(*) AS ?n) WHERE { ?s a ?c }"
    only_ontology = requests.get(server + "/sparql", params={"query": count, "default-graph-uri": ontology},
                                 headers={"Accept": "text/csv"}).text.splitlines()[1]
    now = requests.get(server + "/sparql", params={"query": count}, headers={"Accept": "text/csv"}).text.splitlines()[1]
    assert 0 < int(only_ontology) < int(now)
