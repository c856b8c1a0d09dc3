"""Exports in real tools' formats (tests/corpus, written by hand after each tool's documented format):
each loads without edits, every file's rows add up, and the canned queries answer from what they hold."""

import csv
from pathlib import Path

import pytest

from opportunity_kg.ingest import ingest
from opportunity_kg.analytics.queries import run_canned
from opportunity_kg.store import open_store

CORPUS = Path(__file__).parent / "corpus"


def records(store_path, name, **args):
    store = open_store(store_path, read_only=True)
    result = run_canned(store, name, args)
    names = [getattr(v, "value", v) for v in result.variables]
    return [dict(zip(names, [t.value if t is not None else None for t in row])) for row in result.rows]


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def dataloader(tmp_path_factory):
    store = tmp_path_factory.mktemp("dataloader") / "store"
    return ingest(CORPUS / "dataloader", store), store


def test_data_loader_files_and_headers_are_found_in_any_case(dataloader):
    report, _ = dataloader
    assert report.source == "salesforce"
    assert {n: (c.rows_read, c.rows_loaded, c.rows_quarantined, c.rows_deleted) for n, c in report.files.items()} == {
        "account.csv": (4, 3, 0, 1), "contact.csv": (3, 3, 0, 0), "opportunity.csv": (7, 5, 1, 1),
        "opportunityhistory.csv": (10, 9, 1, 0), "user.csv": (2, 2, 0, 0)}
    assert report.as_of == "2024-03-01"  # SYSTEMMODSTAMP, upper case, "YYYY-MM-DD HH:MM:SS"


def test_every_rejected_row_says_why_in_the_files_words(dataloader):
    report, _ = dataloader
    rejected = {(r["source_file"], r["line"]): r for r in read_csv(report.quarantine_file)}
    assert set(rejected) == {("opportunity.csv", "7"), ("opportunityhistory.csv", "11")}
    assert rejected[("opportunity.csv", "7")]["reason"] == "the row has no ID, so it names no record"
    child = rejected[("opportunityhistory.csv", "11")]
    assert child["field"] == "OPPORTUNITYID"
    assert child["reason"] == "its OPPORTUNITYID 006000000000004AAA was deleted (opportunity.csv line 5)"


def test_bad_optional_values_are_dropped_and_warned_once(dataloader):
    report, _ = dataloader
    warnings = read_csv(report.warnings_file)
    assert [(w["source_file"], w["line"], w["field"], w["value"], w["kind"]) for w in warnings] == [
        ("account.csv", "3", "WEBSITE", "www.contoso .com/<bad>", "value dropped"),
        ("opportunity.csv", "8", "AMOUNT", "lots", "value dropped")]
    assert report.warning_counts["value dropped"] == 2
    assert not any("000000000000000AAA" in w for w in report.warnings)  # the null Id is no reference


def test_names_come_from_first_and_last_names(dataloader):
    _, store = dataloader
    owners = {r["owner"]: (r["opportunities"], r["amount"]) for r in records(store, "weighted-pipeline", period="2024")}
    assert owners == {"Ana Silva": ("1", "10000"), "Ben Okafor": ("1", "0")}  # Ben's amount 'lots' was dropped
    contacts = records(store, "data-quality")
    assert {r["check"]: r["records"] for r in contacts}["orphan owner"] == "0"


def test_open_deal_without_close_date_loads_and_is_reported(dataloader):
    _, store = dataloader
    periods = {r["close_period"]: r for r in records(store, "pipeline-by-close-period")}
    assert periods["(no close date)"]["opportunities"] == "1"
    assert periods["(no close date)"]["amount"] == "25000"
    checks = {r["check"]: r for r in records(store, "data-quality")}
    assert checks["missing close date"]["records"] == "1"
    assert checks["missing close date"]["example"] == "006000000000002AAA"


def test_stages_without_a_stage_table_come_from_the_deals_and_history(dataloader):
    """No OpportunityStage file: the stages are inferred, in the order the history shows."""
    _, store = dataloader
    funnel = records(store, "stage-funnel")
    assert [r["stage"] for r in funnel] == ["Prospecting", "Negotiation/Review"]
    assert [r["reached"] for r in funnel] == ["5", "3"]  # the won deal passed every open stage
    stages = {r["stage"]: r for r in records(store, "pipeline-by-stage", period="2024")}
    assert stages["Prospecting"]["opportunities"] == "2"


@pytest.fixture(scope="module")
def dynamics(tmp_path_factory):
    store = tmp_path_factory.mktemp("dynamics") / "store"
    return ingest(CORPUS / "dynamics-data-pack", store, source="dynamics"), store


def test_a_dynamics_pack_without_ids_loads_with_natural_keys(dynamics):
    report, _ = dynamics
    assert {n: (c.rows_read, c.rows_loaded, c.rows_quarantined) for n, c in report.files.items()
            if not n.startswith("reference/")} == {"Accounts.csv": (2, 2, 0), "Opportunities.csv": (5, 5, 0)}
    assert "Opportunities.csv: no opportunityid column: each record is named by Topic, Potential Customer, " \
           "Created On" in report.warnings
    assert "Accounts.csv: no accountid column: each record is named by Account Name" in report.warnings
    assert any(w.startswith("as of 2025-02-01, the newest date and time in the export") for w in report.warnings)


def test_a_dynamics_pack_is_recognised_without_source():
    from opportunity_kg.ingest import detect_source

    assert detect_source(CORPUS / "dynamics-data-pack") == "dynamics"


def test_references_by_name_meet_the_records_of_that_name(dynamics):
    _, store = dynamics
    won = {r["group"]: r for r in records(store, "win-rate")}
    assert {g: (r["closed"], r["won"], r["amount_won"]) for g, r in won.items()} == {
        "Dana Birk": ("1", "1", "4500"), "Eli Ruiz": ("1", "0", "0")}
    pipeline = {r["owner"]: r for r in records(store, "weighted-pipeline", period="2025")}
    assert {o: (r["opportunities"], r["amount"]) for o, r in pipeline.items()} == {
        "Dana Birk": ("1", "12000"), "(no owner)": ("1", "15750")}


def test_the_real_workshop_export_answers_with_ids_where_it_has_no_users():
    """The real export in shared/datasets has no User.csv: owners show as their Ids, never as "(none)"."""
    from .conftest import REAL_EXPORT

    if not REAL_EXPORT.exists():
        pytest.skip(f"no real export at {REAL_EXPORT}")
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        ingest(REAL_EXPORT, Path(folder) / "store")
        rates = records(Path(folder) / "store", "win-rate")
        assert [(r["group"], r["closed"], r["won"]) for r in rates] == [("005Ec000004oBPNIA2", "15", "12")]
        funnel = records(Path(folder) / "store", "stage-funnel")
        assert [r["stage"] for r in funnel] == ["Qualification", "Discovery", "Proposal/Quote", "Negotiation"]


@pytest.fixture(scope="module")
def report_export(tmp_path_factory):
    store = tmp_path_factory.mktemp("report") / "store"
    return ingest(CORPUS / "salesforce-report", store), store


def test_a_salesforce_report_with_labels_as_headers_loads_without_its_footer(report_export):
    """A report exported as CSV (report<13 digits>.csv, labels as headers, no Id columns, a footer
    after a blank line): eight deals, the footer's five lines not read, dated by the footer."""
    report, _ = report_export
    assert report.source == "salesforce"
    counts = report.files["report1764460800123.csv"]
    assert (counts.rows_read, counts.rows_loaded, counts.rows_quarantined, counts.rows_deleted) == (8, 8, 0, 0)
    assert report.as_of == "2025-11-30"  # "Generated By: ... 11/30/2025 9:14 AM"
    assert "Opportunity.csv" not in report.skipped and "Account.csv" in report.skipped  # read as the report
    assert any("lines 11-15" in n and "footer" in n for n in report.warnings)
    assert any("no Id column: each record is named by Opportunity Name, Account Name, Created Date" in n
               for n in report.warnings)


def test_a_report_s_owners_accounts_and_closed_stages_answer_by_name(report_export):
    _, store = report_export
    wins = {r["group"]: (int(r["closed"]), int(r["won"])) for r in records(store, "win-rate")}
    assert wins == {"Dana Birk": (1, 1), "Lee Okafor": (1, 0), "Maria Campos": (1, 1)}  # closed by stage name
    weighted = {r["owner"]: (int(r["opportunities"]), float(r["amount"]), float(r["weighted_amount"]))
                for r in records(store, "weighted-pipeline", period="2026-Q1")}
    assert weighted == {"Maria Campos": (1, 150000.0, 112500.0), "Lee Okafor": (1, 88000.0, 79200.0),
                        "Dana Birk": (1, 12000.0, 1200.0)}
    periods = {r["close_period"]: int(r["opportunities"]) for r in records(store, "pipeline-by-close-period")}
    assert periods == {"2026-Q1": 3, "2026-Q2": 2}  # the three closed deals of 2025-Q4 are not pipeline
    hierarchy = {r["top_account"]: int(r["opportunities"])
                 for r in records(store, "account-hierarchy-pipeline", min_opportunities=1)}
    assert hierarchy == {"Fabrikam, Inc.": 2, "Contoso Pharmaceuticals": 1, "Litware, Inc.": 1, "Alpine Ski House": 1}


def test_a_hubspot_export_with_labels_names_owners_not_iris(tmp_path):
    from opportunity_kg.samples.sample_systems import write_system_sample
    export = tmp_path / "hubspot"
    write_system_sample("hubspot", export, opportunities=60)
    deals = read_csv(next(export.glob("*deals*.csv")))
    report = ingest(export, tmp_path / "store")
    assert report.totals.rows_quarantined == 0
    owners = {r["group"] for r in records(tmp_path / "store", "win-rate")}
    stages = read_csv(export / "deal-stages.csv")
    closed = {(r["scope"], r["key"]) for r in stages if r["is_closed"] == "true"}
    closed_owners = {d["Deal owner"] for d in deals if (d["Pipeline"], d["Deal Stage"]) in closed}
    assert owners == closed_owners and not any("/" in o or "%" in o for o in owners)
