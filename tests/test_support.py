"""What the loaded data lets each canned query and the forecast answer: full, in part (with what is
missing), or not at all; said by okg ingest, /api/queries, each canned answer's header and the pages."""

import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from opportunity_kg.ingest import ingest
from opportunity_kg.tools.lint import EXAMPLE_VALUES, query_violations
from opportunity_kg.analytics.queries import load_queries, run_canned
from opportunity_kg.store import open_store
from opportunity_kg.analytics.support import FACTS, support

CORPUS = Path(__file__).parent / "corpus"


@pytest.fixture(scope="module")
def report_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("support") / "store"
    return ingest(CORPUS / "salesforce-report", store), store


def example_args(query):
    return {p.name: p.default or (p.choices[0] if p.choices else EXAMPLE_VALUES[p.type])
            for p in query.params if p.required or p.default}


def test_every_query_and_the_forecast_is_judged_with_its_reasons(report_store):
    report, _ = report_store
    judged = report.support
    assert set(judged) == set(load_queries()) | {"forecast"}
    # the report export has 8 deals, one without an amount, no stage table, history, roles or GLEIF file
    assert judged["weighted-pipeline"] == {"level": "partial", "notes": ["1 of 8 deals have no amount: counted as 0"]}
    assert judged["days-in-stage"]["level"] == "none"
    assert judged["days-in-stage"]["notes"] == [
        "no stage history in the store, which the answer is made from: it is empty"]
    assert "5 of 5 open deals have no forecast category: in none of commit, best case and pipeline" in (
        judged["pipeline-by-close-period"]["notes"])
    assert any(n.startswith("no stage table: stages are inferred") for n in judged["pipeline-by-stage"]["notes"])
    assert "1 of 1 lost deals have no loss reason: shown as \"(not recorded)\"" in judged["loss-analysis"]["notes"]
    assert judged["forecast"]["level"] == "partial"


def test_a_query_judged_not_at_all_answers_nothing_and_one_judged_fully_answers(report_store, sample_store):
    """The judgement agrees with the answers, on an export nobody shaped for it and on the sample."""
    queries = load_queries()
    for path in (report_store[1], sample_store[0]):
        store = open_store(path, read_only=True)
        judged = support(store)
        for name, entry in judged.items():
            if name == "forecast" or entry["level"] != "none":
                continue
            rows = list(run_canned(store, name, example_args(queries[name])).rows)
            assert rows == [], (path, name, entry)
        assert judged["weighted-pipeline"]["level"] in ("full", "partial")
    report_deals = run_canned(open_store(report_store[1], read_only=True), "weighted-pipeline", {"period": "2026-Q1"})
    assert len(list(report_deals.rows)) == 3


def test_the_sample_is_fully_supported_where_it_holds_the_facts(open_sample_store):
    judged = support(open_sample_store)
    full = {name for name, entry in judged.items() if entry["level"] == "full"}
    assert {"weighted-pipeline", "win-rate", "days-in-stage", "stage-funnel", "forecast"} <= full
    assert judged["parents-on-date"]["level"] == "none"  # the sample's Salesforce export has no GLEIF file


def test_removing_a_fact_moves_a_query_from_full_to_partial(sample_export, tmp_path):
    """An export without OwnerId: every canned query that groups by owner keeps all its deals,
    shown as (no owner), and says so."""
    import csv

    export = tmp_path / "export"
    shutil.copytree(sample_export, export)
    path = export / "Opportunity.csv"
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[c for c in rows[0] if c != "OwnerId"])
        writer.writeheader()
        writer.writerows({k: v for k, v in r.items() if k != "OwnerId"} for r in rows)
    report = ingest(export, tmp_path / "store")
    deals = len(rows)
    note = f"{deals:,} of {deals:,} deals have no owner: shown as \"(no owner)\""
    assert note in report.support["weighted-pipeline"]["notes"]
    assert report.support["weighted-pipeline"]["level"] == "partial"
    store = open_store(tmp_path / "store", read_only=True)
    groups = {r[0].value for r in run_canned(store, "win-rate", {"by": "owner"}).rows}
    assert groups == {"(no owner)"}


def test_lint_names_an_unknown_fact(tmp_path):
    folder = tmp_path / "queries"
    folder.mkdir()
    (folder / "mine.rq").write_text("#+ title: Mine\n#+ needs: owner\n#+ uses: ownr\nSELECT * WHERE { ?s ?p ?o }\n",
                                    encoding="utf-8")
    messages = [v.message for v in query_violations(folder)]
    assert any("'#+ uses: ownr' names no fact" in m for m in messages), messages
    assert any("'#+ needs: owner' is counted per deal" in m for m in messages), messages
    assert "stage history" in FACTS


def test_the_api_gives_each_query_its_support_and_each_answer_a_header(server):
    with urllib.request.urlopen(server + "/api/queries") as response:
        listing = {q["name"]: q for q in json.load(response)["queries"]}
    assert listing["parents-on-date"]["support"]["level"] == "none"
    assert listing["parents-on-date"]["needs"] == ["legal entities"]
    assert listing["weighted-pipeline"]["support"] == {"level": "full", "notes": []}
    with urllib.request.urlopen(server + "/api/queries/parents-on-date.json?on=2026-01-01") as response:
        assert response.headers["OKG-Support"] == "none" and json.load(response) == []
    with urllib.request.urlopen(server + "/api/forecast.json?period=2026-Q4") as response:
        assert json.load(response)["support"]["level"] == "full"
