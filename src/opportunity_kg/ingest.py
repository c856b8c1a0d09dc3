"""Ingest a CRM export: map, validate, quarantine, load one snapshot atomically.

:func:`ingest` is the one entry point the CLI and the tests call. It

1. runs every mapping of the source system (``mappings/<system>/*.rml.ttl``)
   over the export's files, row by row, while other threads bulk-load the
   mapped triples into a staged copy of the store (:func:`~opportunity_kg.store.staged`)
   and, up to the setting ``ingest_memory_triples``, into an in-memory store
   with the ontology. No row's triples stay in Python's memory: each row's
   subject links to its file and line (``prov:wasDerivedFrom``), and a row is
   read and mapped again when it has to be taken out or named;
2. validates the data with the SHACL shapes, in the in-memory store (or, for a
   larger export, in the staged store), and takes the facts of rows that
   break one out again (then validates again);
3. writes every rejected row (unreadable, unmappable, duplicate Id, or
   breaking a shape) to a quarantine CSV with file, line, field, value and
   reason;
4. counts the triples and sums the snapshot's ``okg:contentDigest`` reading
   the loaded graph back, adds its PROV-O provenance, the history since the
   previous snapshot and the ontology graph, then swaps the staged copy in (or
   throws it away when nothing changed: a snapshot of a date already stored
   is loaded afresh and compared by digest). For a SPARQL server the snapshot
   is built in memory and only its difference with what the server holds is
   sent.

Rows read always equal rows loaded plus rows quarantined, per file and in total.
"""

import contextlib
import csv
import dataclasses
import fnmatch
import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from urllib.parse import quote

import pyoxigraph as ox

from . import __version__, settings
from .errors import DataError, OkgError
from .paths import MAPPINGS_DIR
from .progress import Progress
from .functions import _parse_datetime
from .history import GRAPH_BASE, changes_since, history_graph, intervals_graph, stage_intervals, tracked_values
from .rml import load_mapping
from .sources import CsvSource
from .remote import RemoteStore, is_remote
from .store import ONTOLOGY_GRAPH, Loader, Staging, delete_quads, graph_changes, staged, write_changes
from .validate import ALL_GRAPHS, from_rdflib, load_ontology, load_shapes, validate_store

OKG = "https://w3id.org/opportunity-kg/ontology#"
PROV = "http://www.w3.org/ns/prov#"
RDF_TYPE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
DERIVED = ox.NamedNode(PROV + "wasDerivedFrom")
XSD = "http://www.w3.org/2001/XMLSchema#"
#: columns whose newest date tells what date an export is "as of", besides each
#: mapping's own ``okgm:asOfColumn`` ones
AS_OF_COLUMNS = ("SystemModstamp", "LastModifiedDate")
#: the mapping files of a system: RML in Turtle, or YARRRML
MAPPING_PATTERNS = ("*.rml.ttl", "*.yarrrml.yml", "*.yarrrml.yaml")
#: how often validation is repeated after rows are removed (a removal can break another row)
MAX_VALIDATION_PASSES = 5
QUARANTINE_COLUMNS = ["source_file", "line", "record_id", "field", "value", "reason", "row"]


@dataclass
class FileCounts:
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    triples: int = 0


@dataclass
class IngestReport:
    source: str
    as_of: str
    graph: str
    store: str
    quarantine_file: str
    files: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    triples: int = 0
    unmapped: list = field(default_factory=list)
    lookups: list = field(default_factory=list)
    previous_snapshot: str | None = None
    history_changes: int = 0
    parent_changes: int = 0
    changed: bool = True
    digest: str = ""

    @property
    def totals(self):
        total = FileCounts()
        for counts in self.files.values():
            total.rows_read += counts.rows_read
            total.rows_loaded += counts.rows_loaded
            total.rows_quarantined += counts.rows_quarantined
        total.triples = self.triples
        return total

    def as_dict(self):
        return {
            "source": self.source, "as_of": self.as_of, "graph": self.graph, "store": self.store,
            "quarantine_file": self.quarantine_file,
            "files": {name: vars(c) for name, c in self.files.items()},
            "total": vars(self.totals), "skipped": self.skipped, "unmapped": self.unmapped,
            "warnings": self.warnings, "lookups": self.lookups, "previous_snapshot": self.previous_snapshot,
            "history_changes": self.history_changes, "parent_changes": self.parent_changes,
            "changed": self.changed, "digest": self.digest,
        }


@dataclass
class _Row:
    """One row as one triples map maps it (read again from its file when it is needed)."""
    file: str
    line: int
    tm: object
    triples: list
    subject: object
    values: dict | None
    record_id: str = ""


def mapping_files(system_dir):
    """The mapping files of one system's folder, in name order."""
    return sorted({p for pattern in MAPPING_PATTERNS for p in Path(system_dir).glob(pattern)})


def export_files(export):
    """The CSV files of an export: the folder's ``*.csv`` files, or the one file named."""
    export = Path(export)
    if export.is_file():
        return [export]
    return sorted(p for p in export.iterdir() if p.is_file() and p.suffix.lower() == ".csv")


_HEADERS = {}


def _header(path, aliases):
    key = (path, tuple(sorted((k, tuple(v)) for k, v in aliases.items())))
    if key not in _HEADERS:
        try:
            _HEADERS[key] = set(CsvSource(path, aliases=aliases).header)
        except OkgError:
            _HEADERS[key] = set()
    return _HEADERS[key]


def files_for(tm, files):
    """The export files a triples map reads: its source's own file name if the export has it,
    else every file whose name matches one of its ``okgm:filePattern`` s and whose header
    has its required columns (under their names or aliases)."""
    by_name = {p.name: p for p in files}
    if tm.source.path.name in by_name:
        return [by_name[tm.source.path.name]]
    found = []
    for path in files:
        name = path.name.lower()
        if any(fnmatch.fnmatch(name, pattern.lower()) for pattern in tm.source.patterns):
            if tm.source.required <= _header(path, tm.source.aliases):
                found.append(path)
    return found


def detect_source(export, mappings_dir=MAPPINGS_DIR):
    """The source system an export (folder or file) came from, by its file names and headers.

    Each system scores the files its mappings would read whose headers have the
    mappings' required columns; the best score wins.
    """
    files = export_files(export)
    scores = {}
    for system_dir in sorted(p for p in Path(mappings_dir).iterdir() if p.is_dir()):
        matched = set()
        for mapping_file in mapping_files(system_dir):
            try:
                mapping = load_mapping(mapping_file, data_dir=Path(export) if Path(export).is_dir() else None)
            except OkgError:
                continue
            for tm in mapping.triples_maps:
                for path in files_for(tm, files):
                    if tm.source.required <= _header(path, tm.source.aliases):
                        matched.add(path)
        if matched:
            scores[system_dir.name] = len(matched)
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
        return ranked[0][0]
    systems = ", ".join(p.name for p in sorted(Path(mappings_dir).iterdir()) if p.is_dir())
    if ranked:
        raise OkgError(f"cannot tell which system {export} came from: its files fit "
                       f"{' and '.join(s for s, _ in ranked[:2])} equally; name it with --source ({systems})")
    names = ", ".join(p.name for p in files) or "no CSV files"
    raise OkgError(f"cannot tell which system {export} came from: none of its files ({names}) has the "
                   f"name and columns of a known export table; name the system with --source ({systems})")


def file_iri(graph, name):
    """The IRI of a source file within a snapshot graph (its name percent-encoded)."""
    return f"{graph}/{quote(name, safe='/')}"


def _id_column(tm):
    """The column that names a record: the one its subject is made from (``Id`` if several)."""
    refs = sorted(tm.subject.references)
    return refs[0] if len(refs) == 1 else "Id"


def _predicate_columns(tm):
    """Which column feeds each predicate of a triples map (for naming the field of a violation)."""
    out = {}
    for pom in tm.poms:
        columns = set()
        for obj in pom.objects:
            columns |= getattr(obj, "references", set())
        for pred in pom.predicates:
            if pred.kind == "constant":
                out[pred.spec.value] = ", ".join(sorted(columns))
    return out


def _as_of_from(values, current, columns=AS_OF_COLUMNS):
    for column in columns:
        text = values.get(column) if values else None
        if not text:
            continue
        if re.match(r"\d{4}-\d{2}-\d{2}", text):
            day = text[:10]
        else:
            try:
                day = _parse_datetime(text).date().isoformat()
            except ValueError:
                continue
        if current is None or day > current:
            current = day
    return current


def ingest(export_dir, store_path, *, source=None, as_of=None, quarantine=None, mappings_dir=MAPPINGS_DIR,
           progress=None):
    """Ingest the export in ``export_dir`` into the store at ``store_path``; return an :class:`IngestReport`.

    ``progress`` (a :class:`~opportunity_kg.progress.Progress`) shows how far it is on a terminal."""
    progress = progress or Progress(enabled=False)
    try:
        return _ingest(export_dir, store_path, source, as_of, quarantine, mappings_dir, progress)
    finally:
        progress.close()


def _ingest(export_dir, store_path, source, as_of, quarantine, mappings_dir, progress):
    export_dir = Path(export_dir)
    if not export_dir.exists():
        raise OkgError(f"{export_dir} does not exist; give the folder that holds the export's CSV files, or one file")
    files = export_files(export_dir)
    data_dir = export_dir if export_dir.is_dir() else export_dir.parent
    source = source or detect_source(export_dir, mappings_dir)
    system_dir = Path(mappings_dir) / source
    if not mapping_files(system_dir):
        known = ", ".join(p.name for p in sorted(Path(mappings_dir).iterdir()) if p.is_dir())
        raise OkgError(f"no mappings for source {source!r} in {system_dir}; the sources with mappings are {known}")
    if is_remote(store_path):
        quarantine = Path(quarantine) if quarantine else Path("okg-quarantine.csv")
    else:
        store_path = Path(store_path)
        quarantine = Path(quarantine) if quarantine else store_path.with_name(store_path.name + "-quarantine.csv")

    rejects = []
    counts = {}
    seen = {}  # hash of (triples map, subject) -> file number << 32 | line of its first row (unique-subject maps)
    report_warnings = []
    skipped = []
    renames = {}  # file -> {column the mapping reads: header in the file} where an alias was used
    absent = {}  # file -> the columns its mappings read that it lacks (one note per file, however many maps)
    rows_read = defaultdict(int)  # file -> its rows (a file two triples maps read counts once)
    total_read = 0
    planned = []  # (mapping, triples map reading one export file)
    wanted = []  # what the system's files are called, for the error when none is there
    lookups = set()
    for mapping_file in mapping_files(system_dir):
        mapping = load_mapping(mapping_file, data_dir=data_dir)
        lookups |= {p.name for p in mapping.lookup_tables if p.parent == data_dir}
        for tm in mapping.triples_maps:
            found = files_for(tm, files)
            if not found and tm.source.path.name not in skipped:
                skipped.append(tm.source.path.name)
                if tm.source.patterns:
                    wanted.append(f"{tm.source.path.name} (or {' or '.join(tm.source.patterns)} with the columns "
                                  f"{', '.join(sorted(tm.source.required))})")
            for path in found:
                planned.append((mapping, dataclasses.replace(tm, source=dataclasses.replace(tm.source, path=path))))
    if not planned:
        raise OkgError(f"no file in {export_dir} is one the {source} mappings read "
                       f"(expected: {'; '.join(wanted) or ', '.join(skipped)})")
    as_of = str(as_of) if as_of else (_as_of_in(planned) or date.today().isoformat())
    graph_iri = f"{GRAPH_BASE}{source}/{as_of}"
    shapes, ontology = load_shapes(), load_ontology()
    ontology_triples = [tuple(from_rdflib(t) for t in spo) for spo in ontology]
    remote = RemoteStore(store_path) if is_remote(store_path) else None
    rows = _Rows(graph_iri)
    with _workspace(store_path) as work:
        store = work.store
        target = ox.NamedNode(graph_iri)
        # a snapshot of a date already stored is loaded afresh; if its digest is the stored one, nothing changed
        stored_digest = None
        if not remote and store.contains_named_graph(target):
            stored_digest = _stored_digest(store, target) or ""
            progress.phase("clearing the stored snapshot of the same date")
            store.clear_graph(target)
        ontology_changed = _replace_graph(store, ONTOLOGY_GRAPH, ontology_triples)
        # the data is also loaded into an in-memory store with the ontology, where validation runs
        # several times faster than on disk, up to the setting ingest_memory_triples
        in_memory = settings.get("ingest_memory_triples")
        check = ox.Store() if in_memory > 0 else None
        if check is not None:  # the data in the snapshot's graph, the ontology in its own
            check.extend(ox.Quad(*t, ox.NamedNode(ONTOLOGY_GRAPH)) for t in ontology_triples)
        loader = Loader(([(check, target)] if check is not None else []) + [(store, target)])
        for mapping, tm in planned:
            name = tm.source.path.name
            counts.setdefault(name, FileCounts())
            source_file = tm.source.open()
            if not source_file.header:
                rows_read.setdefault(name, 0)
                report_warnings.append(f"{name}: the file is empty (not even a header); nothing read")
                continue
            missing = mapping.missing_columns(tm, source_file, lenient=True)
            if missing:
                absent.setdefault(name, set()).update(missing)
            rows.add_map(mapping, tm, missing)
            renames[name] = dict(source_file.renamed)
            id_column = rows.id_columns[id(tm)]
            file_number = list(counts).index(name)
            read = 0
            for row in source_file.rows():
                mapped = mapping._map_row(tm, source_file, row, missing)
                read += 1
                total_read += 1
                if not total_read % 2000:
                    progress.rows(name, row.number, total_read)
                    if check is not None and loader.count > in_memory:
                        progress.phase("validating on disk: the export is larger than ingest_memory_triples")
                        loader.drop(check)
                        check = None
                record_id = (mapped.values or {}).get(id_column, "") or ""
                if mapped.error:
                    rejects.append((name, mapped.line, record_id, mapped.field or "", mapped.value or "",
                                    mapped.error, mapped.values))
                    continue
                if tm.source.unique_subjects and mapped.subject is not None:
                    key = hash((tm.name, mapped.subject.value))
                    first = seen.get(key)
                    if first is not None:
                        first_file, first_line = list(counts)[first >> 32], first & 0xFFFFFFFF
                        where = f"line {first_line}" + (f" of {first_file}" if first_file != name else "")
                        rejects.append((name, mapped.line, record_id, id_column, record_id,
                                        f"duplicate record: the same {id_column} is on {where}", mapped.values))
                        continue
                    seen[key] = file_number << 32 | mapped.line
                loader.add(rows.triples(mapped))
            rows_read[name] = max(rows_read[name], read)
        del seen
        report_warnings += [f"{name}: no column {', '.join(sorted(columns))}; read as empty"
                            for name, columns in absent.items()]
        reference = []
        for path in sorted((system_dir / "reference").glob("*.ttl")):
            name = f"reference/{path.name}"
            counts[name] = FileCounts()
            triples = [(q.subject, q.predicate, q.object) for q in ox.parse(path=str(path), format=ox.RdfFormat.TURTLE)]
            reference.append((name, triples))
            loader.add(triples)
        progress.phase(f"writing {loader.count:,} triples to the store")
        loader.close()
        rows.reference = {t for _, triples in reference for t in triples}

        # validate; rows whose facts break a shape are quarantined, then validate again. A line is
        # loaded whole or not at all: if one triples map rejected it, the others' facts go too
        working = check if check is not None else store  # where validation and the lookups run
        loaded = [(store, target)] + ([(check, target)] if check is not None else [])
        checked = (check, ALL_GRAPHS) if check is not None else (store, [graph_iri, ONTOLOGY_GRAPH])
        lookup = (working, target)
        take_out = {(r[0], r[1]) for r in rejects}
        bad = {}  # (file, line) -> (the row, the violation it broke)
        for _ in range(MAX_VALIDATION_PASSES):
            if take_out:
                progress.phase(f"taking out {len(take_out):,} rejected rows")
                rows.take_out(take_out, loaded, lookup)
            progress.phase("validating against the shapes")
            violations = validate_store(*checked, shapes, ontology)
            errors = [v for v in violations if v.is_violation]
            where = {v.focus: rows.lines_of(v.focus, *lookup) for v in errors}
            mapped = rows.map_lines({key for keys in where.values() for key in keys})
            take_out = set()
            for violation in errors:
                owners = [row for key in where[violation.focus] for row in mapped.get(key, [])
                          if row.subject is not None and row.subject.value == violation.focus]
                if violation.path:
                    with_path = [r for r in owners if any(t[1].value == violation.path for t in r.triples)]
                    owners = with_path or owners
                for row in owners:
                    if (row.file, row.line) not in bad:
                        bad[(row.file, row.line)] = (row, violation)
                        take_out.add((row.file, row.line))
            if not take_out:
                break
        report_warnings += _warnings(violations, rows, lookup)
        for row, violation in bad.values():
            column = rows.columns[id(row.tm)].get(violation.path, "") if violation.path else ""
            value = (row.values or {}).get(column, "") if column and "," not in column else (violation.value or "")
            rejects.append((row.file, row.line, row.record_id, column, value or "", violation.message, row.values))

        # counts: each triple counts once; the snapshot's digest sums each distinct triple's hash
        quarantined = defaultdict(set)
        for name, line, *_ in rejects:
            quarantined[name].add(line)
        for name, read in rows_read.items():
            counts[name].rows_read = read
            counts[name].rows_quarantined = len(quarantined[name])
            counts[name].rows_loaded = read - len(quarantined[name])
        progress.phase("counting the snapshot's triples")
        digest = _tally(working, target, counts, rows, reference)
        report = IngestReport(source, as_of, graph_iri, str(store_path), str(quarantine), counts, skipped,
                              report_warnings, sum(c.triples for c in counts.values()))
        mapped_files = set(counts) | set(skipped)
        report.unmapped = sorted(p.name for p in files if p.name not in mapped_files and p.name not in lookups)
        report.lookups = sorted(lookups)
        run = ox.NamedNode(graph_iri + "#ingest-run")
        provenance = _provenance(report, export_dir)
        for triple in {t for t in provenance if t[0] != run}:
            digest += triple_digest(triple)
        report.digest = f"{digest % 2 ** 128:032x}"
        provenance.append((ox.NamedNode(graph_iri), ox.NamedNode(OKG + "contentDigest"), ox.Literal(report.digest)))
        store.extend(ox.Quad(*t, target) for t in provenance)

        # history: what changed since the previous snapshot of the same system
        progress.phase("comparing with the previous snapshot")
        changes, report.previous_snapshot = changes_since(remote or store, source, as_of, graph_iri,
                                                          lambda: tracked_values(working, graph_iri))
        del check, working, loaded, checked, lookup
        report.history_changes = sum(1 for t in changes if t[1] == RDF_TYPE and t[2].value == OKG + "FieldChange")
        report.parent_changes = sum(1 for t in changes if t[1] == RDF_TYPE and t[2].value == OKG + "ParentChange")
        _write_quarantine(quarantine, rejects, renames)
        if remote:
            collected = {(q.subject, q.predicate, q.object) for q in store.quads_for_pattern(None, None, None, target)}
            graphs = {graph_iri: collected, ONTOLOGY_GRAPH: ontology_triples}
            if changes:
                history = ox.NamedNode(history_graph(source))
                kept = [(q.subject, q.predicate, q.object) for q in remote.quads_for_pattern(None, None, None, history)]
                graphs[history.value] = kept + changes
            adds, removes = graph_changes(remote, graphs, ignore_subjects=[run])
            if adds or removes:
                write_changes(remote, adds, removes)
            # the stage intervals, from what the server now holds
            progress.phase("summarising the stage history")
            interval_adds, interval_removes = graph_changes(
                remote, {intervals_graph(source): list(stage_intervals(remote, source))})
            if interval_adds or interval_removes:
                write_changes(remote, interval_adds, interval_removes)
            report.changed = bool(adds or removes or interval_adds or interval_removes)
            return report
        history = ox.NamedNode(history_graph(source))
        new_history = [ox.Quad(*t, history) for t in changes if ox.Quad(*t, history) not in store]
        store.extend(new_history)
        snapshot_changed = stored_digest != report.digest  # a snapshot stored without a digest counts as changed
        progress.phase("summarising the stage history")
        intervals_changed = _replace_graph(store, intervals_graph(source), stage_intervals(store, source))
        report.changed = bool(snapshot_changed or new_history or ontology_changed or intervals_changed)
        work.keep = report.changed
        progress.phase("swapping the new store in" if report.changed else "no change")
        del store, loader  # the staged store closes when its last handle goes, before it is swapped in or thrown away
    return report


class _Rows:
    """The export's rows, read again when needed: while an export is ingested no row's triples
    stay in memory (so memory stays flat as exports grow). Each loaded row's subject links to
    its file and line (``prov:wasDerivedFrom``); every triple a triples map makes for a row has
    the row's subject, so a subject's lines tell which rows gave its triples."""

    def __init__(self, graph):
        self.graph = graph
        self.maps = defaultdict(list)  # file -> [(mapping, triples map, missing columns)]
        self.id_columns, self.columns = {}, {}  # id(triples map) -> its id column; predicate -> column
        self.files = {}  # file IRI -> file name
        self.reference = set()

    def add_map(self, mapping, tm, missing):
        name = tm.source.path.name
        self.maps[name].append((mapping, tm, missing))
        self.id_columns[id(tm)] = tm.source.id_column or _id_column(tm)
        self.columns[id(tm)] = _predicate_columns(tm)
        self.files[file_iri(self.graph, name)] = name

    def triples(self, mapped):
        """A mapped row's triples, with the link from its subject to its file and line."""
        triples = [q[:3] for q in mapped.quads]
        if mapped.subject is not None:
            record = f"{file_iri(self.graph, mapped.file.name)}#line={mapped.line}"
            triples.append((mapped.subject, DERIVED, ox.NamedNode(record)))
        return triples

    def map_lines(self, lines):
        """(file, line) -> the rows mapped from that line (:class:`_Row`, one per triples map)."""
        wanted = defaultdict(set)
        for name, line in lines:
            wanted[name].add(line)
        out = defaultdict(list)
        for name, numbers in wanted.items():
            last = max(numbers)
            for mapping, tm, missing in self.maps.get(name, []):
                source_file = tm.source.open()
                for row in source_file.rows():
                    if row.line > last:
                        break
                    if row.line in numbers:
                        mapped = mapping._map_row(tm, source_file, row, missing)
                        record_id = (mapped.values or {}).get(self.id_columns[id(tm)], "") or ""
                        triples = [] if mapped.error else self.triples(mapped)
                        out[(name, row.line)].append(_Row(name, row.line, tm, triples, mapped.subject,
                                                          mapped.values, record_id))
        return out

    def lines_of(self, subject, store, graph):
        """The (file, line) s of the rows that gave ``subject`` (a term, or a focus node's text) triples."""
        term = subject if not isinstance(subject, str) else (
            ox.BlankNode(subject[2:]) if subject.startswith("_:") else ox.NamedNode(subject))
        out = []
        for quad in store.quads_for_pattern(term, DERIVED, None, graph):
            file, _, line = quad.object.value.rpartition("#line=")
            if file in self.files and line.isdigit():
                out.append((self.files[file], int(line)))
        return sorted(out)

    def take_out(self, lines, targets, lookup):
        """Remove the facts of the rows on ``lines`` from the loaded graphs (``targets``: (store,
        graph) pairs), except those another row or the reference data also gives."""
        mapped = self.map_lines(lines)
        gone = {t for found in mapped.values() for row in found for t in row.triples}
        subjects = {row.subject for found in mapped.values() for row in found if row.subject is not None}
        others = {key for s in subjects for key in self.lines_of(s, *lookup) if key not in lines}
        for found in self.map_lines(others).values():
            for row in found:
                if row.subject in subjects:
                    gone.difference_update(row.triples)
        gone -= self.reference
        for store, graph in targets:
            delete_quads(store, [(*t, graph) for t in gone])


def _as_of_in(planned):
    """The newest date in the export's as-of columns (``okgm:asOfColumn``, else :data:`AS_OF_COLUMNS`)."""
    found = None
    for _, tm in planned:
        columns = tm.source.as_of or AS_OF_COLUMNS
        source_file = tm.source.open()
        if not source_file.header or not set(columns) & set(source_file.header):
            continue
        for row in source_file.rows():
            found = _as_of_from(row.values, found, columns)
    return found


@contextlib.contextmanager
def _workspace(store_path):
    """Where an ingest builds its snapshot: a staged copy of an on-disk store, swapped in when
    the ingest ends well; for a SPARQL server, an in-memory store whose differences are sent."""
    if is_remote(store_path):
        yield Staging(ox.Store())
        return
    with staged(store_path) as work:
        yield work


def _replace_graph(store, graph, triples):
    """Make a named graph of an on-disk store hold exactly ``triples`` (an iterable, bulk-loaded as
    it comes, so it need not be in memory); whether it changed, told by the digest of its triples."""
    name = ox.NamedNode(graph)
    before = None
    if store.contains_named_graph(name):
        before = _Tally({}, {}, [])
        store.dump(before, ox.RdfFormat.N_TRIPLES, from_graph=name)
        store.clear_graph(name)
    loader = Loader([(store, name)])  # a bulk load: inserting quads one by one is many times slower
    digest, seen = 0, 0
    for triple in triples:
        digest += triple_digest(triple)
        seen += 1
        loader.add([triple])
    loader.close()
    return (before.digest, before.lines) != (digest, seen) if before is not None else seen > 0


def triple_digest(triple):
    """A triple's part of a snapshot's ``okg:contentDigest``: the BLAKE2b-128 hash of its N-Triples form."""
    return line_digest(f"{triple[0]} {triple[1]} {triple[2]} .".encode("utf-8"))


def line_digest(line):
    """The BLAKE2b-128 hash of one N-Triples line (bytes, without its line break), as a number."""
    return int.from_bytes(hashlib.blake2b(line, digest_size=16).digest(), "big")


def _stored_digest(store, graph):
    for quad in store.quads_for_pattern(graph, ox.NamedNode(OKG + "contentDigest"), None, graph):
        return quad.object.value
    return None


#: warnings listed one by one in the report; more are counted
MAX_LISTED_WARNINGS = 20


def _warnings(violations, rows, lookup):
    """Readable lines, in file and line order, for the warnings (severity sh:Warning) of the last pass."""
    found = []
    for violation in violations:
        if violation.is_violation:
            continue
        lines = rows.lines_of(violation.focus, *lookup)
        key = lines[0] if lines else (violation.focus, 0)
        where = f"{lines[0][0]} line {lines[0][1]}" if lines else violation.focus
        found.append((key, f"warning: {where}: {violation.message}"))
    lines = [line for _, line in sorted(found)]
    if len(lines) > MAX_LISTED_WARNINGS:
        lines = lines[:MAX_LISTED_WARNINGS] + [f"warning: ... and {len(lines) - MAX_LISTED_WARNINGS} more"]
    return lines


def _tally(store, graph, counts, rows, reference):
    """Count the loaded snapshot's triples into ``counts`` and return the sum of their
    :func:`triple_digest` s, reading the graph back from the store as N-Triples (streamed, in
    subject order). A triple counts once, for the first file (in ``counts`` order) with a row
    about its subject, or else for the reference file that gives it; the links to files and
    lines are in the digest, not in the counts."""
    tally = _Tally(counts, rows.files, reference)
    store.dump(tally, ox.RdfFormat.N_TRIPLES, from_graph=graph)
    tally.close()
    return tally.digest


class _Tally:
    """A file-like sink for :func:`_tally`: it reads N-Triples lines as Oxigraph writes them."""

    LINK = f"{DERIVED} ".encode()

    def __init__(self, counts, files, reference):
        self.counts, self.order = counts, {name: i for i, name in enumerate(counts)}
        self.files = {iri.encode(): name for iri, name in files.items()}
        self.reference = {}
        for name, triples in reference:
            for t in triples:
                self.reference.setdefault(f"{t[0]} {t[1]} {t[2]} .".encode(), name)
        self.digest, self.lines, self.rest, self.current, self.group, self.sources = 0, 0, b"", None, [], set()

    def write(self, chunk):
        lines = (self.rest + bytes(chunk)).split(b"\n")
        self.rest = lines.pop()
        self.lines += len(lines)
        for line in lines:
            self.digest += line_digest(line)
            subject = line[:line.index(b" ")]
            if subject != self.current:
                self.close()
                self.current = subject
            rest = line[len(subject) + 1:]
            if rest.startswith(self.LINK):
                file = rest[len(self.LINK) + 1:-3].rpartition(b"#line=")[0]
                if file in self.files:
                    self.sources.add(self.files[file])
                    continue
            self.group.append(line)
        return len(chunk)

    def flush(self):
        pass

    def close(self):
        first = min(self.sources, key=self.order.get) if self.sources else None
        for line in self.group:
            name = first or self.reference.get(line)
            if name is not None:
                self.counts[name].triples += 1
        self.group, self.sources = [], set()


def _provenance(report, export_dir):
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
        (run, ox.NamedNode("http://www.w3.org/2000/01/rdf-schema#comment"),
                  ox.Literal(f"okg ingest {__version__} of {export_dir.name}")),
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


def _write_quarantine(path, rejects, renames=None):
    """Write this run's rejected rows (or an empty file with the header when there are none).

    Fields and the row's JSON use the file's own headers, also where the mapping
    read a column under an alias."""
    renames = renames or {}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(QUARANTINE_COLUMNS)
        merged = {}  # one entry per rejected line; a line two triples maps rejected gets both reasons
        for reject in sorted(rejects, key=lambda r: (r[0], r[1])):
            key = (reject[0], reject[1])
            if key in merged and reject[5] not in merged[key][5]:
                merged[key] = merged[key][:5] + (merged[key][5] + "; " + reject[5],) + merged[key][6:]
            merged.setdefault(key, tuple(reject))
        for name, line, record_id, column, value, reason, values in merged.values():
            header = renames.get(name, {})
            if header:
                column = ", ".join(header.get(c.strip(), c.strip()) for c in column.split(",")) if column else column
                values = {header.get(k, k): v for k, v in values.items()} if values is not None else None
            writer.writerow([name, line, record_id, column, value, reason,
                             json.dumps(values, ensure_ascii=False) if values is not None else ""])
