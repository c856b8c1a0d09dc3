"""SHACL validation of mapped data with pyshacl, reported per focus node.

:func:`load_shapes` reads every ``*.shapes.ttl`` in ``shapes/``;
:func:`validate_triples` validates triples (together with the ontology, so
that named individuals such as forecast categories are known) and returns one
:class:`Violation` per result, with the focus node, the property path and the
shape's message.
"""

from dataclasses import dataclass
from pathlib import Path


import pyoxigraph as ox
import rdflib
from pyshacl import validate
from rdflib.namespace import SH

from .paths import ONTOLOGY_DIR, SHAPES_DIR

XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"


@dataclass(frozen=True)
class Violation:
    focus: str
    path: str | None
    value: str | None
    message: str
    shape: str | None


def load_graph_dir(folder, pattern):
    graph = rdflib.Graph()
    for path in sorted(Path(folder).glob(pattern)):
        graph.parse(path, format="turtle")
    return graph


def load_shapes(folder=SHAPES_DIR):
    return load_graph_dir(folder, "*.shapes.ttl")


def load_ontology(folder=ONTOLOGY_DIR):
    return load_graph_dir(folder, "*.ttl")


def to_rdflib(triples):
    """An rdflib graph from pyoxigraph triples or quads (graph names dropped)."""
    graph = rdflib.Graph()
    cache = {}

    def convert(term):
        node = cache.get(term)
        if node is None:
            if isinstance(term, ox.NamedNode):
                node = rdflib.URIRef(term.value)
            elif isinstance(term, ox.BlankNode):
                node = rdflib.BNode(term.value)
            elif term.language:
                node = rdflib.Literal(term.value, lang=term.language)
            else:
                datatype = term.datatype.value
                node = rdflib.Literal(term.value, datatype=None if datatype == XSD_STRING else datatype)
            cache[term] = node
        return node

    add = graph.add
    for t in triples:
        add((convert(t.subject), convert(t.predicate), convert(t.object)))
    return graph


def validate_triples(triples, shapes=None, ontology=None):
    """Validate ``triples`` against the shapes; return a list of :class:`Violation`."""
    shapes = shapes if shapes is not None else load_shapes()
    ontology = ontology if ontology is not None else load_ontology()
    data = triples if isinstance(triples, rdflib.Graph) else to_rdflib(triples)
    conforms, report, _ = validate(data, shacl_graph=shapes, ont_graph=ontology, inference="none",
                                   advanced=True, allow_warnings=True)
    if conforms:
        return []
    out = []
    for result in report.subjects(rdflib.RDF.type, SH.ValidationResult):
        if report.value(result, SH.resultSeverity) != SH.Violation:
            continue
        focus = report.value(result, SH.focusNode)
        path = report.value(result, SH.resultPath)
        value = report.value(result, SH.value)
        message = report.value(result, SH.resultMessage)
        shape = report.value(result, SH.sourceShape)
        out.append(Violation(str(focus), str(path) if path is not None else None,
                             str(value) if value is not None else None,
                             str(message) if message is not None else "breaks a shape",
                             str(shape) if shape is not None else None))
    return out


