"""Benchmark: the RML engine mapping a Salesforce sample export into an in-memory Oxigraph store.

Usage: python benchmarks/mapping.py [--opportunities N] [--runs R]

Writes a sample export of N opportunities, then, R times each, measures
- engine: every Salesforce mapping run over the export, its quads loaded
  into a new in-memory store (what morph-kgc's figure of 125k triples/s on
  these machines measures);
- floor: Oxigraph alone loading the same triples from N-Quads text into a
  new in-memory store (the part no mapping engine can avoid).
It prints the median seconds and triples/s of each and their ratio, as a
Markdown table row for docs/benchmarks.md. The machines are shared and
noisy: compare the ratio, not the seconds, between runs.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pyoxigraph as ox

from opportunity_kg.paths import MAPPINGS_DIR
from opportunity_kg.mapping.rml import load_mapping, nquads
from opportunity_kg.samples.sample import write_sample


def run_engine(export):
    start = time.perf_counter()
    store, count = ox.Store(), 0
    for path in sorted((MAPPINGS_DIR / "salesforce").glob("*.rml.ttl")):
        mapping = load_mapping(path, data_dir=export)
        quads = [q for row in mapping.rows() for q in row.quads]
        store.load(nquads(quads), format=ox.RdfFormat.N_QUADS)
        count += len(quads)
    return time.perf_counter() - start, count, store


def run_floor(text):
    start = time.perf_counter()
    ox.Store().load(text, format=ox.RdfFormat.N_QUADS)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opportunities", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        export = Path(folder)
        write_sample(export, opportunities=args.opportunities)
        engine, floor = [], []
        for _ in range(args.runs):
            seconds, count, store = run_engine(export)
            engine.append(seconds)
            text = nquads((q.subject, q.predicate, q.object, q.graph_name) for q in store)
            floor.append(run_floor(text))
    e, f = statistics.median(engine), statistics.median(floor)
    print(f"| {args.opportunities:,} | {count:,} | {e:.2f} | {count / e:,.0f} | {f:.2f} | {count / f:,.0f} | "
          f"{e / f:.1f} |")


if __name__ == "__main__":
    main()
