"""A SPARQL server instead of the embedded store: the Oxigraph server from the `oxigraph` package on
127.0.0.1, the sample ingested into it, and canned queries answering as on the embedded store."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from opportunity_kg.errors import OkgError
from opportunity_kg.ingest import ingest
from opportunity_kg.analytics.queries import run_canned
from opportunity_kg.store import open_store, run_query

from .conftest import free_port, okg, okg_serve, wait_for

OXIGRAPH = shutil.which("oxigraph") or str(Path(sys.executable).parent / "oxigraph")


@pytest.fixture(scope="module")
def oxigraph_server(tmp_path_factory):
    port = free_port()
    process = subprocess.Popen([OXIGRAPH, "serve", "--location", str(tmp_path_factory.mktemp("oxigraph")),
                                "--bind", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/query?query=ASK%7B%7D", process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def remote(oxigraph_server, sample_export, tmp_path_factory):
    report = ingest(sample_export, oxigraph_server, quarantine=tmp_path_factory.mktemp("q") / "quarantine.csv")
    return oxigraph_server, report


def rows(result):
    return [tuple(t.value if t is not None else None for t in row) for row in result.rows]


@pytest.mark.parametrize("period", ["2026-Q4", "2027-Q1", "2026"])
def test_canned_queries_answer_as_on_the_embedded_store(remote, open_sample_store, period):
    url, _ = remote
    on_server = rows(run_canned(open_store(url), "weighted-pipeline", {"period": period}))
    embedded = rows(run_canned(open_sample_store, "weighted-pipeline", {"period": period}))
    assert on_server == embedded and len(embedded) > 3


def test_the_server_holds_the_same_snapshot_and_a_second_ingest_changes_nothing(remote, sample_store, sample_export,
                                                                               open_sample_store):
    url, report = remote
    _, local_report = sample_store
    assert report.totals == local_report.totals and report.graph == local_report.graph
    for graph in (report.graph, "https://w3id.org/opportunity-kg/graph/salesforce/current"):
        count = f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}"
        assert rows(run_query(open_store(url), count)) == rows(run_query(open_sample_store, count)) != [("0",)]
    again = ingest(sample_export, url, quarantine=Path(report.quarantine_file))
    assert again.changed is False


def test_okg_serve_and_query_over_the_server(remote):
    url, _ = remote
    result = okg("query", "weighted-pipeline", "--param", "period=2026-Q4", "--store", url)
    assert result.stdout.startswith("owner,opportunities,amount,weighted_amount")
    with okg_serve(url, wait="/health") as (base, _):
        csv = requests.get(base + "/api/queries/weighted-pipeline.csv", params={"period": "2026-Q4"}).text
        assert csv == result.stdout.replace("\n", "\r\n") or csv.replace("\r\n", "\n") == result.stdout


def test_an_unreachable_server_is_named():
    with pytest.raises(OkgError, match="cannot reach the SPARQL server at http://127.0.0.1:9/query"):
        run_query(open_store("http://127.0.0.1:9"), "ASK {}")


def test_weekly_exports_are_kept_as_changes_on_the_server(tmp_path):
    """Three weekly exports, the last two out of order, into a fresh Oxigraph server: the server
    holds one current graph and each snapshot's changes, and every snapshot rebuilds there to
    what the embedded store holds for it."""
    from opportunity_kg.store import snapshots
    from opportunity_kg.samples.sample import write_weekly_samples

    write_weekly_samples(tmp_path / "weeks", 3, opportunities=40, seed=12)
    weeks = sorted((tmp_path / "weeks").iterdir())
    port = free_port()
    process = subprocess.Popen([OXIGRAPH, "serve", "--location", str(tmp_path / "server"),
                                "--bind", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/query?query=ASK%7B%7D", process)
        for i in (0, 2, 1):
            ingest(weeks[i], url, quarantine=tmp_path / "q.csv")
            ingest(weeks[i], tmp_path / "local")
        server, local = open_store(url), open_store(tmp_path / "local")
        names = {g.value for g in server.named_graphs()}
        assert snapshots.current_graph("salesforce") in names and not any(n.endswith("/incoming") for n in names)
        for _, iri in snapshots.chain(local, "salesforce"):
            assert set(snapshots.snapshot_triples(server, iri)) == set(snapshots.snapshot_triples(local, iri))
            assert snapshots.changes(server, iri) == snapshots.changes(local, iri)
        assert rows(run_canned(server, "crm-parents-on-date", {"on": "2026-11-10"})) == \
            rows(run_canned(local, "crm-parents-on-date", {"on": "2026-11-10"})) != []
    finally:
        process.terminate()
        process.wait(timeout=10)
