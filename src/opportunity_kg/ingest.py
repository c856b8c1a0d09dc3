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
from collections import Counter, defaultdict
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
from .history import (GRAPH_BASE, changes_since, derived_facts, history_graph, intervals_graph, snapshots,
                      tracked_values)
from .snapshots import (chain, copy_graph, current_graph, fits_in_memory, fold, fold_in_memory,
                        count_changes, forget_description, forget_digests, incoming_graph, settle,
                        snapshots_graph, upgrade, write_digests)
from .rml import RowError, load_mapping, natural_key
from .sources import CsvSource
from .remote import RemoteStore, is_remote
from .store import ONTOLOGY_GRAPH, Loader, Staging, delete_quads, graph_changes, open_store, staged, write_changes
from .support import support
from .validate import ALL_GRAPHS, droppable, from_rdflib, load_ontology, load_shapes, validate_store, value_rules

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
    rows_deleted: int = 0
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
    facts_added: int = 0  # what the snapshot changed against the one before it (kept as changes)
    facts_removed: int = 0
    current_graph: str = ""  # where the system's latest facts are
    history_changes: int = 0
    parent_changes: int = 0
    changed: bool = True
    digest: str = ""
    warnings_file: str = ""
    #: row warnings by kind ("value dropped", "warning") and the notes about whole files ("note")
    warning_counts: dict = field(default_factory=dict)
    #: for each canned query and "forecast": {"level": full|partial|none, "notes": [...]}, from the
    #: store after the ingest (:func:`opportunity_kg.support.support`)
    support: dict = field(default_factory=dict)

    @property
    def totals(self):
        total = FileCounts()
        for counts in self.files.values():
            total.rows_read += counts.rows_read
            total.rows_loaded += counts.rows_loaded
            total.rows_quarantined += counts.rows_quarantined
            total.rows_deleted += counts.rows_deleted
        total.triples = self.triples
        return total

    def as_dict(self):
        return {
            "source": self.source, "as_of": self.as_of, "graph": self.graph, "store": self.store,
            "quarantine_file": self.quarantine_file,
            "files": {name: vars(c) for name, c in self.files.items()},
            "total": vars(self.totals), "skipped": self.skipped, "unmapped": self.unmapped,
            "warnings": self.warnings, "warnings_file": self.warnings_file,
            "warning_counts": self.warning_counts, "support": self.support, "lookups": self.lookups, "previous_snapshot": self.previous_snapshot,
            "facts_added": self.facts_added, "facts_removed": self.facts_removed, "current_graph": self.current_graph,
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
    by_name = {p.name.casefold(): p for p in files}
    if tm.source.path.name.casefold() in by_name:  # Data Loader users name files as they like: opportunity.csv
        path = by_name[tm.source.path.name.casefold()]
        if not tm.source.unique_subjects and tm.source.lacks(_header(path, tm.source.header_names)):
            return []  # a map that only adds to records others make, for files with columns this one lacks
        return [path]
    found = []
    for path in files:
        name = path.name.lower()
        if any(fnmatch.fnmatch(name, pattern.lower()) for pattern in tm.source.patterns):
            if not tm.source.lacks(_header(path, tm.source.header_names)):
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
                    if not tm.source.lacks(_header(path, tm.source.header_names)):
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
        try:
            day = _parse_datetime(text.strip()).date().isoformat()
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
        report = _ingest(export_dir, store_path, source, as_of, quarantine, mappings_dir, progress)
        progress.phase("checking what the canned queries can answer")
        report.support = support(open_store(store_path, read_only=True), cache=False)
        return report
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
    row_warnings = []  # RowWarning s: values dropped, references not in the export, ...
    deleted = defaultdict(set)  # file -> lines of rows the export marks deleted (IsDeleted)
    lines_read = defaultdict(set)  # file -> every line read (a file two triples maps read counts once)
    gave = defaultdict(set)  # file -> lines that gave at least one fact
    silent = {}  # (file, line) -> (record id, values) of rows some triples map made nothing of
    gone = {}  # subject -> (file, line, "quarantined" or "deleted") of records left out
    counts = {}
    seen = {}  # hash of (triples map, subject) -> file number << 32 | line of its first row (unique-subject maps)
    report_warnings = []
    skipped = []
    absent = {}  # file -> the columns its mappings read that it lacks (one note per file, however many maps)
    footers = {}  # file -> the lines of its report footer
    named_by = {}  # file -> {column it lacks: the columns whose values name the records instead}
    total_read = 0
    planned = []  # (mapping, triples map reading one export file)
    wanted = []  # what the system's files are called, for the error when none is there
    read_as = set()  # the mappings' source names some export file is read as
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
                read_as.add(tm.source.path.name)
                planned.append((mapping, dataclasses.replace(tm, source=dataclasses.replace(tm.source, path=path))))
    # a table another triples map of the same source read is in the export (a map that adds to its records
    # from columns the file lacks found nothing, which is not a missing table)
    skipped = [name for name in skipped if name not in read_as]
    if not planned:
        raise OkgError(f"no file in {export_dir} is one the {source} mappings read "
                       f"(expected: {'; '.join(wanted) or ', '.join(skipped)})")
    notes = []  # one line each about the export as a whole
    if as_of:
        as_of = str(as_of)
    else:
        as_of, how = _as_of_in(planned)
        if how:
            notes.append(how)
    graph_iri = f"{GRAPH_BASE}{source}/{as_of}"
    shapes, ontology = load_shapes(), load_ontology()
    lenient = droppable(value_rules(shapes))
    for mapping, _ in planned:
        mapping.droppable = lenient
    ontology_triples = [tuple(from_rdflib(t) for t in spo) for spo in ontology]
    remote = RemoteStore(store_path) if is_remote(store_path) else None
    rows = _Rows(graph_iri)
    with _workspace(store_path) as work:
        store = work.store
        holder = remote or store  # where the snapshots are
        upgraded = upgrade(holder)  # a store made when snapshots were kept whole becomes a chain of changes
        if upgraded:
            notes.append(f"the store kept each snapshot of {', '.join(upgraded)} whole; they are now kept as "
                         "changes (the current graph and what each snapshot added and removed)")
        description = ox.NamedNode(graph_iri)
        # a snapshot of a date already stored is loaded afresh; if its digest is the stored one, nothing changed
        # the first snapshot of a system is loaded straight into its current graph; a later one beside
        # it, then folded in as changes (:mod:`opportunity_kg.snapshots`)
        starts_chain = not remote and not chain(store, source)
        stored_digest, replaced = None, graph_iri in {g for g, _, _ in snapshots(holder)}
        if replaced:
            stored_digest = _stored_digest(holder, description) or ""
            if not remote:
                for update in forget_description(graph_iri):
                    store.update(update)
        target = ox.NamedNode(current_graph(source) if starts_chain else incoming_graph(graph_iri))
        ontology_changed = _replace_graph(store, ONTOLOGY_GRAPH, ontology_triples)
        # the data is also loaded into an in-memory store with the ontology, where validation runs
        # several times faster than on disk, up to the setting ingest_memory_triples
        in_memory = settings.get("ingest_memory_triples")
        check = ox.Store() if in_memory > 0 else None
        if check is not None:  # the data in the snapshot's graph, the ontology in its own
            check.extend(ox.Quad(*t, ox.NamedNode(ONTOLOGY_GRAPH)) for t in ontology_triples)
        # a snapshot newer than every other is folded in where it is validated, in memory: only its
        # changes are written to disk (:func:`~opportunity_kg.snapshots.fold_in_memory`)
        in_memory_fold = (check is not None and not starts_chain and not replaced and not remote
                          and fits_in_memory(store, source, graph_iri, as_of))
        loader = Loader(([(check, target)] if check is not None else [])
                        + ([] if in_memory_fold else [(store, target)]))
        for mapping, tm in planned:
            name = tm.source.path.name
            counts.setdefault(name, FileCounts())
            source_file = tm.source.open()
            if not source_file.header:
                lines_read.setdefault(name, set())
                report_warnings.append(f"{name}: the file is empty (not even a header); nothing read")
                continue
            missing = mapping.missing_columns(tm, source_file, lenient=True)
            keyed = set(missing) & tm.source.keys.keys()  # made from other columns: named by them
            for column in sorted(keyed):
                by = ", ".join(source_file.renamed.get(c, c) for c in tm.source.keys[column])
                own = column == (tm.source.id_column or _id_column(tm))
                named_by.setdefault(name, {}).setdefault(column, (by, own))
            if missing:
                absent.setdefault(name, set()).update(set(missing) - keyed)
            rows.add_map(mapping, tm, missing)
            rows.headers[name] = dict(source_file.renamed)
            id_column = rows.id_columns[id(tm)]
            named_by_id = id_column in tm.subject.references
            deleted_column = _deleted_column(source_file.header)
            file_number = list(counts).index(name)
            for row in source_file.rows():
                mapped = mapping._map_row(tm, source_file, row, missing)
                total_read += 1
                lines_read[name].add(row.line)
                if not total_read % 2000:
                    progress.rows(name, row.number, total_read)
                    if check is not None and loader.count > in_memory:
                        progress.phase("validating on disk: the export is larger than ingest_memory_triples")
                        loader.drop(check)
                        if in_memory_fold:  # what the in-memory store holds goes to disk, and the rest after it
                            copy_graph(check, store, target.value)
                            loader.attach(store, target)
                            in_memory_fold = False
                        check = None
                if deleted_column and row.values and _is_true(row.values.get(deleted_column)):
                    deleted[name].add(row.line)  # kept out of the current data, counted on its own
                    if mapped.subject is not None:
                        gone[mapped.subject] = (name, row.line, "deleted")
                    continue
                record_id = (mapped.values or {}).get(id_column, "") or ""
                if not record_id and id_column in keyed and mapped.values is not None:
                    record_id = natural_key(mapped.values, tm.source.keys[id_column]) or ""
                if mapped.error:
                    rejects.append((name, mapped.line, record_id, mapped.field or "", mapped.value or "",
                                    mapped.error, mapped.values))
                    subject = _subject_of(mapping, tm, mapped.values)
                    if subject is not None:
                        gone.setdefault(subject, (name, mapped.line, "quarantined"))
                    continue
                if named_by_id and not record_id.strip():
                    header = source_file.renamed.get(id_column, id_column)
                    rejects.append((name, mapped.line, "", id_column, "",
                                    f"the row has no {header}, so it names no record", mapped.values))
                    continue
                for column, value, reason in mapped.dropped:
                    header = in_file_words(source_file.renamed, column)
                    row_warnings.append(RowWarning(name, mapped.line, record_id, header, value, "value dropped",
                                                   f"{reason}; the value is left out, the row loads"))
                if mapped.subject is not None and mapped.quads:
                    gave[name].add(mapped.line)
                elif mapped.values is not None:
                    silent.setdefault((name, mapped.line), (record_id, mapped.values))
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
            if source_file.footer:
                footers[name] = source_file.footer
        del seen
        for name, lines in footers.items():
            notes.append(f"{name}: lines {lines[0][0]}-{lines[-1][0]} after the last record are a report's footer "
                         "(one field each, after a blank line), not records; they are not read")
        rejected_lines = {(r[0], r[1]) for r in rejects}
        for (name, line), (record_id, values) in sorted(silent.items()):
            if line not in gave[name] and line not in deleted[name] and (name, line) not in rejected_lines:
                rejects.append((name, line, record_id, "", "", "the row gives no facts: every column the "
                                "mappings read is empty", values))
        del silent, gave
        notes += [f"{name}: no column {', '.join(sorted(columns))}; read as empty"
                  for name, columns in absent.items() if columns]
        notes += [f"{name}: no {column} column: {'each record is' if own else 'the records it refers to are'} "
                  f"named by {by}" for name, columns in named_by.items() for column, (by, own) in columns.items()]
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
        checked = (check, ALL_GRAPHS) if check is not None else (store, [target.value, ONTOLOGY_GRAPH])
        lookup = (working, target)
        take_out = {(r[0], r[1]) for r in rejects}
        bad = {}  # (file, line) -> (the row, the reason, the column, the value)
        for _ in range(MAX_VALIDATION_PASSES):
            if take_out:
                progress.phase(f"taking out {len(take_out):,} rejected rows")
                for subject, where in rows.take_out(take_out, loaded, lookup).items():
                    gone.setdefault(subject, where + ("quarantined",))
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
                        column = rows.columns[id(row.tm)].get(violation.path, "") if violation.path else ""
                        value = (row.values or {}).get(column, "") if column and "," not in column \
                            else (violation.value or "")
                        bad[(row.file, row.line)] = (row, violation.message, column, value)
                        take_out.add((row.file, row.line))
            # a record part of one left out (a stage change of a quarantined or deleted deal) goes too
            for row, reason, column in rows.orphans(gone, lookup):
                if (row.file, row.line) not in bad and (row.file, row.line) not in take_out:
                    bad[(row.file, row.line)] = (row, reason, column, (row.values or {}).get(column, ""))
                    take_out.add((row.file, row.line))
            if not take_out:
                break
        row_warnings += _warnings(violations, rows, lookup, loaded)
        for row, reason, column, value in bad.values():
            rejects.append((row.file, row.line, row.record_id, column, value or "", reason, row.values))

        # counts: each triple counts once; the snapshot's digest sums each distinct triple's hash
        quarantined = defaultdict(set)
        for name, line, *_ in rejects:
            quarantined[name].add(line)
        for name, read in lines_read.items():
            counts[name].rows_read = len(read)
            counts[name].rows_quarantined = len(quarantined[name])
            counts[name].rows_deleted = len(deleted[name] - quarantined[name])
        progress.phase("counting the snapshot's triples")
        # the on-disk store writes each subject's triples together; the in-memory one may not
        digest, loaded_lines, records = _tally(working, target, counts, rows, reference, runs=check is not None)
        for name, read in lines_read.items():
            counts[name].rows_loaded = len(loaded_lines.get(name, ()))
            _check_accounts(name, read, loaded_lines.get(name, set()), quarantined[name], deleted[name])
        row_warnings = _unique(row_warnings)
        report = IngestReport(source, as_of, graph_iri, str(store_path), str(quarantine), counts, skipped,
                              report_warnings + notes + [w.text() for w in row_warnings],
                              sum(c.triples for c in counts.values()))
        report.warnings_file = str(_warnings_path(quarantine))
        report.warning_counts = dict(sorted(Counter(w.kind for w in row_warnings).items()))
        if notes or report_warnings:
            report.warning_counts["note"] = len(notes) + len(report_warnings)
        mapped_files = set(counts) | set(skipped)
        report.unmapped = sorted(p.name for p in files if p.name not in mapped_files and p.name not in lookups)
        report.lookups = sorted(lookups)
        run = ox.NamedNode(graph_iri + "#ingest-run")
        provenance = _provenance(report, export_dir)
        for triple in {t for t in provenance if t[0] != run}:
            digest += triple_digest(triple)
        report.digest = f"{digest % 2 ** 128:032x}"
        provenance.append((ox.NamedNode(graph_iri), ox.NamedNode(OKG + "contentDigest"), ox.Literal(report.digest)))
        store.extend(ox.Quad(*t, description) for t in provenance)

        # the snapshot joins its system's chain of changes; the history compares it with the one before
        progress.phase("comparing with the previous snapshot")
        changes = []

        def compare(where, before_graph, before_iri):
            before = tracked_values(where, before_graph)
            changes.extend(changes_since(before, tracked_values(working, target.value), source, as_of,
                                         [before_iri, graph_iri]))
            report.previous_snapshot = before_iri

        snapshot_changed = stored_digest != report.digest  # a snapshot stored without a digest counts as changed
        if snapshot_changed and starts_chain:
            write_digests(store, source, records)  # each record's, for the next export's comparison
        if not snapshot_changed:  # the same export again: the chain stays as it is
            store.remove_graph(target)
        elif remote:
            _upload(store, remote, graph_iri, target)
        if snapshot_changed and not starts_chain:
            progress.phase("storing what changed since the previous snapshot")
            if in_memory_fold and 2 * loader.count > settings.get("ingest_memory_triples"):
                copy_graph(check, store, target.value)  # the current graph beside it would not fit: on disk
                in_memory_fold = False
            if in_memory_fold:
                fold_in_memory(store, check, source, graph_iri, target.value, compare, records)
            else:
                fold(holder, source, graph_iri, as_of, target.value, replaced, compare)
                if not remote:
                    forget_digests(store, source)  # the next ingest compares the whole graph, and keeps them again
            settle(holder, source)  # the snapshots before the newest keep their descriptions in the snapshots graph
            report.facts_added, report.facts_removed = count_changes(holder, graph_iri)
        report.current_graph = current_graph(source)
        del check, working, loaded, checked, lookup
        if snapshot_changed:
            report.history_changes = sum(1 for t in changes if t[1] == RDF_TYPE and t[2].value == OKG + "FieldChange")
            report.parent_changes = sum(1 for t in changes if t[1] == RDF_TYPE and t[2].value == OKG + "ParentChange")
        else:  # the same export again: the history it gave is in the store
            report.history_changes, report.parent_changes, report.previous_snapshot = _stored_history(
                holder, source, graph_iri)
        _write_quarantine(quarantine, rejects, rows.headers)
        _write_warnings(_warnings_path(quarantine), row_warnings)
        if remote:
            graphs = {ONTOLOGY_GRAPH: ontology_triples}
            if changes:
                history = ox.NamedNode(history_graph(source))
                kept = [(q.subject, q.predicate, q.object) for q in remote.quads_for_pattern(None, None, None, history)]
                graphs[history.value] = kept + changes
            adds, removes = graph_changes(remote, graphs)
            if adds or removes:
                write_changes(remote, adds, removes)
            # the stage intervals, from what the server now holds
            progress.phase("summarising the stage history")
            interval_adds, interval_removes = graph_changes(
                remote, {intervals_graph(source): list(derived_facts(remote, source))})
            if interval_adds or interval_removes:
                write_changes(remote, interval_adds, interval_removes)
            report.changed = bool(snapshot_changed or adds or removes or interval_adds or interval_removes)
            return report
        history = ox.NamedNode(history_graph(source))
        new_history = [ox.Quad(*t, history) for t in changes if ox.Quad(*t, history) not in store]
        store.extend(new_history)
        progress.phase("summarising the stage history")
        intervals_changed = _replace_graph(store, intervals_graph(source), derived_facts(store, source),
                                           digests_in=snapshots_graph(graph_iri))
        report.changed = bool(snapshot_changed or new_history or ontology_changed or intervals_changed)
        work.keep = report.changed
        if report.changed and not starts_chain:
            # what a re-ingest deleted stays on disk until RocksDB compacts it, and slows reads meanwhile
            progress.phase("compacting the store")
            store.optimize()
        progress.phase("swapping the new store in" if report.changed else "no change")
        del store, holder, loader  # the staged store closes when its last handle goes, before it is swapped in or thrown away
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
        self.headers = {}  # file -> {column the mapping reads: the file's own header} where they differ
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
        term = subject if not isinstance(subject, str) else _focus_term(subject)
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
        first = {}
        for key in sorted(lines):
            for row in mapped.get(key, []):
                if row.subject is not None:
                    first.setdefault(row.subject, key)
        return {subject: key for subject, key in first.items() if not self.lines_of(subject, *lookup)}

    def orphans(self, gone, lookup):
        """The rows of records that are part of a record left out (``gone``: subject -> (file, line,
        "quarantined" or "deleted")), through :data:`PART_OF`: (row, reason, column) each."""
        store, graph = lookup
        found = {}
        for parent, (file, line, how) in gone.items():
            for predicate in PART_OF:
                for quad in store.quads_for_pattern(None, predicate, parent, graph):
                    for key in self.lines_of(quad.subject, store, graph):
                        found.setdefault(key, (predicate, parent, file, line, how))
        for key, rows in self.map_lines(set(found)).items():
            predicate, parent, file, line, how = found[key]
            for row in rows:
                if row.subject is None or not any(t[1] == predicate and t[2] == parent for t in row.triples):
                    continue
                column = self.columns[id(row.tm)].get(predicate.value, "")
                header = in_file_words(self.headers.get(row.file, {}), column)
                value = (row.values or {}).get(column, "") if column else ""
                yield row, (f"its {header or _local(predicate)} {value or _local(parent)} was {how} "
                            f"({file} line {line})"), column
                break


def _as_of_in(planned):
    """The date the export is as of, and a note saying where it came from (None when it came from
    the modstamp columns, as usual): the newest valid date in the export's as-of columns
    (``okgm:asOfColumn``, else :data:`AS_OF_COLUMNS`, in any case); else the newest date and time
    in any column, not after today (a close date in the future is not a time the export saw); and
    failing that today. A value that is not a date is never taken."""
    sources = {tm.source.path: tm.source for _, tm in planned}
    found = None
    for path, source in sources.items():
        wanted = {c.casefold() for c in (source.as_of or AS_OF_COLUMNS)}
        source_file = source.open()  # under the mapping's column names: HubSpot's "Last Modified Date"
        columns = [c for c in source_file.header if c.casefold() in wanted]
        if columns:
            for row in source_file.rows():
                found = _as_of_from(row.values, found, columns)
    if found:
        return found, None
    today = date.today().isoformat()
    names = ", ".join(sorted({c for source in sources.values() for c in (source.as_of or AS_OF_COLUMNS)}))
    newest, created, generated = None, None, None
    for path in sources:
        source_file = CsvSource(path)
        made = [c for c in source_file.header if "creat" in c.casefold()]
        for row in source_file.rows():
            stamps = [c for c, v in (row.values or {}).items() if v and v[:1].isdigit() and ":" in v]
            day = _as_of_from(row.values, None, stamps)
            if day and day <= today and (newest is None or day > newest):
                newest = day
            day = _as_of_from(row.values, None, made)
            if day and day <= today and (created is None or day > created):
                created = day
        for line, text in source_file.footer:
            match = GENERATED.search(text)
            if match:
                generated = _as_of_from({"at": match.group(1)}, generated, ["at"])
    if generated:
        return generated, (f"as of {generated}, the date the report was generated (its footer): no file has "
                           f"a valid date in {names}; give --as-of to set it")
    if newest:
        return newest, (f"as of {newest}, the newest date and time in the export: no file has a valid "
                        f"date in {names}; give --as-of to set it")
    if created:
        return created, (f"as of {created}, the newest creation date in the export: no file has a valid "
                         f"date in {names}, nor any date and time; give --as-of to set it")
    return today, f"as of today ({today}): the export has no dates and times; give --as-of to set it"


#: a report footer's "Generated By: <name> <date time>" (Salesforce), whose date is the export's
GENERATED = re.compile(r"generated by:?.*?\b(\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}(?:,? \d{1,2}:\d{2}(?::\d{2})?(?: ?[AP]M)?)?)",
                       re.I)


@contextlib.contextmanager
def _workspace(store_path):
    """Where an ingest builds its snapshot: a staged copy of an on-disk store, swapped in when
    the ingest ends well; for a SPARQL server, an in-memory store whose differences are sent."""
    if is_remote(store_path):
        yield Staging(ox.Store())
        return
    with staged(store_path) as work:
        yield work


def _replace_graph(store, graph, triples, digests_in=None):
    """Make a named graph of an on-disk store hold exactly ``triples`` (an iterable, bulk-loaded as
    it comes, so it need not be in memory); whether it changed, told by the digest of its triples.

    With ``digests_in`` (a graph), each subject's digest is kept there, and a later call rewrites
    only the subjects whose triples changed, reading no other off disk (:func:`_update_subjects`)."""
    name = ox.NamedNode(graph)
    if digests_in and store.contains_named_graph(name):
        kept = {q.subject: q.object.value for q in store.quads_for_pattern(
            None, DERIVED_DIGEST, None, ox.NamedNode(digests_in))}
        if kept:
            return _update_subjects(store, name, triples, kept, ox.NamedNode(digests_in))
    before = None
    if store.contains_named_graph(name):
        before = _Tally({}, {}, [], runs=False)  # its digest only
        store.dump(before, ox.RdfFormat.N_TRIPLES, from_graph=name)
        store.clear_graph(name)
    loader = Loader([(store, name)])  # a bulk load: inserting quads one by one is many times slower
    digest, seen, subjects = 0, 0, {}
    for triple in triples:
        hashed = triple_digest(triple)
        digest += hashed
        seen += 1
        if digests_in:
            subjects[triple[0]] = subjects.get(triple[0], 0) + hashed
        loader.add([triple])
    loader.close()
    if digests_in:
        store.update(f"DELETE WHERE {{ GRAPH <{digests_in}> {{ ?s {DERIVED_DIGEST} ?d }} }}")
        store.extend(ox.Quad(s, DERIVED_DIGEST, ox.Literal(f"{d % 2 ** 128:032x}"), ox.NamedNode(digests_in))
                     for s, d in subjects.items())
    return (before.digest, before.lines) != (digest, seen) if before is not None else seen > 0


def _update_subjects(store, name, triples, kept, digests):
    """:func:`_replace_graph` by subject: the new triples go to an in-memory store, each subject's
    digest is compared with the one ``kept``, and only the subjects that changed, came or went are
    read off disk and rewritten. Whether anything changed."""
    fresh, subjects = ox.Store(), {}
    loader = Loader([(fresh, name)])
    for triple in triples:
        subjects[triple[0]] = subjects.get(triple[0], 0) + triple_digest(triple)
        loader.add([triple])
    loader.close()
    new = {s: f"{d % 2 ** 128:032x}" for s, d in subjects.items()}
    changed = [s for s, d in new.items() if kept.get(s) != d]
    gone = [s for s in kept if s not in new]
    if not changed and not gone:
        return False
    delete_quads(store, [q for s in changed + gone for q in store.quads_for_pattern(s, None, None, name)])
    loader = Loader([(store, name)])
    for s in changed:
        loader.add([(q.subject, q.predicate, q.object) for q in fresh.quads_for_pattern(s, None, None, name)])
    loader.close()
    delete_quads(store, [(s, DERIVED_DIGEST, ox.Literal(kept[s]), digests) for s in changed + gone if s in kept])
    store.extend(ox.Quad(s, DERIVED_DIGEST, ox.Literal(new[s]), digests) for s in changed)
    return True


#: the property that keeps each subject's digest of a derived graph (the intervals graph), in the
#: system's snapshots graph, so that the next ingest rewrites only what changed
DERIVED_DIGEST = ox.NamedNode("https://w3id.org/opportunity-kg/ontology#derivedDigest")


def triple_digest(triple):
    """A triple's part of a snapshot's ``okg:contentDigest``: the BLAKE2b-128 hash of its N-Triples form."""
    return line_digest(f"{triple[0]} {triple[1]} {triple[2]} .".encode("utf-8"))


def line_digest(line):
    """The BLAKE2b-128 hash of one N-Triples line (bytes, without its line break), as a number."""
    return int.from_bytes(hashlib.blake2b(line, digest_size=16).digest(), "big")


def _stored_digest(store, graph):
    """A snapshot's digest, from its description: in its graph (the newest), else in the default graph."""
    for row in store.query(f"SELECT ?d WHERE {{ {{ GRAPH {graph} {{ {graph} <{OKG}contentDigest> ?d }} }} UNION "
                           f"{{ {graph} <{OKG}contentDigest> ?d }} }}"):
        return row[0].value
    return None


def _stored_history(store, system, snapshot):
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


def _upload(store, remote, snapshot, incoming):
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


#: quads sent to a SPARQL server per INSERT DATA request
UPLOAD_BATCH = 50_000


def _warnings(violations, rows, lookup, loaded):
    """:class:`RowWarning` s for the warnings (severity sh:Warning or sh:Info) of the last pass, in the
    file's own words. A warning about one value of a property shape (a malformed website, say)
    drops that value from the loaded graphs (``loaded``: (store, graph) pairs): the row loads without it."""
    found = [v for v in violations if not v.is_violation]
    where = {v.focus: rows.lines_of(v.focus, *lookup) for v in found}
    mapped = rows.map_lines({keys[0] for keys in where.values() if keys})
    out = []
    for violation in found:
        keys = where[violation.focus]
        row = next((r for r in mapped.get(keys[0], []) if r.subject is not None
                    and r.subject.value == violation.focus), None) if keys else None
        column = rows.columns[id(row.tm)].get(violation.path, "") if row and violation.path else ""
        header = in_file_words(rows.headers.get(row.file, {}), column) if row else ""
        message = violation.message
        if violation.path and header:  # the export's column, not the ontology's property
            message = message.replace(f"its {violation.path.rsplit('#', 1)[-1]} ", f"its {header} ")
        kind = "warning"
        if violation.path and violation.value is not None and _drop_value(loaded, violation):
            kind = "value dropped"
            message += "; the value is left out, the row loads"
        file, line = keys[0] if keys else (violation.focus, 0)
        value = violation.value if violation.value is not None else ""
        if row and column and "," not in column and (row.values or {}).get(column):
            value = row.values[column]  # as the file writes it
        out.append(RowWarning(file, line, row.record_id if row else "", header, value, kind, message))
    return out


def _drop_value(loaded, violation):
    """Take the value a warning names out of the loaded graphs, where the record holds it under the
    warning's property (a property shape's result); whether it did (a rule's result names no such value)."""
    predicate = ox.NamedNode(violation.path)
    found = False
    for store, graph in loaded:
        quads = [q for q in store.quads_for_pattern(_focus_term(violation.focus), predicate, None, graph)
                 if q.object.value == violation.value]
        found = found or bool(quads)
        delete_quads(store, quads)
    return found


def _tally(store, graph, counts, rows, reference, runs=True):
    """Count the loaded snapshot's triples into ``counts`` and return the sum of their
    :func:`triple_digest` s and the lines of each file that gave facts ({file: {line}}), reading the
    graph back from the store as N-Triples (streamed, in subject order). A triple counts once, for the first file (in ``counts`` order) with a row
    about its subject, or else for the reference file that gives it; the links to files and
    lines are in the digest, not in the counts."""
    tally = _Tally(counts, rows.files, reference, runs, records=True)
    store.dump(tally, ox.RdfFormat.N_TRIPLES, from_graph=graph)
    tally.close(final=True)
    return tally.digest, tally.loaded, tally.records


class _Tally:
    """A file-like sink for :func:`_tally`: it reads N-Triples lines as Oxigraph writes them."""

    LINK = f"{DERIVED} ".encode()

    def __init__(self, counts, files, reference, runs=True, records=False):
        self.counts, self.order = counts, {name: i for i, name in enumerate(counts)}
        self.files = {iri.encode(): name for iri, name in files.items()}
        self.reference = {}
        for name, triples in reference:
            for t in triples:
                self.reference.setdefault(f"{t[0]} {t[1]} {t[2]} .".encode(), name)
        self.digest, self.lines, self.rest, self.current, self.group, self.sources = 0, 0, b"", None, [], set()
        self.loaded = defaultdict(set)  # file -> the lines whose rows gave facts
        # a store may write one subject's triples in more than one run (Oxigraph's in-memory store does):
        # with ``runs``, the file a subject's triples count for, and the triples of runs naming no file yet
        self.counted_for, self.counted, self.pending = {}, {}, defaultdict(list)
        self.runs = runs
        self.records = {} if records else None  # subject (N-Triples bytes) -> the sum of its facts' digests

    def write(self, chunk):
        lines = (self.rest + bytes(chunk)).split(b"\n")
        self.rest = lines.pop()
        self.lines += len(lines)
        for line in lines:
            hashed = line_digest(line)
            self.digest += hashed
            subject = line[:line.index(b" ")]
            if subject != self.current:
                self.close()
                self.current = subject
            rest = line[len(subject) + 1:]
            if self.records is not None and not rest.startswith(self.LINK):  # a record's facts, not its links
                self.records[subject] = self.records.get(subject, 0) + hashed
            if rest.startswith(self.LINK):
                file, _, line = rest[len(self.LINK) + 1:-3].rpartition(b"#line=")
                if file in self.files:
                    self.sources.add(self.files[file])
                    self.loaded[self.files[file]].add(int(line))
                    continue
            self.group.append(line)
        return len(chunk)

    def flush(self):
        pass

    def close(self, final=False):
        subject = self.current if self.runs else None  # a store that writes each subject once needs no memory
        if self.sources:
            first = min(self.sources | ({self.counted_for[subject]} if subject in self.counted_for else set()),
                        key=self.order.get)
            if subject in self.counted_for and first != self.counted_for[subject]:
                self.counts[self.counted_for[subject]].triples -= self.counted[subject]
                self.counts[first].triples += self.counted[subject]
            lines = self.group + self.pending.pop(subject, [])
            self.counts[first].triples += len(lines)
            if subject is not None:
                self.counted_for[subject] = first
                self.counted[subject] = self.counted.get(subject, 0) + len(lines)
        elif subject in self.counted_for:
            self.counts[self.counted_for[subject]].triples += len(self.group)
            self.counted[subject] += len(self.group)
        elif subject is None:  # no file names these triples: they count for the reference file that gives them
            for line in self.group:
                name = self.reference.get(line)
                if name is not None:
                    self.counts[name].triples += 1
        elif self.group:
            self.pending[subject].extend(self.group)
        self.group, self.sources = [], set()
        if final:  # triples of subjects no row named: the reference data's, if they are
            for lines in self.pending.values():
                for line in lines:
                    name = self.reference.get(line)
                    if name is not None:
                        self.counts[name].triples += 1
            self.pending.clear()


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


#: the properties that make a record part of another: a stage change of its deal, a line item of its
#: deal, a contact role on its deal. A record whose whole is quarantined or deleted goes with it.
PART_OF = tuple(ox.NamedNode(OKG + name) for name in ("changeOf", "fieldChangeOf", "lineItemOf", "roleOn"))
#: the column that marks a row deleted (Salesforce's IsDeleted, in any case) and the values that mean yes
DELETED_COLUMNS = ("IsDeleted",)
TRUE_VALUES = ("1", "true", "yes", "y")
WARNING_COLUMNS = ["source_file", "line", "record_id", "field", "value", "kind", "message"]


@dataclass(frozen=True)
class RowWarning:
    """A warning about one row: where it is, the column and value in the file's own words, what
    kind of warning it is and what it says."""
    file: str
    line: int
    record_id: str
    column: str
    value: str
    kind: str
    message: str

    def text(self):
        where = f"{self.file} line {self.line}" if self.line else self.file
        column = f" {self.column} {self.value!r}:" if self.column and self.kind == "value dropped" else ""
        return f"warning: {where}:{column} {self.message}"


def _focus_term(text):
    """The term a validation result's focus node names (``_:b0`` for a blank node)."""
    return ox.BlankNode(text[2:]) if text.startswith("_:") else ox.NamedNode(text)


def _local(term):
    return term.value.rsplit("#", 1)[-1].rsplit("/", 1)[-1]


def _deleted_column(header):
    folded = {c.casefold() for c in DELETED_COLUMNS}
    return next((c for c in header if c.casefold() in folded), None)


def _is_true(value):
    return bool(value) and value.strip().casefold() in TRUE_VALUES


def _subject_of(mapping, tm, values):
    """The subject a row would have had (for a row that failed to map), or None."""
    try:
        return tm.subject.term(values, mapping.base_iri) if values is not None else None
    except RowError:  # the subject itself could not be made
        return None


def _unique(warnings):
    """Each warning once, in file and line order."""
    return sorted(set(warnings), key=lambda w: (w.file, w.line, w.column, w.message))


def _check_accounts(name, read, loaded, quarantined, deleted):
    """Every line read is loaded, quarantined or deleted, and only one of them: else the ingest stops."""
    overlap = (loaded & quarantined) | (loaded & deleted)
    lost = read - loaded - quarantined - deleted
    if overlap or lost:
        lines = sorted(overlap or lost)[:5]
        raise OkgError(f"{name}: the rows do not add up (read {len(read)}, loaded {len(loaded)}, "
                       f"quarantined {len(quarantined)}, deleted {len(deleted)}; lines {lines} are "
                       f"{'counted twice' if overlap else 'in none'}); nothing was stored. This is a bug: "
                       "please report it with the file")


def _warnings_path(quarantine):
    name = quarantine.name
    return quarantine.with_name(name.replace("quarantine", "warnings") if "quarantine" in name
                                else quarantine.stem + "-warnings.csv")


def _write_warnings(path, warnings):
    """Every row warning of this run, in the file's own words (or just the header when there are none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(WARNING_COLUMNS)
        for w in warnings:
            writer.writerow([w.file, w.line or "", w.record_id, w.column, w.value, w.kind, w.message])


def in_file_words(headers, column):
    """A column the mapping reads (or several, "A, B") as the file names it: ``headers`` maps a
    column to the file's own header where they differ (an alias, another case)."""
    return ", ".join(headers.get(c.strip(), c.strip()) for c in column.split(",")) if column else ""


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
                column = in_file_words(header, column)
                values = {header.get(k, k): v for k, v in values.items()} if values is not None else None
            writer.writerow([name, line, record_id, column, value, reason,
                             json.dumps(values, ensure_ascii=False) if values is not None else ""])
