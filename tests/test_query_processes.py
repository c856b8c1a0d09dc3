"""Queries in worker processes: a query past its timeout really stops (its CPU is free again at once,
its slot given back), the answers are those of a query run on a thread, and a cut or abandoned answer
ends its worker. Over a real `okg serve` on 127.0.0.1 and apps over real stores."""

import os
import threading
import time
from pathlib import Path

import requests

from .conftest import copy_store, descendants, okg_serve, zygotes

JSON = "application/sparql-results+json"
#: a query no store of the tests answers within a second: three unrelated patterns joined
SLOW = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }"
CHEAP = "ASK { ?s ?p ?o }"


def cpu_seconds(pids):
    """User and system CPU seconds the processes have used so far (those still there)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def ready(base):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = requests.get(base + "/health", timeout=10).json()["query_processes"]
        if workers and workers["ready"]:
            return workers
        time.sleep(0.1)
    raise AssertionError("the query workers did not get ready")


def test_a_query_past_its_timeout_stops_and_frees_its_slot_and_cpu(sample_store, tmp_path):
    """Three slow queries fill all three slots and pass the 1 s timeout: each is answered 503, its
    worker is ended, the CPU of the server's processes goes quiet, and a cheap query sent right
    after gets its answer (on threads it would wait for a slot the slow ones still held)."""
    env = dict(os.environ, OKG_QUERY_TIMEOUT="1", OKG_MAX_CONCURRENT_QUERIES="3", OKG_MAX_QUERIES_PER_CLIENT="3",
               OKG_CACHE_ENTRIES="0")
    with okg_serve(sample_store[0], env=env) as (base, process):
        ready(base)
        answers = []

        def slow():
            answers.append(requests.get(base + "/sparql", params={"query": SLOW}, headers={"Accept": JSON},
                                        timeout=30))

        threads = [threading.Thread(target=slow) for _ in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        busy = requests.get(base + "/health", timeout=10).json()
        assert busy["queries_running"] == 3 and busy["query_processes"]["busy"] == 3
        during = set(descendants(process.pid))
        for thread in threads:
            thread.join()
        assert [a.status_code for a in answers] == [503] * 3
        assert all(a.json()["error"] == "timeout" for a in answers)
        cheap = requests.get(base + "/sparql", params={"query": CHEAP}, headers={"Accept": JSON}, timeout=30)
        assert cheap.status_code == 200 and cheap.json()["boolean"] is True
        time.sleep(0.5)
        health = requests.get(base + "/health", timeout=10).json()
        assert health["queries_running"] == 0
        pids = descendants(process.pid)
        burnt = cpu_seconds(pids)
        time.sleep(1.0)
        assert cpu_seconds(pids) - burnt < 0.3  # nothing runs on: the slow queries' workers are gone
        assert len(during - set(pids)) == 3  # the three workers are gone
        # and the spares forked again: two, or three when the cheap query took a spare while the
        # top-up still ran (the top-up forks another, and the cheap query's worker is kept too)
        assert len(set(pids) - during) in (2, 3)
        assert health["query_processes"]["idle"] + health["query_processes"]["busy"] <= 3


def test_the_answers_are_those_of_a_query_on_a_thread(sample_store):
    """The same canned queries and SPARQL, one app with worker processes and one without: the same bytes."""
    from opportunity_kg.web import create_app

    apps = [create_app(sample_store[0], config={"query_processes": n, "cache_entries": 0}) for n in (2, 0)]
    run = apps[0].extensions["okg"]
    deadline = time.monotonic() + 30
    while run.ready_workers() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.ready_workers() is not None and apps[1].extensions["okg"].workers() is None
    clients = [app.test_client() for app in apps]
    asks = [("/api/queries/pipeline-by-stage.csv", {}), ("/api/queries/win-rate.json", {"by": "owner"}),
            ("/api/queries/stage-funnel.csv", {}),
            ("/sparql", {"query": "SELECT ?s ?p ?o WHERE { ?s ?p ?o } ORDER BY ?s ?p ?o LIMIT 2000"}),
            ("/sparql", {"query": "CONSTRUCT WHERE { ?s a ?type } "}),
            ("/sparql", {"query": CHEAP}), ("/sparql", {"query": "SELECT ?x WHERE { ?x ?p"}),
            ("/sparql", {"query": "SELECT * WHERE { ?s ?p ?o }", "default-graph-uri": "not an iri"})]
    for path, params in asks:
        first, second = (c.get(path, query_string=params, headers={"Accept": "text/csv"}) for c in clients)
        assert first.status_code == second.status_code, path
        if path.endswith(".json") or first.status_code != 200:
            assert first.get_json() == second.get_json(), (path, params)
        elif "CONSTRUCT" in params.get("query", ""):
            assert sorted(first.data.splitlines()) == sorted(second.data.splitlines())
        else:
            assert first.data == second.data, (path, params)
    for app in apps:
        if app.extensions["okg"].workers() is not None:
            app.extensions["okg"].workers().close()


def test_a_cut_or_abandoned_answer_ends_its_worker(open_sample_store, tmp_path):
    """An answer cut at the row limit says so and its worker (with rows still to give) is ended and
    replaced; a client that hangs up mid-answer does the same; the next query is answered."""
    store = tmp_path / "store"
    copy_store(open_sample_store, store)
    env = dict(os.environ, OKG_MAX_ROWS="5", OKG_CACHE_ENTRIES="0")
    with okg_serve(store, env=env) as (base, process):
        ready(base)
        before = set(descendants(process.pid))
        cut = requests.get(base + "/sparql", params={"query": "SELECT * WHERE { ?s ?p ?o }"},
                           headers={"Accept": "text/csv"}, timeout=30)
        assert cut.status_code == 200 and cut.headers["OKG-Rows-Cut"] == "5"
        assert len(cut.text.strip().splitlines()) == 6  # the header and five rows
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not set(descendants(process.pid)) - before:
            time.sleep(0.05)
        after = set(descendants(process.pid))
        assert before - after and after - before  # one worker ended, one forked in its place
        short = requests.get(base + "/sparql", params={"query": "SELECT ?s WHERE { ?s a ?t } LIMIT 3"},
                             headers={"Accept": "text/csv"}, timeout=30)
        assert short.status_code == 200 and "OKG-Rows-Cut" not in short.headers
        assert len(short.text.strip().splitlines()) == 4
        health = requests.get(base + "/health", timeout=10).json()
        assert health["queries_running"] == 0 and health["query_processes"]["busy"] == 0


def test_a_query_over_its_memory_ends_alone_with_an_answer_that_says_so(sample_store):
    """A query that would take more than OKG_QUERY_MEMORY_MB (a sort of a huge join) ends at once with
    the one error shape, naming the setting; its worker is replaced and the next query is answered."""
    from opportunity_kg.web import create_app

    app = create_app(sample_store[0], config={"query_memory_mb": 200, "query_timeout": 60, "cache_entries": 0})
    run = app.extensions["okg"]
    deadline = time.monotonic() + 30
    while run.ready_workers() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    client = app.test_client()
    try:
        started = time.monotonic()
        big = client.get("/sparql", query_string={"query": SLOW.replace("(COUNT(*) AS ?n)", "*") + " ORDER BY ?i ?f ?c"},
                         headers={"Accept": JSON})
        assert big.status_code == 500 and big.get_json()["error"] == "store_error"
        assert "OKG_QUERY_MEMORY_MB" in big.get_json()["message"]
        assert time.monotonic() - started < 30  # ended by its memory, long before its timeout
        cheap = client.get("/sparql", query_string={"query": CHEAP}, headers={"Accept": JSON})
        assert cheap.status_code == 200 and cheap.get_json()["boolean"] is True
        assert run.slots.status()[0] == 0
    finally:
        run.workers().close()


def test_no_query_runs_on_after_the_server_has_gone(sample_store):
    """A server killed while a slow query runs: its query processes (the zygote and every worker,
    the busy one too) end with it."""
    import signal

    env = dict(os.environ, OKG_QUERY_TIMEOUT="120", OKG_CACHE_ENTRIES="0")
    with okg_serve(sample_store[0], env=env) as (base, process):
        ready(base)
        def slow():
            try:
                requests.get(base + "/sparql", params={"query": SLOW}, timeout=60)
            except requests.ConnectionError:
                pass  # the server is killed under it

        thread = threading.Thread(target=slow)
        thread.start()
        time.sleep(1.0)
        assert requests.get(base + "/health", timeout=10).json()["query_processes"]["busy"] == 1
        left = descendants(process.pid)
        for pid in [process.pid] + left:  # the server's own processes die at once, nothing tidies up
            try:
                if pid == process.pid or "opportunity_kg.store.processes" not in Path(f"/proc/{pid}/cmdline").read_text():
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() and "Z" not in
                                                  Path(f"/proc/{pid}/stat").read_text().split()[2] for pid in left):
            time.sleep(0.1)
        alive = [pid for pid in left if Path(f"/proc/{pid}").exists()
                 and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
        assert alive == []
        thread.join(timeout=60)


def test_a_worker_that_died_idle_is_replaced_unseen(sample_store):
    """Idle workers killed from outside (an operator, the system out of memory): the next queries are
    answered as usual by new ones."""
    import signal

    from opportunity_kg.web import create_app

    app = create_app(sample_store[0], config={"cache_entries": 0})
    run = app.extensions["okg"]
    deadline = time.monotonic() + 30
    while (run.ready_workers() is None or run.workers().status()["idle"] < 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        for worker in list(run.workers()._idle):
            os.kill(worker.pid, signal.SIGKILL)
        time.sleep(0.2)
        client = app.test_client()
        for _ in range(3):
            answer = client.get("/sparql", query_string={"query": CHEAP}, headers={"Accept": JSON})
            assert answer.status_code == 200 and answer.get_json()["boolean"] is True
    finally:
        run.workers().close()


def test_the_server_processes_share_one_zygote_and_its_in_memory_copy(sample_store):
    """`okg serve --workers 2`: granian's two processes each run their queries in worker processes,
    forked from one zygote (one in-memory copy of the store, not two); every answer is the same;
    when the server stops, the zygote and its workers are gone."""
    env = dict(os.environ, OKG_CACHE_ENTRIES="0")
    with okg_serve(sample_store[0], env=env, log=True, args=["--workers", "2"]) as (base, process):
        ready(base)
        deadline = time.monotonic() + 30  # the second granian process may connect a moment later
        while len(zygotes(descendants(process.pid))) != 1 or sum(
                1 for pid in descendants(process.pid) if "opportunity_kg.store.processes"
                in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")) < 5:
            assert time.monotonic() < deadline, "one zygote with the spare workers of both processes"
            time.sleep(0.1)
        shared = zygotes(descendants(process.pid))
        assert len(shared) == 1
        # when memory runs out the system ends a query's worker, never the zygote holding the copy for all
        workers = [pid for pid in descendants(shared[0])]
        assert workers and all(Path(f"/proc/{pid}/oom_score_adj").read_text().strip() == "800" for pid in workers)
        assert int(Path(f"/proc/{shared[0]}/oom_score_adj").read_text()) < 800
        answers = set()
        for _ in range(8):  # a new connection each time: granian hands them to either process
            answer = requests.get(base + "/sparql", params={"query": "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"},
                                  headers={"Accept": JSON, "Connection": "close"}, timeout=30)
            assert answer.status_code == 200
            answers.add(answer.json()["results"]["bindings"][0]["n"]["value"])
        assert len(answers) == 1 and int(answers.pop()) > 0
    assert process.log.count("queries run in worker processes") == 2, process.log
    deadline = time.monotonic() + 10
    while Path(f"/proc/{shared[0]}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{shared[0]}").exists() or \
        Path(f"/proc/{shared[0]}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_the_server_processes_make_each_answer_ahead_once_for_all(sample_store):
    """`okg serve --workers 2`: the canned answers made ahead are made once, by one process or the
    other, and both keep all of them (each logs how many it made and how many it took)."""
    import re

    with okg_serve(sample_store[0], log=True, args=["--workers", "2"]) as (base, process):
        ready(base)
        deadline, done = time.monotonic() + 120, 0
        while done < 20:  # /health of either process (new connections go to one or the other) says it is done
            assert time.monotonic() < deadline, "both processes answer ahead"
            health = requests.get(base + "/health", headers={"Connection": "close"}, timeout=10).json()
            done = done + 1 if health["answered_ahead"] is not None else 0
            time.sleep(0.05)
        time.sleep(1)
    lines = re.findall(r"canned answers made ahead: (\d+) here, (\d+) by the other server processes, (\d+) failed",
                       process.log)
    assert len(lines) == 2, process.log
    (here1, other1, failed1), (here2, other2, failed2) = [tuple(map(int, line)) for line in lines]
    assert (failed1, failed2) == (0, 0)
    assert here1 + here2 == here1 + other1 == here2 + other2 > 0  # each made once, each kept by both


def test_the_server_processes_share_out_the_query_slots(sample_store, monkeypatch):
    """With N server processes (okg serve --workers N) each runs its Nth of OKG_MAX_CONCURRENT_QUERIES and
    of OKG_MAX_QUERIES_PER_CLIENT (at least one), so the server as a whole runs no more queries at once."""
    from opportunity_kg.store.processes import SERVER_PROCESSES
    from opportunity_kg.web import create_app

    monkeypatch.setenv(SERVER_PROCESSES, "2")
    config = {"cache_entries": 0, "query_processes": 0, "max_concurrent_queries": 8, "max_queries_per_client": 1}
    slots = create_app(sample_store[0], config=config).extensions["okg"].slots
    assert (slots.total, slots.per_client) == (4, 1)
    monkeypatch.setenv(SERVER_PROCESSES, "1")
    slots = create_app(sample_store[0], config=config).extensions["okg"].slots
    assert (slots.total, slots.per_client) == (8, 1)


def ready_processes(path):
    from opportunity_kg.store.processes import QueryProcesses

    workers = QueryProcesses(path, "auto", memory_mb=0)
    assert workers.ready.wait(30) and workers.failed is None
    deadline = time.monotonic() + 30
    while workers.status()["idle"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    return workers


def test_a_worker_whose_query_ran_long_is_not_kept(sample_store, monkeypatch):
    """A worker that answered is kept for the next query, unless its query ran KEEP_AFTER_SECONDS or more
    (it has likely made many pages of the shared copy its own): then it is ended and replaced."""
    from opportunity_kg.store import processes

    workers = ready_processes(sample_store[0])
    try:
        for keep_after, kept in ((60.0, True), (0.0, False)):
            monkeypatch.setattr(processes, "KEEP_AFTER_SECONDS", keep_after)
            before = {w.pid for w in workers._idle}
            assert len(list(workers.run("SELECT ?s WHERE { ?s ?p ?o } LIMIT 1", timeout=30, max_rows=10).rows)) == 1
            time.sleep(0.3)
            after = {w.pid for w in workers._idle}
            used = before - after if not kept else set()
            assert (before <= after) == kept, (before, after)
            assert all(not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
                       for pid in used)
    finally:
        workers.close()

