"""A load is atomic: a real `okg ingest` killed at any moment leaves a store that opens with exactly the
data it had before, or all of the new snapshot, never a part of it."""

import signal
import subprocess
import sys
import time

import pytest

from opportunity_kg.samples.sample import write_sample
from opportunity_kg.store import open_store, run_query

COUNT = "SELECT ?g (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } } GROUP BY ?g ORDER BY ?g"


def graphs(path):
    store = open_store(path)
    try:
        return {g.value: int(n.value) for g, n in run_query(store, COUNT).rows}
    finally:
        del store


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("atomic")
    small, big = root / "small", root / "big"
    write_sample(small, opportunities=40, seed=1)
    write_sample(big, opportunities=1500, seed=2)
    return small, big


def ingest_process(export, store, as_of):
    return subprocess.Popen([sys.executable, "-m", "opportunity_kg.cli", "ingest", str(export), "--store", str(store),
                             "--as-of", as_of], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_killed_ingest_leaves_the_old_data_or_the_whole_new_snapshot(exports, tmp_path):
    small, big = exports
    store = tmp_path / "store"
    first = ingest_process(small, store, "2026-11-01")
    assert first.wait(timeout=120) == 0, first.stderr.read()
    before = graphs(store)
    # the whole new snapshot, for comparison: the same ingest run to the end in another store
    reference = tmp_path / "reference"
    for export, as_of in ((small, "2026-11-01"), (big, "2026-11-20")):
        assert ingest_process(export, reference, as_of).wait(timeout=300) == 0
    after = graphs(reference)
    assert after != before
    outcomes = []
    started = time.monotonic()
    full = None
    for delay in (0.5, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0):
        process = ingest_process(big, store, "2026-11-20")
        time.sleep(delay)
        finished = process.poll() is not None
        process.send_signal(signal.SIGKILL)
        process.wait()
        now = graphs(store)  # opens (and recovers) the store
        assert now in (before, after), f"killed after {delay} s: a partial store {now}"
        outcomes.append((delay, finished, now == after))
        if now == after:
            full = delay
            break
    assert any(not finished and not new for _, finished, new in outcomes), outcomes  # killed mid-way at least once
    assert full is not None or time.monotonic() - started > 60, outcomes
    assert not list(tmp_path.glob("store.staging")) and not list(tmp_path.glob("store.previous"))
