"""Shared fixtures: a sample export, a store ingested from it, and a real HTTP server over it."""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OKG_SHARED", ROOT.parent / "shared"))
REAL_EXPORT = SHARED / "datasets" / "salesforce-data-cloud-workshop"
RML_CASES = SHARED / "rml-test-cases"
#: opportunities in the test sample: enough for every kind of deal, small enough to be quick
TEST_OPPORTUNITIES = 300


def okg(*args, check=True, **kwargs):
    """Run the real `okg` command line in a subprocess."""
    result = subprocess.run([sys.executable, "-m", "opportunity_kg.cli", *map(str, args)],
                            capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"okg {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url, process=None, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"server exited: {process.stdout.read() if process.stdout else ''}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@contextlib.contextmanager
def okg_serve(store, *, wait="/api/queries", env=None, log=False, server=None, args=()):
    """`okg serve --store STORE` in a subprocess on a free port of 127.0.0.1, stopped at the end of
    the block; yields (base URL, process). With ``log`` its output is kept, as ``process.log``;
    ``server`` picks the HTTP server (``--server``; default: okg serve's own); ``args`` are more
    of its options. One granian worker process unless ``args`` says otherwise: /health and the
    query slots are then the server's own (each process has its own)."""
    port = free_port()
    args = list(args) if "--workers" in args or server == "waitress" else ["--workers", "1", *args]
    stream = subprocess.PIPE if log else subprocess.DEVNULL
    process = subprocess.Popen([sys.executable, "-m", "opportunity_kg.cli", "serve", "--store", str(store),
                                "--host", "127.0.0.1", "--port", str(port)]
                               + (["--server", server] if server else []) + list(args), env=env, text=True,
                               stdout=stream, stderr=subprocess.STDOUT if log else subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(base + wait, process)
        yield base, process
    finally:
        process.terminate()
        process.log = process.communicate(timeout=10)[0]


@pytest.fixture(scope="session")
def sample_export(tmp_path_factory):
    from opportunity_kg.samples.sample import write_sample

    folder = tmp_path_factory.mktemp("sample")
    write_sample(folder, opportunities=TEST_OPPORTUNITIES, seed=7)
    return folder


@pytest.fixture(scope="session")
def sample_store(sample_export, tmp_path_factory):
    """A store with the sample ingested (by the library); yields (path, report)."""
    from opportunity_kg.ingest import ingest

    path = tmp_path_factory.mktemp("store") / "store"
    report = ingest(sample_export, path)
    return path, report


def copy_store(store, target):
    """A copy of an open on-disk store at ``target`` (a folder not there yet), made by RocksDB's own
    checkpoint: copying the folder of a store open in this process may catch a file mid-write."""
    store.backup(str(target))
    return target


@pytest.fixture(scope="session")
def open_sample_store(sample_store):
    from opportunity_kg.store import open_store

    return open_store(sample_store[0])


@pytest.fixture(scope="session")
def server(open_sample_store):
    """A real waitress server on 127.0.0.1 over the sample store; yields its base URL."""
    from waitress.server import create_server

    from opportunity_kg.web import create_app

    app = create_app(store=open_sample_store, config={"query_timeout": 5})
    port = free_port()
    srv = create_server(app, host="127.0.0.1", port=port, threads=4)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    wait_for(base + "/api/queries")
    yield base
    stop_waitress(srv, thread)


def stop_waitress(srv, thread):
    """Stop a waitress server running in ``thread``: its own loop closes its sockets (closed from here
    while the loop waits in select, they raise "Bad file descriptor" in that thread), then its task
    threads end."""
    from waitress import wasyncore

    srv.trigger.pull_trigger(lambda: wasyncore.close_all(srv._map))
    thread.join(timeout=10)
    srv.task_dispatcher.shutdown()


def hubspot_weeks(tmp_path, dates, opportunities=120, seed=8, moves=2):
    """HubSpot exports of one org, one folder per date in ``dates`` (returned in order): after the
    first, each moves a random quarter of the deals to a random stage and changes half of their
    amounts. HubSpot exports have no stage history: it comes from comparing them."""
    import csv
    import random
    import shutil

    from opportunity_kg.samples.sample_systems import write_system_sample

    export = tmp_path / "hubspot"
    write_system_sample("hubspot", export, opportunities=opportunities, seed=seed)
    deals = next(p for p in export.iterdir() if "deals" in p.name)
    with open(deals, encoding="utf-8", newline="") as handle:
        records = list(csv.DictReader(handle))
    stages = sorted({r["Deal Stage"] for r in records})
    rng = random.Random(moves)
    folders = []
    for week, as_of in enumerate(dates):
        folder = tmp_path / as_of
        shutil.copytree(export, folder)
        if week:
            for record in rng.sample(records, len(records) // 4):
                record["Deal Stage"] = rng.choice(stages)
                if rng.random() < 0.5:
                    record["Amount"] = f"{float(record['Amount'] or 0) * 1.1:.2f}"
        with open(folder / deals.name, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, list(records[0]))
            writer.writeheader()
            writer.writerows(records)
        folders.append(folder)
    return folders


def descendants(pid):
    """The process ids under ``pid`` (children, their children...), from /proc."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def zygotes(pids):
    """Of ``pids``, the zygotes: query processes whose parent is not one (workers are the zygote's children)."""
    def is_query_process(pid):
        try:
            return "opportunity_kg.store.processes" in Path(f"/proc/{pid}/cmdline").read_text()
        except OSError:
            return False

    def parent(pid):
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])

    return [pid for pid in pids if is_query_process(pid) and not is_query_process(parent(pid))]
