"""SHACL validation of mapped data with pyshacl, reported per focus node.

:func:`load_shapes` reads every ``*.shapes.ttl`` in ``shapes/``;
:func:`validate_triples` validates triples, and :func:`validate_store` data
already in a store (together with the ontology, so that named individuals such
as forecast categories are known); both return one :class:`Violation` per
result, with the focus node, the property path and the shape's message.
"""

import concurrent.futures
import os
from pathlib import Path


import pyoxigraph as ox
import rdflib
from pyshacl import validate
from rdflib.namespace import SH

from ..errors import OkgError
from ..paths import ONTOLOGY_DIR, SHAPES_DIR
from .shacl_sparql import SparqlRule, Violation, compile_shapes  # noqa: F401  (Violation: the results' one shape)

XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"
DEFAULT_GRAPH = ox.DefaultGraph()
#: quads turned into N-Quads text and loaded at a time
LOAD_CHUNK = 100_000


def load_graph_dir(folder, pattern):
    graph = rdflib.Graph()
    for path in sorted(Path(folder).glob(pattern)):
        graph.parse(path, format="turtle")
    return graph


def load_shapes(folder=SHAPES_DIR):
    return load_graph_dir(folder, "*.shapes.ttl")


def load_ontology(folder=ONTOLOGY_DIR):
    return load_graph_dir(folder, "*.ttl")


def value_rules(shapes):
    """What the shapes say of each property's values, as ``{(class, property): strict}``: ``strict``
    is True when a property shape of severity ``sh:Violation`` (SHACL's default) on that class
    constrains the property, so a record with a bad value there is quarantined; False when only
    ``sh:Warning`` or ``sh:Info`` shapes do, so a bad value is dropped with a warning and the
    record loads. The data architect decides it in Turtle with ``sh:severity``."""
    rules = {}
    for node_shape, target in shapes.subject_objects(SH.targetClass):
        for prop in shapes.objects(node_shape, SH.property):
            path = shapes.value(prop, SH.path)
            if not isinstance(path, rdflib.URIRef):
                continue
            severity = shapes.value(prop, SH.severity) or SH.Violation
            key = (str(target), str(path))
            rules[key] = rules.get(key, False) or severity == SH.Violation
    return rules


def droppable(rules):
    """A function of (subject classes, predicate) for the mapping engine: True when a value that
    cannot be read may be dropped (no strict shape on any of the classes constrains it)."""
    def check(classes, predicate):
        return not any(rules.get((c.value, predicate.value)) for c in classes)
    return check


def to_rdflib(triples):
    """An rdflib graph from pyoxigraph triples or quads, or the engine's tuples (graph names dropped)."""
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
        if isinstance(t, tuple):  # the engine's (subject, predicate, object[, graph]) tuples
            add((convert(t[0]), convert(t[1]), convert(t[2])))
        else:
            add((convert(t.subject), convert(t.predicate), convert(t.object)))
    return graph


def split_shapes(shapes):
    """The shapes without their SPARQL constraints, and those constraints as :class:`SparqlRule` s."""
    core = rdflib.Graph()
    for triple in shapes:
        core.add(triple)
    rules = []
    for shape, constraint in list(shapes.subject_objects(SH.sparql)):
        core.remove((shape, SH.sparql, constraint))
        rules.append(SparqlRule.from_shapes(shapes, shape, constraint))
    return core, rules


RDFS_SUBCLASS = "http://www.w3.org/2000/01/rdf-schema#subClassOf"


def validate_triples(triples, shapes=None, ontology=None, *, sparql_in_store=True):
    """Validate ``triples`` against the shapes; return a list of :class:`Violation` (and warnings).

    By default (``sparql_in_store``) the triples and the ontology go into an
    in-memory Oxigraph store and :func:`validate_store` checks them there.
    With ``sparql_in_store=False`` pyshacl checks everything (the reference;
    the tests hold both to the same results).
    """
    shapes = shapes if shapes is not None else load_shapes()
    ontology = ontology if ontology is not None else load_ontology()
    if not sparql_in_store:
        data = triples if isinstance(triples, rdflib.Graph) else to_rdflib(triples)
        return pyshacl_violations(data, shapes, ontology)
    from ..mapping.rml import nquads

    store = ox.Store()
    if isinstance(triples, rdflib.Graph):
        store.extend(ox.Quad(*(from_rdflib(n) for n in t)) for t in triples)
    else:
        chunk = []
        for t in triples:  # in chunks, so the N-Quads text of a big export is never all in memory
            chunk.append((*t[:3], DEFAULT_GRAPH))
            if len(chunk) >= LOAD_CHUNK:
                store.load(nquads(chunk), format=ox.RdfFormat.N_QUADS)
                chunk = []
        store.load(nquads(chunk), format=ox.RdfFormat.N_QUADS)
    store.extend(ox.Quad(*(from_rdflib(n) for n in t)) for t in ontology)
    return validate_store(store, None, shapes, ontology)


#: ``graphs`` for :func:`validate_store`: every named graph of the store
ALL_GRAPHS = "every named graph"


def validate_store(store, graphs, shapes=None, ontology=None):
    """Validate data already in a store: the union of the named ``graphs`` (IRIs; None for the
    default graph; :data:`ALL_GRAPHS` for every graph of the store), which must include the ontology. Every constraint runs as SPARQL, once
    over the whole graph: the SHACL-SPARQL constraints as they are, the core constraints
    compiled by :mod:`opportunity_kg.validation.shacl_sparql`; pyshacl checks only the shapes that
    compiler leaves to it."""

    shapes = shapes if shapes is not None else load_shapes()
    core, rules = split_shapes(shapes)
    compiled, rest = compile_shapes(core)
    if graphs == ALL_GRAPHS:
        graphs = [q.value for q in store.named_graphs()]
    named = [ox.NamedNode(g) for g in graphs] if graphs else None
    out = []
    if len(rest):
        ontology = ontology if ontology is not None else load_ontology()
        if named:
            data = to_rdflib(q for g in named for q in store.quads_for_pattern(None, None, None, g))
        else:
            data = to_rdflib(store.quads_for_pattern(None, None, None, DEFAULT_GRAPH))
        out += pyshacl_violations(data, rest, ontology)
    # the rules run side by side: pyoxigraph releases the GIL while it evaluates a query
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        every = graphs is not None and len(graphs) == sum(1 for _ in store.named_graphs())
        for found in pool.map(lambda rule: list(rule.run(store, named, every)), compiled + rules):
            out.extend(found)
    return out


def from_rdflib(node):
    """The pyoxigraph term for an rdflib term."""
    if isinstance(node, rdflib.URIRef):
        return ox.NamedNode(str(node))
    if isinstance(node, rdflib.BNode):
        return ox.BlankNode(str(node))
    if node.language:
        return ox.Literal(str(node), language=node.language)
    if node.datatype:
        return ox.Literal(str(node), datatype=ox.NamedNode(str(node.datatype)))
    return ox.Literal(str(node))


def pyshacl_violations(data, shapes, ontology=None):
    """``data`` validated by pyshacl against ``shapes``: one :class:`Violation` per result."""
    _, report, _ = validate(data, shacl_graph=shapes, ont_graph=ontology, inference="none",
                            advanced=True, allow_warnings=True)
    return read_report(report)


def read_report(report):
    """The results of a SHACL validation report graph as :class:`Violation` s."""
    if not isinstance(report, rdflib.Graph):  # pyshacl could not run the shapes at all
        raise OkgError(f"the SHACL shapes cannot be run: {report}")
    out = []
    for result in report.subjects(rdflib.RDF.type, SH.ValidationResult):
        severity = report.value(result, SH.resultSeverity)
        focus = report.value(result, SH.focusNode)
        path = report.value(result, SH.resultPath)
        value = report.value(result, SH.value)
        message = report.value(result, SH.resultMessage)
        shape = report.value(result, SH.sourceShape)
        out.append(Violation(str(focus), str(path) if path is not None else None,
                             str(value) if value is not None else None,
                             str(message) if message is not None else "breaks a shape",
                             str(shape) if shape is not None else None, str(severity)))
    return out


