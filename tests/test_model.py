"""The ontology and shapes as files: every term labelled and defined, shapes valid SHACL, each shape applied."""

import rdflib
from pyshacl import validate
from rdflib.namespace import OWL, RDF, RDFS, SKOS

from opportunity_kg.validation.validate import load_ontology, load_shapes

OKG = "https://w3id.org/opportunity-kg/ontology#"
TERM_TYPES = (OWL.Class, OWL.ObjectProperty, OWL.DatatypeProperty, OWL.NamedIndividual)


def test_every_term_has_a_label_a_definition_and_is_defined_by():
    graph = load_ontology()
    terms = {s for t in TERM_TYPES for s in graph.subjects(RDF.type, t) if str(s).startswith(OKG)}
    assert len(terms) > 60
    for term in terms:
        assert graph.value(term, RDFS.label), f"{term} has no label"
        assert graph.value(term, SKOS.definition), f"{term} has no definition"
        assert graph.value(term, RDFS.isDefinedBy), f"{term} has no rdfs:isDefinedBy"


def test_every_okg_term_used_in_shapes_and_mappings_is_defined():
    from opportunity_kg.paths import MAPPINGS_DIR

    defined = {str(s) for s in load_ontology().subjects() if str(s).startswith(OKG)}
    used = set()
    for graph in [load_shapes()] + [rdflib.Graph().parse(p) for p in MAPPINGS_DIR.rglob("*.rml.ttl")]:
        used |= {str(n) for triple in graph for n in triple if isinstance(n, rdflib.URIRef) and str(n).startswith(OKG)}
    assert used - defined == set()


def test_shapes_are_valid_shacl():
    conforms, _, text = validate(rdflib.Graph(), shacl_graph=load_shapes(), meta_shacl=True)
    assert conforms, text


def test_every_class_has_a_node_shape():
    ontology, shapes = load_ontology(), load_shapes()
    classes = {c for c in ontology.subjects(RDF.type, OWL.Class) if str(c).startswith(OKG)}
    targeted = set(shapes.objects(None, rdflib.URIRef("http://www.w3.org/ns/shacl#targetClass")))
    assert classes - targeted == set()
