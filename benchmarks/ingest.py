"""Benchmark: end-to-end ingest against Oxigraph's own bulk load of the same quads.

Usage: python benchmarks/ingest.py [--sizes 10000 100000 1000000] [--runs 1] [--keep DIR]

For each size it writes a Salesforce sample export of that many
opportunities (with their history, contacts, roles, field history), then
- ingest: ``okg ingest`` end to end (map, validate, load) into a new on-disk
  store, in a child process so its peak memory (max RSS) is its own;
- bulk load: the same quads, as N-Quads, bulk-loaded by pyoxigraph into a new
  on-disk store, also in a child process.
It prints a Markdown table row per size: triples, seconds and triples/s of
each, their ratio and the peak memory of each. Medians when --runs > 1. The
machines are shared and noisy: read the ratio first.
"""

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
kind, export, store, dump = sys.argv[1:5]
start = time.perf_counter()
phases = {}
if kind == "ingest":
    from opportunity_kg.ingest import ingest
    from opportunity_kg.progress import Progress

    class Timed(Progress):  # where the time goes: each phase's seconds, up to the next phase
        now, name = start, "reading, mapping and loading"

        def phase(self, text):
            t = time.perf_counter()
            key = "writing the triples" if text.startswith("writing ") else text
            phases[self.name] = phases.get(self.name, 0) + t - self.now
            self.now, self.name = t, key

        def close(self):
            self.phase("")

    report = ingest(export, store, progress=Timed(enabled=False))
    seconds = time.perf_counter() - start
    triples = report.triples
    import pyoxigraph as ox
    from opportunity_kg.store import open_store
    if dump != "-":  # "-": no dump wanted (the weekly benchmark needs the first week's only)
        s = open_store(store)
        with open(dump, "wb") as handle:
            ox.serialize(s.quads_for_pattern(None, None, None, None), handle, ox.RdfFormat.N_QUADS)
        del s
else:
    import pyoxigraph as ox
    s = ox.Store(store)
    s.bulk_load(path=dump, format=ox.RdfFormat.N_QUADS)
    s.flush()
    triples = len(s)
    seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "triples": triples, "phases": phases,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(kind, export, store, dump):
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(export), str(store), str(dump)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000, 1000000])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep the exports and stores "
                        "(for the query and endpoint benchmarks) instead of a temporary one")
    args = parser.parse_args()
    from opportunity_kg.samples.sample import write_sample

    print("| opportunities | triples | ingest s | ingest triples/s | ingest peak MB | bulk load s | "
          "bulk load triples/s | bulk load peak MB | ingest / bulk load speed |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    phases = []
    for size in args.sizes:
        with contextlib.nullcontext(args.keep / str(size)) if args.keep else tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            root.mkdir(parents=True, exist_ok=True)
            write_sample(root / "export", opportunities=size)
            ingests, bulks = [], []
            for run in range(args.runs):
                dump = root / "quads.nq"
                # the ingest's timing stops before it dumps its quads for the bulk load to read
                ingests.append(child("ingest", root / "export", root / f"store-{run}", dump))
                bulks.append(child("bulk", root / "export", root / f"bulk-{run}", dump))
            i = statistics.median(r["seconds"] for r in ingests)
            b = statistics.median(r["seconds"] for r in bulks)
            triples = bulks[0]["triples"]
            print(f"| {size:,} | {triples:,} | {i:.0f} | {triples / i:,.0f} | "
                  f"{max(r['max_rss_mb'] for r in ingests):,.0f} | {b:.0f} | {triples / b:,.0f} | "
                  f"{max(r['max_rss_mb'] for r in bulks):,.0f} | {b / i:.2f} |", flush=True)
            phases.append((size, ingests[len(ingests) // 2]["phases"]))
    print("\nWhere the ingest's time went (seconds, the median run):\n")
    for size, timed in phases:
        print(f"- {size:,} opportunities: " + "; ".join(f"{name} {t:.1f}" for name, t in timed.items() if t >= 0.05))


if __name__ == "__main__":
    main()
