"""Older mapping languages, read as RML: YARRRML, and the legacy RML/R2RML vocabulary.

Most mappings in the wild, and everything the YARRRML translator ``yatter``
writes, use the legacy vocabulary: R2RML's ``rr:`` terms, RML's first
namespace (``http://semweb.mmlab.be/ns/rml#``), ``ql:CSV`` and FNML's
``fnml:execution``. :func:`upgrade` rewrites those terms to their
KG-Construct RML equivalents (``http://w3id.org/rml/``), so the one engine
runs both; what has no equivalent for CSV files (SQL tables and queries,
FNO's older ``fnml:functionValue``) is refused with a clear error.
:func:`yarrrml_graph` translates a YARRRML document with ``yatter``.
"""

import io
import logging
import re

import rdflib
from rdflib import RDF, Literal
from rdflib.collection import Collection

from .. import vocabulary
from ..errors import MappingError, UnsupportedError

RML = rdflib.Namespace("http://w3id.org/rml/")
OKGM = rdflib.Namespace(vocabulary.OKGM)
#: the opportunity-kg source extensions a YARRRML mapping gives in its ``okgm:`` section, and the
#: shape of each value: a list of column names, one name, a boolean, or a mapping of columns
YARRRML_EXTENSIONS = {"requiredColumn": "names", "filePattern": "names", "asOfColumn": "names",
                      "idColumn": "name", "uniqueSubjects": "boolean", "columnAlias": "columns",
                      "keyColumn": "columns"}
RR = "http://www.w3.org/ns/r2rml#"
RML_LEGACY = "http://semweb.mmlab.be/ns/rml#"
QL = "http://semweb.mmlab.be/ns/ql#"
FNML_LEGACY = "http://semweb.mmlab.be/ns/fnml#"
#: legacy terms whose new name is not simply the same local name in the RML namespace
RENAMED = {
    QL + "CSV": RML.CSV,
    FNML_LEGACY + "execution": RML.functionExecution,
    FNML_LEGACY + "function": RML.function,
    FNML_LEGACY + "input": RML.input,
    FNML_LEGACY + "parameter": RML.parameter,
    FNML_LEGACY + "valueMap": RML.inputValueMap,
    FNML_LEGACY + "value": RML.inputValue,
    FNML_LEGACY + "Execution": RML.FunctionExecution,
    FNML_LEGACY + "Input": RML.Input,
    FNML_LEGACY + "ValueMap": RML.InputValueMap,
    FNML_LEGACY + "return": RML["return"],
    FNML_LEGACY + "returnMap": RML.returnMap,
}
UNSUPPORTED = {
    RR + "sqlQuery": "SQL queries", RR + "tableName": "database tables", RR + "sqlVersion": "SQL versions",
    FNML_LEGACY + "functionValue": "FNO function values (fnml:functionValue); use fnml:execution",
}


def _new(node):
    if not isinstance(node, rdflib.URIRef):
        return node
    text = str(node)
    if text in RENAMED:
        return RENAMED[text]
    for legacy in (RR, RML_LEGACY):
        if text.startswith(legacy):
            return RML[text[len(legacy):]]
    return node


def is_legacy(graph):
    """True when the mapping uses R2RML or legacy RML terms."""
    return any(str(p).startswith((RR, RML_LEGACY, FNML_LEGACY)) for p in set(graph.predicates()))


def upgrade(graph):
    """The mapping in ``graph`` with legacy RML/R2RML/FNML terms rewritten to RML (a new graph)."""
    out = rdflib.Graph()
    for s, p, o in graph:
        if str(p) in UNSUPPORTED:
            raise UnsupportedError(f"{UNSUPPORTED[str(p)]} are not supported (CSV files only)")
        out.add((s, _new(p), _new(o) if p == RDF.type or str(o).startswith((RR, QL)) else o))
    return out


def yarrrml_graph(text, name):
    """The RML graph (new vocabulary) for the YARRRML document ``text``, translated by yatter."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        document = YAML(typ="safe", pure=True).load(io.StringIO(text))
    except YAMLError as exc:
        raise MappingError(f"cannot parse the YARRRML mapping as YAML: {exc}", file=name) from None
    if not isinstance(document, dict) or "mappings" not in document:
        raise MappingError("a YARRRML mapping needs a 'mappings' section", file=name)
    extensions = {}  # mapping key -> its okgm: section, which yatter does not know
    for key, body in (document.get("mappings") or {}).items():
        if not isinstance(body, dict):
            raise MappingError(f"YARRRML mapping {key!r} is not a section with sources, s and po", file=name)
        if "okgm" in body:
            extensions[key] = _extensions(body.pop("okgm"), key, name)
        if not (body.get("sources") or document.get("sources")):
            raise MappingError(f"YARRRML mapping {key!r} has no sources", file=name)
        if not (body.get("s") or body.get("subject") or body.get("subjects")):
            raise MappingError(f"YARRRML mapping {key!r} has no subject (s)", file=name)
    import yatter

    log = logging.getLogger("yatter.constants")  # yatter logs every step, and its errors, here
    saved, errors = (log.handlers[:], log.level, log.propagate), []
    capture = logging.Handler(logging.ERROR)
    capture.emit = lambda record: errors.append(record.getMessage())
    log.handlers, log.propagate = [capture], False
    try:
        turtle = yatter.translate(document)
    except Exception as exc:  # yatter raises plain exceptions for mappings it cannot translate
        errors.append(str(exc))
        turtle = None
    finally:
        log.handlers, log.level, log.propagate = saved
    if not turtle or errors:
        detail = "; ".join(e for e in errors if not e.startswith("ERROR: The YARRRML")) or "no RML produced"
        raise MappingError(f"yatter cannot translate the YARRRML mapping: {detail}", file=name)
    graph = rdflib.Graph()
    graph.parse(data=turtle, format="turtle")
    graph = upgrade(graph)
    for key, triples in extensions.items():
        _attach(graph, key, triples, name)
    return graph


def _extensions(section, key, name):
    """The okgm: section of YARRRML mapping ``key`` as (property, value) pairs for its logical source:

    requiredColumn, filePattern, asOfColumn: a column name or a list of them; idColumn: a column name;
    uniqueSubjects: true or false; columnAlias: {column: header or [headers]}; keyColumn: {column: [columns
    its value is made of]}."""
    if not isinstance(section, dict):
        raise MappingError(f"YARRRML mapping {key!r}: okgm must be a section of extensions", file=name)
    out = []
    for prop, value in section.items():
        kind = YARRRML_EXTENSIONS.get(prop)
        if kind is None:
            raise MappingError(f"YARRRML mapping {key!r}: okgm has no extension {prop!r}; the extensions are "
                               f"{', '.join(YARRRML_EXTENSIONS)}", file=name)
        where = f"YARRRML mapping {key!r}: okgm {prop}"
        if kind == "names":
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(v, str) and v for v in values):
                raise MappingError(f"{where} takes a column name or a list of them", file=name)
            out += [(OKGM[prop], v) for v in values]
        elif kind == "name":
            if not isinstance(value, str) or not value:
                raise MappingError(f"{where} takes one column name", file=name)
            out.append((OKGM[prop], value))
        elif kind == "boolean":
            if not isinstance(value, bool):
                raise MappingError(f"{where} takes true or false", file=name)
            out.append((OKGM[prop], value))
        else:
            if not isinstance(value, dict):
                raise MappingError(f"{where} takes a section of columns (column: ...)", file=name)
            for column, given in value.items():
                names = given if isinstance(given, list) else [given]
                if not names or not all(isinstance(v, str) and v for v in names):
                    raise MappingError(f"{where} {column}: give a column name or a list of them", file=name)
                out.append((OKGM[prop], (str(column), names)))
    return out


def _attach(graph, key, extensions, name):
    """Add ``extensions`` to the logical sources of the triples maps yatter made of mapping ``key``
    (named ``<base>key_<n>``, one per source)."""
    pattern = re.compile(rf"[/#]{re.escape(key)}_\d+$")
    maps = [tm for tm in graph.subjects(RDF.type, RML.TriplesMap) if pattern.search(str(tm))]
    sources = {src for tm in maps for src in graph.objects(tm, RML.logicalSource)}
    if not sources:
        raise MappingError(f"YARRRML mapping {key!r}: no logical source to give its okgm extensions to", file=name)
    for source in sources:
        for prop, value in extensions:
            if prop == OKGM.columnAlias:
                column, headers = value
                alias = rdflib.BNode()
                graph.add((source, prop, alias))
                graph.add((alias, OKGM.column, Literal(column)))
                for header in headers:
                    graph.add((alias, OKGM.header, Literal(header)))
            elif prop == OKGM.keyColumn:
                column, columns = value
                key_node, items = rdflib.BNode(), rdflib.BNode()
                graph.add((source, prop, key_node))
                graph.add((key_node, OKGM.column, Literal(column)))
                Collection(graph, items, [Literal(c) for c in columns])
                graph.add((key_node, OKGM["from"], items))
            else:
                graph.add((source, prop, Literal(value)))
