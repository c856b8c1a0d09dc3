"""A sample that moves: okg sample --weeks N writes weekly exports of one org, each what the CRM held on
its day, and ingesting them in order records the week's changes as history."""

import csv
from datetime import date

import pytest

from opportunity_kg.ingest import ingest
from opportunity_kg.samples.sample import SAMPLE_AS_OF, write_sample, write_weekly_samples

WEEKS = 3


def read(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def weeks(tmp_path_factory):
    out = tmp_path_factory.mktemp("weeks")
    write_weekly_samples(out, WEEKS, opportunities=200, seed=5)
    return sorted(p for p in out.iterdir() if p.is_dir())


def test_each_week_is_the_org_on_its_day(weeks, tmp_path):
    assert [p.name for p in weeks] == ["week-2026-11-02", "week-2026-11-09", "week-2026-11-16"]
    deals = [{r["Id"]: r for r in read(week / "Opportunity.csv")} for week in weeks]
    for before, after in zip(deals, deals[1:]):
        assert set(before) <= set(after)  # the same org: the same Ids, new deals added
    for week, found in zip(weeks, deals):
        day = week.name[5:]
        for name in ("Opportunity.csv", "OpportunityHistory.csv", "Account.csv", "OpportunityContactRole.csv"):
            for row in read(week / name):
                for column in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
                    assert row.get(column, "")[:10] <= day, (week.name, name, column)
        history = {}
        for h in read(week / "OpportunityHistory.csv"):
            if h["CreatedDate"] >= history.get(h["OpportunityId"], {}).get("CreatedDate", ""):
                history[h["OpportunityId"]] = h
        for oid, deal in found.items():  # each deal as its last history row by the day says
            assert deal["StageName"] == history[oid]["StageName"] and deal["CloseDate"] == history[oid]["CloseDate"]
    # the last week is the plain sample of that day
    write_sample(tmp_path / "plain", opportunities=200, seed=5)
    assert read(tmp_path / "plain" / "Opportunity.csv") == read(weeks[-1] / "Opportunity.csv")


def test_ingesting_the_weeks_in_order_records_each_weeks_changes(weeks, tmp_path):
    store = tmp_path / "store"
    previous = None
    for week in weeks:
        report = ingest(week, store)
        assert report.as_of == week.name[5:]
        if previous is not None:
            before = {r["Id"]: r for r in read(previous / "Opportunity.csv")}
            after = {r["Id"]: r for r in read(week / "Opportunity.csv")}
            changed = sum(before[i][k] != after[i][k] for i in after if i in before
                          for k in ("StageName", "Amount", "CloseDate"))
            assert changed > 0 and report.history_changes == changed
        previous = week
    assert date.fromisoformat(weeks[-1].name[5:]) == SAMPLE_AS_OF
