"""Mappings in YARRRML and in the legacy RML/R2RML vocabulary run on the same engine, with the same result."""

import pyoxigraph as ox
import pytest

from opportunity_kg.errors import OkgError
from opportunity_kg.mapping.rml import run_mapping

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


EXTENDED_RML = """
@prefix rml: <http://w3id.org/rml/> . @prefix ex: <http://example.com/> .
@prefix okgm: <https://w3id.org/opportunity-kg/mapping#> . @prefix okgfn: <https://w3id.org/opportunity-kg/function#> .
ex:Deals_0 a rml:TriplesMap ;
  rml:logicalSource [ rml:source "deals.csv" ; rml:referenceFormulation rml:CSV ;
    okgm:requiredColumn "Id", "Name" ; okgm:filePattern "*deal*.csv" ; okgm:asOfColumn "Modified" ;
    okgm:idColumn "Id" ; okgm:uniqueSubjects false ;
    okgm:columnAlias [ okgm:column "Name" ; okgm:header "Deal Name", "Title" ] ;
    okgm:keyColumn [ okgm:column "Account" ; okgm:from ( "Company" "Country" ) ] ] ;
  rml:subjectMap [ rml:template "http://example.com/deal/{Id}" ] ;
  rml:predicateObjectMap [ rml:predicate ex:closes ; rml:objectMap [ rml:functionExecution [ rml:function okgfn:date ;
      rml:input [ rml:parameter okgfn:value ; rml:inputValueMap [ rml:reference "Close" ] ] ,
                [ rml:parameter okgfn:format ; rml:inputValueMap [ rml:constant "dd/MM/yyyy" ] ] ] ] ] .
"""

EXTENDED_YARRRML = """
prefixes:
  ex: http://example.com/
  okgfn: https://w3id.org/opportunity-kg/function#
mappings:
  Deals:
    sources:
      - ['deals.csv~csv']
    okgm:
      requiredColumn: [Id, Name]
      filePattern: "*deal*.csv"
      asOfColumn: Modified
      idColumn: Id
      uniqueSubjects: false
      columnAlias: {Name: [Deal Name, Title]}
      keyColumn: {Account: [Company, Country]}
    s: http://example.com/deal/$(Id)
    po:
      - p: ex:closes
        o:
          function: okgfn:date
          parameters:
            - [okgfn:value, $(Close)]
            - [okgfn:format, dd/MM/yyyy]
"""


def source_settings(path):
    from opportunity_kg.mapping.rml import load_mapping

    [tm] = load_mapping(path).triples_maps
    s = tm.source
    return (s.required, s.aliases, s.patterns, s.as_of, s.id_column, s.unique_subjects, s.keys)


def test_yarrrml_gives_the_source_extensions_as_rml_does(tmp_path):
    """The okgm: source extensions written in a YARRRML mapping's okgm section read the same as in RML."""
    csv = "Id,Deal Name,Close,Modified\n1,Alpha,03/04/2026,2026-04-01\n"
    (tmp_path / "deals.csv").write_text(csv, encoding="utf-8")
    (tmp_path / "deals.rml.ttl").write_text(EXTENDED_RML, encoding="utf-8")
    (tmp_path / "deals.yarrrml.yml").write_text(EXTENDED_YARRRML, encoding="utf-8")
    rml, yarrrml = source_settings(tmp_path / "deals.rml.ttl"), source_settings(tmp_path / "deals.yarrrml.yml")
    assert rml == yarrrml
    assert rml[0] == {"Id", "Name"} and rml[1] == {"Name": ("Deal Name", "Title")}
    assert rml[5] is False and rml[6] == {"Account": ("Company", "Country")}
    for name in ("deals.rml.ttl", "deals.yarrrml.yml"):  # the day first, as the format says
        [quad] = [q for q in run_mapping(tmp_path / name) if q.predicate.value == "http://example.com/closes"]
        assert quad.object.value == "2026-04-03", name


@pytest.mark.parametrize("section,message", [
    ("okgm: {requiredColumns: [Id]}", "no extension 'requiredColumns'"),
    ("okgm: {uniqueSubjects: maybe}", "takes true or false"),
    ("okgm: {columnAlias: [Name]}", "takes a section of columns"),
])
def test_a_wrong_okgm_section_is_named(tmp_path, section, message):
    text = EXTENDED_YARRRML.replace("    okgm:\n", "    " + section + "\n    ignored:\n")
    path = tmp_path / "bad.yarrrml.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(OkgError, match=message):
        list(run_mapping(path))  # a generator: it reads the mapping when it is first asked for a quad
