"""`okg serve` answers queries while an ingest writes to the same store; no query sees half an ingest."""

import subprocess
import sys
import time

import pytest
import requests

from opportunity_kg.samples.sample import write_sample

from .conftest import copy_store, descendants, okg, okg_serve, zygotes

COUNT = "PREFIX okg: <https://w3id.org/opportunity-kg/ontology#> SELECT (COUNT(*) AS ?n) WHERE { ?o a okg:Opportunity }"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_queries_during_an_ingest_see_the_old_store_or_the_new_one(tmp_path, workers):
    """With one granian process or two (which share one zygote per store generation): after the
    swap the old generation's zygote ends, and one zygote serves the new one."""
    first, later = tmp_path / "first", tmp_path / "later"
    write_sample(first, opportunities=50, seed=1)
    write_sample(later, opportunities=400, seed=2)
    store = tmp_path / "store"
    okg("ingest", first, "--store", store, "--as-of", "2026-11-01")
    with okg_serve(store, args=["--workers", workers]) as (base, process):
        def count():
            response = requests.get(base + "/sparql", params={"query": COUNT, "format": "csv"}, timeout=30)
            assert response.status_code == 200, response.text
            return int(response.text.splitlines()[1])

        assert count() == 50
        ingest = subprocess.Popen([sys.executable, "-m", "opportunity_kg.cli", "ingest", str(later), "--store",
                                   str(store), "--as-of", "2026-11-20"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        seen = []
        while ingest.poll() is None:
            seen.append(count())
        assert ingest.returncode == 0, ingest.stderr.read()
        seen.append(count())
        assert len(seen) > 5 and set(seen) <= {50, 400}, seen
        assert seen[0] == 50 and seen[-1] == 400
        deadline = time.monotonic() + 30  # the old generation's zygote ends once no process uses it
        while len(zygotes(descendants(process.pid))) != 1:
            assert time.monotonic() < deadline, zygotes(descendants(process.pid))
            time.sleep(0.2)


def test_a_server_starts_while_another_process_holds_the_store_for_writing(open_sample_store, tmp_path):
    """Each `okg serve --workers N` process opens the store read-only: none may need the write lock,
    so servers start side by side, and beside a writer (here a process holding the store open)."""
    from opportunity_kg.web import create_app

    store = tmp_path / "store"
    copy_store(open_sample_store, store)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, pyoxigraph; s = pyoxigraph.Store(sys.argv[1]); "
                               "print('open', flush=True); sys.stdin.read()", str(store)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        app = create_app(store, config={"serve_memory_triples": 0, "cache_entries": 0})
        answer = app.test_client().get("/sparql", query_string={"query": "ASK { ?s ?p ?o }"},
                                       headers={"Accept": "application/sparql-results+json"})
        assert answer.status_code == 200 and answer.get_json()["boolean"] is True
    finally:
        holder.stdin.close()
        holder.wait(timeout=20)
