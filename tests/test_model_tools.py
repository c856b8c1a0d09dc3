"""The tools for the people who extend the model: HTML docs at /ontology, canonical Turtle, lint."""

import re

import pytest
import rdflib
import requests
from rdflib.namespace import OWL, RDF

from .conftest import ROOT, okg
from opportunity_kg.errors import OkgError
from opportunity_kg.tools.lint import lint, shapes_violations, style_violations
from opportunity_kg.tools.ontology_docs import documentation_graph
from opportunity_kg.tools.turtle_format import format_turtle, turtle_files
from opportunity_kg.validation.validate import load_ontology

OKG = rdflib.Namespace("https://w3id.org/opportunity-kg/ontology#")
ONTOLOGY_IRI = rdflib.URIRef("https://w3id.org/opportunity-kg/ontology")
STYLE = "https://w3id.org/opportunity-kg/style#"


# --- /ontology and okg docs ---------------------------------------------------------------

def test_ontology_answers_a_browser_with_html_anchored_by_term(server):
    response = requests.get(server + "/ontology", headers={"Accept": "text/html,application/xhtml+xml;q=0.9"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Accept" in response.headers["Vary"]
    html = response.text
    assert "<title>opportunity-kg ontology" in html
    for term in ("Opportunity", "SalesStage", "LegalEntity", "closeDate", "parentAccount"):
        assert f'id="{term}"' in html, term
    # a standard term the alignment module names is linked, not documented as ours
    assert 'id="Organization"' not in html


@pytest.mark.parametrize("accept,fmt", [
    ("text/turtle", "turtle"), ("application/rdf+xml", "xml"),
    ("application/n-triples", "nt"), ("application/ld+json", "json-ld"),
])
def test_ontology_answers_an_rdf_client_with_the_whole_ontology(server, accept, fmt):
    response = requests.get(server + "/ontology", headers={"Accept": accept})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith(accept)
    graph = rdflib.Graph().parse(data=response.text, format=fmt)
    assert len(graph) == len(load_ontology())
    assert (OKG.Opportunity, RDF.type, OWL.Class) in graph
    assert (ONTOLOGY_IRI, OWL.versionIRI, None) in graph


def test_rdflib_loads_the_ontology_iri_by_content_negotiation(server):
    graph = rdflib.Graph().parse(server + "/ontology")
    assert (OKG.SalesStage, RDF.type, OWL.Class) in graph


def test_ontology_format_parameter_suffix_and_version(server):
    assert requests.get(server + "/ontology?format=ttl").headers["Content-Type"].startswith("text/turtle")
    assert requests.get(server + "/ontology.nt").headers["Content-Type"].startswith("application/n-triples")
    version = requests.get(server + "/ontology/0.1.0", headers={"Accept": "text/turtle"})
    assert version.status_code == 200 and "owl:versionIRI" in version.text
    module = requests.get(server + "/ontology/account", headers={"Accept": "text/turtle"})
    graph = rdflib.Graph().parse(data=module.text, format="turtle")
    assert (OKG.Account, RDF.type, OWL.Class) in graph and (OKG.Opportunity, None, None) not in graph
    assert (rdflib.URIRef(ONTOLOGY_IRI + "/account"), RDF.type, OWL.Ontology) in graph
    missing = requests.get(server + "/ontology/9.9.9")
    assert missing.status_code == 404 and "9.9.9" in missing.json()["message"]
    unknown = requests.get(server + "/ontology?format=docx")
    assert unknown.status_code == 400 and "docx" in unknown.json()["message"]


def test_documentation_graph_has_one_ontology_header():
    graph = documentation_graph()
    assert list(graph.subjects(RDF.type, OWL.Ontology)) == [ONTOLOGY_IRI]
    assert (None, OWL.imports, None) not in graph


def test_okg_docs_writes_html_and_every_rdf_format(tmp_path):
    result = okg("docs", "--out", tmp_path / "docs")
    names = sorted(p.name for p in (tmp_path / "docs").iterdir())
    assert names == ["index.html", "opportunity-kg.jsonld", "opportunity-kg.nt", "opportunity-kg.rdf",
                     "opportunity-kg.ttl"]
    assert result.stdout.count("wrote ") == 5
    assert 'id="Opportunity"' in (tmp_path / "docs" / "index.html").read_text(encoding="utf-8")


# --- canonical Turtle ------------------------------------------------------------------------

@pytest.mark.parametrize("path", turtle_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_model_file_is_in_canonical_form(path):
    text = path.read_text(encoding="utf-8")
    assert format_turtle(text, path) == text, f"run: okg fmt {path.relative_to(ROOT)}"


MESSY = """# A header comment that stays.
@prefix ex: <http://example.com/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix unused: <http://unused.example/> .
ex:b rdfs:label "B" ; ex:list ( 3 1 2 ) ; ex:n 1.50 .   # a comment that goes
ex:a ex:p [ ex:q "x" ] , [ ex:q "multi\\nline \\"quoted\\"" ] ; a ex:Thing ; rdfs:label "A"@en .
"""


def test_canonical_form_keeps_triples_sorts_and_is_stable():
    once = format_turtle(MESSY)
    assert once == format_turtle(once)
    assert rdflib.compare.isomorphic(rdflib.Graph().parse(data=MESSY, format="turtle"),
                                     rdflib.Graph().parse(data=once, format="turtle"))
    assert once.startswith("# A header comment that stays.\n")
    assert "a comment that goes" not in once and "unused" not in once
    assert once.index("ex:a a ex:Thing ;\n    rdfs:label") < once.index("ex:b rdfs:label")
    assert "( 3 1 2 )" in once  # list order is kept
    assert '"""multi\nline "quoted\\""""' in once


def test_okg_fmt_check_and_fix(tmp_path):
    path = tmp_path / "messy.ttl"
    path.write_text(MESSY, encoding="utf-8")
    check = okg("fmt", "--check", path, check=False)
    assert check.returncode == 1 and f"not in canonical form: {path}" in check.stdout
    assert path.read_text(encoding="utf-8") == MESSY
    okg("fmt", path)
    assert okg("fmt", "--check", path).stdout.startswith("all 1 Turtle files are in canonical form")


def test_fmt_names_the_file_that_is_not_turtle(tmp_path):
    bad = tmp_path / "bad.ttl"
    bad.write_text("@prefix ex: <http://example.com/> .\nex:a ex:b .\n", encoding="utf-8")
    result = okg("fmt", bad, check=False)
    assert result.returncode == 1 and str(bad) in result.stderr and "not valid Turtle" in result.stderr
    with pytest.raises(OkgError):
        format_turtle("ex:a ex:b ex:c .", "x.ttl")


# --- lint: style shapes and SHACL-SHACL ----------------------------------------------------------

def test_the_model_files_have_no_problems():
    assert lint() == []
    assert okg("lint").stdout.strip() == "ontology, shapes, mappings and canned queries: no problems"


BROKEN_TERMS = """
@prefix okg: <https://w3id.org/opportunity-kg/ontology#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
okg:NoLabel a owl:Class ; skos:definition "A class that somebody forgot to label."@en ;
    rdfs:isDefinedBy <https://w3id.org/opportunity-kg/ontology> .
okg:noDefinition a owl:ObjectProperty ; rdfs:label "no definition"@en ; rdfs:domain okg:NoLabel ;
    rdfs:isDefinedBy <https://w3id.org/opportunity-kg/ontology> .
okg:noDomain a owl:DatatypeProperty ; rdfs:label "no domain"@en ;
    skos:definition "A property with neither a domain nor a reason for none."@en ;
    rdfs:isDefinedBy <https://w3id.org/opportunity-kg/ontology> .
okg:Orphan a owl:Class ; rdfs:label "orphan"@en ; skos:definition "A class whose superclass is not declared."@en ;
    rdfs:subClassOf okg:NotDeclared .
"""


def test_style_shapes_catch_each_kind_of_mistake():
    ontology = load_ontology()
    ontology.parse(data=BROKEN_TERMS, format="turtle")
    found = {(v.shape, v.focus, v.path) for v in style_violations(ontology)}
    label = str(rdflib.RDFS.label)
    caught = {(shape[len(STYLE):] if shape.startswith(STYLE) else "TermShape", focus[len(str(OKG)):] or "ontology")
              for shape, focus, _ in found}
    assert caught == {("TermShape", "NoLabel"), ("DefinitionShape", "noDefinition"),
                      ("DomainShape", "noDomain"), ("TermShape", "Orphan"),
                      ("DefinedTermsShape", "ontology")}, found
    assert (next(s for s, f, p in found if f.endswith("NoLabel")), str(OKG.NoLabel), label) in found
    messages = [v.message for v in style_violations(ontology) if "NotDeclared" in v.message]
    assert messages == [f"{OKG.NotDeclared} is used here but not declared (no rdf:type)"]


def test_shapes_are_checked_against_shacl_shacl():
    broken = rdflib.Graph().parse(data="""
        @prefix sh: <http://www.w3.org/ns/shacl#> . @prefix ex: <http://example.com/> .
        ex:S a sh:NodeShape ; sh:targetClass ex:C ; sh:property [ sh:path ex:p ; sh:minCount "one" ] .
    """, format="turtle")
    problems = shapes_violations(broken)
    assert problems and any("minCount" in (p.path or "") for p in problems)
    assert shapes_violations() == []


BROKEN_MAPPING = """
@prefix rml: <http://w3id.org/rml/> . @prefix ex: <http://example.com/> .
@prefix okg: <https://w3id.org/opportunity-kg/ontology#> . @prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
ex:Deals a rml:TriplesMap ;
  rml:logicalSource [ rml:source "deals.csv" ; rml:referenceFormulation rml:CSV ] ;
  rml:subjectMap [ rml:template "http://example.com/deal/{Id}" ; rml:class okg:Opportunityy ] ;
  rml:predicateObjectMap [ rml:predicate okg:quantity ; rml:objectMap [ rml:constant "1" ; rml:datatype xsd:decimal ] ] ,
    [ rml:predicate okg:closeDat ; rml:objectMap [ rml:reference "CloseDate" ] ] .
"""


def test_lint_names_undefined_terms_and_ignored_datatypes_in_mappings(tmp_path):
    """The mistakes a data architect makes in a mapping that the engine would take silently."""
    from opportunity_kg.tools.lint import mapping_violations

    system = tmp_path / "mappings" / "demo"
    system.mkdir(parents=True)
    (system / "deals.rml.ttl").write_text(BROKEN_MAPPING, encoding="utf-8")
    (system / "broken.rml.ttl").write_text("@prefix rml: <http://w3id.org/rml/> . <#x> a rml:TriplesMap .",
                                           encoding="utf-8")
    messages = sorted(v.message for v in mapping_violations(tmp_path / "mappings"))
    assert any(m.startswith("the mapping does not compile") for m in messages), messages
    assert any("okg:Opportunityy is not defined in the ontology; did you mean okg:Opportunity?" in m for m in messages)
    assert any("okg:closeDat is not defined in the ontology; did you mean okg:closeDate?" in m for m in messages)
    assert any("okg:quantity: a datatype or language on a constant is ignored" in m for m in messages)
    assert len(messages) == 4, messages


def test_lint_with_an_export_lists_the_columns_it_lacks(tmp_path):
    """`okg lint --export` names each column a mapping reads that the export's file lacks (a misspelt
    header here), as notes: the model files still have no problems."""
    import shutil

    export = tmp_path / "export"
    shutil.copytree(ROOT / "tests" / "corpus" / "dataloader", export)
    text = (export / "opportunity.csv").read_text(encoding="utf-8")
    (export / "opportunity.csv").write_text(text.replace('"STAGENAME"', '"STAGE_NAME"', 1), encoding="utf-8")
    out = okg("lint", "--export", export).stdout
    notes = [line for line in out.splitlines() if line.startswith("note: Opportunity.rml.ttl (Opportunity)")]
    assert len(notes) == 1 and "StageName" in notes[0] and "opportunity.csv" in notes[0], out
    assert "read with the salesforce mappings" in out and "no problems" in out
