"""The real Salesforce export in shared/datasets ingests as it is: every row loaded or quarantined."""

import csv

import pytest

from opportunity_kg.ingest import ingest
from opportunity_kg.store import open_store, run_query

from .conftest import REAL_EXPORT

pytestmark = pytest.mark.skipif(not REAL_EXPORT.exists(), reason=f"no real export at {REAL_EXPORT}")


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    store = tmp_path_factory.mktemp("real") / "store"
    return ingest(REAL_EXPORT, store), store


def test_every_row_is_loaded_or_quarantined(real):
    report, _ = real
    assert set(report.files) == {"Account.csv", "AccountContactRelation.csv", "Contact.csv", "Opportunity.csv"}
    for name, counts in report.files.items():
        with open(REAL_EXPORT / name, encoding="utf-8-sig", newline="") as handle:
            records = sum(1 for _ in csv.DictReader(handle))
        assert counts.rows_read == records, name
        assert counts.rows_read == counts.rows_loaded + counts.rows_quarantined, name
    with open(report.quarantine_file, encoding="utf-8") as handle:
        assert sum(1 for _ in csv.DictReader(handle)) == report.totals.rows_quarantined


def test_quirks_come_through(real):
    """BOM, '1'/'' booleans, +0000 offsets and commas in names."""
    report, store_path = real
    store = open_store(store_path)
    try:
        q = """PREFIX okg: <https://w3id.org/opportunity-kg/ontology#>
               PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
               SELECT ?id ?name ?won ?closed ?created WHERE {
                 ?o a okg:Opportunity ; okg:sourceId ?id ; rdfs:label ?name ; okg:isWon ?won ;
                    okg:isClosed ?closed ; okg:createdAt ?created }"""
        rows = {r[0].value: r for r in run_query(store, q).rows}
    finally:
        del store
    with open(REAL_EXPORT / "Opportunity.csv", encoding="utf-8-sig", newline="") as handle:
        source = {r["Id"]: r for r in csv.DictReader(handle)}
    assert set(rows) == set(source)  # the BOM did not eat the Id column
    for oid, row in source.items():
        _, name, won, closed, created = rows[oid]
        assert name.value == row["Name"]
        assert won.value == ("true" if row["IsWon"] == "1" else "false")
        assert closed.value == ("true" if row["IsClosed"] == "1" else "false")
        assert created.value == row["CreatedDate"][:19] + "Z"
    assert sum("," in r["Name"] for r in source.values()) == 26


def test_account_contact_relations_link_real_contacts_and_accounts(real):
    """The YARRRML mapping on the real AccountContactRelation.csv: '1'/'' flags, empty dates and roles."""
    _, store_path = real
    store = open_store(store_path)
    try:
        q = """PREFIX okg: <https://w3id.org/opportunity-kg/ontology#>
               SELECT ?id ?direct WHERE { ?r a okg:AccountContactRelation ; okg:sourceId ?id ; okg:isDirect ?direct ;
                 okg:relatedAccount/okg:sourceId ?a ; okg:relatedContact/okg:sourceId ?c }"""
        rows = {r[0].value: r[1].value for r in run_query(store, q).rows}
    finally:
        del store
    with open(REAL_EXPORT / "AccountContactRelation.csv", encoding="utf-8-sig", newline="") as handle:
        source = {r["Id"]: r for r in csv.DictReader(handle)}
    assert rows == {i: ("true" if r["IsDirect"] == "1" else "false") for i, r in source.items()}
