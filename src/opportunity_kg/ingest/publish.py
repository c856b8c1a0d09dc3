"""Stage 6, publish: describe the snapshot (PROV-O provenance and its digest) and make it its
system's newest state: the first snapshot is the current graph; a later one is folded in as
changes (:mod:`opportunity_kg.store.snapshots`), and the history of field changes comes from the
comparison. A snapshot whose digest is the stored one changes nothing."""

from datetime import datetime, timezone

import pyoxigraph as ox

from .. import __version__, settings
from ..store.history import changes_since, tracked_values
from ..store.snapshots import (copy_graph, count_changes, current_graph, fold, fold_in_memory, forget_description,
                         forget_digests, has_digests, settle, snapshots_graph, write_digests)
from ..vocabulary import OKG, PROV, RDF_TYPE, RDFS, XSD
from .count import triple_digest
from .rows import file_iri

#: quads sent to a SPARQL server per INSERT DATA request
UPLOAD_BATCH = 50_000


def describe(report, target, digest, export_dir):
    """Add the snapshot's description (:func:`provenance`) to its graph, and its ``okg:contentDigest``:
    the sum of its facts' digests (``digest``) and of its description's, but for the ingest
    run's (which differs each time)."""
    run = ox.NamedNode(report.graph + "#ingest-run")
    facts = provenance(report, export_dir)
    for triple in {t for t in facts if t[0] != run}:
        digest += triple_digest(triple)
    report.digest = f"{digest % 2 ** 128:032x}"
    facts.append((ox.NamedNode(report.graph), ox.NamedNode(OKG + "contentDigest"), ox.Literal(report.digest)))
    target.store.extend(ox.Quad(*t, target.description) for t in facts)


def publish(report, target, records, progress):
    """Make the described snapshot its system's newest state; return the history's new facts (field
    and parent changes against the snapshot before it) and whether the snapshot changed anything."""
    source, graph_iri, store, holder = report.source, report.graph, target.store, target.holder
    progress.phase("comparing with the previous snapshot")
    changes = []

    def compare(where, before_graph, before_iri, subjects=None):
        """The history of what changed: of every record, or only of ``subjects`` (the records whose
        facts changed; the others' tracked values are the same by their digests)."""
        before = tracked_values(where, before_graph, subjects)
        changes.extend(changes_since(before, tracked_values(target.working, target.graph.value, subjects), source,
                                     report.as_of, [before_iri, graph_iri]))
        report.previous_snapshot = before_iri

    changed = target.stored_digest != report.digest  # a snapshot stored without a digest counts as changed
    if changed and target.starts_chain:
        write_digests(store, source, records)  # each record's, for the next export's comparison
    if not changed:  # the same export again: the chain stays as it is
        store.remove_graph(target.graph)
    elif target.remote:
        upload(store, target.remote, graph_iri, target.graph)
    if changed and not target.starts_chain:
        progress.phase("storing what changed since the previous snapshot")
        if target.in_memory_fold and 2 * target.count > target.in_memory and not has_digests(store, source):
            # without the records' digests the whole current graph is compared in memory, and would not fit
            copy_graph(target.check, store, target.graph.value)
            target.in_memory_fold = False
        if target.in_memory_fold:
            target.folded = fold_in_memory(store, target.check, source, graph_iri, target.graph.value, compare,
                                           records)
        else:
            fold(holder, source, graph_iri, report.as_of, target.graph.value, target.replaced, compare)
            if not target.remote:
                forget_digests(store, source)  # the next ingest compares the whole graph, and keeps them again
        settle(holder, source)  # the snapshots before the newest keep their descriptions in the snapshots graph
        if target.folded is not None:  # folded in memory: the changes are at hand, no need to count them again
            report.facts_added, report.facts_removed = (len(facts) for facts in target.folded)
        else:
            report.facts_added, report.facts_removed = count_changes(holder, graph_iri)
    report.current_graph = current_graph(source)
    return changes, changed


def upload(store, remote, snapshot, incoming):
    """Send a snapshot built in memory to the SPARQL server: its description replaces the one of
    the same date, its facts go to the graph they are folded from; in requests of
    :data:`UPLOAD_BATCH` quads."""
    remote.update(" ;\n".join(forget_description(snapshot) + [f"DROP SILENT GRAPH <{incoming.value}>"]))
    for graph in (ox.NamedNode(snapshot), incoming):
        batch = []
        for q in store.quads_for_pattern(None, None, None, graph):
            batch.append((q.subject, q.predicate, q.object, graph))
            if len(batch) >= UPLOAD_BATCH:
                remote.write(batch, [])
                batch = []
        if batch:
            remote.write(batch, [])


def provenance(report, export_dir):
    """PROV-O facts about the snapshot: system, as-of date, files, the ingest run, counts."""
    g = ox.NamedNode(report.graph)
    run = ox.NamedNode(report.graph + "#ingest-run")
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")

    def lit(value, kind):
        return ox.Literal(str(value), datatype=ox.NamedNode(XSD + kind))

    def p(name):
        return ox.NamedNode((OKG if not name.startswith("prov:") else PROV) + name.split(":")[-1])

    totals = report.totals
    out = [
        (g, RDF_TYPE, ox.NamedNode(OKG + "Snapshot")),
        (g, RDF_TYPE, ox.NamedNode(PROV + "Entity")),
        (g, p("sourceSystem"), ox.Literal(report.source)),
        (g, p("asOf"), lit(report.as_of, "date")),
        (g, p("triples"), lit(report.triples, "integer")),
        (g, p("rowsRead"), lit(totals.rows_read, "integer")),
        (g, p("rowsLoaded"), lit(totals.rows_loaded, "integer")),
        (g, p("rowsQuarantined"), lit(totals.rows_quarantined, "integer")),
        (g, p("prov:wasGeneratedBy"), run),
        (run, RDF_TYPE, ox.NamedNode(OKG + "IngestRun")),
        (run, RDF_TYPE, ox.NamedNode(PROV + "Activity")),
        (run, p("prov:endedAtTime"), lit(now, "dateTime")),
        (run, ox.NamedNode(RDFS + "comment"), ox.Literal(f"okg ingest {__version__} of {export_dir.name}")),
    ]
    for name, c in report.files.items():
        f = ox.NamedNode(file_iri(report.graph, name))
        out += [
            (g, p("sourceFile"), f),
            (g, p("prov:wasDerivedFrom"), f),
            (run, p("prov:used"), f),
            (f, RDF_TYPE, ox.NamedNode(OKG + "SourceFile")),
            (f, p("fileName"), ox.Literal(name)),
            (f, p("rowsRead"), lit(c.rows_read, "integer")),
            (f, p("rowsLoaded"), lit(c.rows_loaded, "integer")),
            (f, p("rowsQuarantined"), lit(c.rows_quarantined, "integer")),
        ]
    return out


REMOVED_SINCE = ox.NamedNode(OKG + "removedSinceCompaction")


def due_for_compaction(store, report):
    """Whether this re-ingest should compact the store: the facts removed since the last compaction
    (this snapshot's included) have reached the ``compact_share`` of the snapshot's triples. Keeps
    the running count in the system's snapshots graph (``okg:removedSinceCompaction``), set back
    to 0 when it says yes."""
    graph = ox.NamedNode(snapshots_graph(report.graph))
    kept = list(store.quads_for_pattern(graph, REMOVED_SINCE, None, graph))
    removed = sum(int(q.object.value) for q in kept) + report.facts_removed
    due = removed >= settings.get("compact_share") * max(report.triples, 1)
    for quad in kept:
        store.remove(quad)
    store.add(ox.Quad(graph, REMOVED_SINCE, ox.Literal(str(0 if due else removed), datatype=ox.NamedNode(XSD + "integer")),
                      graph))
    return due