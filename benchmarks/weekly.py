"""Benchmark: a new export every week. Re-ingest time, store growth and query time over the weeks.

Usage: python benchmarks/weekly.py [--opportunities 10000] [--weeks 8] [--runs 3]

It writes ``--weeks`` weekly Salesforce exports of one org (``okg sample --weeks``) and ingests them in
order into one on-disk store, each in a child process (its own peak memory). It prints a Markdown table:

- the first ingest against pyoxigraph's ``bulk_load`` of the same quads, in the same run (issue 20's
  goal: >= 0.5x the speed);
- each later weekly re-ingest against the first (goal: <= 0.2x the time), with the share of deals
  that changed that week;
- quads and disk size after the last week against after the first (goal: <= 1.5x);
- three canned queries after the last week against after the first (median of ``--runs``;
  goal: <= 1.2x).
"""

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import child  # noqa: E402  (the bulk-load baseline, measured the same way)

QUERIES = {"weighted-pipeline": {"period": "2026-Q4"}, "pipeline-by-stage": {"period": "2026-Q4"},
           "win-rate": {}}


def disk_mb(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 1e6


def quads(store_path):
    from opportunity_kg.store import open_store

    return len(open_store(store_path, read_only=True))


def query_seconds(store_path, runs):
    from opportunity_kg.analytics.queries import run_canned
    from opportunity_kg.store import open_store

    store = open_store(store_path, read_only=True)
    out = {}
    for name, args in QUERIES.items():
        seconds = []
        for _ in range(runs):
            start = time.perf_counter()
            list(run_canned(store, name, args).rows)
            seconds.append(time.perf_counter() - start)
        out[name] = statistics.median(seconds)
    return out


def changed_share(before, after):
    def deals(folder):
        with open(folder / "Opportunity.csv", encoding="utf-8", newline="") as handle:
            return {r["Id"]: r for r in csv.DictReader(handle)}

    a, b = deals(before), deals(after)
    changed = sum(1 for i, r in b.items() if i not in a or a[i] != r)
    return changed / len(b)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opportunities", type=int, default=10000)
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--seed", type=int, default=None, help="the sample's seed (default: its own)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    # the queries are timed, not limited: at 100,000 opportunities on a busy machine one took over the
    # default 30 s, and the run lost everything it had measured
    os.environ.setdefault("OKG_QUERY_TIMEOUT", "3600")
    from opportunity_kg.samples.sample import write_weekly_samples

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_weekly_samples(tmp / "exports", args.weeks, opportunities=args.opportunities,
                             **({"seed": args.seed} if args.seed is not None else {}))
        weeks = sorted((tmp / "exports").iterdir())
        store = tmp / "store"
        rows = []
        first = None
        for n, week in enumerate(weeks):
            result = child("ingest", week, store, tmp / "dump-0.nq" if n == 0 else "-")
            if n == 0:
                first = result
                bulk = child("bulk", week, tmp / "bulk", tmp / "dump-0.nq")
                queries_first = query_seconds(store, args.runs)
                size_first = (quads(store), disk_mb(store))
            rows.append((week.name, result, changed_share(weeks[n - 1], week) if n else None))
            print(f"{week.name}: {json.dumps(result)}", file=sys.stderr, flush=True)  # kept if a later step fails
        size_last = (quads(store), disk_mb(store))
        queries_last = query_seconds(store, args.runs)
        # the same last export alone in a store: what the queries cost on that org without the history
        child("ingest", weeks[-1], tmp / "alone", "-")
        queries_alone = query_seconds(tmp / "alone", args.runs)
    print(f"{args.opportunities:,} opportunities, {args.weeks} weekly exports\n")
    print("| measure | value | goal |")
    print("|---|---:|---|")
    print(f"| first ingest | {first['seconds']:.1f} s, {first['triples']:,} triples, {first['max_rss_mb']:.0f} MB | |")
    print(f"| bulk_load of the same quads | {bulk['seconds']:.1f} s, {bulk['max_rss_mb']:.0f} MB | |")
    print(f"| first ingest, speed against bulk_load | {bulk['seconds'] / first['seconds']:.2f}x | >= 0.5x |")
    later = [r for _, r, _ in rows[1:]]
    if later:
        ratios = [r["seconds"] / first["seconds"] for r in later]
        shares = [s for _, _, s in rows[1:]]
        print(f"| weekly re-ingest, time against the first (median of {len(later)}) | "
              f"{statistics.median(ratios):.2f}x ({min(ratios):.2f} to {max(ratios):.2f}) | <= 0.2x |")
        print(f"| deals changed or new each week (median) | {statistics.median(shares):.1%} | |")
        print(f"| peak memory of a re-ingest (largest) | {max(r['max_rss_mb'] for r in later):.0f} MB | |")
    print(f"| quads after week {args.weeks} against week 1 | {size_last[0]:,} / {size_first[0]:,} = "
          f"{size_last[0] / size_first[0]:.2f}x | <= 1.5x |")
    print(f"| disk after week {args.weeks} against week 1 | {size_last[1]:.0f} / {size_first[1]:.0f} MB = "
          f"{size_last[1] / size_first[1]:.2f}x | <= 1.5x |")
    for name in QUERIES:
        print(f"| `{name}` after week {args.weeks} against week 1 | {queries_last[name]:.3f} / "
              f"{queries_first[name]:.3f} s = {queries_last[name] / queries_first[name]:.2f}x | <= 1.2x |")
    for name in QUERIES:
        print(f"| `{name}` after week {args.weeks} against week {args.weeks}'s export alone | "
              f"{queries_last[name]:.3f} / {queries_alone[name]:.3f} s = "
              f"{queries_last[name] / queries_alone[name]:.2f}x | |")
    print("\nWhere the time goes: seconds per phase, the first ingest and the median weekly re-ingest\n")
    print("| phase | first ingest s | weekly re-ingest s (median) |")
    print("|---|---:|---:|")
    names = list(dict.fromkeys(name for _, r, _ in rows for name in r["phases"]))
    for name in names:
        again = [r["phases"].get(name, 0) for r in later] or [0]
        print(f"| {name} | {first['phases'].get(name, 0):.1f} | {statistics.median(again):.1f} |")



if __name__ == "__main__":
    main()
