"""Every shape has a passing and a failing example, and the failing one is caught by that very shape.

The examples are in tests/shape_examples/<ShapeName>.ttl: nodes whose name has
"pass" must satisfy the shape, nodes whose name has "fail" must break it, with
a message a person can read. Each file is checked twice: with pyshacl running
every constraint (the reference), and with the ingest's path, where the
SHACL-SPARQL rules run once over the graph in Oxigraph; both must agree.
"""

from decimal import Decimal
from pathlib import Path

import pytest
import rdflib
from rdflib.namespace import SH

from opportunity_kg.validation.validate import load_ontology, load_shapes, validate_triples

EXAMPLES = Path(__file__).parent / "shape_examples"
OKGSH = "https://w3id.org/opportunity-kg/shapes#"
SHAPES = load_shapes()
ONTOLOGY = load_ontology()
NODE_SHAPES = sorted(str(s)[len(OKGSH):] for s in SHAPES.subjects(rdflib.RDF.type, SH.NodeShape))


def owner_shape(source):
    """The node shape a result's source shape (maybe a property shape) belongs to."""
    node = rdflib.URIRef(source) if not source.startswith("n") or "://" in source else rdflib.BNode(source)
    parent = SHAPES.value(None, SH.property, node)
    return str(parent if parent is not None else node)


def flagged(name, sparql_in_store):
    data = rdflib.Graph().parse(EXAMPLES / f"{name}.ttl")
    results = validate_triples(data, SHAPES, ONTOLOGY, sparql_in_store=sparql_in_store)
    mine = [r for r in results if r.shape and owner_shape(r.shape) == OKGSH + name]
    return data, {r.focus: r.message for r in mine}


def test_every_node_shape_has_examples():
    assert len(NODE_SHAPES) >= 25
    missing = [n for n in NODE_SHAPES if not (EXAMPLES / f"{n}.ttl").exists()]
    assert not missing, f"shapes without examples: {missing}"


@pytest.mark.parametrize("name", NODE_SHAPES)
def test_failing_example_is_caught_by_its_shape(name):
    data, caught = flagged(name, sparql_in_store=False)
    subjects = {str(s) for s in data.subjects()}
    failing = {s for s in subjects if "fail" in s.rsplit("/", 1)[-1]}
    passing = {s for s in subjects if "pass" in s.rsplit("/", 1)[-1]}
    assert failing and passing, "each example file needs a passing and a failing node"
    assert set(caught) == failing, f"caught {sorted(caught)}, expected {sorted(failing)}"
    assert not passing & set(caught)
    for message in caught.values():
        assert len(message) > 15 and "http" not in message.split(" ")[0], message


@pytest.mark.parametrize("name", NODE_SHAPES)
def test_ingest_path_agrees_with_pyshacl(name):
    _, reference = flagged(name, sparql_in_store=False)
    _, fast = flagged(name, sparql_in_store=True)
    assert set(fast) == set(reference)


def canonical(value):
    if value is None:
        return None
    try:
        return str(Decimal(value).normalize())
    except ArithmeticError:
        return value.replace("+00:00", "Z")


def test_both_paths_give_the_same_results_on_every_shapes_violations_at_once():
    """All the examples in one dataset (violations of every shape): the fast path's results, the
    core constraints compiled to SPARQL, are pyshacl's, result for result."""
    data = rdflib.Graph()
    for path in sorted(EXAMPLES.glob("*.ttl")):
        data.parse(path)

    def results(sparql_in_store):
        found = validate_triples(data, SHAPES, ONTOLOGY, sparql_in_store=sparql_in_store)
        # pyshacl writes values as rdflib prints them (-5.0, +00:00), the fast path in Oxigraph's canonical
        # form (-5, Z): the same RDF terms
        return sorted({(r.focus, r.path, canonical(r.value), r.message.replace("+00:00", "Z"), r.severity,
                        owner_shape(r.shape) if r.shape else None) for r in found}, key=str)

    reference, fast = results(False), results(True)
    assert len(reference) > 60
    assert fast == reference


NAMED_SHAPES = """
@prefix sh: <http://www.w3.org/ns/shacl#> . @prefix ex: <http://example.com/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
ex:DealShape a sh:NodeShape ; sh:targetClass ex:Deal ;
    sh:property [ sh:path ex:address ; sh:node ex:AddressShape ; sh:message "the address is not one" ] .
ex:AddressShape a sh:NodeShape ; sh:targetClass ex:Address ;
    sh:property [ sh:path ex:city ; sh:minCount 1 ; sh:message "an address needs a city" ] .
ex:EitherShape a sh:NodeShape ; sh:targetClass ex:Lead ; sh:message "a lead needs an email or a phone" ;
    sh:or ( ex:HasEmail [ sh:property [ sh:path ex:phone ; sh:minCount 1 ] ] ) .
ex:HasEmail a sh:NodeShape ; sh:property [ sh:path ex:email ; sh:minCount 1 ] .
"""
NAMED_DATA = """
@prefix ex: <http://example.com/> .
ex:d1 a ex:Deal ; ex:address ex:a1 .
ex:d2 a ex:Deal ; ex:address ex:a2 .
ex:a1 a ex:Address ; ex:city "Oslo" .
ex:a2 a ex:Address .
ex:l1 a ex:Lead ; ex:email "x@example.com" .
ex:l2 a ex:Lead .
"""


def test_shapes_that_use_named_shapes_give_a_full_processors_results():
    """sh:node and sh:or naming another shape: the shape goes to pyshacl with the shapes it names,
    and a named shape checked by SPARQL for its own targets is not reported twice."""
    shapes = rdflib.Graph().parse(data=NAMED_SHAPES, format="turtle")
    data = rdflib.Graph().parse(data=NAMED_DATA, format="turtle")

    def results(sparql_in_store):
        return sorted((r.focus, r.path, r.message) for r in validate_triples(data, shapes, rdflib.Graph(),
                                                                             sparql_in_store=sparql_in_store))

    reference = results(False)
    assert ("http://example.com/d2", "http://example.com/address", "the address is not one") in reference
    assert ("http://example.com/a2", "http://example.com/city", "an address needs a city") in reference
    assert any(focus == "http://example.com/l2" for focus, _, _ in reference)
    assert not any(focus in ("http://example.com/d1", "http://example.com/l1") for focus, _, _ in reference)
    # the default messages of the two paths differ in words (the project's shapes all give theirs)
    assert [r if "known" in r[2] else r[:2] for r in results(True)] == [r if "known" in r[2] else r[:2] for r in reference]


def test_lint_names_the_shapes_the_sparql_path_leaves_to_pyshacl():
    """A shape the SPARQL path does not compile is named, with what it uses; the project's all compile."""
    from opportunity_kg.tools.lint import shape_notes

    notes = shape_notes(rdflib.Graph().parse(data=NAMED_SHAPES, format="turtle"))
    assert any("http://example.com/DealShape" in n and "checked by pyshacl" in n and "node" in n for n in notes), notes
    assert not any("AddressShape" in n for n in notes)
    assert shape_notes() == []


COUNT_SHAPES = """
@prefix sh: <http://www.w3.org/ns/shacl#> . @prefix ex: <http://example.com/> .
ex:DealShape a sh:NodeShape ; sh:targetClass ex:Deal ;
    sh:property [ sh:path ex:amount ; sh:minCount 1 ; sh:maxCount 1 ] ,
                [ sh:path ex:tag ; sh:minCount 2 ; sh:maxCount 3 ] .
ex:LinkShape a sh:NodeShape ; sh:targetSubjectsOf ex:owner , ex:account ;
    sh:sparql [ sh:message "its {?p} is not known" ;
                sh:select "SELECT $this ?p WHERE { $this ?p ?o . FILTER (?p IN (<http://example.com/owner>, <http://example.com/account>)) FILTER NOT EXISTS { ?o a ?any } }" ] .
"""
COUNT_DATA = """
@prefix ex: <http://example.com/> . @prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
ex:ok a ex:Deal ; ex:amount 5 ; ex:tag "a", "b" .
ex:none a ex:Deal ; ex:tag "a", "b", "c", "d" .
ex:two a ex:Deal ; ex:amount 5, 6 ; ex:tag "a" .
ex:same-text a ex:Deal ; ex:amount 1 ; ex:tag "a", "a"@en, "a"^^ex:code, "b" .
ex:Deal2 rdfs:subClassOf ex:Deal .
ex:typed-twice a ex:Deal , ex:Deal2 ; ex:amount 1, 2 ; ex:tag "a", "b" .
ex:d9 ex:owner ex:nobody ; ex:account ex:nowhere .
"""


def test_counts_and_several_targets_give_pyshacls_results_each_once():
    """sh:minCount and sh:maxCount (1 and more; literals of one text but different terms count
    apart; a focus node of two classes counts once), and a SPARQL rule whose focus node is the subject of two of its target properties: the
    fast path reports what pyshacl reports, each result once."""
    shapes = rdflib.Graph().parse(data=COUNT_SHAPES, format="turtle")
    data = rdflib.Graph().parse(data=COUNT_DATA, format="turtle")

    def results(sparql_in_store):
        return sorted((r.focus.rsplit("/", 1)[-1], (r.path or "").rsplit("/", 1)[-1], r.message)
                      for r in validate_triples(data, shapes, rdflib.Graph(), sparql_in_store=sparql_in_store))

    reference = results(False)
    assert [f for f, p, _ in reference if p == "amount"] == ["none", "two", "typed-twice"]
    assert [f for f, p, _ in reference if p == "tag"] == ["none", "same-text", "two"]
    assert [(f, m) for f, _, m in reference if "known" in m] == [("d9", "its http://example.com/account is not known"),
                                                                 ("d9", "its http://example.com/owner is not known")]
    # the default messages of the two paths differ in words (the project's shapes all give theirs)
    assert [r if "known" in r[2] else r[:2] for r in results(True)] == [r if "known" in r[2] else r[:2] for r in reference]


FOCUS_SHAPES = """
@prefix sh: <http://www.w3.org/ns/shacl#> . @prefix ex: <http://example.com/> .
ex:Targets a sh:NodeShape ; sh:targetSubjectsOf ex:owner , ex:account ;
    sh:sparql [ sh:message "its {?p} is not known" ; sh:select
        "SELECT $this ?p WHERE { { $this <http://example.com/owner> ?o BIND (<http://example.com/owner> AS ?p) } UNION { $this <http://example.com/account> ?o BIND (<http://example.com/account> AS ?p) } FILTER NOT EXISTS { ?o a ?any } }" ] .
ex:Bound a sh:NodeShape ; sh:targetClass ex:Deal ;
    sh:sparql [ sh:message "amount {?a} is over 5" ; sh:select
        "SELECT $this ?a WHERE { $this <http://example.com/amount> ?a . FILTER (?a > 5) OPTIONAL { $this <http://example.com/tag> ?t } }" ] .
ex:Optional a sh:NodeShape ; sh:targetClass ex:Deal ;
    sh:sparql [ sh:message "no amount" ; sh:select
        "SELECT $this WHERE { OPTIONAL { $this <http://example.com/amount> ?a } FILTER (!BOUND(?a)) }" ] .
ex:ObjectsOf a sh:NodeShape ; sh:targetObjectsOf ex:owner ;
    sh:sparql [ sh:message "an owner of no type" ; sh:select "SELECT $this WHERE { FILTER NOT EXISTS { $this a ?t } }" ] .
ex:Off a sh:NodeShape ; sh:targetClass ex:Deal ; sh:deactivated true ;
    sh:property [ sh:path ex:amount ; sh:minCount 1 ; sh:message "off: never" ] ;
    sh:sparql [ sh:message "off: never" ; sh:select "SELECT $this WHERE { $this <http://example.com/amount> ?a }" ] .
ex:RuleOff a sh:NodeShape ; sh:targetClass ex:Deal ;
    sh:sparql [ sh:message "off: never" ; sh:deactivated true ;
                sh:select "SELECT $this WHERE { $this <http://example.com/amount> ?a }" ] .
ex:NoTargets a sh:NodeShape ;
    sh:sparql [ sh:message "never: no focus nodes" ; sh:select "SELECT $this WHERE { $this <http://example.com/amount> ?a }" ] .
"""
FOCUS_DATA = """
@prefix ex: <http://example.com/> . @prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
ex:Deal2 rdfs:subClassOf ex:Deal .
ex:big a ex:Deal , ex:Deal2 ; ex:amount 9 ; ex:tag "a", "b" ; ex:owner ex:nobody ; ex:account ex:nowhere .
ex:small a ex:Deal ; ex:amount 1 ; ex:owner ex:big .
ex:bare a ex:Deal2 .
ex:not-a-deal ex:amount 7 ; ex:owner ex:nobody .
"""


def test_rules_read_their_focus_nodes_where_the_pre_binding_would():
    """A SHACL-SPARQL rule's focus nodes are read before its patterns, after them, or not at all
    (:func:`~opportunity_kg.validation.shacl_sparql.focus_in`); each way gives pyshacl's results:
    a rule whose patterns find only its targets, one whose patterns bind the focus node but also
    find nodes that are not targets (not reported), one that binds it only in an OPTIONAL, one
    whose targets are the objects of a property, one without targets (no focus nodes), and shapes
    and a rule switched off (sh:deactivated).
    Solutions that give the same result (two tags, one amount) give it once, as in pyshacl."""
    from opportunity_kg.validation.shacl_sparql import focus_in
    from opportunity_kg.validation.validate import split_shapes

    shapes = rdflib.Graph().parse(data=FOCUS_SHAPES, format="turtle")
    placed = {r.shape.rsplit("/", 1)[-1]: r.query for r in split_shapes(shapes)[1]}
    assert "SELECT DISTINCT ?this" not in placed["Targets"]  # no need to read the focus nodes
    for name in ("Bound", "Optional"):
        at = placed[name].index("SELECT DISTINCT ?this")
        assert (at > placed[name].index("/amount>")) == (name == "Bound")  # after the patterns only where they bind it
    assert focus_in("SELECT ?this WHERE { { SELECT ?x WHERE { ?this <http://e/p> ?x } } }") is None  # ?this not projected
    assert focus_in("SELECT ?this (COUNT(?x) AS ?n) WHERE { ?this <http://e/p> ?x } GROUP BY ?this") is None
    assert focus_in("not SPARQL") is None
    data = rdflib.Graph().parse(data=FOCUS_DATA, format="turtle")

    def results(sparql_in_store):
        return sorted((r.focus.rsplit("/", 1)[-1], r.message)
                      for r in validate_triples(data, shapes, rdflib.Graph(), sparql_in_store=sparql_in_store))

    reference = results(False)
    assert reference == [("bare", "no amount"), ("big", "amount 9 is over 5"),
                         ("big", "its http://example.com/account is not known"),
                         ("big", "its http://example.com/owner is not known"),
                         ("nobody", "an owner of no type"),
                         ("not-a-deal", "its http://example.com/owner is not known")]
    assert results(True) == reference
