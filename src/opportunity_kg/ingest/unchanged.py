"""Rows read again unchanged: a weekly re-ingest maps, validates and counts what changed, not the
whole export.

Each ingest that folds its snapshot in memory keeps, in the system's snapshots graph, a table of the
rows it loaded cleanly (``okg:rowDigests``): each row's digest (its file and its values) and the
subject each triples map of its file gave it, with a fingerprint of everything else a row's facts
depend on (``okg:mappingFingerprint``: this version, the mappings and their reference data, the
shapes, the ontology, each file's header, the lookup tables and the files joins read). The next
export of the system, with the same fingerprint, is read row by row (:func:`plan_reuse`):

- a row whose digest is in the table is *unchanged*: it gives the facts it gave before;
- the others are mapped: new and changed rows, malformed ones, rows marked deleted, and every
  row that was quarantined or warned about last time (those are never kept in the table).

The records that may have changed (*dirty*) are the subjects of the rows mapped, those of rows
gone since, those the reference data describes, and the other parts of the same whole (a deal
with its stage changes, line items and contact roles, :data:`~opportunity_kg.ingest.rows.PART_OF`).
Every row that gives a dirty record a fact is mapped, so a dirty record's facts are whole and the
comparison with the current graph is exact; the other records keep the facts the current graph
holds, and are counted, and summed into the snapshot's digest, from the record table
(:func:`complete`), which gives the same report and digest as mapping every row.

Validation runs over the dirty records with, beside them (:func:`add_context`), the facts of the
records they name, of the records that name a dirty record whose facts changed, and the types of
what those name. A result about a record that names a changed record means a change reached a row
that did not change: the ingest then starts again and maps every row (:class:`Miss`), as it does
when the fingerprint differs, when the table is missing, or when too much is dirty to gain.
"""

import hashlib
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyoxigraph as ox

from .. import __version__, settings
from ..errors import OkgError
from ..mapping.rml import RefObjectMap, RowError
from ..paths import ONTOLOGY_DIR, SHAPES_DIR
from ..readers.sources import CsvSource, Row
from ..store.history import current_graph, snapshots_graph_of
from ..store.snapshots import RECORD_DIGESTS, digest_text, entry_parts, read_lines, read_table, same_digest, write_lines
from ..vocabulary import OKG, PROV, RDF_TYPE
from .count import line_digest
from .rows import PART_OF, file_iri

#: the table of the rows an ingest loaded cleanly, and the fingerprint it holds for
ROW_DIGESTS = OKG + "rowDigests"
MAPPING_FINGERPRINT = OKG + "mappingFingerprint"
#: the version of the row table's layout (part of the fingerprint)
ROW_TABLE_LAYOUT = "1"
#: a re-ingest maps every row when more than this share of the records would be read again (dirty,
#: or beside them for validation): mapping every row is then about as fast
REUSE_MOST = 0.8
#: ... unless the system has fewer records than this: both ways take well under a second then
REUSE_SMALL = 1000
DERIVED = ox.NamedNode(PROV + "wasDerivedFrom")
OWL_CLASS = ox.NamedNode("http://www.w3.org/2002/07/owl#Class")
#: a record naming more records than this (a competitor its deals) has only their types copied
#: beside it for validation, not their facts
FAN_OUT = 100
#: the properties whose chains (a parent's parent) the validation of a record may follow (cycles)
HIERARCHY = tuple(ox.NamedNode(OKG + name) for name in ("parentAccount", "parentTeam", "parentTerritory", "manager",
                                                          "reportsTo", "directParent"))


class Miss(OkgError):
    """The rows cannot be read again unchanged (the reason is the message): every row is mapped."""


@dataclass
class FileReuse:
    """One export file as :func:`plan_reuse` read it."""
    sources: list  # per triples map of the file (in plan order): its CsvSource, header read only
    order: list  # (line, key) of every record, in file order (key None: malformed)
    cached: dict  # line -> the subjects the table says it gives, per triples map ("" for none)
    values: dict = field(default_factory=dict)  # line -> the record's values, of the rows to map
    numbers: dict = field(default_factory=dict)  # line -> its record number
    errors: dict = field(default_factory=dict)  # line -> why a malformed record is
    mapped: dict = field(default_factory=dict)  # (triples map's index, line) -> its MappedRow, of the changed rows
    footer: list = field(default_factory=list)


@dataclass
class Reuse:
    """What a re-ingest reads again unchanged and what it maps (see the module's description)."""
    fingerprint: str
    files: dict  # file name -> FileReuse
    maps: dict  # id(triples map) -> (file name, its index among the file's maps)
    dirty: set  # the records (IRIs) whose facts are made anew
    kept: dict  # the record table: IRI -> entry
    rows: int = 0  # records read
    mapped: int = 0  # records mapped
    links: set = field(default_factory=set)  # (subject, file, line) of the facts not made anew
    lines: dict = field(default_factory=lambda: defaultdict(set))  # file -> lines read again unchanged
    referrers: set = field(default_factory=set)  # records beside the dirty ones that name a changed one

    def rows_of(self, tm, source_file):
        """(row, subject, line, mapped) for each record of ``tm``'s file, in order: a :class:`Row` to map
        (subject None) where the record changed or gives a dirty record, with its MappedRow where it
        was mapped already (a changed row), else None and the subject the table says the unchanged
        row gives ("" for none): not mapped."""
        name, index = self.maps[id(tm)]
        found = self.files[name]
        for line, _ in found.order:
            cached = found.cached.get(line)
            if cached is not None and cached[index] not in self.dirty:
                yield None, cached[index], line, None
                continue
            values = found.values[line]
            row = Row(line, found.numbers[line], None if values is None else dict(zip(source_file.header, values)),
                      found.errors.get(line))
            yield row, None, line, found.mapped.pop((index, line), None)

    def keep(self, violations):
        """The validation results about the dirty records; a result about a record beside them that
        names a changed one is a change the rows did not show: :class:`Miss`."""
        out = []
        for violation in violations:
            if violation.focus in self.dirty:
                out.append(violation)
            elif violation.focus in self.referrers:
                raise Miss(f"{violation.focus} breaks a shape after records it names changed")
        return out


def enabled():
    return settings.get("ingest_reuse_rows")


def file_sources(plan):
    """Each export file the plan reads: path -> ((mapping, triples map) s in plan order, a
    :class:`CsvSource` per triples map, its header read once); None when a file is empty."""
    by_file = defaultdict(list)
    for mapping, tm in plan.planned:
        by_file[tm.source.path].append((mapping, tm))
    out = {}
    for path, pairs in by_file.items():
        first = pairs[0][1].source.open()
        if not first.header:
            return None
        out[path] = (pairs, [first] + [CsvSource(path, delimiter=first.delimiter, encoding=first.encoding,
                                                 aliases=tm.source.header_names) for _, tm in pairs[1:]])
    return out


def fingerprint(plan, files):
    """The digest of everything but its own values that a row's facts depend on (see the module's
    description); ``files`` as :func:`file_sources` gives them."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{__version__} {ROW_TABLE_LAYOUT}\n".encode())
    paths = [p for p in sorted(Path(plan.system_dir).rglob("*")) if p.is_file()]
    paths += sorted(Path(SHAPES_DIR).glob("*.ttl")) + sorted(Path(ONTOLOGY_DIR).glob("*.ttl"))
    paths += [plan.data_dir / name for name in sorted(plan.lookups)]
    for mapping, tm in plan.planned:
        paths += [Path(p) for p in mapping.lookup_tables]
        for pom in tm.poms:
            paths += [Path(om.parent.source.path) for om in pom.objects if isinstance(om, RefObjectMap)
                      and om.joins and om.parent.source.path != tm.source.path]
    for path in dict.fromkeys(paths):
        digest.update(f"{path.name}\n".encode())
        digest.update(path.read_bytes() if path.exists() else b"(none)")
    for path, (_, sources) in sorted(files.items()):
        digest.update(f"{path.name}\x1e{sources[0].delimiter}\x1e{sources[0].encoding}\x1e".encode())
        digest.update("\x1f".join(h for source in sources for h in source.header).encode())
    return digest.hexdigest()


def row_key(name, values):
    """A row's digest: its file's name and its values."""
    return hashlib.blake2b(f"{name}\x1e" "\x1f".join(values).encode(), digest_size=12).hexdigest()


def read_rows(store, system):
    """(fingerprint, {row key: subjects per triples map}) as the last ingest kept them, or (None, {})."""
    graph = snapshots_graph_of(system)
    found = next(iter(store.quads_for_pattern(None, ox.NamedNode(MAPPING_FINGERPRINT), None, ox.NamedNode(graph))),
                 None)
    if found is None:
        return None, {}
    out = {}
    for line in read_lines(store, graph, ROW_DIGESTS):
        key, *subjects = line.split(" ")
        out[key] = tuple("" if s == "-" else s for s in subjects)
    return found.object.value, out


def write_rows(store, system, fingerprint_text, rows):
    """Keep ``rows`` (row key -> subjects per triples map) and the fingerprint they hold for, in place
    of the table kept before; ``rows`` None forgets the table."""
    graph = ox.NamedNode(snapshots_graph_of(system))
    kind = ox.NamedNode(MAPPING_FINGERPRINT)
    for quad in list(store.quads_for_pattern(None, kind, None, graph)):
        store.remove(quad)
    write_lines(store, graph.value, ROW_DIGESTS,
                [f"{key} {' '.join(s or '-' for s in subjects)}" for key, subjects in (rows or {}).items()])
    if rows is not None:
        store.add(ox.Quad(ox.NamedNode(f"{graph.value}/digests/rowDigests"), kind, ox.Literal(fingerprint_text),
                          graph))


def plan_reuse(run, target, progress):
    """The :class:`Reuse` of this ingest, or None when every row is to be mapped (see the module's
    description): the rows read once, the changed ones mapped to find their records, the dirty
    records closed over their wholes, and the unchanged rows that give a dirty record read again."""
    if not enabled() or not target.in_memory_fold or target.remote:
        return None
    store, system = target.store, run.source
    stored, cached = read_rows(store, system)
    kept = read_table(store, snapshots_graph_of(system), RECORD_DIGESTS) if cached else None
    by_file = file_sources(run.plan) if kept else None
    if not by_file or fingerprint(run.plan, by_file) != stored:
        return None
    files, maps = {}, {}
    for path, (pairs, sources) in by_file.items():
        files[path.name] = FileReuse(sources, [], {})
        for index, (_, tm) in enumerate(pairs):
            maps[id(tm)] = (path.name, index)
    progress.phase("finding the rows that changed since the last export")
    reuse = Reuse(stored, files, maps, set(), kept)
    seen, parts = set(), set()
    for path, (pairs, _) in by_file.items():
        found = files[path.name]
        missing = [mapping.missing_columns(tm, found.sources[i], lenient=True) for i, (mapping, tm) in enumerate(pairs)]
        for row in found.sources[0].rows(lists=True):
            reuse.rows += 1
            values = row.values
            key = row_key(path.name, values) if values is not None else None
            found.order.append((row.line, key))
            subjects = cached.get(key) if key is not None else None
            if subjects is not None and len(subjects) == len(pairs):
                seen.add(key)
                found.cached[row.line] = subjects
                continue
            found.values[row.line], found.numbers[row.line] = values, row.number
            if row.error:
                found.errors[row.line] = row.error
            for index, (mapping, tm) in enumerate(pairs):
                source = found.sources[index]
                mapped = mapping.map_row(tm, source, Row(row.line, row.number, None if values is None else
                                                         dict(zip(source.header, values)), row.error), missing[index])
                found.mapped[(index, row.line)] = mapped  # (mapped once: map_export takes it from here)
                subject = mapped.subject if not mapped.error else subject_of(mapping, tm, mapped.values)
                if subject is not None:  # (a row that fails to map takes its record's facts out)
                    reuse.dirty.add(subject.value)
                    parts.update(q[2].value for q in mapped.quads if q[1] in PART_OF and isinstance(q[2], ox.NamedNode))
        found.footer = found.sources[0].footer
    for key, subjects in cached.items():  # rows gone since: their records lose facts
        if key not in seen:
            reuse.dirty.update(s for s in subjects if s)
    for path in sorted((run.plan.system_dir / "reference").glob("*.ttl")):
        try:
            reuse.dirty.update(q.subject.value for q in ox.parse(path=str(path), format=ox.RdfFormat.TURTLE)
                               if isinstance(q.subject, ox.NamedNode))
        except SyntaxError:
            return None  # (the full path names the error)
    _close_over_wholes(reuse, store, current_graph(system), parts)
    if _too_many(len(reuse.dirty), kept):
        return None
    _read_dirty_rows(reuse)
    return reuse


def subject_of(mapping, tm, values):
    """The subject a row that failed to map would have had, or None."""
    try:
        return tm.subject.term(values, mapping.base_iri) if values is not None else None
    except RowError:
        return None


def _close_over_wholes(reuse, store, graph, parts):
    """Add to the dirty records the wholes they are part of (and ``parts``: the wholes the changed
    rows name) and every part of a dirty whole, as the current graph holds them."""
    graph, dirty = ox.NamedNode(graph), reuse.dirty
    wholes = set(parts)
    for iri in list(dirty):
        for predicate in PART_OF:
            wholes.update(q.object.value for q in store.quads_for_pattern(ox.NamedNode(iri), predicate, None, graph)
                          if isinstance(q.object, ox.NamedNode))
    dirty |= wholes
    for iri in wholes:
        for predicate in PART_OF:
            dirty.update(q.subject.value for q in store.quads_for_pattern(None, predicate, ox.NamedNode(iri), graph)
                         if isinstance(q.subject, ox.NamedNode))


def _read_dirty_rows(reuse):
    """Read again the unchanged rows that give a dirty record a fact (the changed ones were kept)."""
    for found in reuse.files.values():
        wanted = {line for line, subjects in found.cached.items() if any(s in reuse.dirty for s in subjects if s)}
        reuse.mapped += len(found.values) + len(wanted)
        if not wanted:
            continue
        last = max(wanted)
        for row in found.sources[0].rows(lists=True):
            if row.line > last:
                break
            if row.line in wanted:
                found.values[row.line], found.numbers[row.line] = row.values, row.number


def add_context(reuse, target, system):
    """Copy beside the dirty records, into a graph of the in-memory store validation reads, what the
    rules about them read of other records (see the module's description): the facts of the records
    they name (only the types of those a record naming more than :data:`FAN_OUT` names, a
    competitor's deals, say), of the records naming a dirty one whose facts changed or that is gone,
    the chains of parents (:data:`HIERARCHY`) above them, the types of what those name, and one
    record of each class the current graph has (a rule may ask whether the export has that kind of
    record at all). Returns the graph (dropped after validation)."""
    disk, memory = target.store, target.check
    if memory is None or not target.in_memory_fold:  # (the records made anew outgrew ingest_memory_triples)
        raise Miss("the rows mapped did not fit in ingest_memory_triples")
    current, incoming = ox.NamedNode(current_graph(system)), target.graph
    context = ox.NamedNode(incoming.value + "/context")
    dirty, kept = reuse.dirty, reuse.kept
    sums, named, typed = defaultdict(int), set(), set()
    names = defaultdict(set)
    for q in memory.quads_for_pattern(None, None, None, incoming):
        if q.predicate == DERIVED:
            continue
        sums[q.subject.value] += line_digest(f"{q.subject} {q.predicate} {q.object} .".encode("utf-8"))
        if isinstance(q.object, ox.NamedNode) and q.predicate != RDF_TYPE and q.object.value not in dirty:
            names[q.subject.value].add(q.object.value)
    for subject, objects in names.items():
        (named if len(objects) <= FAN_OUT else typed).update(objects)
    changed = [iri for iri in dirty if iri in kept and not same_digest(kept[iri], _text(sums.get(iri)))]
    for iri in changed:
        reuse.referrers.update(q.subject.value for q in disk.quads_for_pattern(None, None, ox.NamedNode(iri), current)
                               if isinstance(q.subject, ox.NamedNode) and q.subject.value not in dirty)
    beside = named | reuse.referrers
    if _too_many(len(beside) + len(dirty), kept):
        raise Miss(f"{len(beside):,} records beside the {len(dirty):,} that changed would be validated again")
    facts, further = [], set(typed)
    for iri in beside:
        for q in disk.quads_for_pattern(ox.NamedNode(iri), None, None, current):
            facts.append(ox.Quad(q.subject, q.predicate, q.object, context))
            if isinstance(q.object, ox.NamedNode) and q.predicate not in (RDF_TYPE, DERIVED):
                further.add(q.object.value)
    # the chains of parents above them, whole: from the parents the dirty records and those beside name
    above = {q.object.value for predicate in HIERARCHY for q in memory.quads_for_pattern(None, predicate, None, incoming)}
    above |= {q.object.value for q in facts if q.predicate in HIERARCHY}
    above -= dirty | beside
    seen = set()
    while above:
        seen |= above
        step = set()
        for iri in above:
            for predicate in HIERARCHY:
                for q in disk.quads_for_pattern(ox.NamedNode(iri), predicate, None, current):
                    facts.append(ox.Quad(q.subject, q.predicate, q.object, context))
                    step.add(q.object.value)
        further |= above
        above = step - seen - dirty - beside
    for iri in further - beside - dirty:
        facts.extend(ox.Quad(q.subject, q.predicate, q.object, context)
                     for q in disk.quads_for_pattern(ox.NamedNode(iri), RDF_TYPE, None, current))
    for cls in {t[0] for t in target.ontology_triples if t[1] == RDF_TYPE and t[2] == OWL_CLASS}:
        facts.extend(ox.Quad(q.subject, q.predicate, q.object, context)
                     for q in itertools.islice(disk.quads_for_pattern(None, RDF_TYPE, cls, current), 1))
    memory.extend(facts)
    return context


def _too_many(records, kept):
    return len(kept) >= REUSE_SMALL and records > REUSE_MOST * len(kept)


def _text(value):
    return digest_text(value) if value is not None else None


def complete(run, reuse, digest, entries):
    """Add the records not made anew to the count (``run.counts``), to the snapshot's digest and to
    the record entries (see the module's description): (digest, entries)."""
    if any(key.startswith("_:") for key in entries):
        raise Miss("a record made anew is a blank node, which cannot be compared record by record")
    for iri, entry in reuse.kept.items():
        if iri in reuse.dirty:
            continue
        parts = entry_parts(entry)
        if parts is None or parts[2] not in run.counts:
            raise Miss("the record table was kept by a version that did not count records")
        value, triples, name = parts
        run.counts[name].triples += triples
        digest += value
        entries[iri] = entry
    iris = {name: file_iri(run.graph, name) for name in reuse.files}
    for subject, name, line in reuse.links:
        if subject not in reuse.kept:
            raise Miss(f"the record table has no {subject}, which {name} line {line} gives")
        digest += line_digest(f"<{subject}> <{DERIVED.value}> <{iris[name]}#line={line}> .".encode("utf-8"))
    return digest, entries


def keeps_rows(target):
    """Whether this ingest keeps a table of its rows for the next (it folds in memory, or starts the
    chain there, in a store of its own)."""
    return enabled() and target.check is not None and not target.remote


def keep_rows(run, entries):
    """The row table this ingest leaves (row key -> subjects per triples map), or None when it cannot
    leave one (a record is a blank node). A row is kept when it loaded cleanly: not quarantined,
    deleted or warned about, and none of its records quarantined, deleted, warned about or counted
    without the file its entry needs (an export validated on disk); a key also on another row is
    kept only if that row is kept too."""
    if any(key.startswith("_:") for key in entries):
        return None
    counted = {key for key, entry in entries.items() if entry_parts(entry) is not None}
    bad_lines = {(r[0], r[1]) for r in run.rejects} | {(w.file, w.line) for w in run.warnings}
    subjects = run.row_subjects
    bad_subjects = {s.value for s in run.gone if hasattr(s, "value")}
    for key in bad_lines:
        bad_subjects.update(s for s in subjects.get(key, ()) if s)
    if run.reuse is not None:
        lines = ((name, line, key, found.cached.get(line)) for name, found in run.reuse.files.items()
                 for line, key in found.order)
    else:
        lines = ((name, line, key, None) for (name, line), key in run.row_keys.items())
    rows, bad_keys = {}, set()
    for name, line, key, given in lines:
        if key is None:
            continue
        given = given or subjects.get((name, line))
        if (not given or (name, line) in bad_lines or line in run.deleted.get(name, ())
                or any(s in bad_subjects or s not in counted for s in given if s)):
            bad_keys.add(key)
        else:
            rows[key] = tuple(given)
    for key in bad_keys:
        rows.pop(key, None)
    return rows
