"""Mappings in YARRRML and in the legacy RML/R2RML vocabulary run on the same engine, with the same result."""

import pyoxigraph as ox
import pytest

from opportunity_kg.errors import OkgError
from opportunity_kg.rml import run_mapping

from .conftest import ROOT, okg

CSV = "Id,Name,Amount,Roles,Account\n1,Alpha,\"1,200.50\",A;B,001\n2,Beta,300,,002\n"

NEW = """
@prefix rml: <http://w3id.org/rml/> . @prefix ex: <http://example.com/> .
@prefix okgfn: <https://w3id.org/opportunity-kg/function#> .
ex:Deals a rml:TriplesMap ;
  rml:logicalSource [ rml:source "deals.csv" ; rml:referenceFormulation rml:CSV ] ;
  rml:subjectMap [ rml:template "http://example.com/deal/{Id}" ; rml:class ex:Deal ] ;
  rml:predicateObjectMap [ rml:predicate ex:name ; rml:objectMap [ rml:reference "Name" ; rml:language "en" ] ] ,
    [ rml:predicate ex:account ; rml:objectMap [ rml:template "http://example.com/account/{Account}" ] ] ,
    [ rml:predicate ex:role ; rml:objectMap [ rml:functionExecution [ rml:function okgfn:split ;
        rml:input [ rml:parameter okgfn:value ; rml:inputValueMap [ rml:reference "Roles" ] ] ] ] ] ,
    [ rml:predicate ex:amount ; rml:objectMap [ rml:functionExecution [ rml:function okgfn:decimal ;
        rml:input [ rml:parameter okgfn:value ; rml:inputValueMap [ rml:reference "Amount" ] ] ] ] ] .
"""

LEGACY = """
@prefix rr: <http://www.w3.org/ns/r2rml#> . @prefix rml: <http://semweb.mmlab.be/ns/rml#> .
@prefix ql: <http://semweb.mmlab.be/ns/ql#> . @prefix fnml: <http://semweb.mmlab.be/ns/fnml#> .
@prefix ex: <http://example.com/> . @prefix okgfn: <https://w3id.org/opportunity-kg/function#> .
ex:Deals a rr:TriplesMap ;
  rml:logicalSource [ rml:source "deals.csv" ; rml:referenceFormulation ql:CSV ] ;
  rr:subjectMap [ rr:template "http://example.com/deal/{Id}" ; rr:class ex:Deal ] ;
  rr:predicateObjectMap [ rr:predicate ex:name ; rr:objectMap [ rml:reference "Name" ; rr:language "en" ] ] ,
    [ rr:predicateMap [ rr:constant ex:account ] ;
      rr:objectMap [ rr:template "http://example.com/account/{Account}" ; rr:termType rr:IRI ] ] ,
    [ rr:predicate ex:role ; rr:objectMap [ fnml:execution [ fnml:function okgfn:split ;
        fnml:input [ fnml:parameter okgfn:value ; fnml:valueMap [ rml:reference "Roles" ] ] ] ] ] ,
    [ rr:predicate ex:amount ; rr:objectMap [ fnml:execution [ fnml:function okgfn:decimal ;
        fnml:input [ fnml:parameter okgfn:value ; fnml:valueMap [ rml:reference "Amount" ] ] ] ] ] .
"""

YARRRML = """
prefixes:
  ex: http://example.com/
  okgfn: https://w3id.org/opportunity-kg/function#
mappings:
  deals:
    sources:
      - ['deals.csv~csv']
    s: http://example.com/deal/$(Id)
    po:
      - [a, ex:Deal]
      - [ex:name, $(Name), en~lang]
      - [ex:account, http://example.com/account/$(Account)~iri]
      - p: ex:role
        o:
          function: okgfn:split
          parameters:
            - [okgfn:value, $(Roles)]
      - p: ex:amount
        o:
          function: okgfn:decimal
          parameters:
            - [okgfn:value, $(Amount)]
"""


def quads_of(tmp_path, name, text):
    (tmp_path / "deals.csv").write_text(CSV, encoding="utf-8")
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return set(run_mapping(path))


def test_legacy_and_yarrrml_mappings_give_the_same_quads_as_rml(tmp_path):
    expected = quads_of(tmp_path, "new.rml.ttl", NEW)
    assert len(expected) == 10  # 2 deals x (type, name, account, amount), and Alpha's two roles
    assert ox.Quad(ox.NamedNode("http://example.com/deal/1"), ox.NamedNode("http://example.com/amount"),
                   ox.Literal("1200.5", datatype=ox.NamedNode("http://www.w3.org/2001/XMLSchema#decimal"))) in expected
    assert quads_of(tmp_path, "legacy.rml.ttl", LEGACY) == expected
    assert quads_of(tmp_path, "deals.yarrrml.yml", YARRRML) == expected


def test_sql_sources_of_r2rml_are_refused_as_unsupported(tmp_path):
    text = LEGACY.replace('rml:logicalSource [ rml:source "deals.csv" ; rml:referenceFormulation ql:CSV ]',
                          'rr:logicalTable [ rr:tableName "DEALS" ] ; rml:logicalSource [ rml:source "deals.csv" ]')
    with pytest.raises(OkgError) as info:
        quads_of(tmp_path, "sql.rml.ttl", text)
    assert info.value.kind == "unsupported" and "database tables" in str(info.value)


@pytest.mark.parametrize("text,message", [
    ("mappings: [\n", "cannot parse the YARRRML mapping as YAML"),
    ("prefixes: {}\n", "needs a 'mappings' section"),
    ("mappings:\n  deals:\n    s: http://example.com/$(Id)\n", "'deals' has no sources"),
])
def test_bad_yarrrml_is_named(tmp_path, text, message):
    path = tmp_path / "bad.yarrrml.yml"
    path.write_text(text, encoding="utf-8")
    result = okg("map", path, check=False)
    assert result.returncode == 1 and message in result.stderr and str(path) in result.stderr


def test_the_project_yarrrml_mapping_runs_with_okg_map(sample_export, tmp_path):
    out = tmp_path / "acr.nq"
    okg("map", ROOT / "mappings/salesforce/AccountContactRelation.yarrrml.yml", "--data", sample_export, "-o", out)
    quads = list(ox.parse(path=str(out), format=ox.RdfFormat.N_QUADS))
    relations = (sample_export / "AccountContactRelation.csv").read_text(encoding="utf-8").count("\n") - 1
    typed = [q for q in quads if q.object.value.endswith("#AccountContactRelation")]
    assert len(typed) == relations > 100
