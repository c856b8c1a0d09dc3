"""Canned queries: every file parses, parameters are typed and bound, never pasted."""

from datetime import date

import pytest

from opportunity_kg.errors import QueryError
from opportunity_kg.analytics.queries import Param, load_queries, period_range, run_canned, where_group_start
from opportunity_kg.store import run_query


def test_every_canned_query_loads_and_runs(open_sample_store):
    queries = load_queries()
    assert "weighted-pipeline" in queries
    for query in queries.values():
        args = {}
        for p in query.params:
            if p.required:
                args[p.name] = {"period": "2026-Q4", "date": "2026-01-01", "integer": "1", "number": "1",
                                "iri": "http://example.com/x", "boolean": "true", "string": "x"}.get(
                    p.type, p.choices[0] if p.choices else "x")
        result = run_canned(open_sample_store, query.name, args)
        list(result.rows)


@pytest.mark.parametrize("text,start,end", [
    ("2026-Q4", date(2026, 10, 1), date(2027, 1, 1)), ("2026-Q1", date(2026, 1, 1), date(2026, 4, 1)),
    ("2026", date(2026, 1, 1), date(2027, 1, 1)), ("2026-H2", date(2026, 7, 1), date(2027, 1, 1)),
    ("2026-12", date(2026, 12, 1), date(2027, 1, 1)), ("2026-02", date(2026, 2, 1), date(2026, 3, 1))])
def test_periods(text, start, end):
    assert period_range(text) == (start, end)


INJECTIONS = ['2026-Q4") } } ; DROP ALL ; #', "2026-Q4 } UNION { ?s ?p ?o", "<http://x> } #",
              "x\" . ?s ?p ?o . FILTER(\"", "1 ) } SELECT * WHERE { ?s ?p ?o } #"]


@pytest.mark.parametrize("kind", ["period", "date", "integer", "number", "boolean", "iri", "enum"])
@pytest.mark.parametrize("payload", INJECTIONS)
def test_typed_parameters_refuse_injection(kind, payload):
    param = Param("p", kind, choices=["a", "b"])
    with pytest.raises(QueryError) as info:
        param.bindings(payload)
    assert info.value.field == "p"


@pytest.mark.parametrize("payload", INJECTIONS)
def test_string_parameters_stay_one_literal(open_sample_store, payload):
    """A string goes in as one escaped literal: the query still means what it meant."""
    from opportunity_kg.analytics.queries import CannedQuery

    query = CannedQuery("echo", "Echo", "", [Param("text", "string")],
                        "SELECT ?text (COUNT(*) AS ?n) WHERE { } GROUP BY ?text", None)
    rows = list(run_query(open_sample_store, query.bind({"text": payload})).rows)
    assert len(rows) == 1 and rows[0][0].value == payload and rows[0][1].value == "1"


def test_values_go_after_the_outer_where():
    text = 'PREFIX x: <http://x/#where{>\n# WHERE { in a comment\nSELECT ?a WHERE { ?a ?b "WHERE {" }'
    at = where_group_start(text)
    assert text[:at].endswith('SELECT ?a WHERE {')


def test_parameters_reach_subqueries_and_union_branches(open_sample_store):
    """Oxigraph evaluates a subquery and each UNION branch on its own, so the parameters are bound
    in each; a filter on a parameter inside a branch must see its value."""
    from opportunity_kg.analytics.queries import CannedQuery

    text = """PREFIX okg: <https://w3id.org/opportunity-kg/ontology#>
SELECT ?kind (COUNT(*) AS ?n) WHERE {
  { ?deal a okg:Opportunity ; okg:amount ?amount . FILTER (?amount >= ?least) BIND ("big deal" AS ?kind) }
  UNION
  { SELECT ?kind WHERE { ?deal a okg:Opportunity ; okg:amount ?amount . FILTER (?amount < ?least) BIND ("small deal" AS ?kind) } }
} GROUP BY ?kind"""
    query = CannedQuery("split", "Split", "", [Param("least", "number")], text, None)
    got = {row[0].value: int(row[1].value) for row in run_query(open_sample_store, query.bind({"least": "50000"})).rows}
    q = "PREFIX okg: <https://w3id.org/opportunity-kg/ontology#> SELECT ?a WHERE { ?d a okg:Opportunity ; okg:amount ?a }"
    amounts = [float(row[0].value) for row in run_query(open_sample_store, q).rows]
    assert got == {"big deal": sum(a >= 50000 for a in amounts), "small deal": sum(a < 50000 for a in amounts)}
    assert got["big deal"] and got["small deal"]
