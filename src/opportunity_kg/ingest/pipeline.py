"""The ingest, stage by stage: read, map, load, check, count, publish, derive (see the package's
description). Each stage is a function of its own module; this one only runs them in order."""

import functools
import gc
from collections import Counter
from pathlib import Path

from ..store.history import GRAPH_BASE
from ..paths import MAPPINGS_DIR
from ..progress import Progress
from ..store.remote import RemoteStore, is_remote
from ..store import open_store
from ..analytics.support import support
from ..validation.validate import droppable, from_rdflib, load_ontology, load_shapes, value_rules
from .check import check_rows
from .count import count_rows
from .derive import count_history, derive, derive_facts
from .load import Target, workspace
from .mapping import load_reference, map_export
from .publish import describe, due_for_compaction, publish
from .read import as_of_in, plan_export
from .report import IngestReport, unique, warnings_path, write_quarantine, write_warnings
from .rows import Rows
from .state import Run
from .unchanged import (Miss, add_context, complete, file_sources, fingerprint, keep_rows, keeps_rows, plan_reuse,
                        write_rows)


def ingest(export_dir, store_path, *, source=None, as_of=None, quarantine=None, mappings_dir=MAPPINGS_DIR,
           progress=None):
    """Ingest the export in ``export_dir`` into the store at ``store_path`` (a folder, or a SPARQL
    server's URL); return an :class:`~opportunity_kg.ingest.report.IngestReport`.

    ``source`` names the system (found from the files when not given), ``as_of`` the date the
    export is as of (found from its dates when not given), ``quarantine`` where the rejected rows
    are written (beside the store when not given). ``progress`` (a
    :class:`~opportunity_kg.progress.Progress`) shows how far it is on a terminal."""
    progress = progress or Progress(enabled=False)
    try:
        try:
            report, missed = _ingest(export_dir, store_path, source, as_of, quarantine, mappings_dir, progress), ""
        except Miss as miss:  # a change reached rows that did not change: every row is mapped
            missed = str(miss)
            miss.__traceback__ = None  # its frames hold the staged store, which must close before it is staged again
        if missed:
            gc.collect()
            progress.phase("mapping every row again")
            report = _ingest(export_dir, store_path, source, as_of, quarantine, mappings_dir, progress, reuse=False)
            report.reuse_missed = missed
        progress.phase("checking what the canned queries can answer")
        report.support = support(open_store(store_path, read_only=True), cache=False)
        return report
    finally:
        progress.close()


def _ingest(export_dir, store_path, source, as_of, quarantine, mappings_dir, progress, reuse=True):
    plan = plan_export(export_dir, source, mappings_dir)
    store_path, quarantine = _places(store_path, quarantine)
    notes = []
    if as_of:
        as_of = str(as_of)
    else:
        as_of, how = as_of_in(plan.planned)
        if how:
            notes.append(how)
    graph_iri = f"{GRAPH_BASE}{plan.source}/{as_of}"
    run = Run(plan, as_of, graph_iri, Rows(graph_iri), notes=notes)
    shapes, ontology = load_shapes(), load_ontology()
    lenient = droppable(value_rules(shapes))
    for mapping, _ in plan.planned:
        mapping.droppable = lenient
    ontology_triples = [tuple(from_rdflib(t) for t in spo) for spo in ontology]
    remote = RemoteStore(store_path) if is_remote(store_path) else None
    # a Target stops its loading threads if anything below fails (a file that cannot be read, say)
    with workspace(store_path) as work, Target(work.store, remote, plan.source, graph_iri, as_of,
                                               ontology_triples) as target:
        if target.upgraded:
            run.notes.append(f"the store kept each snapshot of {', '.join(target.upgraded)} whole; they are now "
                             "kept as changes (the current graph and what each snapshot added and removed)")
        if keeps_rows(target):
            run.row_keys = {}
            run.reuse = plan_reuse(run, target, progress) if reuse else None
            target.partial = run.reuse is not None
        map_export(run, target, progress)
        load_reference(run, target)
        if target.spilled:
            run.notes.append(f"the export has more triples than ingest_memory_triples allows in memory "
                             f"({target.in_memory_why}): validated and counted in the on-disk store, "
                             "several times slower")
        progress.phase(f"writing {target.count:,} triples to the store")
        target.close()
        context = add_context(run.reuse, target, run.source) if run.reuse is not None else None
        check_rows(run, target, shapes, ontology, progress, keep=run.reuse.keep if run.reuse is not None else None)
        if context is not None:
            target.check.remove_graph(context)
        # a first snapshot's stage facts need no counts, nor anything published: they are derived from
        # its facts in memory while another process counts its triples, on the other core
        early = target.starts_chain and not remote and target.check is not None
        digest, records = count_rows(run, target, progress, meanwhile=functools.partial(
            derive_facts, run.source, run.graph, run.as_of, target, [], progress) if early else None)
        if run.reuse is not None:
            digest, records = complete(run, run.reuse, digest, records)
        report = _report(run, store_path, quarantine)
        report.rows_reused = run.reuse.rows - run.reuse.mapped if run.reuse is not None else 0
        describe(report, target, digest, plan.export_dir)
        changes, changed = publish(report, target, records, progress)
        if changed and not remote:  # for the next export: the rows this one loaded cleanly (or none)
            rows, stamp = None, ""
            if run.reuse is not None:  # (the fingerprint it was read again with is this export's)
                rows, stamp = keep_rows(run, records), run.reuse.fingerprint
            elif run.row_keys is not None and (target.starts_chain or target.folded is not None):
                files = file_sources(plan)  # (None: a file is empty)
                rows = keep_rows(run, records) if files else None
                stamp = fingerprint(plan, files) if rows is not None else ""
            write_rows(target.store, run.source, stamp, rows)
        count_history(report, changes, changed, target.holder)
        write_quarantine(quarantine, run.rejects, run.rows.headers)
        write_warnings(warnings_path(quarantine), run.warnings)
        if early:  # (a first snapshot is compared with none: it adds no history)
            derived, report.stage_facts_remade = run.meanwhile
        else:
            derived = derive(report, target, changes, progress)
        report.changed = bool(changed or derived or (target.ontology_changed and not remote))
        work.keep = report.changed
        if report.changed and not target.starts_chain and not remote and due_for_compaction(target.store, report):
            # what a re-ingest deleted stays on disk until RocksDB compacts it, and slows reads meanwhile
            progress.phase("compacting the store")
            target.store.optimize()
            report.compacted = True
        progress.phase("swapping the new store in" if report.changed else "no change")
        del target  # the staged store closes when its last handle goes, before it is swapped in or thrown away
    return report


def _places(store_path, quarantine):
    """The store (a Path, or a SPARQL server's URL as given) and the quarantine file: beside the
    store when not given, or in the working folder for a server."""
    if is_remote(store_path):
        return store_path, Path(quarantine) if quarantine else Path("okg-quarantine.csv")
    store_path = Path(store_path)
    return store_path, Path(quarantine) if quarantine else store_path.with_name(store_path.name + "-quarantine.csv")


def _report(run, store_path, quarantine):
    """The report of what was read, loaded, quarantined and warned about (the snapshot's
    description and history are added by the stages after)."""
    run.warnings = unique(run.warnings)
    report = IngestReport(run.source, run.as_of, run.graph, str(store_path), str(quarantine), run.counts,
                          run.plan.skipped, run.file_notes + run.notes + [w.text() for w in run.warnings],
                          sum(c.triples for c in run.counts.values()))
    report.warnings_file = str(warnings_path(quarantine))
    report.warning_counts = dict(sorted(Counter(w.kind for w in run.warnings).items()))
    if run.notes or run.file_notes:
        report.warning_counts["note"] = len(run.notes) + len(run.file_notes)
    report.unmapped = run.plan.unmapped(run.counts)
    report.lookups = sorted(run.plan.lookups)
    return report
