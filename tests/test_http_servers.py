"""`okg serve` behaves the same under either HTTP server it offers (granian, the default, and
waitress): the SPARQL protocol's answers, headers and errors, checked over real HTTP."""

import csv
import io
import os
import subprocess
import sys
import time

import pytest
import requests

from .conftest import copy_store, free_port, okg, okg_serve, wait_for

TOKEN = "s3cret-token"
JSON = "application/sparql-results+json"


@pytest.fixture(scope="module", params=["granian", "waitress"])
def served(request, open_sample_store, tmp_path_factory):
    """`okg serve --server NAME` over a copy of the sample store, with an update token and a short timeout."""
    store = tmp_path_factory.mktemp(request.param) / "store"
    copy_store(open_sample_store, store)
    env = dict(os.environ, OKG_UPDATE_TOKEN=TOKEN, OKG_QUERY_TIMEOUT="3")
    with okg_serve(store, env=env, log=True, server=request.param) as (base, process):
        yield request.param, base
    assert f"with {request.param}" in process.log


def test_ask_and_select_answer_in_the_standard_formats(served):
    name, base = served
    response = requests.get(base + "/sparql", params={"query": "ASK { ?s ?p ?o }"}, headers={"Accept": JSON},
                            timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith(JSON)
    assert response.json() == {"head": {}, "boolean": True}
    if name == "granian":
        assert response.headers["Server"] == "granian"
    query = "SELECT ?s WHERE { ?s a ?type } LIMIT 3000"
    response = requests.get(base + "/sparql", params={"query": query}, headers={"Accept": "text/csv"}, timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["s"] and len(rows) == 3001  # a streamed answer arrives whole


def test_errors_keep_the_protocol_and_the_one_error_shape(served):
    _, base = served
    response = requests.put(base + "/sparql", data="ASK {}", timeout=30)
    assert response.status_code == 405 and "GET" in response.headers["Allow"]
    assert response.json()["error"] == "method_not_allowed"
    response = requests.get(base + "/sparql", params={"query": "ASK {}"}, headers={"Accept": "image/png"}, timeout=30)
    assert response.status_code == 406 and "error" in response.json()
    response = requests.get(base + "/sparql", params={"update": "CLEAR ALL"}, timeout=30)
    assert response.status_code == 400 and "error" in response.json()
    response = requests.get(base + "/sparql", params={"query": "SELEKT *"}, timeout=30)
    assert response.status_code == 400 and response.json()["error"]


def test_an_update_with_the_token_answers_204_without_a_body_or_type(served):
    _, base = served
    update = "INSERT DATA { GRAPH <urn:x-test:g> { <urn:x-test:s> <urn:x-test:p> 1 } }"
    refused = requests.post(base + "/update", data={"update": update}, timeout=30)
    assert refused.status_code in (401, 403)
    done = requests.post(base + "/update", data={"update": update}, headers={"Authorization": f"bearer {TOKEN}"},
                         timeout=30)
    assert done.status_code == 204 and done.content == b"" and "Content-Type" not in done.headers
    response = requests.get(base + "/sparql", params={"query": "ASK { GRAPH <urn:x-test:g> { ?s ?p 1 } }"},
                            headers={"Accept": JSON}, timeout=30)
    assert response.json()["boolean"] is True


def test_the_page_and_the_canned_queries_are_served(served):
    _, base = served
    page = requests.get(base + "/", timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    listed = requests.get(base + "/api/queries", timeout=30).json()["queries"]
    assert "weighted-pipeline" in {q["name"] for q in listed}
    answer = requests.get(base + "/api/queries/weighted-pipeline.csv", params={"period": "2026-Q4"}, timeout=30)
    assert answer.status_code == 200 and answer.text.splitlines()[0].startswith("owner,"), answer.text[:200]


def test_several_workers_serve_the_same_answers_and_refuse_updates(open_sample_store, tmp_path):
    """--workers 2: two granian processes, each with the store open, give the same answers; with updates
    on, one process only may hold the store for writing, so the command refuses before serving."""
    store = tmp_path / "store"
    copy_store(open_sample_store, store)
    query = {"query": "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"}
    counts = set()
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "opportunity_kg.cli", "serve", "--store", str(store),
                                    "--port", str(port), "--workers", "2"], stdout=out, stderr=out)
    try:
        wait_for(f"http://127.0.0.1:{port}/api/queries", process)
        time.sleep(2)  # both processes up: a worker that fails to start stops the server
        for _ in range(20):  # requests spread over both processes
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/sparql", params=query,
                                      headers={"Accept": JSON}, timeout=30)
            except requests.ConnectionError:
                raise AssertionError(f"the server stopped; it printed:\n{log.read_text()}") from None
            counts.add(answer.json()["results"]["bindings"][0]["n"]["value"])
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert len(counts) == 1
    # the threads beyond the cores are on purpose (README, "HTTP"): granian's warning about them is not shown
    assert "Python threads" not in log.read_text() and "127.0.0.1" in log.read_text()
    refused = okg("serve", "--store", store, "--workers", "2", check=False,
                  env=dict(os.environ, OKG_UPDATE_TOKEN=TOKEN))
    assert refused.returncode != 0 and "--workers 1 only when updates are on" in refused.stderr
