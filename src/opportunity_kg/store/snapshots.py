"""Snapshots stored as changes: one current graph per system, and what each snapshot changed.

A system's exports arrive week after week, and most of each export is what
the one before said. So the store keeps, per source system:

- ``graph/<system>/current``: the facts of the system's latest snapshot. "Now"
  reads this one graph per system.
- each snapshot's description (``okg:Snapshot``: its as-of date, files,
  counts, digest, ingest run): the newest in its own graph
  ``graph/<system>/<as-of>``, the older ones in ``graph/<system>/snapshots``
  (:func:`settle`).
- in ``graph/<system>/snapshots`` too, what each snapshot added to and took
  from the snapshot before it, one RDF 1.2 triple term per fact:
  ``<snapshot> okg:addedFact <<( s p o )>>`` or ``okg:removedFact`` (the
  system's first snapshot has none: it is where the chain starts).

All of them are part of "now", which is then every named graph of the store,
read as their union (faster in Oxigraph than a list of graphs): the changes
sit there as statements about snapshots, which no query about deals
matches, and the store grows with the changes, not with the number of
exports. A past snapshot's facts are
rebuilt on demand (:func:`snapshot_triples`): start from the current graph
and undo, newest first, what each later snapshot added and removed. That
costs one copy of the current graph plus the later changes; ``okg snapshot
IRI`` writes them out, or materialises them in a graph named by the
snapshot's IRI so that ``GRAPH <IRI>`` reads them.

A record (a subject) that did not change keeps the link to the file and line
it was read from (``prov:wasDerivedFrom``) in the export that last changed
it, so a line shifted by a new row above it is not a change; a record that
changed takes its link from the new export.

Every step is a SPARQL 1.1 Update run where the data is, so the same code
serves the embedded store and a SPARQL server (the remote path).
"""

import contextlib
import tempfile
from pathlib import Path
from urllib.parse import quote, unquote

import pyoxigraph as ox

from ..errors import OkgError
from .history import GRAPH_BASE, OKG, PROV, current_graph, snapshots, snapshots_graph_of
from .remote import RemoteStore, is_remote
from . import Loader, delete_quads, open_store, staged

DERIVED = f"<{PROV}wasDerivedFrom>"


#: the predicates that tie a snapshot to a fact it added or removed (an RDF 1.2 triple term), in the
#: store's default graph, which "now" (the union of the named graphs) never reads
ADDED, REMOVED = f"<{OKG}addedFact>", f"<{OKG}removedFact>"


def snapshots_graph(snapshot):
    """:func:`~opportunity_kg.store.history.snapshots_graph_of` the system of ``snapshot`` (its IRI,
    ``graph/<system>/<as-of>``)."""
    return snapshots_graph_of(snapshot[len(GRAPH_BASE):].rsplit("/", 1)[0])


def _change(kind, snapshot, s="?s", p="?p", o="?o"):
    """The pattern of one change of ``snapshot`` (``kind`` :data:`ADDED` or :data:`REMOVED`)."""
    return f"GRAPH <{snapshots_graph(snapshot)}> {{ <{snapshot}> {kind} <<( {s} {p} {o} )>> }}"


def changes(store, snapshot):
    """(the facts ``snapshot`` added, the facts it removed) against the snapshot before it, as sets
    of (s, p, o) terms."""
    return tuple({tuple(row) for row in store.query(f"SELECT ?s ?p ?o WHERE {{ {_change(kind, snapshot)} }}")}
                 for kind in (ADDED, REMOVED))


def incoming_graph(snapshot):
    """Where an ingest puts a new snapshot's facts before it is folded into the chain."""
    return f"{snapshot}/incoming"


def chain(store, system):
    """``system``'s snapshots, oldest first: a list of (as-of date text, snapshot IRI)."""
    return sorted((a, g) for g, s, a in snapshots(store) if s == system)


def _graphs(store):
    return {g.value for g in store.named_graphs()}


def _run(store, *updates):
    for update in updates:
        store.update(update)


def _copy(source, target):
    """SPARQL ``COPY``: ``target`` holds exactly what ``source`` holds."""
    return f"COPY SILENT <{source}> TO <{target}>"


def _undo(graph, snapshot):
    """Updates that take ``snapshot``'s changes out of ``graph`` (what it added goes, what it removed comes back)."""
    return [f"DELETE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }} WHERE {{ {_change(ADDED, snapshot)} }}",
            f"INSERT {{ GRAPH <{graph}> {{ ?s ?p ?o }} }} WHERE {{ {_change(REMOVED, snapshot)} }}"]


def _apply(graph, snapshot):
    """Updates that make ``graph`` (the state before ``snapshot``) the state after it."""
    return [f"DELETE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }} WHERE {{ {_change(REMOVED, snapshot)} }}",
            f"INSERT {{ GRAPH <{graph}> {{ ?s ?p ?o }} }} WHERE {{ {_change(ADDED, snapshot)} }}"]


def _diff(before, after, snapshot, exact=False):
    """Updates that record as ``snapshot``'s changes what turns graph ``before`` into graph
    ``after``. The links to files and lines count only for records whose facts changed (unless
    ``exact``): a record read again unchanged keeps the link it had."""
    facts = "" if exact else f"FILTER(?p != {DERIVED})"
    out = _drop_changes(snapshot) + [
        f"INSERT {{ {_change(ADDED, snapshot)} }} WHERE {{ GRAPH <{after}> {{ ?s ?p ?o }} {facts} "
        f"FILTER NOT EXISTS {{ GRAPH <{before}> {{ ?s ?p ?o }} }} }}",
        f"INSERT {{ {_change(REMOVED, snapshot)} }} WHERE {{ GRAPH <{before}> {{ ?s ?p ?o }} {facts} "
        f"FILTER NOT EXISTS {{ GRAPH <{after}> {{ ?s ?p ?o }} }} }}"]
    if exact:
        return out
    changed = (f"{{ SELECT DISTINCT ?s WHERE {{ {{ {_change(ADDED, snapshot, p='?p0', o='?o0')} }} UNION "
               f"{{ {_change(REMOVED, snapshot, p='?p0', o='?o0')} }} }} }}")
    # both links are found before either is written, so the second sees the same changed records
    return out + [
        f"INSERT {{ {_change(ADDED, snapshot, p=DERIVED)} . {_change(REMOVED, snapshot, p=DERIVED, o='?old')} }} WHERE {{ "
        f"{changed} {{ GRAPH <{after}> {{ ?s {DERIVED} ?o }} FILTER NOT EXISTS {{ GRAPH <{before}> {{ ?s {DERIVED} ?o }} }} }} "
        f"UNION {{ GRAPH <{before}> {{ ?s {DERIVED} ?old }} FILTER NOT EXISTS {{ GRAPH <{after}> {{ ?s {DERIVED} ?old }} }} }} }}"]


def state_into(store, system, snapshot, graph):
    """Write into ``graph`` the facts ``system`` held as of ``snapshot`` (a snapshot IRI of its
    chain): the current graph with every later snapshot's changes undone, newest first."""
    dates = chain(store, system)
    as_of = dict((iri, a) for a, iri in dates)[snapshot]
    _run(store, _copy(current_graph(system), graph))
    for iri in reversed([iri for a, iri in dates if a > as_of]):
        _run(store, *_undo(graph, iri))


def fold(store, system, snapshot, as_of, incoming, replaced=False, previous_state=None):
    """Fold a new snapshot of ``system`` (IRI ``snapshot``, dated ``as_of``, its facts in graph
    ``incoming``; its description already written) into the chain, and drop ``incoming``.

    ``replaced``: the chain held a snapshot of the same date already (the same export again, or a
    new export of that day), whose changes are replaced. ``previous_state(store, graph, iri)`` is called,
    when there is a snapshot before this one, with the graph that holds that snapshot's facts
    and its IRI, while the graph still holds them (the history compares them with the new ones)."""
    dates = [(a, g) for a, g in chain(store, system) if g != snapshot]
    previous = ([g for a, g in dates if a < as_of] or [None])[-1]
    following = ([g for a, g in dates if a > as_of] or [None])[0]
    current = current_graph(system)
    if following is None:  # the newest snapshot: the current graph becomes it
        if replaced:  # what the old export of this date changed is undone first
            _run(store, *_undo(current, snapshot))
        if previous is None:
            _run(store, _copy(incoming, current), f"DROP SILENT GRAPH <{incoming}>", *_drop_changes(snapshot))
            return
        _run(store, *_diff(current, incoming, snapshot))
        if previous_state:
            previous_state(store, current, previous)
        _run(store, *_apply(current, snapshot), f"DROP SILENT GRAPH <{incoming}>")
        return
    # older than the newest (a backfill): the next snapshot's changes are taken against this one
    state_next, base = _scratch(snapshot, "next"), _scratch(snapshot, "before")
    state_into(store, system, following, state_next)
    if previous is not None:
        state_into(store, system, previous, base)  # undoes the replaced export's changes too, while they are there
    _run(store, *_drop_changes(snapshot))
    if previous is not None:
        _run(store, *_diff(base, incoming, snapshot))
        if previous_state:
            previous_state(store, base, previous)
        # this snapshot's own state: the one before with its changes (records read again unchanged keep their links)
        _run(store, _copy(base, incoming), *_apply(incoming, snapshot), f"DROP SILENT GRAPH <{base}>")
    _run(store, *_diff(incoming, state_next, following, exact=True), f"DROP SILENT GRAPH <{state_next}>",
         f"DROP SILENT GRAPH <{incoming}>")


def fits_in_memory(store, system, snapshot, as_of):
    """Whether :func:`fold_in_memory` can fold this snapshot: it is newer than every snapshot of
    ``system`` the store holds (the usual weekly case; a backfill or a new export of a stored date
    goes through :func:`fold`)."""
    dates = [(a, g) for a, g in chain(store, system) if g != snapshot]
    return bool(dates) and all(a < as_of for a, _ in dates) and snapshot not in {g for _, g in dates}


def fold_in_memory(disk, memory, system, snapshot, incoming, previous_state=None, records=None):
    """:func:`fold` for a snapshot newer than every other (:func:`fits_in_memory`), whose facts are
    in graph ``incoming`` of the in-memory store ``memory`` (where the ingest validated them); only
    the changes are written to the store ``disk``.

    With ``records`` (subject IRI -> its :func:`record_entry`, as the ingest's count made them; a
    blank node's key is its ``_:`` form) and the digests the last ingest kept (:func:`write_digests`),
    the records are compared by digest and only the changed ones are read off disk; otherwise the
    whole current graph is copied into memory and compared there. Returns (the facts added, the
    facts removed): sets of (s, p, o) terms."""
    current = current_graph(system)
    previous = [iri for _, iri in chain(disk, system) if iri != snapshot][-1]
    kept = read_digests(disk, system) if records is not None else None
    by_digest = bool(kept) and not any(key.startswith("_:") for key in records)
    if by_digest:
        changed = [iri for iri, entry in records.items() if not same_digest(kept.get(iri), entry)]
        gone = [iri for iri in kept if iri not in records]
        subjects = [ox.NamedNode(iri) for iri in changed + gone]
        before = {(q.subject, q.predicate, q.object) for s in subjects
                  for q in disk.quads_for_pattern(s, None, None, ox.NamedNode(current))}
        after = {(q.subject, q.predicate, q.object) for s in subjects
                 for q in memory.quads_for_pattern(s, None, None, ox.NamedNode(incoming))}
        added, removed = _diff_records(before, after)
        if previous_state:  # only the records that changed can have changed values
            previous_state(disk, current, previous, subjects)
    else:  # no digests kept (a store written another way): the whole graph is compared
        copy_graph(disk, memory, current)
        _run(memory, *_diff(current, incoming, snapshot))
        if previous_state:
            previous_state(memory, current, previous)
        added, removed = changes(memory, snapshot)
        _run(memory, f"DROP SILENT GRAPH <{current}>", *_drop_changes(snapshot))
    delete_quads(disk, [(*t, ox.NamedNode(current)) for t in removed])
    loader = Loader([(disk, ox.NamedNode(current))])
    loader.add(list(added))
    loader.close()
    record_changes(disk, snapshot, added, removed)
    if by_digest:  # every record's digest: those that changed, came or went, and the others as they were
        write_table(disk, snapshots_graph_of(system), RECORD_DIGESTS, records)
    elif records is not None:
        write_digests(disk, system, records)
    return added, removed


def _diff_records(before, after):
    """(added, removed) between two sets of triples of the same records, as :func:`_diff` counts
    them: the facts that differ, and the links to lines only of records whose facts changed."""
    derived = PROV + "wasDerivedFrom"
    old = {t for t in before if t[1].value != derived}
    new = {t for t in after if t[1].value != derived}
    added, removed = new - old, old - new
    moved = {t[0] for t in added | removed}
    added |= {t for t in after - before if t[1].value == derived and t[0] in moved}
    removed |= {t for t in before - after if t[1].value == derived and t[0] in moved}
    return added, removed


#: the property that kept one record's digest (versions before digest tables: dropped when met)
RECORD_DIGEST = OKG + "recordDigest"
#: the property of a digest table's parts that keeps the records' digests (:func:`write_table`)
RECORD_DIGESTS = OKG + "recordDigests"


#: the bits of a record's or derived subject's hash that are kept: all 128 (the snapshot's digest is
#: their sum, so a record read again unchanged adds its kept digest to it)
DIGEST_BITS = 128
#: the bits two kept digests are compared by (15 hexadecimal digits, what tables kept before
#: DIGEST_BITS was 128): a changed record keeps its digest by chance once in 2 ** 60
COMPARED_BITS = 60
#: the lines ("IRI digest") in each literal of a digest table
DIGEST_LINES = 2000


def digest_text(value):
    """A record's (or a derived subject's) kept digest: the low :data:`DIGEST_BITS` bits of the sum
    of its triples' hashes (``value``), in hexadecimal."""
    return f"{value % 2 ** DIGEST_BITS:0{DIGEST_BITS // 4}x}"


def record_entry(value, file=None, triples=0):
    """A record's line in the digest table: its :func:`digest_text`, and where the ingest's count
    counted its triples (``file``, ``triples``: "digest/triples/file", the file's name
    percent-encoded), which lets the next ingest count a record it does not read again."""
    return digest_text(value) + (f"/{triples}/{quote(file, safe='')}" if file is not None else "")


def entry_parts(entry):
    """(the digest as a number, triples, file) of a :func:`record_entry`; None for a digest alone
    (a table kept before the counts were)."""
    digest, _, rest = entry.partition("/")
    if not rest or len(digest) != DIGEST_BITS // 4:
        return None
    triples, _, file = rest.partition("/")
    return int(digest, 16), int(triples), unquote(file)


def same_digest(kept, new):
    """Whether two kept digests (or :func:`record_entry` s) say the same facts, by their low
    :data:`COMPARED_BITS` bits; False when either is missing."""
    if kept is None or new is None:
        return False
    width = COMPARED_BITS // 4
    return kept.partition("/")[0][-width:] == new.partition("/")[0][-width:]


def read_table(store, graph, predicate):
    """IRI -> digest text, from the digest table ``predicate`` keeps in ``graph`` (:func:`write_table`)."""
    out = {}
    for line in read_lines(store, graph, predicate):
        iri, _, digest = line.rpartition(" ")
        out[iri] = digest
    return out


def write_table(store, graph, predicate, digests):
    """Keep ``digests`` (IRI -> digest text) as a digest table in ``graph``, in place of the one kept
    before (:func:`write_lines`, a line "IRI digest" each). Two million records are a thousand quads,
    read in about a second, where a quad per record took 24 s to read at 100,000 opportunities
    and 20 s to write."""
    write_lines(store, graph, predicate, [f"{iri} {digest}" for iri, digest in digests.items()])


def read_lines(store, graph, predicate):
    """The lines of the table ``predicate`` keeps in ``graph`` (:func:`write_lines`)."""
    for quad in store.quads_for_pattern(None, ox.NamedNode(predicate), None, ox.NamedNode(graph)):
        yield from quad.object.value.split("\n")


def write_lines(store, graph, predicate, lines):
    """Keep ``lines`` (text without line breaks) as a table in ``graph``, in place of the one kept
    before: literals of :data:`DIGEST_LINES` lines each, the objects of ``predicate`` on
    ``<graph/digests/...>``."""
    where, kind = ox.NamedNode(graph), ox.NamedNode(predicate)
    for quad in list(store.quads_for_pattern(None, kind, None, where)):
        store.remove(quad)
    name = predicate.rsplit("#", 1)[-1]
    store.extend(ox.Quad(ox.NamedNode(f"{graph}/digests/{name}/{n // DIGEST_LINES + 1}"), kind,
                         ox.Literal("\n".join(lines[n:n + DIGEST_LINES])), where)
                 for n in range(0, len(lines), DIGEST_LINES))


def read_digests(store, system):
    """Subject IRI -> the digest (:func:`digest_text`) of its facts in ``system``'s current graph, as
    the last ingest kept them (none where a version before digest tables kept them: then the
    records are compared whole once)."""
    return read_table(store, snapshots_graph_of(system), RECORD_DIGESTS)


def has_digests(store, system):
    """Whether the last ingest of ``system`` kept its records' digests (:func:`write_digests`)."""
    return next(iter(store.quads_for_pattern(None, ox.NamedNode(RECORD_DIGESTS), None,
                                             ox.NamedNode(snapshots_graph_of(system)))), None) is not None


def write_digests(store, system, records):
    """Keep each record's :func:`record_entry` (``records``: subject IRI -> entry; blank nodes,
    keyed ``_:``, are left out) in ``system``'s snapshots graph, in place of the ones kept before."""
    forget_digests(store, system)
    write_table(store, snapshots_graph_of(system), RECORD_DIGESTS,
                {key: entry for key, entry in records.items() if not key.startswith("_:")})


def forget_digests(store, system):
    """Drop ``system``'s record digests (after a change made without them: the next ingest compares
    whole), and any a version before digest tables kept one by one."""
    graph = snapshots_graph_of(system)
    _run(store, f"DELETE WHERE {{ GRAPH <{graph}> {{ ?s <{RECORD_DIGESTS}> ?d }} }}",
         f"DELETE WHERE {{ GRAPH <{graph}> {{ ?s <{RECORD_DIGEST}> ?d }} }}")


def record_changes(store, snapshot, added, removed):
    """Write ``snapshot``'s changes (sets of (s, p, o) terms) into its system's snapshots graph, at
    bulk-load speed."""
    loader = Loader([(store, ox.NamedNode(snapshots_graph(snapshot)))], streamed=[store])  # one bulk load
    for kind, facts in ((ADDED, added), (REMOVED, removed)):
        for t in facts:
            loader.add_line(f"<{snapshot}> {kind} <<( {t[0]} {t[1]} {t[2]} )>> .")
    loader.close()


def copy_graph(source, target, graph):
    """Copy one named graph from one store to another (the same name), at bulk-load speed, through
    a temporary N-Triples file (so it is never all in memory as Python objects)."""
    with tempfile.TemporaryDirectory(prefix="okg-copy-") as folder:
        path = Path(folder) / "graph.nt"
        source.dump(str(path), ox.RdfFormat.N_TRIPLES, from_graph=ox.NamedNode(graph))
        target.bulk_load(path=str(path), format=ox.RdfFormat.N_TRIPLES, to_graph=ox.NamedNode(graph))


def _drop_changes(snapshot):
    return [f"DELETE WHERE {{ {_change(kind, snapshot)} }}" for kind in (ADDED, REMOVED)]


def _scratch(snapshot, name):
    return f"{snapshot}/{name}"


def snapshot_triples(store, snapshot):
    """The facts of a past or current snapshot (its IRI), rebuilt from the current graph and the
    later snapshots' changes, as a list of (s, p, o) terms."""
    system, _ = _system_of(store, snapshot)
    if current_graph(system) not in _graphs(store):
        raise OkgError("the store keeps snapshots whole (made by an earlier version); ingest an export "
                       "into it, or run `okg snapshot --upgrade --store STORE`, to keep them as changes")
    scratch = _scratch(snapshot, "rebuilt")
    state_into(store, system, snapshot, scratch)
    try:
        return [(q.subject, q.predicate, q.object)
                for q in store.quads_for_pattern(None, None, None, ox.NamedNode(scratch))]
    finally:
        _run(store, f"DROP SILENT GRAPH <{scratch}>")


def whole_snapshots(store):
    """The systems whose snapshots are stored whole (a store made before snapshots were kept as
    changes): their snapshot graphs hold facts and there is no current graph."""
    graphs = _graphs(store)
    systems = {s for _, s, _ in snapshots(store)}
    return sorted(s for s in systems if current_graph(s) not in graphs)


def upgrade(store):
    """Convert a store whose snapshots are kept whole into the chain of changes: the newest
    snapshot's facts become the current graph, each later snapshot keeps what it added and
    removed (exactly, links included), and every snapshot graph keeps only its description.
    Returns the systems converted."""
    systems = whole_snapshots(store)
    for system in systems:
        dates = chain(store, system)
        facts = {}
        for _, iri in dates:
            facts[iri] = _scratch(iri, "facts")
            _run(store, _copy(iri, facts[iri]),
                 f"DELETE {{ GRAPH <{facts[iri]}> {{ ?s ?p ?o }} }} WHERE {{ GRAPH <{facts[iri]}> {{ ?s ?p ?o }} "
                 f"FILTER({_describes(iri)}) }}")
        for (_, older), (_, newer) in zip(dates, dates[1:]):
            _run(store, *_diff(facts[older], facts[newer], newer, exact=True))
        _run(store, _copy(facts[dates[-1][1]], current_graph(system)))
        for _, iri in dates:
            _run(store, f"DROP SILENT GRAPH <{facts[iri]}>")
            dematerialise(store, iri)
        settle(store, system)
    return systems


def _system_of(store, snapshot):
    for iri, system, as_of in snapshots(store):
        if iri == snapshot:
            return system, as_of
    known = ", ".join(f"<{g}>" for g, _, _ in sorted(snapshots(store), key=lambda s: (s[1], s[2]))) or "none"
    raise OkgError(f"<{snapshot}> is not a snapshot in this store; its snapshots are {known}")


def find_snapshot(store, name, system=None):
    """The IRI of the snapshot ``name`` names: its IRI, or its as-of date (with ``system`` when
    several systems have a snapshot of that date)."""
    found = [(g, s) for g, s, a in snapshots(store) if name in (g, a) and (system is None or s == system)]
    if len(found) == 1:
        return found[0][0]
    if found:
        raise OkgError(f"several systems have a snapshot as of {name} ({', '.join(sorted(s for _, s in found))}); "
                       "name one with --system")
    known = ", ".join(f"{s} {a}" for _, s, a in sorted(snapshots(store), key=lambda s: (s[1], s[2]))) or "none"
    raise OkgError(f"no snapshot {name!r}{' of ' + system if system else ''} in this store; name one by its "
                   f"as-of date or IRI (its snapshots: {known})")


def unread_snapshots(store, text, graphs=()):
    """The past snapshots a query names (in its text, or among the dataset's ``graphs``) whose own
    graphs hold only their descriptions: a query reading their facts there finds none, and the
    answer should say so. Cheap when the text names no graph of ours."""
    if GRAPH_BASE not in text and not any(GRAPH_BASE in str(g) for g in graphs):
        return []
    named = text + " " + " ".join(f"<{g}>" for g in graphs)
    latest = {}
    for iri, system, as_of in snapshots(store):
        latest[system] = max(latest.get(system, (as_of, iri)), (as_of, iri))
    newest = {iri for _, iri in latest.values()}
    return [iri for iri, _, _ in snapshots(store)
            if f"<{iri}>" in named and iri not in newest and not is_materialised(store, iri)]


def is_materialised(store, snapshot):
    """Whether ``snapshot``'s own graph holds its facts beside its description (:func:`materialise`)."""
    return bool(store.query(f"ASK {{ GRAPH <{snapshot}> {{ ?s ?p ?o FILTER(!({_describes(snapshot)})) }} }}"))


def settle(store, system):
    """Move the descriptions of ``system``'s past snapshots (all but the newest) from their own
    graphs into the system's snapshots graph; the newest stays in its own."""
    dates = chain(store, system)
    for _, iri in dates[:-1]:
        where = f"GRAPH <{iri}> {{ ?s ?p ?o FILTER({_describes(iri)}) }}"
        _run(store, f"INSERT {{ GRAPH <{snapshots_graph(iri)}> {{ ?s ?p ?o }} }} WHERE {{ {where} }}",
             f"DELETE {{ GRAPH <{iri}> {{ ?s ?p ?o }} }} WHERE {{ {where} }}")
        _drop_if_empty(store, iri)


def _drop_if_empty(store, graph):
    if not store.query(f"ASK {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}"):
        _run(store, f"DROP SILENT GRAPH <{graph}>")


def forget_description(snapshot):
    """Updates that take a snapshot's description (and a materialised copy of its facts) out, wherever
    it is, keeping its changes: before an export of the same date replaces it."""
    return [f"DROP SILENT GRAPH <{snapshot}>",
            f"DELETE {{ GRAPH <{snapshots_graph(snapshot)}> {{ ?s ?p ?o }} }} WHERE {{ GRAPH <{snapshots_graph(snapshot)}> "
            f"{{ ?s ?p ?o FILTER({_describes(snapshot)}) FILTER(?p NOT IN ({ADDED}, {REMOVED})) }} }}"]


def _describes(snapshot):
    return f"?s = <{snapshot}> || STRSTARTS(STR(?s), \"{snapshot}/\") || STRSTARTS(STR(?s), \"{snapshot}#\")"


def materialise(store, snapshot):
    """Write a past snapshot's facts into its own graph, beside its description, so that
    ``GRAPH <snapshot> { ... }`` reads them: a whole copy of that snapshot, kept until
    :func:`dematerialise` (or until an export of the same date replaces it). The newest snapshot
    is not materialised: its facts are the current graph. Returns how many facts it wrote."""
    system, _ = _system_of(store, snapshot)
    if chain(store, system)[-1][1] == snapshot:
        raise OkgError(f"<{snapshot}> is the latest snapshot of {system}: its facts are the graph "
                       f"<{current_graph(system)}>, part of every query's default graph")
    scratch = _scratch(snapshot, "rebuilt")
    state_into(store, system, snapshot, scratch)
    _run(store, f"ADD SILENT <{scratch}> TO <{snapshot}>", f"DROP SILENT GRAPH <{scratch}>")
    return _count(store, snapshot) - _count(store, snapshot, description=True)


def dematerialise(store, snapshot):
    """Take a materialised snapshot's facts out of its graph again (its description stays)."""
    _system_of(store, snapshot)
    _run(store, f"DELETE {{ GRAPH <{snapshot}> {{ ?s ?p ?o }} }} WHERE {{ GRAPH <{snapshot}> {{ ?s ?p ?o }} "
                f"FILTER(!({_describes(snapshot)})) }}")
    _drop_if_empty(store, snapshot)


def _count(store, graph, description=False):
    where = f"FILTER({_describes(graph)})" if description else ""
    rows = list(store.query(f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o {where} }} }}"))
    return int(rows[0][0].value)


def _count_changes(store, kind, snapshot):
    return int(next(iter(store.query(f"SELECT (COUNT(*) AS ?n) WHERE {{ {_change(kind, snapshot)} }}")))[0].value)


def count_changes(store, snapshot):
    """(facts added, facts removed) by ``snapshot`` against the snapshot before it."""
    return _count_changes(store, ADDED, snapshot), _count_changes(store, REMOVED, snapshot)


def summary(store):
    """Each snapshot, oldest first per system: a dict of its system, as-of date, IRI, the facts it
    added and removed (None for a system's first, where the chain starts) and whether it is
    materialised; the latest of each system also gives the facts in its current graph."""
    out = []
    for system in sorted({s for _, s, _ in snapshots(store)}):
        dates = chain(store, system)
        for i, (as_of, iri) in enumerate(dates):
            latest = i == len(dates) - 1
            out.append({"system": system, "as_of": as_of, "graph": iri,
                        "added": _count_changes(store, ADDED, iri) if i else None,
                        "removed": _count_changes(store, REMOVED, iri) if i else None,
                        "facts": _count(store, current_graph(system)) if latest else None,
                        "materialised": latest or is_materialised(store, iri)})
    return out


@contextlib.contextmanager
def _writable(store_path, keep=True):
    """The store at ``store_path`` to change: a staged copy of an on-disk store (swapped in at the
    end when ``keep``, else thrown away: a place for scratch graphs), or the SPARQL server."""
    if is_remote(store_path):
        yield RemoteStore(store_path)
        return
    with staged(store_path) as work:
        work.keep = keep
        yield work.store


def list_snapshots(store_path):
    """:func:`summary` of the store at ``store_path``."""
    return summary(open_store(store_path, read_only=True))


def write_snapshot(store_path, name, out, system=None):
    """Write the facts of the snapshot ``name`` (its IRI or as-of date) as N-Triples into the
    binary file ``out``; returns how many."""
    with _writable(store_path, keep=False) as store:
        facts = snapshot_triples(store, find_snapshot(store, name, system))
        del store  # (each function here lets the staged store go before it is swapped in or thrown away)
    out.write(ox.serialize((ox.Triple(*t) for t in facts), format=ox.RdfFormat.N_TRIPLES) or b"")
    return len(facts)


def materialise_snapshot(store_path, name, system=None):
    """:func:`materialise` on the store at ``store_path``: (its IRI, how many facts)."""
    with _writable(store_path) as store:
        snapshot = find_snapshot(store, name, system)
        count = materialise(store, snapshot)
        del store
    return snapshot, count


def dematerialise_snapshot(store_path, name, system=None):
    """:func:`dematerialise` on the store at ``store_path``; returns the snapshot's IRI."""
    with _writable(store_path) as store:
        snapshot = find_snapshot(store, name, system)
        dematerialise(store, snapshot)
        del store
    return snapshot


def upgrade_store(store_path):
    """:func:`upgrade` on the store at ``store_path``; returns the systems converted."""
    with _writable(store_path) as store:
        systems = upgrade(store)
        del store
    return systems
