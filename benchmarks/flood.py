"""Benchmark: a flood of slow queries against `okg serve`, with queries in worker processes and on threads.

Usage: python benchmarks/flood.py --store PATH [--slow 20] [--timeout 5] [--seconds 15]

Serves the store twice on 127.0.0.1 in the same run: with the default worker processes, and with
`OKG_QUERY_PROCESSES=0` (queries on the server's threads, the earlier design). For each, sends
`--slow` queries that no store answers within the timeout, all at once, and meanwhile a cheap ASK
one after another from another connection, for `--seconds`; then, once the slow ones have been
answered 503, measures the CPU the server's processes still burn over 3 s and their memory. Prints a
Markdown table: the cheap query's p50 and p99 and how many of them failed, the slow queries'
answers, the CPU seconds burnt per second after the timeouts, the memory of the server's processes.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import requests

SLOW = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }"
CHEAP = "ASK { ?s ?p ?o }"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid):
    """``pid`` and every process under it, from /proc."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [pid], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_and_memory(pids):
    """(CPU seconds used so far, resident MB now; shared pages counted once per process) of ``pids``."""
    cpu, rss, tick, page = 0.0, 0, os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / tick
        rss += int(fields[21]) * page
    return cpu, rss / 2 ** 20


def unshared_mb(pids):
    """The memory of ``pids`` with the pages they share counted once (the sum of each one's PSS), in MB."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def flood(store, processes, slow, timeout, seconds):
    port = free_port()
    env = dict(os.environ, OKG_QUERY_TIMEOUT=str(timeout), OKG_MAX_CONCURRENT_QUERIES=str(slow + 4),
               OKG_MAX_QUERIES_PER_CLIENT=str(slow + 4), OKG_CACHE_ENTRIES="0", OKG_QUERY_PROCESSES=str(processes))
    server = subprocess.Popen([str(Path(sys.executable).parent / "okg"), "serve", "--store", store, "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:  # up, with its in-memory copy made (and its workers forked)
            try:
                health = requests.get(base + "/health", timeout=5).json()
                if health["in_memory"] and (not processes or (health["query_processes"] or {}).get("ready")):
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        slow_answers, cheap = [], []

        def send_slow():
            try:
                answer = requests.get(base + "/sparql", params={"query": SLOW}, timeout=timeout * 10)
                slow_answers.append(answer.status_code)
            except requests.RequestException as exc:
                slow_answers.append(type(exc).__name__)

        threads = [threading.Thread(target=send_slow) for _ in range(slow)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        session, failed = requests.Session(), 0
        url = f"{base}/sparql?{urllib.parse.urlencode({'query': CHEAP})}"
        while time.monotonic() - started < seconds:
            began = time.monotonic()
            try:
                ok = session.get(url, timeout=timeout * 2).status_code == 200
            except requests.RequestException:
                ok = False
            cheap.append((time.monotonic() - began) * 1000)
            failed += not ok
            time.sleep(0.05)
        for thread in threads:
            thread.join()
        pids = tree(server.pid)
        burnt, _ = cpu_and_memory(pids)
        time.sleep(3)
        pids = tree(server.pid)
        after, _ = cpu_and_memory(pids)
        memory = unshared_mb(pids)
        cheap.sort()
        return {"p50": statistics.median(cheap), "p99": cheap[min(len(cheap) - 1, int(len(cheap) * 0.99))],
                "cheap": len(cheap), "failed": failed,
                "slow": ", ".join(f"{[str(a) for a in slow_answers].count(c)} x {c}"
                                  for c in sorted(set(map(str, slow_answers)))),
                "cpu": (after - burnt) / 3, "memory": memory, "processes": len(pids)}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--slow", type=int, default=20, help="slow queries sent at once (default 20)")
    parser.add_argument("--timeout", type=float, default=5, help="the server's query timeout, seconds (default 5)")
    parser.add_argument("--seconds", type=float, default=15, help="how long the cheap queries run (default 15)")
    args = parser.parse_args()
    print(f"{args.slow} slow queries at once, timeout {args.timeout:g} s; a cheap ASK every 50 ms for "
          f"{args.seconds:g} s\n")
    print("| queries run | cheap p50 ms | cheap p99 ms | cheap failed | slow answers | CPU s/s burnt after "
          "the timeouts | memory MB (PSS) | processes |")
    print("|---|---:|---:|---:|---|---:|---:|---:|")
    for processes, name in ((2, "in worker processes (default)"), (0, "on threads (OKG_QUERY_PROCESSES=0)")):
        got = flood(args.store, processes, args.slow, args.timeout, args.seconds)
        print(f"| {name} | {got['p50']:.1f} | {got['p99']:.1f} | {got['failed']} of {got['cheap']} | {got['slow']} | "
              f"{got['cpu']:.2f} | {got['memory']:,.0f} | {got['processes']} |", flush=True)


if __name__ == "__main__":
    main()
