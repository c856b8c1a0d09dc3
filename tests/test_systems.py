"""Every export system's mappings on realistic files: Salesforce's further tables, HubSpot (both header
styles, two pipelines), Dynamics 365 (logical and display names) and GLEIF (level 1 and 2).

Each test ingests a sample export with the real `ingest` and checks the graph against figures
computed straight from the CSV files.
"""

import csv
import shutil
from collections import Counter
from decimal import Decimal

import pytest

from opportunity_kg.errors import OkgError
from opportunity_kg.ingest import detect_source, ingest
from opportunity_kg.samples.sample_systems import write_system_sample
from opportunity_kg.store import open_store, run_query

from .conftest import okg

OPPORTUNITIES = 120
PREFIX = "PREFIX okg: <https://w3id.org/opportunity-kg/ontology#>\nPREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>\n"


def read(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def select(store, query):
    result = run_query(store, PREFIX + query)
    return [[term.value if term is not None else None for term in row] for row in result.rows]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Sample exports of every system for the same companies: {name: folder}."""
    out = {}
    for name, system, style in (("salesforce", "salesforce", "labels"), ("hubspot", "hubspot", "labels"),
                                ("hubspot-internal", "hubspot", "internal"), ("dynamics", "dynamics", "labels"),
                                ("gleif", "gleif", "labels")):
        folder = tmp_path_factory.mktemp(name)
        write_system_sample(system, folder, opportunities=OPPORTUNITIES, seed=11, style=style)
        out[name] = folder
    return out


@pytest.fixture(scope="module")
def loaded(exports, tmp_path_factory):
    """Each export ingested into a store of its own: {name: (report, store)}."""
    out = {}
    for name, folder in exports.items():
        path = tmp_path_factory.mktemp("store-" + name) / "store"
        report = ingest(folder, path)
        out[name] = (report, open_store(path))
    return out


@pytest.mark.parametrize("name,system", [("salesforce", "salesforce"), ("hubspot", "hubspot"),
                                         ("hubspot-internal", "hubspot"), ("dynamics", "dynamics"),
                                         ("gleif", "gleif")])
def test_each_export_is_recognised_and_loads_whole(loaded, name, system):
    report, _ = loaded[name]
    assert report.source == system
    totals = report.totals
    assert totals.rows_read > 50 and totals.rows_quarantined == 0 and totals.rows_read == totals.rows_loaded


def test_salesforce_field_history_territories_and_contact_relations(exports, loaded):
    folder, (_, store) = exports["salesforce"], loaded["salesforce"]
    history = read(folder / "OpportunityFieldHistory.csv")
    got = dict(select(store, "SELECT ?f (COUNT(?c) AS ?n) WHERE { ?c a okg:FieldChange ; okg:fieldName ?f } GROUP BY ?f"))
    assert {f: int(n) for f, n in got.items()} == dict(Counter(r["Field"] for r in history))
    amount_change = next(r for r in history if r["Field"] == "Amount")
    rows = select(store, f"""SELECT ?old ?new WHERE {{ ?c okg:sourceId "{amount_change['Id']}" ;
        okg:oldValue ?old ; okg:newValue ?new ; okg:fieldChangeOf/okg:sourceId "{amount_change['OpportunityId']}" }}""")
    assert rows == [[amount_change["OldValue"], amount_change["NewValue"]]]

    associations = read(folder / "ObjectTerritory2Association.csv")
    got = select(store, "SELECT ?a ?t WHERE { ?x okg:assignedAccount/okg:sourceId ?a ; okg:assignedTerritory/okg:sourceId ?t }")
    assert sorted(map(tuple, got)) == sorted((r["ObjectId"], r["Territory2Id"]) for r in associations)

    relations = read(folder / "AccountContactRelation.csv")
    roles = Counter(role for r in relations for role in r["Roles"].split(";") if role)
    got = dict(select(store, "SELECT ?r (COUNT(*) AS ?n) WHERE { ?x a okg:AccountContactRelation ; okg:roleName ?r } GROUP BY ?r"))
    assert {r: int(n) for r, n in got.items()} == dict(roles)
    indirect = sum(1 for r in relations if r["IsDirect"] == "false")
    got = select(store, "SELECT (COUNT(*) AS ?n) WHERE { ?x okg:isDirect false }")
    assert int(got[0][0]) == indirect > 0


def hubspot_expected(folder):
    deals = read(next(folder.glob("*deals*.csv")))
    stages = {(r["key"].casefold(), r["scope"].casefold()): r for r in read(folder / "deal-stages.csv")}
    stage_of = {}
    for d in deals:
        pipeline = d.get("Pipeline") or d.get("pipeline")
        stage = d.get("Deal Stage") or d.get("dealstage")
        record = d.get("Record ID") or d.get("hs_object_id")
        row = stages.get((stage.casefold(), pipeline.casefold())) or stages[(stage.casefold(), "")]
        stage_of[record] = row
    return deals, stage_of


@pytest.mark.parametrize("name", ["hubspot", "hubspot-internal"])
def test_hubspot_deals_stages_pipelines_and_companies(exports, loaded, name):
    folder, (report, store) = exports[name], loaded[name]
    deals, stage_of = hubspot_expected(folder)
    assert report.lookups == ["deal-stages.csv", "pipelines.csv"]
    got = {r: (s.rsplit("/", 1)[-1], w) for r, s, w in select(
        store, "SELECT ?r ?s ?w WHERE { ?d a okg:Opportunity ; okg:sourceId ?r ; okg:stage ?s ; okg:isWon ?w }")}
    assert got == {r: (row["stage"], row["is_won"]) for r, row in stage_of.items()}
    assert {s for s, _ in got.values()} >= {"closedwon", "1003"}  # both pipelines are there
    processes = select(store, "SELECT DISTINCT ?p WHERE { ?d okg:salesProcess ?p }")
    assert {p[0].rsplit("/", 1)[-1] for p in processes} == {"default", "2837461"}
    total = sum(Decimal(d.get("Amount") or d.get("amount")) for d in deals)
    assert Decimal(select(store, "SELECT (SUM(?a) AS ?t) WHERE { ?d okg:amount ?a }")[0][0]) == total
    # every deal's account is its first associated company, and every company is there
    companies = read(next(folder.glob("*compan*.csv")))
    linked = select(store, "SELECT (COUNT(*) AS ?n) WHERE { ?d okg:account ?c . ?c a okg:Account }")
    assert int(linked[0][0]) == len(deals)
    assert int(select(store, "SELECT (COUNT(*) AS ?n) WHERE { ?c a okg:Account }")[0][0]) == len(companies)
    domains = select(store, "SELECT (COUNT(*) AS ?n) WHERE { ?c okg:webDomain ?d }")
    assert int(domains[0][0]) == len(companies)


def test_both_hubspot_header_styles_give_the_same_deals(loaded):
    query = "SELECT ?r ?s ?a ?c ?w ?p WHERE { ?d a okg:Opportunity ; okg:sourceId ?r ; okg:stage ?s ; okg:amount ?a ; " \
            "okg:closeDate ?c ; okg:isWon ?w ; okg:salesProcess ?p } ORDER BY ?r"
    assert select(loaded["hubspot"][1], query) == select(loaded["hubspot-internal"][1], query)


def test_hubspot_stage_labels_without_their_pipeline_table_are_quarantined_by_name(exports, tmp_path):
    folder = tmp_path / "hubspot"
    shutil.copytree(exports["hubspot"], folder)
    (folder / "deal-stages.csv").unlink()
    (folder / "pipelines.csv").unlink()
    report = ingest(folder, tmp_path / "store")
    rejected = read(report.quarantine_file)
    renewals = [d for d in read(next(folder.glob("*deals*.csv"))) if d["Pipeline"] == "Renewals"]
    assert len(rejected) == len(renewals) > 0
    assert {r["field"] for r in rejected} == {"Deal Stage"}
    assert all("is not in the lookup table deal-stages.csv" in r["reason"] for r in rejected)
    assert report.totals.rows_read == report.totals.rows_loaded + report.totals.rows_quarantined


def test_dynamics_states_forecast_categories_and_accounts(exports, loaded):
    folder, (_, store) = exports["dynamics"], loaded["dynamics"]
    opportunities = read(folder / "opportunity.csv")
    won = {o["opportunityid"] for o in opportunities if o["statecode"] == "1"}
    closed = {o["opportunityid"] for o in opportunities if o["statecode"] in ("1", "2")}
    assert {r[0] for r in select(store, "SELECT ?id WHERE { ?o okg:sourceId ?id ; okg:isWon true }")} == won
    assert {r[0] for r in select(store, "SELECT ?id WHERE { ?o okg:sourceId ?id ; okg:isClosed true }")} == closed
    commit = {o["opportunityid"] for o in opportunities if o["msdyn_forecastcategory"] == "100000003"}
    assert {r[0] for r in select(store, "SELECT ?id WHERE { ?o okg:sourceId ?id ; okg:forecastCategory okg:Commit }")} == commit
    accounts = read(folder / "account.csv")
    parents = {(a["accountid"], a["_parentaccountid_value"]) for a in accounts if a["_parentaccountid_value"]}
    got = select(store, "SELECT ?c ?p WHERE { ?a okg:sourceId ?c ; okg:parentAccount/okg:sourceId ?p }")
    assert {tuple(r) for r in got} == parents
    dates = select(store, "SELECT ?id ?d WHERE { ?o a okg:Opportunity ; okg:sourceId ?id ; okg:closeDate ?d }")
    month, day, year = opportunities[0]["estimatedclosedate"].split("/")
    assert dict(dates)[opportunities[0]["opportunityid"]] == f"{year}-{int(month):02d}-{int(day):02d}"


def test_dynamics_excel_export_with_display_names_loads_the_same(exports, loaded, tmp_path):
    folder = tmp_path / "dynamics-excel"
    folder.mkdir()
    display = {"opportunityid": "(Do Not Modify) Opportunity", "name": "Topic", "estimatedvalue": "Est. Revenue",
               "estimatedclosedate": "Est. Close Date", "closeprobability": "Probability",
               "stepname": "Pipeline Phase", "statecode": "Status", "msdyn_forecastcategory": "Forecast Category",
               "modifiedon": "Modified On", "createdon": "Created On"}
    rows = read(exports["dynamics"] / "opportunity.csv")
    states = {"0": "Open", "1": "Won", "2": "Lost"}
    with open(folder / "Opportunities (Excel export).csv", "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([display.get(c, c) for c in rows[0]])
        for row in rows:
            writer.writerow([states[v] if c == "statecode" else v for c, v in row.items()])
    report = ingest(folder, tmp_path / "store", source="dynamics")
    assert report.totals.rows_loaded == len(rows) and report.totals.rows_quarantined == 0
    query = "SELECT ?id ?w ?c ?a WHERE { ?o a okg:Opportunity ; okg:sourceId ?id ; okg:isWon ?w ; okg:closeDate ?c ; " \
            "okg:amount ?a } ORDER BY ?id"
    assert select(open_store(tmp_path / "store"), query) == select(loaded["dynamics"][1], query)


def test_gleif_entities_relationships_and_parents(exports, loaded):
    folder, (_, store) = exports["gleif"], loaded["gleif"]
    entities = read(next(folder.glob("*lei2*.csv")))
    relationships = read(next(folder.glob("*rr*.csv")))
    got = dict(select(store, "SELECT ?lei ?name WHERE { ?e a okg:LegalEntity ; okg:lei ?lei ; okg:legalName ?name }"))
    assert got == {e["LEI"]: e["Entity.LegalName"] for e in entities}
    direct = {(r["Relationship.StartNode.NodeID"], r["Relationship.EndNode.NodeID"]) for r in relationships
              if r["Relationship.RelationshipType"] == "IS_DIRECTLY_CONSOLIDATED_BY"
              and r["Relationship.RelationshipStatus"] == "ACTIVE"}
    assert any(r["Relationship.RelationshipStatus"] == "INACTIVE" for r in relationships)  # the acquisition
    got = select(store, "SELECT ?c ?p WHERE { ?e okg:lei ?c ; okg:directParent/okg:lei ?p }")
    assert {tuple(r) for r in got} == direct
    kinds = select(store, "SELECT ?k (COUNT(*) AS ?n) WHERE { ?r okg:consolidationKind ?k } GROUP BY ?k ORDER BY ?k")
    every_direct = sum(r["Relationship.RelationshipType"] == "IS_DIRECTLY_CONSOLIDATED_BY" for r in relationships)
    assert [int(n) for _, n in kinds] == [every_direct, len(relationships) - every_direct]


def test_gleif_other_relationships_are_quarantined_and_inactive_ones_give_no_parent(exports, tmp_path):
    folder = tmp_path / "gleif"
    shutil.copytree(exports["gleif"], folder)
    rr = next(folder.glob("*rr*.csv"))
    rows = read(rr)
    rows[0]["Relationship.RelationshipType"] = "IS_FUND-MANAGED_BY"
    rows[1]["Relationship.RelationshipStatus"] = "INACTIVE"
    rows[1]["Relationship.Period.1.endDate"] = "2025-03-31T00:00:00Z"
    with open(rr, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report = ingest(folder, tmp_path / "store")
    assert report.files[rr.name].rows_read == len(rows)  # one line counts once, though two maps read it
    assert report.files[rr.name].rows_quarantined == 1
    rejected = read(report.quarantine_file)
    assert rejected[0]["line"] == "2" and "IS_FUND-MANAGED_BY is not a consolidation relationship" in rejected[0]["reason"]
    store = open_store(tmp_path / "store")
    child, parent = rows[1]["Relationship.StartNode.NodeID"], rows[1]["Relationship.EndNode.NodeID"]
    ended = select(store, f'SELECT ?active ?end WHERE {{ ?r okg:childEntity/okg:lei "{child}" ; '
                          f'okg:parentEntity/okg:lei "{parent}" ; okg:isActive ?active ; okg:endedAt ?end }}')
    assert ended == [["false", "2025-03-31"]]
    link = "directParent" if rows[1]["Relationship.RelationshipType"] == "IS_DIRECTLY_CONSOLIDATED_BY" else "ultimateParent"
    ask = run_query(store, PREFIX + f'ASK {{ ?e okg:lei "{child}" ; okg:{link} ?p . ?p okg:lei "{parent}" }}')
    assert ask.rows is False
    still = run_query(store, PREFIX + f'ASK {{ ?e okg:lei "{rows[2]["Relationship.StartNode.NodeID"]}" ; '
                                      f'okg:directParent|okg:ultimateParent ?p }}')
    assert still.rows is True


def test_detection_and_single_files(exports, tmp_path):
    for name, system in (("salesforce", "salesforce"), ("hubspot", "hubspot"), ("dynamics", "dynamics"),
                         ("gleif", "gleif")):
        assert detect_source(exports[name]) == system
    deals = next(exports["hubspot"].glob("*deals*.csv"))
    assert detect_source(deals) == "hubspot"
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "things.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(OkgError, match="none of its files \\(things.csv\\) has the name and columns"):
        detect_source(unknown)


def test_one_file_can_be_ingested_on_its_own(exports, tmp_path):
    companies = next(exports["hubspot"].glob("*compan*.csv"))
    result = okg("ingest", companies, "--store", tmp_path / "store")
    assert "companies" in result.stdout and "hubspot" in result.stdout
    assert "deals.csv" in result.stdout  # named as not in this export
