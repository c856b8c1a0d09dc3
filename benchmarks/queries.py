"""Benchmark: the time of every canned query on generated stores of several sizes.

Usage: python benchmarks/queries.py [--sizes 10000 100000] [--runs 3] [--store PATH] [--where disk memory]

For each size it writes a Salesforce sample export of that many opportunities
and ingests it (or, with --store, uses that store), then runs every canned
query in ``queries/`` with sample parameters ``--runs`` times and prints a
Markdown table: the median seconds of each query and, as the baseline measured
in the same run, the median of a query that counts every triple of the
default graph. The machines are shared and noisy: read the ratio.

``--where`` picks the stores measured: the on-disk store as ``okg query`` reads
it, and the in-memory copy ``okg serve`` makes of it (``serve_memory_triples``);
the copy's time is printed first. A store too big for the memory available
(at about 500 bytes a quad) is measured on disk only.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

#: parameter values for the queries' required parameters
ARGS = {"period": "2026-Q4", "on": "2026-07-01", "from": "2026-07-01", "to": "2026-10-01"}
BASELINE = "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"
#: a deal whose contacts have a reporting line, for the queries about one deal
ONE_DEAL = ("PREFIX okg: <https://w3id.org/opportunity-kg/ontology#> SELECT ?id WHERE { "
            "?deal okg:sourceId ?id . ?role okg:roleOn ?deal ; okg:roleOf/okg:reportsTo ?manager } LIMIT 1")


def timed(run, runs):
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


#: what a quad takes in Oxigraph's in-memory store at the copy's peak (measured at 10,000 opportunities)
BYTES_PER_QUAD = 500


def available_memory():
    """Bytes of memory available now (Linux), or None when it cannot be told."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def stores(store_path, where):
    """(column name, store) for each place measured."""
    from opportunity_kg.store.history import current_dataset
    from opportunity_kg.store import ReadOnlyStore, copy_to_memory

    disk = ReadOnlyStore(store_path).current()
    if "disk" in where:
        yield "disk", disk
    if "memory" in where:
        need, free = len(disk) * BYTES_PER_QUAD, available_memory()
        if free is not None and need > free:
            print(f"{Path(store_path).name}: not copied into memory: {len(disk):,} quads need about "
                  f"{need / 1e9:.1f} GB and {free / 1e9:.1f} GB is available", flush=True)
            return
        start = time.perf_counter()
        memory = copy_to_memory(disk)
        current_dataset(memory, remember=True)  # as the server does: "now" is worked out once
        print(f"{Path(store_path).name}: copied {len(memory):,} quads into memory in "
              f"{time.perf_counter() - start:.1f} s", flush=True)
        yield "memory", memory


def measure(store, runs):
    from opportunity_kg.analytics.queries import load_queries, run_canned
    from opportunity_kg.store import run_query

    out = {"(baseline: count every triple)": timed(lambda: list(run_query(store, BASELINE, timeout=600).rows), runs)}
    values = dict(ARGS, opportunity=next(iter(run_query(store, ONE_DEAL).rows))[0].value)
    for name, query in load_queries().items():
        args = {p.name: values[p.name] for p in query.params if p.required}
        out[name] = timed(lambda: list(run_canned(store, name, args, timeout=600, max_rows=10**9).rows), runs)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--store", help="an ingested store to measure instead of generated ones")
    parser.add_argument("--where", nargs="+", choices=["disk", "memory"], default=["disk", "memory"])
    args = parser.parse_args()
    from opportunity_kg.ingest import ingest
    from opportunity_kg.samples.sample import write_sample

    columns = {}
    if args.store:
        for place, store in stores(args.store, args.where):
            columns[f"{Path(args.store).name}, {place}"] = measure(store, args.runs)
    else:
        for size in args.sizes:
            with tempfile.TemporaryDirectory() as folder:
                write_sample(Path(folder) / "export", opportunities=size)
                ingest(Path(folder) / "export", Path(folder) / "store")
                for place, store in stores(Path(folder) / "store", args.where):
                    columns[f"{size:,} opportunities, {place}"] = measure(store, args.runs)
    names = list(next(iter(columns.values())))
    print("| query | " + " | ".join(f"{c} s | ratio" for c in columns) + " |")
    print("|---|" + "---:|---:|" * len(columns))
    for name in names:
        cells = []
        for figures in columns.values():
            base = figures["(baseline: count every triple)"]
            cells += [f"{figures[name]:.3f}", f"{figures[name] / base:.2f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
