"""The server's in-memory copy of the store: it answers what the disk store answers, follows
ingests, and is skipped for a store over the cap or one open for updates."""

import os
from collections import Counter
import time

import pyoxigraph as ox
import pytest
import requests

from opportunity_kg.analytics.queries import load_queries, run_canned
from opportunity_kg.samples.sample import write_sample
from opportunity_kg.store import ReadOnlyStore, copy_to_memory, run_query

from .conftest import okg, okg_serve

COUNT = "PREFIX okg: <https://w3id.org/opportunity-kg/ontology#> SELECT (COUNT(*) AS ?n) WHERE { ?o a okg:Opportunity }"
#: values for the canned queries' required parameters
ARGS = {"period": "2026-Q4", "on": "2026-07-01", "from": "2026-07-01", "to": "2026-10-01"}


def in_memory_soon(handle, timeout=60):
    """Wait until ``handle`` serves from memory; return its store then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store = handle.current()
        if handle.in_memory:
            return store
        time.sleep(0.05)
    raise AssertionError(f"the store was not copied into memory within {timeout} s")


def rows(result):
    """The result's rows, as a multiset (rows tied in the order may come either way), with lists
    made by GROUP_CONCAT sorted (their order is the store's)."""
    def cell(term):
        text = getattr(term, "value", term)
        return "; ".join(sorted(text.split("; "))) if isinstance(text, str) else text

    return Counter(tuple(cell(term) for term in row) for row in result.rows)


def count(store):
    return int(next(iter(run_query(store, COUNT).rows))[0].value)


def test_the_copy_holds_every_quad(sample_store):
    disk = ox.Store.read_only(str(sample_store[0]))
    memory = copy_to_memory(disk)
    assert len(memory) == len(disk) > 50_000
    assert set(memory) == set(disk)
    assert {g.value for g in memory.named_graphs()} == {g.value for g in disk.named_graphs()}


def test_every_canned_query_answers_the_same_from_memory(sample_store):
    disk = ox.Store.read_only(str(sample_store[0]))
    handle = ReadOnlyStore(sample_store[0], memory_triples=10**9)
    memory = in_memory_soon(handle)
    assert memory is not handle._store
    deal = next(iter(run_query(disk, "PREFIX okg: <https://w3id.org/opportunity-kg/ontology#> "
                                     "SELECT ?id WHERE { ?d a okg:Opportunity ; okg:sourceId ?id } "
                                     "ORDER BY ?id LIMIT 1").rows))[0].value
    values = dict(ARGS, opportunity=deal)
    answered = 0
    for name, query in load_queries().items():
        args = {p.name: values[p.name] for p in query.params if p.required}
        from_disk = rows(run_canned(disk, name, args))
        from_memory = rows(run_canned(memory, name, args))
        assert from_memory == from_disk, name
        answered += bool(from_disk)
    assert answered >= 25  # most queries have rows on the sample, so the comparison says something


def test_the_copy_follows_an_ingest_and_never_mixes_stores(tmp_path):
    first, later = tmp_path / "first", tmp_path / "later"
    write_sample(first, opportunities=40, seed=1)
    write_sample(later, opportunities=120, seed=2)
    store = tmp_path / "store"
    okg("ingest", first, "--store", store, "--as-of", "2026-11-01")
    messages = []
    handle = ReadOnlyStore(store, memory_triples=10**9, log=messages.append)
    assert count(in_memory_soon(handle)) == 40
    okg("ingest", later, "--store", store, "--as-of", "2026-11-20")
    fresh = handle.current()  # the new store, from disk until its copy is made
    assert count(fresh) == 120
    assert count(in_memory_soon(handle)) == 120
    assert sum("served from memory" in m for m in messages) == 2, messages


def test_a_store_over_the_cap_or_open_for_updates_stays_on_disk(sample_store):
    messages = []
    handle = ReadOnlyStore(sample_store[0], memory_triples=1000, log=messages.append)
    deadline = time.monotonic() + 60
    while not messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert messages and "served from disk" in messages[0] and "serve_memory_triples (1,000)" in messages[0]
    assert not handle.in_memory and isinstance(handle.current(), ox.Store)


def test_a_writable_store_is_never_copied(tmp_path):
    write_sample(tmp_path / "export", opportunities=20, seed=3)
    okg("ingest", tmp_path / "export", "--store", tmp_path / "store")
    handle = ReadOnlyStore(tmp_path / "store", writable=True, memory_triples=10**9)
    assert handle.memory_triples == 0
    store = handle.current()
    store.update("INSERT DATA { GRAPH <urn:g> { <urn:a> <urn:b> <urn:c> } }")
    assert not handle.in_memory and handle.current() is store


@pytest.mark.parametrize("cap,expected", [("50000000", True), ("0", False)])
def test_health_tells_where_the_server_reads_from(tmp_path, cap, expected):
    write_sample(tmp_path / "export", opportunities=30, seed=4)
    okg("ingest", tmp_path / "export", "--store", tmp_path / "store")
    env = dict(os.environ, OKG_SERVE_MEMORY_TRIPLES=cap)
    with okg_serve(tmp_path / "store", wait="/health", env=env, log=True) as (base, server):
        deadline = time.monotonic() + 30
        while True:
            health = requests.get(base + "/health", timeout=10).json()
            if health["in_memory"] or time.monotonic() > deadline or not expected:
                break
            time.sleep(0.1)
        assert health["in_memory"] is expected
        answer = requests.get(base + "/sparql", params={"query": COUNT, "format": "csv"}, timeout=30)
        assert answer.text.splitlines()[1] == "30"
    assert ("store served from memory" in server.log) is expected


def test_a_copy_stops_when_its_store_is_swapped_out(sample_store):
    disk = ox.Store.read_only(str(sample_store[0]))
    writes = []

    def wanted():  # the store is swapped out after the dump's third write
        writes.append(1)
        return len(writes) <= 3

    with pytest.raises((OSError, SyntaxError)):
        copy_to_memory(disk, wanted)
    stopped_after = len(writes)
    writes.clear()
    assert len(copy_to_memory(disk, lambda: bool(writes.append(1)) or True)) == len(disk)
    assert stopped_after <= 5 < 100 < len(writes)  # it stopped at once, long before the end


def test_auto_sizes_the_copy_by_the_memory_available():
    """serve_memory_triples=auto: as many quads as fit in half the memory the machine has available now
    (read from /proc/meminfo and the cgroup's limit), at 450 bytes each; a number is a fixed cap."""
    from opportunity_kg.errors import OkgError
    from opportunity_kg.store import INGEST_MEMORY_SHARE, MEMORY_BYTES_PER_QUAD, available_memory, memory_quads

    available = available_memory()
    assert available and available > 50 * 2 ** 20  # this machine (Linux) tells
    cap, why = memory_quads("auto")
    expected = available * 0.5 / MEMORY_BYTES_PER_QUAD
    assert abs(cap - expected) <= 0.05 * expected  # (the memory available moves a little between the two reads)
    assert "serve_memory_triples=auto" in why and "MB of memory available" in why
    assert memory_quads("1000") == (1000, "serve_memory_triples (1,000)")
    assert memory_quads(0)[0] == 0
    # okg ingest's copy (ingest_memory_triples=auto) may take three quarters: a batch job
    cap, why = memory_quads("auto", "ingest_memory_triples", INGEST_MEMORY_SHARE)
    assert INGEST_MEMORY_SHARE == 0.75 and abs(cap - expected * 1.5) <= 0.05 * expected * 1.5
    assert why.startswith(f"{cap:,}, what 75% of the ") and "ingest_memory_triples=auto" in why
    with pytest.raises(OkgError, match="OKG_INGEST_MEMORY_TRIPLES is 'lots': give a number of triples"):
        memory_quads("lots", "ingest_memory_triples", INGEST_MEMORY_SHARE)
    assert memory_quads("20_000_000", "ingest_memory_triples")[0] == 20_000_000


def test_auto_serves_a_small_store_from_memory(sample_store):
    messages = []
    handle = ReadOnlyStore(sample_store[0], memory_triples="auto", log=messages.append)
    in_memory_soon(handle)
    assert handle.in_memory and any("served from memory" in m for m in messages), messages


def test_a_setting_of_the_wrong_kind_is_one_line_naming_the_variable(sample_store):
    """OKG_QUERY_TIMEOUT=abc or OKG_SERVE_MEMORY_TRIPLES=lots: `okg query` and `okg serve` stop with
    one line naming the variable and what it takes (a ValueError traceback before, and from `okg
    serve` only in granian's worker, after the server was announced)."""
    from .conftest import free_port, okg

    cases = [({"OKG_QUERY_TIMEOUT": "abc"}, "OKG_QUERY_TIMEOUT is 'abc': give a number (default 30.0)"),
             ({"OKG_MAX_ROWS": "1.5"}, "OKG_MAX_ROWS is '1.5': give a whole number"),
             ({"OKG_SERVE_MEMORY_TRIPLES": "lots"}, "OKG_SERVE_MEMORY_TRIPLES is 'lots': give a number of triples")]
    for variables, message in cases:
        env = {**os.environ, **variables}
        for args in (["query", "--store", sample_store[0], "data-quality"],
                     ["serve", "--store", sample_store[0], "--port", free_port()]):
            if args[0] == "query" and "OKG_SERVE_MEMORY_TRIPLES" in variables:
                continue  # only okg serve reads it
            result = okg(*args, check=False, env=env, timeout=60)
            assert result.returncode != 0 and message in result.stderr, (args, result.stderr)
            assert "Traceback" not in result.stderr, result.stderr
