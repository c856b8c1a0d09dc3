"""owlrl's OWL 2 RL closure of the ontology plus a small sample: consistent, with the inferences queries rely on."""

import pytest
import rdflib
from owlrl import DeductiveClosure, OWLRL_Semantics
from rdflib.namespace import OWL, RDF

from opportunity_kg.ingest import ingest
from opportunity_kg.store import open_store
from opportunity_kg.validation.validate import load_ontology

OKG = rdflib.Namespace("https://w3id.org/opportunity-kg/ontology#")
ORG = rdflib.Namespace("http://www.w3.org/ns/org#")
PROV = rdflib.Namespace("http://www.w3.org/ns/prov#")
SKOS = rdflib.Namespace("http://www.w3.org/2004/02/skos/core#")


@pytest.fixture(scope="module")
def closure(tmp_path_factory):
    from opportunity_kg.samples.sample import write_sample

    base = tmp_path_factory.mktemp("reason")
    write_sample(base / "export", opportunities=25, seed=5)
    report = ingest(base / "export", base / "store")
    store = open_store(base / "store")
    graph = load_ontology()
    for quad in store.quads_for_pattern(None, None, None, None):
        graph.add(tuple(_rdflib(t) for t in (quad.subject, quad.predicate, quad.object)))
    del store
    asserted = len(graph)
    DeductiveClosure(OWLRL_Semantics).expand(graph)
    assert len(graph) > asserted
    return graph


def _rdflib(term):
    import pyoxigraph as ox

    if isinstance(term, ox.NamedNode):
        return rdflib.URIRef(term.value)
    if isinstance(term, ox.BlankNode):
        return rdflib.BNode(term.value)
    if term.language:
        return rdflib.Literal(term.value, lang=term.language)
    return rdflib.Literal(term.value, datatype=rdflib.URIRef(term.datatype.value))


def test_consistent(closure):
    assert not list(closure.subjects(RDF.type, OWL.Nothing))
    assert not list(closure.subjects(RDF.type, rdflib.URIRef("http://www.w3.org/2002/07/owl#Nothing")))
    # owlrl reports inconsistencies as owl:Nothing members or as error triples of its own
    assert not [t for t in closure if "owlrl" in str(t[1]) and "error" in str(t[1]).lower()]


def test_inverse_properties(closure):
    for opp, account in closure.subject_objects(OKG.account):
        assert (account, OKG.opportunity, opp) in closure
    for child, parent in closure.subject_objects(OKG.parentAccount):
        assert (parent, OKG.childAccount, child) in closure


def test_transitive_ancestors(closure):
    grandchildren = [(a, p, g) for a, p in closure.subject_objects(OKG.parentAccount)
                     for g in closure.objects(p, OKG.parentAccount)]
    assert grandchildren, "the sample should have three-level account hierarchies"
    for account, _, grandparent in grandchildren:
        assert (account, OKG.ancestorAccount, grandparent) in closure
        assert (account, ORG.transitiveSubOrganizationOf, grandparent) in closure
    for team, parent in closure.subject_objects(OKG.parentTeam):
        for grand in closure.objects(parent, OKG.parentTeam):
            assert (team, OKG.ancestorTeam, grand) in closure
    for territory, parent in closure.subject_objects(OKG.parentTerritory):
        for grand in closure.objects(parent, OKG.parentTerritory):
            assert (territory, OKG.ancestorTerritory, grand) in closure


def test_subclass_membership(closure):
    accounts = set(closure.subjects(RDF.type, OKG.Account))
    assert accounts and accounts <= set(closure.subjects(RDF.type, ORG.Organization))
    sellers = set(closure.subjects(RDF.type, OKG.Seller))
    assert sellers and sellers <= set(closure.subjects(RDF.type, PROV.Agent))
    assert set(closure.subjects(RDF.type, OKG.ForecastCategory)) <= set(closure.subjects(RDF.type, SKOS.Concept))
