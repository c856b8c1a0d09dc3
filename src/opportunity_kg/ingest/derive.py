"""Stage 7, derive: the system's history (field and parent changes) and the facts derived from it
(stage intervals, hierarchy spells), rewritten only where they changed; whether they did."""

import pyoxigraph as ox

from ..store.history import DeriveScope, derived_facts, history_graph, intervals_graph
from ..store.snapshots import snapshots_graph
from ..store import ONTOLOGY_GRAPH, graph_changes, write_changes
from ..vocabulary import OKG, PROV, RDF_TYPE
from .load import replace_graph


def derive(report, target, changes, progress):
    """Add the history's new facts (``changes``) and bring the derived graph up to date, in the
    staged store or on the SPARQL server; whether either changed."""
    if target.remote:
        return _derive_remotely(report, target, changes, progress)
    changed, report.stage_facts_remade = derive_facts(report.source, report.graph, report.as_of, target, changes,
                                                      progress)
    return changed


def derive_facts(source, snapshot, as_of, target, changes, progress):
    """:func:`derive` for the staged store of ``source``'s snapshot ``snapshot`` of ``as_of``: (whether the history
    or the derived graph changed, how many deals' stage facts were made again or None for all).
    Needs no counts: the first ingest runs it while its triples are counted."""
    store, history = target.store, ox.NamedNode(history_graph(source))
    new_history = [ox.Quad(*t, history) for t in changes if ox.Quad(*t, history) not in store]
    store.extend(new_history)
    progress.phase("summarising the stage history")
    # the new snapshot's facts, in memory, are the system's latest when it started the chain or was
    # folded in there: read from memory, several times faster than the disk
    memory = (target.check, target.graph) if target.check is not None and (
        target.starts_chain or target.in_memory_fold) else None
    # (only the records made anew are in memory when unchanged rows were read again: the rest is read
    # off disk, about ten times slower a quad; copying the patterns into memory first, by a SPARQL
    # CONSTRUCT, took as long as reading them)
    facts = memory if not target.partial else None
    scope = derive_scope(target.folded, memory, changes) if memory is not None else None
    derived_changed = replace_graph(store, intervals_graph(source),
                                    lambda within: derived_facts(store, source, facts, within, as_of),
                                    digests_in=snapshots_graph(snapshot), scope=scope)
    return bool(new_history or derived_changed), scope.remade if scope is not None else None


def derive_scope(folded, facts, changes):
    """The :class:`~opportunity_kg.store.history.DeriveScope` of a snapshot folded in memory
    (``folded``: the facts it added and removed; ``facts``: (store, graph) of its facts; ``changes``:
    the history's new facts): the deals whose stage changes were added, changed or removed there.
    None (every deal) when it was not folded in memory, or when a sales stage itself changed."""
    if folded is None:
        return None
    added, removed = folded
    memory, graph = facts
    change_of, stage = ox.NamedNode(OKG + "changeOf"), ox.NamedNode(OKG + "SalesStage")
    deals, touched = set(), set()
    for facts_of in (added, removed, changes):
        for s, p, o in facts_of:
            if p == change_of:
                deals.add(o)
            elif p == RDF_TYPE and o == stage:
                return None  # a stage came or went: every deal's intervals and states may differ
            touched.add(s)
    for subject in touched:
        if any(True for _ in memory.quads_for_pattern(subject, RDF_TYPE, stage, graph)):
            return None  # a stage's order, or whether it is closed or won, changed
        deals.update(q.object for q in memory.quads_for_pattern(subject, change_of, None, graph))
    return DeriveScope(deals)


def _derive_remotely(report, target, changes, progress):
    """:func:`derive` on a SPARQL server, which also gets the ontology graph: only the differences are sent."""
    remote, changed = target.remote, False
    graphs = {ONTOLOGY_GRAPH: target.ontology_triples}
    if changes:
        history = ox.NamedNode(history_graph(report.source))
        kept = [(q.subject, q.predicate, q.object) for q in remote.quads_for_pattern(None, None, None, history)]
        graphs[history.value] = kept + changes
    adds, removes = graph_changes(remote, graphs)
    if adds or removes:
        write_changes(remote, adds, removes)
        changed = True
    progress.phase("summarising the stage history")  # from what the server now holds
    adds, removes = graph_changes(remote, {intervals_graph(report.source): list(derived_facts(remote, report.source))})
    if adds or removes:
        write_changes(remote, adds, removes)
        changed = True
    return changed


def count_history(report, changes, changed, holder):
    """Set the report's counts of field and parent changes: of ``changes``, or for a snapshot that
    changed nothing, of those the store holds from it."""
    if changed:
        report.history_changes = sum(1 for t in changes if t[1] == RDF_TYPE and t[2].value == OKG + "FieldChange")
        report.parent_changes = sum(1 for t in changes if t[1] == RDF_TYPE and t[2].value == OKG + "ParentChange")
    else:  # the same export again: the history it gave is in the store
        report.history_changes, report.parent_changes, report.previous_snapshot = stored_history(
            holder, report.source, report.graph)


def stored_history(store, system, snapshot):
    """(field changes, parent changes, the snapshot they compare with) the history of ``system``
    holds from ``snapshot``."""
    counts = {"FieldChange": 0, "ParentChange": 0}
    previous = None
    for kind, before, n in store.query(
            f"SELECT ?kind ?before (COUNT(?c) AS ?n) WHERE {{ GRAPH <{history_graph(system)}> {{ ?c a ?kind ; "
            f"<{PROV}wasDerivedFrom> <{snapshot}>, ?before FILTER(?before != <{snapshot}>) }} }} GROUP BY ?kind ?before"):
        counts[kind.value.rpartition("#")[2]] = int(n.value)
        previous = before.value
    return counts["FieldChange"], counts["ParentChange"], previous
