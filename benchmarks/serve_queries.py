"""Benchmark: every canned query as an analyst meets it through `okg serve`: first call and repeat.

Usage: python benchmarks/serve_queries.py --store PATH [--period 2026-Q4] [--other-period 2026-Q2]

Serves the store with `okg serve` (its defaults: queries in worker processes, from the in-memory
copy, canned answers kept and answered ahead) on 127.0.0.1, waits until the answers made ahead are
ready, then asks each canned query over HTTP (CSV): its first call with the parameters a dashboard
asks first (the defaults, the current quarter), a repeat of it, and a first call with a period that
was not answered ahead (a quarter back). Prints a Markdown table with each time and whether the
answer came from the kept ones (`OKG-Cache`).
"""

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(url, params):
    started = time.perf_counter()
    answer = requests.get(url, params=params, timeout=3600)
    return time.perf_counter() - started, answer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--period", default=None, help="the current quarter (default: the store's newest as-of date's)")
    parser.add_argument("--other-period", default=None, help="a quarter not answered ahead (default: a year back)")
    args = parser.parse_args()
    from opportunity_kg.analytics.queries import load_queries
    from opportunity_kg.periods import quarter_back, quarter_label, quarter_of

    port = free_port()
    env = dict(os.environ, OKG_QUERY_TIMEOUT="600")
    server = subprocess.Popen([str(Path(sys.executable).parent / "okg"), "serve", "--store", args.store, "--port",
                               str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        while True:
            try:
                health = requests.get(base + "/health", timeout=10).json()
                if health["answered_ahead"]:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(1)
        ready = time.monotonic() - started
        newest = max(s["as_of"] for s in health["snapshots"])
        from datetime import date

        now = quarter_of(date.fromisoformat(newest))
        period = args.period or quarter_label(now[0])
        other = args.other_period or quarter_label(quarter_back(now[0], 4)[0])
        print(f"store {args.store}: served from memory {health['in_memory']}, {health['answered_ahead']} answers "
              f"made ahead, ready {ready:.0f} s after start; periods {period} (answered ahead) and {other} (not)\n")
        print("| query | first call s | cache | repeat s | cache | first call, other period s | cache |")
        print("|---|---:|---|---:|---|---:|---|")
        for name, query in sorted(load_queries().items()):
            required = [p for p in query.params if p.required and p.default is None]
            if any(p.type != "period" for p in required):
                continue  # a question about one record or day: no dashboard default
            params = {p.name: period for p in required}
            url = f"{base}/api/queries/{name}.csv"
            first, a = timed(url, params)
            repeat, b = timed(url, params)
            row = f"| {name} | {first:.3f} | {a.headers.get('OKG-Cache', a.status_code)} | {repeat:.3f} | " \
                  f"{b.headers.get('OKG-Cache', b.status_code)} |"
            periods = [p for p in query.params if p.type == "period"]
            if periods:
                other_time, c = timed(url, {**params, periods[0].name: other})
                row += f" {other_time:.3f} | {c.headers.get('OKG-Cache', c.status_code)} |"
            else:
                row += " | |"
            print(row, flush=True)
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
