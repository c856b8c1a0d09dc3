"""The ``okg`` command line: a thin layer over the library's functions.

Only this module decides exit codes: 0 on success, 1 when the library raised
an :class:`~opportunity_kg.errors.OkgError` (its message is printed to stderr),
2 for a bad command line.
"""

import argparse
import json
import os
import re
import sys
from pathlib import Path

from . import __version__
from .errors import OkgError


def _read_query(text):
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise OkgError(f"cannot read the query file: {exc.strerror}", file=path) from None
    return text


def cmd_sample(args):
    from .samples.sample_systems import write_system_sample

    if args.weeks:
        from .samples.sample import write_weekly_samples

        if args.system != "salesforce":
            raise OkgError("--weeks writes Salesforce exports only; leave out --system", field="system")
        written = write_weekly_samples(args.out, args.weeks, opportunities=args.opportunities, seed=args.seed,
                                       stakeholder_signal=args.stakeholder_signal)
        for folder, counts in written.items():
            print(f"{folder}: {counts['Opportunity.csv']:,} opportunities, "
                  f"{counts['OpportunityHistory.csv']:,} history rows")
        print(f"{len(written)} weekly Salesforce exports of one org written to {args.out}; ingest them in order "
              f"into one store")
        return
    counts = write_system_sample(args.system, args.out, opportunities=args.opportunities, seed=args.seed,
                                 style=args.style, stakeholder_signal=args.stakeholder_signal)
    width = max(len(name) for name in counts)
    for name, count in counts.items():
        print(f"{name:{width}} {count:>8} rows")
    print(f"sample {args.system} export written to {args.out}")


#: row warnings printed by okg ingest; the warnings file has them all
LISTED_WARNINGS = 20


def cmd_ingest(args):
    from .ingest import ingest

    from .progress import Progress

    report = ingest(args.export, args.store, source=args.source, as_of=args.as_of, quarantine=args.quarantine,
                    progress=Progress(enabled=args.progress))
    width = max([len(n) for n in report.files] + [5])
    print(f"{'file':{width}} {'read':>8} {'loaded':>8} {'quarantined':>12} {'deleted':>8} {'triples':>9}")
    for name, c in list(report.files.items()) + [("total", report.totals)]:
        print(f"{name:{width}} {c.rows_read:>8} {c.rows_loaded:>8} {c.rows_quarantined:>12} {c.rows_deleted:>8} "
              f"{c.triples:>9}")
    t = report.totals
    notes = [w for w in report.warnings if not w.startswith("warning:")]
    row_warnings = [w for w in report.warnings if w.startswith("warning:")]
    for note in notes:
        print(f"note: {note}")
    for warning in row_warnings[:LISTED_WARNINGS]:
        print(warning)
    if len(row_warnings) > LISTED_WARNINGS:
        print(f"... and {len(row_warnings) - LISTED_WARNINGS} more warnings")
    if row_warnings:
        kinds = ", ".join(f"{n} {kind}" for kind, n in report.warning_counts.items() if kind != "note")
        print(f"{len(row_warnings)} warnings ({kinds}), every one in {report.warnings_file}")
    if report.skipped:
        print(f"note: not in this export: {', '.join(report.skipped)}")
    if report.lookups:
        print(f"note: lookup tables from the export used instead of the mappings' own: {', '.join(report.lookups)}")
    if report.unmapped:
        print(f"note: no mapping for these files, not read: {', '.join(report.unmapped)}")
    if t.rows_quarantined:
        print(f"{t.rows_quarantined} rows quarantined with their reasons in {report.quarantine_file}")
    if report.previous_snapshot:
        print(f"{report.history_changes} changes of stage, amount or close date and {report.parent_changes} "
              f"of account parents since the snapshot <{report.previous_snapshot}> recorded as history")
    from .analytics.support import summary_lines

    for line in summary_lines(report.support):
        print(line)
    if report.changed and report.previous_snapshot:
        print(f"{report.facts_added:,} facts added and {report.facts_removed:,} removed since <{report.previous_snapshot}>, "
              "kept as changes" + ("; the store was compacted (OKG_COMPACT_SHARE)" if report.compacted else ""))
        if report.rows_reused:
            print(f"{report.rows_reused:,} of {report.totals.rows_read:,} rows were as in the last export: read, "
                  "not mapped again (their records' facts are as they were)")
        elif report.reuse_missed:
            print(f"every row was mapped again: {report.reuse_missed}")
        if report.stage_facts_remade is not None:
            print(f"stage intervals made again for the {report.stage_facts_remade:,} deals whose stage history "
                  "changed (the others' are as they were)")
    state = "loaded into" if report.changed else "already in (nothing changed)"
    print(f"snapshot {report.source} as of {report.as_of} {state} store {report.store}: described in "
          f"<{report.graph}>, the system's latest facts in <{report.current_graph}>")
    if args.report:
        Path(args.report).write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")


def cmd_query(args):
    from . import settings
    from .analytics.results import write_boolean, write_solutions, write_triples
    from .store import open_store, run_query

    from .analytics.queries import get_query, load_all_queries, run_canned

    store = open_store(args.store, read_only=True)
    params = {}
    for item in args.param or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise OkgError(f"--param takes NAME=VALUE, not {item!r}", field="param", value=item)
        params[name.strip()] = value
    queries, broken = load_all_queries()
    canned = args.query in queries or args.query in broken
    if canned:
        result = run_canned(store, args.query, params)
    elif re.fullmatch(r"[\w.-]+", args.query) and not Path(args.query).exists():
        get_query(args.query)  # a name, not SPARQL: says which names there are, the closest first
    elif params:
        raise OkgError(f"--param is for canned queries, and there is none named {args.query!r}", field="query")
    else:
        result = run_query(store, _read_query(args.query))
    out = sys.stdout
    if result.kind == "ask":
        out.write(write_boolean(result.rows, args.format))
    elif result.kind == "graph":
        out.writelines(write_triples(result.rows, "ntriples", 10**12))
    else:
        guard = canned and settings.get("csv_formula_guard")  # a canned table is opened in spreadsheets
        out.writelines(write_solutions(result.variables, result.rows, args.format, 10**12, guard=guard))


def cmd_forecast(args):
    from .analytics.forecast import forecast, load_book, parse_day as _day
    from .analytics.results import write_table
    from .store import open_store

    from .analytics.support import support

    store = open_store(args.store, read_only=True)
    result = forecast(load_book(store), args.period, by=args.by, as_of=_day(args.as_of, "as-of"), deals=args.deals)
    result["support"] = support(store)["forecast"]
    rows = result["deals"] if args.deals else result["rows"]
    if result["support"]["level"] != "full" and args.format != "json":
        word = "not at all" if result["support"]["level"] == "none" else "in part"
        print(f"okg forecast: the loaded data answers it {word}: {'; '.join(result['support']['notes'])}",
              file=sys.stderr)
    if args.format == "json":
        print(json.dumps(result, indent=1))
        return
    if "note" in result:
        print(f"okg forecast: {result['note']}", file=sys.stderr)
    if args.format == "table":
        fitted = f"models fitted on {result['training_states']:,} past deal states" if result["training_states"] \
            else "the CRM view only"
        print(f"forecast of {result['period']} as of {result['as_of']}, by {result['by']} ({fitted}; "
              f"{result['interval']})")
        if not result["rows"]:
            print(f"no deal won or open with its close date in {result['period']}")
    if args.deals and args.format == "table":  # the groups, then the deals behind them
        sys.stdout.write(write_table(result["rows"], "table"))
        print()
    sys.stdout.write(write_table(rows, args.format))


def cmd_backtest(args):
    from .analytics.forecast import backtest, chart_svg, load_book, parse_day as _day
    from .analytics.results import write_table
    from .store import open_store

    result = backtest(load_book(open_store(args.store, read_only=True)), _day(args.from_, "from"),
                      _day(args.to, "to"), step=args.step, periods=args.periods)
    if args.chart:
        Path(args.chart).write_text(chart_svg(result), encoding="utf-8")
    if args.format == "json":
        print(json.dumps(result, indent=1))
        return
    def score_rows(methods, horizon=None):
        return [{**({"horizon": horizon} if horizon is not None else {}), "method": m,
                 **{k: "" if v is None else f"{v:.4f}" for k, v in x.items() if k != "calibration"}}
                for m, x in methods.items()]

    if args.format == "csv":
        sys.stdout.write(write_table(result["points"], "csv"))
        return
    print(f"backtest {result['from']} to {result['to']} every {result['step']}: {result['forecasts']} period "
          f"forecasts, {result['deal_chances']:,} deal chances, scored against the store as of {result['as_of']}")
    sys.stdout.write(write_table(score_rows(result["methods"]), "table"))
    if len(result["horizons"]) > 1:
        print("\nby horizon (0: the quarter of the date, 1: the next one, ...)")
        sys.stdout.write(write_table([r for h, x in result["horizons"].items() for r in score_rows(x, h)], "table"))
    coverage = result["coverage"]
    print(f"\nthe worst-best interval ({coverage['nominal']:.0%} nominal) held the actual in "
          f"{coverage['actual']:.0%} of {coverage['forecasts']} forecasts")
    print("\ncalibration (deal chances in bands: how many, mean chance, share won)")
    calibration = [{"method": m, "band": f"{b['from']:.1f}-{b['to']:.1f}", "deals": b["deals"],
                    "mean_chance": f"{b['mean_chance']:.3f}", "won_rate": f"{b['won_rate']:.3f}"}
                   for m, x in result["methods"].items() for b in x["calibration"]]
    sys.stdout.write(write_table(calibration, "table"))
    if result["skipped"]:
        print(f"\n{len(result['skipped'])} period forecasts left out:")
        sys.stdout.write(write_table(result["skipped"], "table"))
    if args.chart:
        print(f"chart written to {args.chart}")


def cmd_snapshot(args):
    from .store import snapshots
    from .analytics.results import write_table

    if args.upgrade:
        systems = snapshots.upgrade_store(args.store)
        print(f"snapshots of {', '.join(systems)} now kept as changes" if systems
              else "nothing to upgrade: the store keeps its snapshots as changes already")
        return
    if not args.name:
        rows = snapshots.list_snapshots(args.store)
        if not rows:
            print(f"no snapshots in {args.store}")
            return
        for row in rows:
            for key in ("added", "removed", "facts"):
                row[key] = "" if row[key] is None else f"{row[key]:,}"
            row["materialised"] = "current" if row["facts"] else "yes" if row["materialised"] else ""
        sys.stdout.write(write_table(rows, "table"))
        return
    if args.materialise:
        iri, count = snapshots.materialise_snapshot(args.store, args.name, args.system)
        print(f"{count:,} facts of <{iri}> written into its graph; GRAPH <{iri}> reads them until "
              f"`okg snapshot {args.name} --forget`")
    elif args.forget:
        iri = snapshots.dematerialise_snapshot(args.store, args.name, args.system)
        print(f"the facts of <{iri}> are kept as changes only again")
    elif args.out:
        with open(args.out, "wb") as handle:
            count = snapshots.write_snapshot(args.store, args.name, handle, args.system)
        print(f"{count:,} facts written to {args.out}")
    else:
        snapshots.write_snapshot(args.store, args.name, sys.stdout.buffer, args.system)


def cmd_match(args):
    from collections import Counter

    from .analytics.match import match_store
    from .analytics.results import write_table

    found = match_store(args.store, threshold=args.threshold)
    counts = Counter((m["right_system"] == "gleif", m["status"]) for m in found)
    print(f"accounts linked to legal entities: {counts[(True, 'asserted')]} "
          f"({counts[(True, 'review')]} more for review)")
    print(f"records of one customer linked across systems: {counts[(False, 'asserted')]} "
          f"({counts[(False, 'review')]} more for review)")
    print(f"written to graph <https://w3id.org/opportunity-kg/graph/matches> of store {args.store}")
    review = [m for m in found if m["status"] == "review"]
    if args.review:
        Path(args.review).write_text(write_table(review, "csv") if review else "", encoding="utf-8")
        print(f"{len(review)} candidates below the threshold {args.threshold} listed in {args.review}")


def cmd_scaffold(args):
    from .paths import MAPPINGS_DIR
    from .tools.scaffold import scaffold

    written, lines = scaffold(args.export, args.system, MAPPINGS_DIR, force=args.force)
    for line in lines:
        print(line)
    print(f"wrote {len(written)} files into {written[0].parent}: check each guess (the comment at the top of "
          f"each file), then: okg lint --export {args.export}; okg ingest {args.export} --source {args.system} "
          "--store STORE")


def cmd_map(args):
    import pyoxigraph as ox

    from .mapping.rml import run_mapping

    quads = run_mapping(args.mapping, args.base_iri, data_dir=args.data)
    if args.output:
        with open(args.output, "wb") as handle:
            ox.serialize(quads, handle, ox.RdfFormat.N_QUADS)
    else:
        sys.stdout.buffer.write(ox.serialize(quads, format=ox.RdfFormat.N_QUADS) or b"")


def cmd_diagram(args):
    from .tools.diagram import model_diagram, write_into

    if args.write:
        changed = write_into(args.write)
        print(f"model diagram in {args.write} {'updated' if changed else 'already up to date'}")
    else:
        print(model_diagram(), end="")


def cmd_docs(args):
    from .tools.ontology_docs import build_docs

    for path in build_docs(args.out):
        print(f"wrote {path}")


def cmd_fmt(args):
    from .tools.turtle_format import format_files, turtle_files

    changed = format_files(args.paths or None, check=args.check)
    total = len(turtle_files(args.paths or None))
    if args.check:
        for path in changed:
            print(f"not in canonical form: {path}")
        if changed:
            raise OkgError(f"{len(changed)} of {total} Turtle files are not in canonical form; run okg fmt")
        print(f"all {total} Turtle files are in canonical form")
    else:
        for path in changed:
            print(f"formatted {path}")
        print(f"{len(changed)} of {total} Turtle files changed")


def cmd_lint(args):
    from .tools.lint import lint, missing_columns, shape_notes

    problems = lint()
    for problem in problems:
        where = problem.focus + (f" {problem.path}" if problem.path else "")
        print(f"{where}: {problem.message}")
    for note in shape_notes():
        print(f"note: {note}")
    if args.export:
        system, notes = missing_columns(args.export, source=args.source)
        for note in notes:
            print(f"note: {note}")
        print(f"{args.export} read with the {system} mappings: "
              + (f"{len(notes)} notes on columns it lacks" if notes else "every column they read is there"))
    if problems:
        raise OkgError(f"{len(problems)} problems in the model files")
    print("ontology, shapes, mappings and canned queries: no problems")


def check_port_free(host, port):
    """One clear error, before anything is announced, when another program already listens there."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OkgError(f"cannot serve on {host}:{port}: {exc.strerror or exc}; another server may be "
                           "running there: stop it or choose another port with --port") from None


def cmd_serve(args):
    import logging

    from . import settings
    from .store import check_is_store, memory_quads
    from .store.remote import is_remote

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    limits = settings.all_settings()  # a bad setting is one clear line here, not a worker's traceback
    memory_quads(limits["serve_memory_triples"])
    if args.workers is None:
        args.workers = default_workers(args.server, limits)
    if args.workers < 1 or args.server == "waitress" and args.workers != 1:
        raise OkgError("--workers takes 1 or more, and only with granian (waitress serves from one process)",
                       field="workers")
    if args.workers > 1 and limits["update_token"]:
        raise OkgError("--workers 1 only when updates are on (OKG_UPDATE_TOKEN): one process may hold the store "
                       "open for writing", field="workers")
    if args.threads is None:  # they mostly wait, on a query's worker process or for a slot
        args.threads = limits["max_concurrent_queries"] + EXTRA_THREADS
    check_port_free(args.host, args.port)
    if args.server == "waitress":
        from waitress import serve

        from .web import create_app

        app = create_app(args.store)
    elif not is_remote(args.store):
        # a missing store is named here, before anything is announced; the store itself is opened only
        # in granian's worker process (RocksDB's threads do not survive a fork)
        check_is_store(Path(args.store))
    base = f"http://{args.host}:{args.port}"
    print(f"serving store {args.store} at {base}/ with {args.server}; Ctrl+C stops\n"
          f"  query page     {base}/\n"
          f"  SPARQL         {base}/sparql\n"
          f"  canned queries {base}/api/queries (pages at {base}/queries/<name>)\n"
          f"  ontology       {base}/ontology", flush=True)
    if args.server == "waitress":
        serve(app, host=args.host, port=args.port, threads=args.threads, ident="opportunity-kg")
        return
    import multiprocessing

    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    multiprocessing.set_start_method("spawn", force=True)  # a fresh worker process: nothing of ours is forked
    from .store.processes import SERVER_ID, SERVER_PROCESSES

    os.environ[SERVER_ID] = str(os.getpid())  # granian's workers share one zygote (and in-memory copy) a store generation
    os.environ[SERVER_PROCESSES] = str(args.workers)  # and each takes its share of the query slots

    # the threads are many on purpose (a thread whose query runs in a worker process only waits), which
    # granian warns about at start: not a problem the user has to act on (README, "HTTP")
    logging.getLogger("_granian").addFilter(lambda record: "seems quite high" not in record.getMessage())
    # each worker process opens the store (and makes its own in-memory copy); its threads run the app
    server = Server(str(args.store), address=args.host, port=args.port, interface=Interfaces.WSGI,
                    workers=args.workers, blocking_threads=args.threads, log_level=LogLevels.warning)
    server.serve(target_loader=granian_app)


#: threads `okg serve` runs beyond the query slots: a page, /health or a kept answer is never stuck behind them
EXTRA_THREADS = 8
#: the most granian worker processes `okg serve` runs by default (one per core up to it): one Python
#: process spends its time handing the GIL between threads, two answer twice the requests
DEFAULT_WORKERS_MAX = 2


def default_workers(server, limits):
    """granian worker processes by default: one per core up to :data:`DEFAULT_WORKERS_MAX`; one with
    waitress, or with updates on (one process may hold the store open for writing)."""
    if server == "waitress" or limits["update_token"]:
        return 1
    return max(1, min(os.cpu_count() or 1, DEFAULT_WORKERS_MAX))


def granian_app(store):
    """The app for granian's worker process (granian hands over the store's path as its target)."""
    import logging

    from .web import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", force=True)
    return create_app(store)


def build_parser():
    parser = argparse.ArgumentParser(prog="okg", description="opportunity-kg: CRM exports as one knowledge graph.")
    parser.add_argument("--version", action="version", version=f"okg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help="write a sample export (Salesforce, HubSpot, Dynamics 365 or GLEIF)")
    p.add_argument("--out", required=True, help="folder to write the CSV files into")
    p.add_argument("--system", choices=["salesforce", "hubspot", "dynamics", "gleif"], default="salesforce",
                   help="which system's export (default salesforce); all describe the same companies")
    p.add_argument("--style", choices=["labels", "internal"], default="labels",
                   help="HubSpot headers: property labels (Deal Stage, the default) or internal names (dealstage)")
    p.add_argument("--opportunities", type=int, default=500, help="how many opportunities (default 500)")
    p.add_argument("--seed", type=int, default=42, help="random seed; the same seed gives the same files")
    p.add_argument("--weeks", type=int, default=0,
                   help="write this many weekly exports of the same org, one folder each (week-YYYY-MM-DD), "
                        "ending on the sample's as-of date")
    p.add_argument("--no-stakeholder-signal", dest="stakeholder_signal", action="store_false",
                   help="stakeholder roles drawn as usual but with no bearing on which deals are won (to test "
                        "that a forecast gains nothing from them then)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("ingest", help="map, validate and load an export into a store")
    p.add_argument("export", help="folder holding the export's CSV files")
    p.add_argument("--store", required=True, help="path of the on-disk store (created if missing)")
    p.add_argument("--source", help="the system the export came from (default: recognised from file names)")
    p.add_argument("--as-of", help="the date the export describes, YYYY-MM-DD (default: its newest modstamp)")
    p.add_argument("--quarantine", help="CSV file for rejected rows (default: STORE-quarantine.csv beside it)")
    p.add_argument("--report", help="also write the counts as JSON to this file")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress line (default: on a terminal, not when CI is set)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("query", help="run a canned query or any SPARQL query against a store")
    p.add_argument("query", help="a canned query's name (see queries/), the query text, or @FILE to read it from a file")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="a canned query's parameter (repeat for several)")
    p.add_argument("--store", required=True, help="path of the store")
    p.add_argument("--format", choices=["csv", "tsv", "json", "xml"], default="csv",
                   help="result format (default csv)")
    p.set_defaults(func=cmd_query)

    from .analytics.forecast import DIMENSIONS, STEPS

    p = sub.add_parser("forecast", help="forecast a period three ways: the CRM's view, from history, from the graph")
    p.add_argument("--period", required=True, help="the period: 2026-Q4, 2026-H2, 2026-11 or 2026")
    p.add_argument("--by", choices=DIMENSIONS, default="total", help="one row per group (default: one total)")
    p.add_argument("--as-of", help="forecast as known at the end of this day (default: the store's as-of date)")
    p.add_argument("--deals", action="store_true", help="list each open deal's chances and what moved them")
    p.add_argument("--store", required=True, help="path of the store")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output (default table)")
    p.set_defaults(func=cmd_forecast)

    p = sub.add_parser("backtest", help="replay the history: forecast past periods as known then, score them")
    p.add_argument("--from", dest="from_", required=True, help="first forecast date (YYYY-MM-DD)")
    p.add_argument("--to", required=True, help="last forecast date (YYYY-MM-DD)")
    p.add_argument("--step", choices=list(STEPS), default="week", help="time between forecasts: a week, a fortnight or a calendar month (default week)")
    p.add_argument("--periods", type=int, default=1,
                   help="quarters forecast at each date: 1 the quarter the date is in (default), 2 also the next")
    p.add_argument("--chart", metavar="FILE.svg", help="also draw each method's forecast against the actual")
    p.add_argument("--store", required=True, help="path of the store")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table",
                   help="table (scores and calibration), csv (every forecast point) or json (everything)")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("snapshot", help="list the snapshots, or rebuild a past one's facts (N-Triples, or in the store)")
    p.add_argument("name", nargs="?", help="the snapshot: its IRI or its as-of date (none: list them all)")
    p.add_argument("--store", required=True, help="path of the store, or a SPARQL server's URL")
    p.add_argument("--system", help="the system, when several have a snapshot of that date")
    p.add_argument("-o", "--out", metavar="FILE.nt", help="write the facts here (default: standard output)")
    p.add_argument("--materialise", action="store_true",
                   help="write the facts into the snapshot's own graph, so that GRAPH <IRI> reads them")
    p.add_argument("--forget", action="store_true", help="take a materialised snapshot's facts out again")
    p.add_argument("--upgrade", action="store_true",
                   help="convert a store that keeps each snapshot whole (made before 0.2) into changes")
    p.set_defaults(func=cmd_snapshot)

    from .analytics.match import DEFAULT_THRESHOLD

    p = sub.add_parser("match", help="link accounts to legal entities, and one customer's records across systems")
    p.add_argument("--store", required=True, help="path of the store")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"the lowest confidence a link is asserted at (default {DEFAULT_THRESHOLD})")
    p.add_argument("--review", metavar="FILE.csv", help="write the candidates below the threshold here")
    p.set_defaults(func=cmd_match)

    p = sub.add_parser("scaffold", help="write a first mapping for a new source system from one of its exports")
    p.add_argument("export", help="folder holding the export's CSV files")
    p.add_argument("--system", required=True, help="the new system's name (lower case): mappings/NAME/ is written")
    p.add_argument("--force", action="store_true", help="overwrite a mapping already in mappings/NAME/")
    p.set_defaults(func=cmd_scaffold)

    p = sub.add_parser("map", help="run one RML mapping on its own and write N-Quads")
    p.add_argument("mapping", help="the mapping file (Turtle)")
    p.add_argument("--base-iri", help="base IRI for relative IRIs the mapping makes")
    p.add_argument("--data", metavar="DIR", help="folder the source files are in (default: the mapping's folder)")
    p.add_argument("-o", "--output", help="N-Quads file to write (default: standard output)")
    p.set_defaults(func=cmd_map)

    p = sub.add_parser("diagram", help="print the model as a Mermaid class diagram, or write it into a file")
    p.add_argument("--write", metavar="FILE.md", help="replace the diagram between the markers in this file")
    p.set_defaults(func=cmd_diagram)

    p = sub.add_parser("docs", help="write the ontology's HTML documentation and RDF downloads")
    p.add_argument("--out", default="docs/ontology", help="folder to write into (default docs/ontology)")
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("fmt", help="put Turtle files in canonical form (default: ontology/, shapes/, mappings/)")
    p.add_argument("paths", nargs="*", help="files or folders (default: the project's ontology, shapes and mappings)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not in canonical form")
    p.set_defaults(func=cmd_fmt)

    p = sub.add_parser("lint", help="check the ontology's style, the shapes against SHACL-SHACL, the canned "
                       "queries, the mappings' terms, and canonical form")
    p.add_argument("--export", help="also list the columns the mappings read that this export's files lack")
    p.add_argument("--source", help="the system of --export (default: recognised from its files)")
    p.set_defaults(func=cmd_lint)

    p = sub.add_parser("serve", help="serve the SPARQL endpoint and the canned-query API")
    p.add_argument("--store", required=True, help="path of the store")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads answering requests (default: the query slots, OKG_MAX_CONCURRENT_QUERIES, and 8 "
                        "more, for requests that wait for a slot or need none)")
    p.add_argument("--server", choices=["granian", "waitress"], default="granian",
                   help="the HTTP server: granian (Rust, the default) or waitress (pure Python)")
    p.add_argument("--workers", type=int, default=None,
                   help=f"granian worker processes (default: one per core, at most {DEFAULT_WORKERS_MAX}; 1 with "
                        "updates on or waitress); they share one in-memory copy of the store")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except OkgError as exc:
        print(f"okg {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into head or similar
        sys.stderr.close()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
