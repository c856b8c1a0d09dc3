"""Benchmark: opportunity-kg's SPARQL endpoint against the native Oxigraph server on the same data.

Usage: python benchmarks/endpoint.py --store PATH [--seconds 10] [--slow-seconds 60] [--connections 8] [--only ASK]
       [--servers granian granian:2 granian:1:4]

Serves the store with `okg serve` (granian, and waitress to compare) and, from a copy of the same
quads, with `oxigraph serve`, both on 127.0.0.1; then, for each query (a
cheap ASK, a SELECT with LIMIT 10, the weighted-pipeline aggregate), runs a
bounded load: N connections with keep-alive for S seconds each. Prints a
Markdown table: requests/s and p50/p99 latency for each server, and the
ratio of opportunity-kg's throughput to the native one.
"""

import argparse
import http.client
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

QUERIES = {
    "ASK": "ASK { ?s ?p ?o }",
    "SELECT LIMIT 10": "SELECT ?s ?p ?o WHERE { ?s ?p ?o } LIMIT 10",
}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait(port, path):
    for _ in range(300):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answers on port {port}")


def settled(port, timeout=1800):
    """Wait until okg serve has its query workers ready, its in-memory copy made and its canned answers
    made ahead: measured before, the load would race the server's own start-up work."""
    import json

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/health")
        health = json.loads(connection.getresponse().read())
        workers = health.get("query_processes")
        if (workers is None or workers.get("ready")) and health.get("answered_ahead") is not None:
            return
        time.sleep(1)
    raise SystemExit(f"okg serve on port {port} did not settle in {timeout} s")


def load(port, path, seconds, connections):
    """Requests/s and p50/p99 latency (ms) of ``connections`` keep-alive connections for ``seconds``:
    with wrk when it is installed (a C load generator that leaves the CPU to the servers), else
    with Python threads (which cap the rate at a few thousand requests/s on these machines)."""
    if shutil.which("wrk"):
        return load_wrk(port, path, seconds, connections)
    return load_threads(port, path, seconds, connections)


def load_wrk(port, path, seconds, connections):
    # a request counts as answered up to twice the run's length (wrk's own default gives up at 2 s)
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
                          "--timeout", f"{max(2, round(2 * seconds))}s",
                          "-H", "Accept: application/sparql-results+json", f"http://127.0.0.1:{port}{path}"],
                         check=True, capture_output=True, text=True).stdout
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}

    def percentile(name):
        value, scale = re.search(rf"^\s*{name}\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M).groups()
        return float(value) * unit[scale]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50": percentile("50%"),
            "p99": percentile("99%"), "errors": int(errors.group(1)) if errors else 0}


def load_threads(port, path, seconds, connections):
    latencies, errors = [], [0]
    deadline = time.monotonic() + seconds

    def worker():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                connection.request("GET", path, headers={"Accept": "application/sparql-results+json"})
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    errors[0] += 1
            except OSError:
                errors[0] += 1
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    return {"rps": len(latencies) / seconds, "p50": statistics.median(latencies) * 1000,
            "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000, "errors": errors[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--slow-seconds", type=float, default=60,
                        help="seconds per server for the aggregate, which takes seconds per request on big stores")
    parser.add_argument("--only", nargs="+", help="measure only these queries (names as in the table)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None,
                        help="okg serve's threads (default: okg serve's own, the query slots and 8 more)")
    parser.add_argument("--servers", nargs="+", default=["granian", "waitress"],
                        help="the HTTP servers okg serve is measured with: granian (with okg serve's own number of "
                             "worker processes), waitress, granian:N for N worker processes, or granian:N:T for N of T "
                             "threads each (default: granian and waitress)")
    args = parser.parse_args()
    from opportunity_kg.analytics.queries import get_query

    queries = dict(QUERIES)
    queries["weighted-pipeline (aggregate)"] = get_query("weighted-pipeline").bind({"period": "2026-Q4"})
    if args.only:
        queries = {name: text for name, text in queries.items() if name in args.only or name.split(" (")[0] in args.only}
    native_port = free_port()
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as folder:
        dump = Path(folder) / "quads.nq"
        subprocess.run([str(bin_dir / "oxigraph"), "dump", "--location", args.store, "--file", str(dump)], check=True)
        native_dir = Path(folder) / "native"
        subprocess.run([str(bin_dir / "oxigraph"), "load", "--location", str(native_dir), "--file", str(dump)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ours = {server: free_port() for server in args.servers}
        servers = []
        for server, port in ours.items():
            # a bare name: okg serve's own number of worker processes (granian: one per core, at most 2)
            name, workers, threads = (server.split(":") + ["", str(args.threads or "")])[:3]
            servers.append(subprocess.Popen([str(bin_dir / "okg"), "serve", "--store", args.store, "--port", str(port),
                                             "--server", name] + (["--workers", workers] if workers else [])
                                            + (["--threads", threads] if threads else []),
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        servers.append(subprocess.Popen([str(bin_dir / "oxigraph"), "serve-read-only", "--location", str(native_dir),
                                         "--bind", f"127.0.0.1:{native_port}", "--union-default-graph"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        try:
            for port in ours.values():
                wait(port, "/health")
                settled(port)
            wait(native_port, "/query?query=ASK%7B%7D")
            print(f"load generator: {'wrk' if shutil.which('wrk') else 'Python threads'}, "
                  f"{args.connections} connections, {args.seconds:g} s per query and server; "
                  f"okg serve with {args.threads or 'its default number of'} threads\n")
            print("| query | okg serve with | req/s | p50 ms | p99 ms | native Oxigraph req/s | p50 ms | p99 ms | "
                  "ratio |")
            print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
            for name, text in queries.items():
                q = urllib.parse.urlencode({"query": text})
                seconds = args.slow_seconds if "aggregate" in name else args.seconds
                native = load(native_port, f"/query?{q}", seconds, args.connections)
                for server, port in ours.items():
                    got = load(port, f"/sparql?{q}", seconds, args.connections)
                    print(f"| {name} | {server} | {got['rps']:,.0f} | {got['p50']:.1f} | {got['p99']:.1f} | "
                          f"{native['rps']:,.0f} | {native['p50']:.1f} | {native['p99']:.1f} | "
                          f"{got['rps'] / native['rps'] if native['rps'] else float('nan'):.2f} |", flush=True)
                    if got["errors"] or native["errors"]:
                        print(f"  (errors: {server} {got['errors']}, native {native['errors']})")
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=10)


if __name__ == "__main__":
    main()
