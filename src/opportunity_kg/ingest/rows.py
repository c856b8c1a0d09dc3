"""The export's rows, read again from their files when one has to be taken out or named: while an
export is ingested no row's triples stay in memory."""

from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import quote

import pyoxigraph as ox

from ..store import delete_quads
from ..vocabulary import OKG, PROV
from .report import in_file_words

DERIVED = ox.NamedNode(PROV + "wasDerivedFrom")
#: the properties that make a record part of another: a stage change of its deal, a line item of its
#: deal, a contact role on its deal. A record whose whole is quarantined or deleted goes with it.
PART_OF = tuple(ox.NamedNode(OKG + name) for name in ("changeOf", "fieldChangeOf", "lineItemOf", "roleOn"))


@dataclass
class Row:
    """One row as one triples map maps it (read again from its file when it is needed)."""
    file: str
    line: int
    tm: object
    triples: list
    subject: object
    values: dict | None
    record_id: str = ""


class Rows:
    """The export's rows, read again when needed (so memory stays flat as exports grow). Each
    loaded row's subject links to its file and line (``prov:wasDerivedFrom``); every triple a
    triples map makes for a row has the row's subject, so a subject's lines tell which rows gave
    its triples."""

    def __init__(self, graph):
        self.graph = graph
        self.maps = defaultdict(list)  # file -> [(mapping, triples map, missing columns)]
        self.id_columns, self.columns = {}, {}  # id(triples map) -> its id column; predicate -> column
        self.files = {}  # file IRI -> file name
        self.headers = {}  # file -> {column the mapping reads: the file's own header} where they differ
        self.reference = set()
        self.file_iris = {}  # a source file's path -> its IRI within the snapshot graph

    def add_map(self, mapping, tm, missing):
        name = tm.source.path.name
        self.maps[name].append((mapping, tm, missing))
        self.id_columns[id(tm)] = tm.source.id_column or id_column(tm)
        self.columns[id(tm)] = predicate_columns(tm)
        self.files[file_iri(self.graph, name)] = name

    def triples(self, mapped):
        """A mapped row's triples, with the link from its subject to its file and line."""
        triples = [q[:3] for q in mapped.quads]
        if mapped.subject is not None:
            iri = self.file_iris.get(mapped.file)
            if iri is None:  # once per file: the rows of one file share it
                iri = self.file_iris[mapped.file] = file_iri(self.graph, mapped.file.name)
            record = f"{iri}#line={mapped.line}"
            triples.append((mapped.subject, DERIVED, ox.NamedNode(record)))
        return triples

    def map_lines(self, lines):
        """(file, line) -> the rows mapped from that line (:class:`Row`, one per triples map)."""
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
                        mapped = mapping.map_row(tm, source_file, row, missing)
                        record_id = (mapped.values or {}).get(self.id_columns[id(tm)], "") or ""
                        triples = [] if mapped.error else self.triples(mapped)
                        out[(name, row.line)].append(Row(name, row.line, tm, triples, mapped.subject,
                                                         mapped.values, record_id))
        return out

    def lines_of(self, subject, store, graph):
        """The (file, line) s of the rows that gave ``subject`` (a term, or a focus node's text) triples."""
        term = subject if not isinstance(subject, str) else focus_term(subject)
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
                yield row, (f"its {header or local_name(predicate)} {value or local_name(parent)} was {how} "
                            f"({file} line {line})"), column
                break


def file_iri(graph, name):
    """The IRI of a source file within a snapshot graph (its name percent-encoded)."""
    return f"{graph}/{quote(name, safe='/')}"


def id_column(tm):
    """The column that names a record: the one its subject is made from (``Id`` if several)."""
    refs = sorted(tm.subject.references)
    return refs[0] if len(refs) == 1 else "Id"


def predicate_columns(tm):
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


def focus_term(text):
    """The term a validation result's focus node names (``_:b0`` for a blank node)."""
    return ox.BlankNode(text[2:]) if text.startswith("_:") else ox.NamedNode(text)


def local_name(term):
    return term.value.rsplit("#", 1)[-1].rsplit("/", 1)[-1]
