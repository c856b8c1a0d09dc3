"""From a generated Salesforce export to the weighted-pipeline answer, through the CLI and HTTP.

The expected figures are computed here, straight from the CSV files with the
csv module, and compared with what the graph answers.
"""

import csv
import io
import json
import re
from collections import defaultdict
from datetime import date
from decimal import Decimal

import pytest
import requests

from opportunity_kg.analytics.queries import get_query

from .conftest import ROOT, okg, okg_serve

QUERIES = ROOT / "queries"

PERIOD = "2026-Q4"


def expected_pipeline(export, start, end):
    """owner name -> (opportunities, amount, weighted amount), from the CSV files alone."""
    users = {r["Id"]: r["Name"] for r in csv.DictReader(open(export / "User.csv", encoding="utf-8"))}
    out = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for row in csv.DictReader(open(export / "Opportunity.csv", encoding="utf-8")):
        close = date.fromisoformat(row["CloseDate"])
        if row["IsClosed"] == "true" or not (start <= close < end):
            continue
        amount, probability = Decimal(row["Amount"] or 0), Decimal(row["Probability"])
        entry = out[users[row["OwnerId"]]]
        entry[0] += 1
        entry[1] += amount
        entry[2] += amount * probability / 100
    return {k: tuple(v) for k, v in out.items()}


def as_figures(rows):
    return {r["owner"]: (int(r["opportunities"]), Decimal(str(r["amount"])), Decimal(str(r["weighted_amount"])))
            for r in rows}


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory):
    """A sample written and ingested by the real command line."""
    base = tmp_path_factory.mktemp("e2e")
    export, store = base / "export", base / "store"
    okg("sample", "--out", export, "--opportunities", 400, "--seed", 11)
    result = okg("ingest", export, "--store", store, "--report", base / "report.json")
    return export, store, result, json.loads((base / "report.json").read_text())


def test_ingest_counts_add_up(cli_store):
    export, _, result, report = cli_store
    assert "total" in result.stdout
    for name, counts in report["files"].items():
        with open(export / name, encoding="utf-8", newline="") as handle:
            records = sum(1 for _ in csv.DictReader(handle))
        assert counts["rows_read"] == records, name
        assert counts["rows_read"] == counts["rows_loaded"] + counts["rows_quarantined"], name
    assert report["total"]["rows_loaded"] > 0 and report["total"]["triples"] > 0


def test_weighted_pipeline_cli_matches_csv(cli_store):
    export, store, _, _ = cli_store
    expected = expected_pipeline(export, date(2026, 10, 1), date(2027, 1, 1))
    assert len(expected) >= 3, "the sample should have open Q4 deals for several owners"
    # the query file itself is plain SPARQL: unbound, its period filter keeps nothing
    raw = okg("query", "--store", store, "@" + str(QUERIES / "weighted-pipeline.rq"))
    assert raw.stdout.strip() == "owner,opportunities,amount,weighted_amount"
    bound = get_query("weighted-pipeline").bind({"period": PERIOD})
    result = okg("query", "--store", store, bound, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert as_figures(rows) == expected


def test_weighted_pipeline_http_matches_csv(cli_store):
    export, store, _, _ = cli_store
    expected = expected_pipeline(export, date(2026, 10, 1), date(2027, 1, 1))
    with okg_serve(store, log=True) as (base, server):
        response = requests.get(f"{base}/api/queries/weighted-pipeline.csv", params={"period": PERIOD}, timeout=30)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/csv")
        assert as_figures(csv.DictReader(io.StringIO(response.text))) == expected
        response = requests.get(f"{base}/api/queries/weighted-pipeline", params={"period": PERIOD},
                                headers={"Accept": "application/json"}, timeout=30)
        assert as_figures(response.json()) == expected
        # a different quarter gives different figures: the parameter is really applied
        other = requests.get(f"{base}/api/queries/weighted-pipeline.json", params={"period": "2027-Q1"},
                             timeout=30).json()
        assert as_figures(other) == expected_pipeline(export, date(2027, 1, 1), date(2027, 4, 1))
        assert as_figures(other) != expected
    output = server.log
    # one log line per request with its duration; for a query, its kind and time to the first answer
    logged = re.findall(r"GET /api/queries/weighted-pipeline\.csv 200 in ([\d.]+) ms "
                        r"\(select query, first answer in ([\d.]+) ms\)", output)
    assert len(logged) == 1, output
    assert float(logged[0][1]) <= float(logged[0][0])
    assert re.search(r"GET /api/queries 200 in [\d.]+ ms$", output, re.M), output
