"""Ingest a CRM export: map, validate, quarantine, load one snapshot atomically.

:func:`ingest` is the one entry point the CLI and the tests call. It

1. runs every mapping of the source system (``mappings/<system>/*.rml.ttl``)
   over the export's files, row by row;
2. validates the mapped data with the SHACL shapes;
3. writes every rejected row (unreadable, unmappable, duplicate Id, or
   breaking a shape) to a quarantine CSV with file, line, field, value and
   reason, and loads the rest;
4. replaces the snapshot's named graph in one transaction, together with the
   snapshot's PROV-O provenance and the ontology graph.

Rows read always equal rows loaded plus rows quarantined, per file and in total.
"""

import csv
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import pyoxigraph as ox

from . import __version__
from .errors import DataError, OkgError
from .paths import MAPPINGS_DIR
from .rml import load_mapping
from .store import ONTOLOGY_GRAPH, open_store, replace_graphs
from .validate import from_rdflib, load_ontology, load_shapes, validate_triples

GRAPH_BASE = "https://w3id.org/opportunity-kg/graph/"
OKG = "https://w3id.org/opportunity-kg/ontology#"
PROV = "http://www.w3.org/ns/prov#"
RDF_TYPE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
XSD = "http://www.w3.org/2001/XMLSchema#"
#: columns whose newest date tells what date an export is "as of"
AS_OF_COLUMNS = ("SystemModstamp", "LastModifiedDate")
#: how often validation is repeated after rows are removed (a removal can break another row)
MAX_VALIDATION_PASSES = 5
QUARANTINE_COLUMNS = ["source_file", "line", "record_id", "field", "value", "reason", "row"]
#: file names that identify an export's system
SIGNATURES = {"salesforce": {"Opportunity.csv", "Account.csv", "OpportunityHistory.csv", "User.csv"}}


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
    changed: bool = True

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
            "warnings": self.warnings, "changed": self.changed,
        }


@dataclass
class _Row:
    file: str
    line: int
    values: dict | None
    quads: list
    subject: object
    predicates: dict  # predicate IRI -> column


def detect_source(export_dir):
    """The source system an export folder came from, by its file names."""
    names = {p.name for p in Path(export_dir).glob("*.csv")}
    for system, signature in SIGNATURES.items():
        if names & signature:
            return system
    raise OkgError(f"cannot tell which system the export in {export_dir} came from: none of its files "
                   f"({', '.join(sorted(names)) or 'no CSV files'}) is a known export table; "
                   f"name the system with --source ({', '.join(SIGNATURES)})")


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


def _as_of_from(values, current):
    for column in AS_OF_COLUMNS:
        text = values.get(column) if values else None
        if text and re.match(r"\d{4}-\d{2}-\d{2}", text):
            day = text[:10]
            if current is None or day > current:
                current = day
    return current


def ingest(export_dir, store_path, *, source=None, as_of=None, quarantine=None, mappings_dir=MAPPINGS_DIR):
    """Ingest the export in ``export_dir`` into the store at ``store_path``; return an :class:`IngestReport`."""
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise OkgError(f"{export_dir} is not a folder; give the folder that holds the export's CSV files")
    source = source or detect_source(export_dir)
    mapping_files = sorted((Path(mappings_dir) / source).glob("*.rml.ttl"))
    if not mapping_files:
        raise OkgError(f"no mappings for source {source!r} in {Path(mappings_dir) / source}")
    store_path = Path(store_path)
    quarantine = Path(quarantine) if quarantine else store_path.with_name(store_path.name + "-quarantine.csv")

    rows = []
    rejects = []
    counts = {}
    seen = {}  # (triples map, subject) -> line of first row
    found_as_of = None
    report_warnings = []
    skipped = []
    for mapping_file in mapping_files:
        mapping = load_mapping(mapping_file, data_dir=export_dir)
        present = [tm for tm in mapping.triples_maps if tm.source.path.exists()]
        for tm in mapping.triples_maps:
            if tm not in present and tm.source.path.name not in skipped:
                skipped.append(tm.source.path.name)
        for tm in present:
            name = tm.source.path.name
            file_counts = counts.setdefault(name, FileCounts())
            columns = _predicate_columns(tm)
            source_file = tm.source.open()
            missing = mapping.missing_columns(tm, source_file, lenient=True)
            if missing:
                report_warnings.append(f"{name}: no column {', '.join(missing)}; read as empty")
            for row in source_file.rows():
                mapped = mapping._map_row(tm, source_file, row, missing)
                file_counts.rows_read += 1
                found_as_of = _as_of_from(mapped.values, found_as_of)
                record_id = (mapped.values or {}).get("Id", "")
                if mapped.error:
                    rejects.append((name, mapped.line, record_id, mapped.field or "", mapped.value or "",
                                    mapped.error, mapped.values))
                    continue
                key = (tm.name, mapped.subject)
                if mapped.subject is not None and key in seen:
                    rejects.append((name, mapped.line, record_id, "Id", record_id,
                                    f"duplicate record: the same Id is on line {seen[key]}", mapped.values))
                    continue
                seen[key] = mapped.line
                rows.append(_Row(name, mapped.line, mapped.values, mapped.quads, mapped.subject, columns))

    # validate; rows whose facts break a shape are quarantined, then validate again
    shapes, ontology = load_shapes(), load_ontology()
    by_subject = defaultdict(list)
    for row in rows:
        if row.subject is not None:
            by_subject[row.subject.value].append(row)
    bad = {}
    for _ in range(MAX_VALIDATION_PASSES):
        live = [q for row in rows if id(row) not in bad for q in row.quads]
        violations = validate_triples(live, shapes, ontology)
        new = 0
        for violation in violations:
            if not violation.is_violation:
                continue
            owners = [r for r in by_subject.get(violation.focus, []) if id(r) not in bad]
            if violation.path:
                with_path = [r for r in owners if any(q.predicate.value == violation.path for q in r.quads)]
                owners = with_path or owners
            for row in owners:
                if id(row) not in bad:
                    bad[id(row)] = (row, violation)
                    new += 1
        if not new:
            break
    report_warnings += _warnings(violations, by_subject, bad)
    for row, violation in bad.values():
        column = row.predicates.get(violation.path, "") if violation.path else ""
        value = row.values.get(column, "") if column and "," not in column else (violation.value or "")
        rejects.append((row.file, row.line, (row.values or {}).get("Id", ""), column, value or "",
                        violation.message, row.values))
    loaded = [row for row in rows if id(row) not in bad]

    as_of = str(as_of) if as_of else (found_as_of or date.today().isoformat())
    graph_iri = f"{GRAPH_BASE}{source}/{as_of}"
    data = {}
    for row in loaded:
        counts[row.file].rows_loaded += 1
        record = ox.NamedNode(f"{graph_iri}/{row.file}#line={row.line}")
        for quad in row.quads:
            triple = ox.Triple(quad.subject, quad.predicate, quad.object)
            if triple not in data:
                data[triple] = row.file
        if row.subject is not None:
            data.setdefault(ox.Triple(row.subject, ox.NamedNode(PROV + "wasDerivedFrom"), record), None)
    for name, *_ in rejects:
        counts[name].rows_quarantined += 1
    for triple, name in data.items():
        if name:
            counts[name].triples += 1
    report = IngestReport(source, as_of, graph_iri, str(store_path), str(quarantine), counts, skipped,
                          report_warnings, sum(1 for n in data.values() if n))
    mapped_files = set(counts) | set(skipped)
    report.unmapped = sorted(p.name for p in export_dir.glob("*.csv") if p.name not in mapped_files)
    triples = list(data) + _provenance(report, export_dir)
    ontology_triples = [ox.Triple(*(from_rdflib(t) for t in spo)) for spo in ontology]

    _write_quarantine(quarantine, rejects)
    store = open_store(store_path)
    try:
        added, removed = replace_graphs(store, {graph_iri: triples, ONTOLOGY_GRAPH: ontology_triples},
                                        ignore_subjects=[graph_iri + "#ingest-run"])
        report.changed = bool(added or removed)
    finally:
        del store
    return report


#: warnings listed one by one in the report; more are counted
MAX_LISTED_WARNINGS = 20


def _warnings(violations, by_subject, bad):
    """Readable lines, in file and line order, for the warnings (severity sh:Warning) of the last pass."""
    found = []
    for violation in violations:
        if violation.is_violation:
            continue
        rows = [r for r in by_subject.get(violation.focus, []) if id(r) not in bad]
        key = (rows[0].file, rows[0].line) if rows else (violation.focus, 0)
        where = f"{rows[0].file} line {rows[0].line}" if rows else violation.focus
        found.append((key, f"warning: {where}: {violation.message}"))
    lines = [line for _, line in sorted(found)]
    if len(lines) > MAX_LISTED_WARNINGS:
        lines = lines[:MAX_LISTED_WARNINGS] + [f"warning: ... and {len(lines) - MAX_LISTED_WARNINGS} more"]
    return lines


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
        ox.Triple(g, RDF_TYPE, ox.NamedNode(OKG + "Snapshot")),
        ox.Triple(g, RDF_TYPE, ox.NamedNode(PROV + "Entity")),
        ox.Triple(g, p("sourceSystem"), ox.Literal(report.source)),
        ox.Triple(g, p("asOf"), lit(report.as_of, "date")),
        ox.Triple(g, p("triples"), lit(report.triples, "integer")),
        ox.Triple(g, p("rowsRead"), lit(totals.rows_read, "integer")),
        ox.Triple(g, p("rowsLoaded"), lit(totals.rows_loaded, "integer")),
        ox.Triple(g, p("rowsQuarantined"), lit(totals.rows_quarantined, "integer")),
        ox.Triple(g, p("prov:wasGeneratedBy"), run),
        ox.Triple(run, RDF_TYPE, ox.NamedNode(OKG + "IngestRun")),
        ox.Triple(run, RDF_TYPE, ox.NamedNode(PROV + "Activity")),
        ox.Triple(run, p("prov:endedAtTime"), lit(now, "dateTime")),
        ox.Triple(run, ox.NamedNode("http://www.w3.org/2000/01/rdf-schema#comment"),
                  ox.Literal(f"okg ingest {__version__} of {export_dir.name}")),
    ]
    for name, c in report.files.items():
        f = ox.NamedNode(f"{report.graph}/{name}")
        out += [
            ox.Triple(g, p("sourceFile"), f),
            ox.Triple(g, p("prov:wasDerivedFrom"), f),
            ox.Triple(run, p("prov:used"), f),
            ox.Triple(f, RDF_TYPE, ox.NamedNode(OKG + "SourceFile")),
            ox.Triple(f, p("fileName"), ox.Literal(name)),
            ox.Triple(f, p("rowsRead"), lit(c.rows_read, "integer")),
            ox.Triple(f, p("rowsLoaded"), lit(c.rows_loaded, "integer")),
            ox.Triple(f, p("rowsQuarantined"), lit(c.rows_quarantined, "integer")),
        ]
    return out


def _write_quarantine(path, rejects):
    """Write this run's rejected rows (or an empty file with the header when there are none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(QUARANTINE_COLUMNS)
        for name, line, record_id, column, value, reason, values in sorted(rejects, key=lambda r: (r[0], r[1])):
            writer.writerow([name, line, record_id, column, value, reason,
                             json.dumps(values, ensure_ascii=False) if values is not None else ""])
