"""Stage 3, load: where the mapped triples go while the rows are mapped.

A :class:`Target` holds the staged copy of the store (or, for a SPARQL server, an in-memory store
whose differences are sent), the graph the snapshot is loaded into, and, up to the setting
``ingest_memory_triples``, an in-memory store with the ontology where validation runs several
times faster than on disk. Other threads bulk-load the triples while the rows are mapped
(:class:`~opportunity_kg.store.Loader`)."""

import contextlib

import pyoxigraph as ox

from .. import settings
from ..store.history import snapshots
from ..store.remote import is_remote
from ..store.snapshots import (chain, copy_graph, current_graph, digest_text, fits_in_memory, forget_description,
                               incoming_graph, read_table, same_digest, upgrade, write_table)
from ..store import (INGEST_MEMORY_SHARE, ONTOLOGY_GRAPH, Loader, Staging, delete_quads, memory_quads,
                     staged)
from ..validation.validate import ALL_GRAPHS
from ..vocabulary import OKG
from .count import Tally, line_digest

#: the property that kept one derived subject's digest (versions before digest tables: dropped when met)
DERIVED_DIGEST = ox.NamedNode(OKG + "derivedDigest")
#: the property of the digest table, in the system's snapshots graph, that keeps each subject's digest
#: of a derived graph (the intervals graph), so that the next ingest rewrites only what changed
DERIVED_DIGESTS = OKG + "derivedDigests"


@contextlib.contextmanager
def workspace(store_path):
    """Where an ingest builds its snapshot: a staged copy of an on-disk store, swapped in when
    the ingest ends well; for a SPARQL server, an in-memory store whose differences are sent."""
    if is_remote(store_path):
        yield Staging(ox.Store())
        return
    with staged(store_path) as work:
        yield work


class Target:
    """The stores and graph one snapshot is loaded into (see the module's description). Used as a
    context manager, it stops its loaders when the block fails."""

    def __init__(self, store, remote, source, graph_iri, as_of, ontology_triples):
        self.store, self.remote = store, remote
        self.holder = remote or store  # where the snapshots are
        # a store made when snapshots were kept whole becomes a chain of changes
        self.upgraded = upgrade(self.holder)
        self.description = ox.NamedNode(graph_iri)
        # the first snapshot of a system is loaded straight into its current graph; a later one beside
        # it, then folded in as changes (:mod:`opportunity_kg.store.snapshots`)
        self.starts_chain = not remote and not chain(store, source)
        # a snapshot of a date already stored is loaded afresh; if its digest is the stored one, nothing changed
        self.replaced = graph_iri in {g for g, _, _ in snapshots(self.holder)}
        self.stored_digest = None
        if self.replaced:
            self.stored_digest = stored_digest(self.holder, self.description) or ""
            if not remote:
                for update in forget_description(graph_iri):
                    store.update(update)
        self.graph = ox.NamedNode(current_graph(source) if self.starts_chain else incoming_graph(graph_iri))
        self.ontology_triples = ontology_triples
        self.ontology_changed = replace_graph(store, ONTOLOGY_GRAPH, ontology_triples)
        self.in_memory, self.in_memory_why = memory_quads(settings.get("ingest_memory_triples"),
                                                          "ingest_memory_triples", INGEST_MEMORY_SHARE)
        self.check = ox.Store() if self.in_memory > 0 else None
        if self.check is not None:  # the data in the snapshot's graph, the ontology in its own
            self.check.extend(ox.Quad(*t, ox.NamedNode(ONTOLOGY_GRAPH)) for t in ontology_triples)
        # a snapshot newer than every other is folded in where it is validated, in memory: only its
        # changes are written to disk (:func:`~opportunity_kg.store.snapshots.fold_in_memory`)
        self.in_memory_fold = (self.check is not None and not self.starts_chain and not self.replaced
                               and not remote and fits_in_memory(store, source, graph_iri, as_of))
        self.folded = None  # (facts added, facts removed) when folded in memory: what derive reads anew
        #: whether the in-memory graph holds only the records made anew (the rows read again unchanged
        #: were not mapped: :mod:`opportunity_kg.ingest.unchanged`)
        self.partial = False
        self.spilled = False  # whether the export outgrew ``in_memory`` and was validated on disk
        self.loader = Loader(([(self.check, self.graph)] if self.check is not None else [])
                             + ([] if self.in_memory_fold else [(store, self.graph)]), streamed=[store])

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        if kind is not None:  # a failure on the way (a file that cannot be read, say): no loading thread
            self.loader.abort()  # is left reading its named pipe and holding the staged store

    def add(self, triples):
        self.loader.add(triples)

    @property
    def count(self):
        """How many triples were sent to be loaded."""
        return self.loader.count

    def spill(self, progress):
        """Validate on disk from now on if the export has grown past ``ingest_memory_triples``."""
        if self.check is None or self.loader.count <= self.in_memory:
            return
        progress.phase("validating on disk: the export is larger than ingest_memory_triples")
        self.spilled = True
        self.loader.drop(self.check)
        if self.in_memory_fold:  # what the in-memory store holds goes to disk, and the rest after it
            copy_graph(self.check, self.store, self.graph.value)
            self.loader.attach(self.store, self.graph, streamed=True)
            self.in_memory_fold = False
        self.check = None

    def close(self):
        """Wait until every triple is loaded."""
        self.loader.close()

    @property
    def working(self):
        """The store validation and the lookups run in."""
        return self.check if self.check is not None else self.store

    @property
    def loaded(self):
        """Every (store, graph) the snapshot was loaded into."""
        return [(self.store, self.graph)] + ([(self.check, self.graph)] if self.check is not None else [])

    @property
    def checked(self):
        """(store, graphs) validation reads."""
        return (self.check, ALL_GRAPHS) if self.check is not None else (self.store, [self.graph.value, ONTOLOGY_GRAPH])

    @property
    def lookup(self):
        """(store, graph) where a subject's rows are looked up."""
        return self.working, self.graph


def stored_digest(store, graph):
    """A snapshot's digest, from its description: in its graph (the newest), else in the default graph."""
    for row in store.query(f"SELECT ?d WHERE {{ {{ GRAPH {graph} {{ {graph} <{OKG}contentDigest> ?d }} }} UNION "
                           f"{{ {graph} <{OKG}contentDigest> ?d }} }}"):
        return row[0].value
    return None


def replace_graph(store, graph, triples, digests_in=None, scope=None):
    """Make a named graph of an on-disk store hold exactly ``triples`` (an iterable, bulk-loaded as
    it comes, so it need not be in memory); whether it changed, told by the digest of its triples.

    With ``digests_in`` (a graph), each subject's digest is kept there, and a later call rewrites
    only the subjects whose triples changed, reading no other off disk (:func:`update_subjects`).
    ``triples`` may then be a function of a scope, given with ``scope`` (an object whose
    ``untouched(subject)`` says a subject the triples leave out is kept as it is): it is called with
    ``scope`` where digests are kept, and with None (every triple) where they are not."""
    name = ox.NamedNode(graph)
    if digests_in and store.contains_named_graph(name):
        kept = read_table(store, digests_in, DERIVED_DIGESTS)
        if kept:
            made = triples(scope) if callable(triples) else triples
            return update_subjects(store, name, made, kept, digests_in, scope.untouched if scope is not None else None)
    if callable(triples):
        triples = triples(None)
    before = None
    if store.contains_named_graph(name):
        before = Tally({}, {}, [], runs=False)  # its digest only
        store.dump(before, ox.RdfFormat.N_TRIPLES, from_graph=name)
        store.clear_graph(name)
    # one bulk load fed as the triples come: inserting them one by one is many times slower, and a
    # bulk load per chunk slows as the store grows (18% slower for 4.9 M derived triples)
    loader = Loader([(store, name)], streamed=[store])
    digest, seen, subjects = 0, 0, {}
    for triple in triples:
        line = f"{triple[0]} {triple[1]} {triple[2]} ."
        hashed = line_digest(line.encode("utf-8"))
        digest += hashed
        seen += 1
        if digests_in:
            subjects[triple[0]] = subjects.get(triple[0], 0) + hashed
        loader.add_line(line)
    loader.close()
    if digests_in:  # (and those a version before digest tables kept one by one: dropped)
        store.update(f"DELETE WHERE {{ GRAPH <{digests_in}> {{ ?s {DERIVED_DIGEST} ?d }} }}")
        write_table(store, digests_in, DERIVED_DIGESTS, {s.value: digest_text(d) for s, d in subjects.items()})
    return (before.digest, before.lines) != (digest, seen) if before is not None else seen > 0


def update_subjects(store, name, triples, kept, digests, untouched=None):
    """:func:`replace_graph` by subject: the new triples go to an in-memory store, each subject's
    digest is compared with the one ``kept`` (IRI -> digest, the table in graph ``digests``), and only
    the subjects that changed, came or went are read off disk and rewritten; a kept subject the
    triples leave out is gone unless ``untouched`` says it was left as it is. Whether anything changed."""
    fresh, subjects = ox.Store(), {}
    loader = Loader([(fresh, name)])
    for triple in triples:
        line = f"{triple[0]} {triple[1]} {triple[2]} ."
        subjects[triple[0]] = subjects.get(triple[0], 0) + line_digest(line.encode("utf-8"))
        loader.add_line(line)
    loader.close()
    new = {s: digest_text(d) for s, d in subjects.items()}
    changed = [s for s, d in new.items() if not same_digest(kept.get(s.value), d)]
    made = {s.value for s in new}
    gone = [s for s in (ox.NamedNode(iri) for iri in kept if iri not in made) if not (untouched and untouched(s))]
    if not changed and not gone:
        return False
    delete_quads(store, [q for s in changed + gone for q in store.quads_for_pattern(s, None, None, name)])
    loader = Loader([(store, name)])
    for s in changed:
        loader.add([(q.subject, q.predicate, q.object) for q in fresh.quads_for_pattern(s, None, None, name)])
    loader.close()
    kept = dict(kept)
    kept.update((s.value, new[s]) for s in changed)
    for s in gone:
        del kept[s.value]
    write_table(store, digests, DERIVED_DIGESTS, kept)
    return True
