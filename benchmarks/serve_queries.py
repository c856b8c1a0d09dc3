"""Benchmark: every canned query as an analyst meets it through `okg serve`: first call and repeat.

Usage: python benchmarks/serve_queries.py --store PATH [--period 2026-Q4] [--other-period 2026-Q2]
       python benchmarks/serve_queries.py --url http://127.0.0.1:PORT   (an `okg serve` already running)

Serves the store with `okg serve` (its defaults: queries in worker processes, from the in-memory
copy, canned answers kept and answered ahead) on 127.0.0.1, or measures a server already running,
waits until the answers made ahead are ready, then asks each canned query over HTTP (CSV): its
first call with the parameters a dashboard asks first (the defaults, the current quarter), a repeat
of it, and first calls with parameters that were not answered ahead: a period a year back, and each
other choice of a choice parameter (`by=team`, ...), one at a time. A query that asks for days
(`pipeline-as-of`, `pipeline-movement`) is asked for days before the store's newest as-of date
(a month; a quarter and a week), then for the same days a year back. Prints a Markdown table with each
time and whether the answer came from the kept ones (`OKG-Cache`), and a line for the slowest call
with other parameters of each query.
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
    parser.add_argument("--store", help="the store to serve")
    parser.add_argument("--url", help="an okg serve already running (instead of --store)")
    parser.add_argument("--period", default=None, help="the current quarter (default: the store's newest as-of date's)")
    parser.add_argument("--other-period", default=None, help="a quarter not answered ahead (default: a year back)")
    args = parser.parse_args()
    from opportunity_kg.analytics.queries import load_queries
    from opportunity_kg.periods import quarter_back, quarter_label, quarter_of

    if bool(args.store) == bool(args.url):
        parser.error("give --store or --url")
    server = None
    if args.store:
        port = free_port()
        env = dict(os.environ, OKG_QUERY_TIMEOUT="600")
        server = subprocess.Popen([str(Path(sys.executable).parent / "okg"), "serve", "--store", args.store, "--port",
                                   str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}" if server else args.url.rstrip("/")
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
        print(f"store {args.store or base}: served from memory {health['in_memory']}, {health['answered_ahead']} answers "
              f"made ahead, ready {ready:.0f} s after start; periods {period} (answered ahead) and {other} (not)\n")
        print("| query | first call s | cache | repeat s | cache | first calls, other parameters s (cache) |")
        print("|---|---:|---|---:|---|---|")
        slowest = []
        for name, query in sorted(load_queries().items()):
            required = [p for p in query.params if p.required and p.default is None]
            if any(p.type not in ("period", "date") for p in required):
                continue  # a question about one record: no dashboard default
            params = {p.name: period for p in required if p.type == "period"}
            params.update(days_back(newest, [p.name for p in required if p.type == "date"], 0))
            url = f"{base}/api/queries/{name}.csv"
            first, a = timed(url, params)
            repeat, b = timed(url, params)
            row = f"| {name} | {first:.3f} | {a.headers.get('OKG-Cache', a.status_code)} | {repeat:.3f} | " \
                  f"{b.headers.get('OKG-Cache', b.status_code)} |"
            others = [{p.name: other} for p in query.params if p.type == "period"][:1]
            dates = [p.name for p in required if p.type == "date"]
            if dates:  # the same days a year back
                others.append(days_back(newest, dates, 365))
            others += [{p.name: choice} for p in query.params if p.choices for choice in p.choices
                       if choice != p.default]
            calls = []
            for change in others:
                other_time, c = timed(url, {**params, **change})
                calls.append((other_time, change, c.headers.get("OKG-Cache", c.status_code)))
            if calls:
                row += " " + "<br>".join(f"{t:.3f} ({', '.join(f'{k}={v}' for k, v in change.items())}, {cache})"
                                         for t, change, cache in calls) + " |"
                slowest.append((max(calls, key=lambda call: call[0]), name))
            else:
                row += " |"
            print(row, flush=True)
        print()
        for (seconds, change, _), name in sorted(slowest, key=lambda item: -item[0][0]):
            print(f"- {name}: slowest with other parameters {seconds:.3f} s "
                  f"({', '.join(f'{k}={v}' for k, v in change.items())})")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)


def days_back(newest, names, shift):
    """Days for a query's date parameters, ``shift`` days before the usual ones: with one, a month
    before the store's newest as-of date; with two (a from and a to), a quarter before it and a week
    before it."""
    from datetime import date, timedelta

    end = date.fromisoformat(newest) - timedelta(days=shift)
    offsets = [30] if len(names) == 1 else [91] + [7] * (len(names) - 1)
    return {name: (end - timedelta(days=days)).isoformat() for name, days in zip(names, offsets)}


if __name__ == "__main__":
    main()
