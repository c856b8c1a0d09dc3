"""A re-ingest reads again unchanged the rows the last ingest loaded cleanly and maps only what
changed (:mod:`opportunity_kg.ingest.unchanged`). Whatever it skips, it leaves the same store, the
same report and the same quarantine and warnings files as mapping every row
(``OKG_INGEST_REUSE_ROWS=0``): checked on the sample's weekly exports, on a hand-edited Data Loader
extract (rows edited, moved, deleted, added, marked deleted), on HubSpot exports, on the real
Salesforce export of ../shared/datasets with rows changed by hand, and where a change reaches a row
that did not change (an account gone that unchanged deals name)."""

import csv
import io
import shutil
from pathlib import Path

import pyoxigraph as ox
import pytest

from opportunity_kg.ingest import ingest
from opportunity_kg.samples.sample import write_weekly_samples
from opportunity_kg.vocabulary import OKG

from .conftest import hubspot_weeks
from .test_derive_scope import dataloader_weeks, read, write

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "salesforce-data-cloud-workshop"


def store_content(path):
    """The store's quads but the ingest run's end time, with each table (digests, rows) as a set of lines."""
    out = io.BytesIO()
    ox.Store.read_only(str(path)).dump(out, ox.RdfFormat.N_QUADS)
    facts, tables = set(), {}
    for line in out.getvalue().decode().split("\n"):
        if "endedAtTime" in line:
            continue
        if "/digests/" in line:
            quad = next(iter(ox.parse(line.encode() + b"\n", format=ox.RdfFormat.N_QUADS)))
            tables.setdefault(quad.predicate.value, set()).update(quad.object.value.split("\n"))
        else:
            facts.add(line)
    return facts, tables


def report_content(report):
    found = report.as_dict()
    for key in ("store", "quarantine_file", "warnings_file", "support", "rows_reused", "reuse_missed"):
        found.pop(key)
    return found


def both_ways(tmp_path, weeks, monkeypatch, name="store", **options):
    """Ingest ``weeks`` (folders, with their as-of dates) in order into two stores, the first reading
    unchanged rows again unchanged, the other mapping every row; check they end the same after
    each week and return the reports of the first."""
    reports = []
    for folder, as_of in weeks:
        found = []
        for way, reuse in (("reused", "1"), ("mapped", "0")):
            monkeypatch.setenv("OKG_INGEST_REUSE_ROWS", reuse)
            store = tmp_path / f"{name}-{way}"
            found.append((store, ingest(folder, store, as_of=as_of, **options)))
        (reused, first), (mapped, second) = found
        assert report_content(first) == report_content(second), folder
        (facts, tables), (facts_too, tables_too) = store_content(reused), store_content(mapped)
        assert tables.pop(OKG + "rowDigests") and tables.pop(OKG + "mappingFingerprint")  # (kept by one only)
        assert facts == facts_too and tables == tables_too, folder
        for suffix in ("-quarantine.csv", "-warnings.csv"):
            a, b = (p.with_name(p.name + suffix) for p in (reused, mapped))
            assert (a.read_text() if a.exists() else None) == (b.read_text() if b.exists() else None), suffix
        assert second.rows_reused == 0
        reports.append(first)
    monkeypatch.delenv("OKG_INGEST_REUSE_ROWS")
    return reports


def test_the_weekly_sample_reads_unchanged_rows_again_unchanged(tmp_path, monkeypatch):
    write_weekly_samples(tmp_path / "weeks", 3, opportunities=150, seed=11)
    weeks = [(p, p.name[5:]) for p in sorted((tmp_path / "weeks").iterdir())]
    reports = both_ways(tmp_path, weeks, monkeypatch)
    assert reports[0].rows_reused == 0  # a first ingest maps every row
    for report in reports[1:]:
        total = report.totals.rows_read
        assert 0 < report.rows_reused < total and not report.reuse_missed
        assert report.facts_added > 0


def test_a_hand_edited_export_gives_the_same_store_either_way(tmp_path, monkeypatch):
    first, later, _, _ = dataloader_weeks(tmp_path, stage_table=True)
    again = tmp_path / "again"  # a third week: a new deal, an amount changed, a row with a bad date
    shutil.copytree(later, again)
    deals = read(again / "opportunity.csv")
    deals[0]["AMOUNT"] = "123456"
    deals.append(dict(deals[1], ID="006000000000099AAA", NAME="A new deal"))
    deals.append(dict(deals[2], ID="006000000000098AAA", CLOSEDATE="not a date"))
    write(again / "opportunity.csv", deals)
    reports = both_ways(tmp_path, [(first, "2024-03-01"), (later, "2024-03-08"), (again, "2024-03-15")],
                        monkeypatch)
    assert reports[2].rows_reused > 0
    assert reports[2].totals.rows_quarantined >= 1


def test_hubspot_exports_give_the_same_store_either_way(tmp_path, monkeypatch):
    dates = ["2026-11-16", "2026-11-23", "2026-11-30"]
    reports = both_ways(tmp_path, list(zip(hubspot_weeks(tmp_path, dates, seed=3, moves=4), dates)), monkeypatch)
    assert all(r.rows_reused > 0 for r in reports[1:])


def test_a_change_that_reaches_unchanged_rows_maps_every_row(tmp_path, monkeypatch):
    """An account gone from the export, which unchanged deals still name: their rows did not change,
    but they now name no account. The re-ingest finds it in validation and maps every row."""
    first, later, _, _ = dataloader_weeks(tmp_path, stage_table=True)
    third = tmp_path / "third"
    shutil.copytree(later, third)
    deals = read(third / "opportunity.csv")
    named = {d["ACCOUNTID"] for d in deals if d.get("ISDELETED") != "1"}
    accounts = read(third / "account.csv")
    write(third / "account.csv", [a for a in accounts if a["ID"] not in named][:1] or accounts[:1],
          header=list(accounts[0]))
    reports = both_ways(tmp_path, [(first, "2024-03-01"), (later, "2024-03-08"), (third, "2024-03-15")],
                        monkeypatch)
    assert reports[2].reuse_missed


def test_a_changed_mapping_maps_every_row(tmp_path, monkeypatch):
    first, later, _, _ = dataloader_weeks(tmp_path, stage_table=True)
    mappings = tmp_path / "mappings"
    shutil.copytree(Path(__file__).resolve().parents[1] / "mappings", mappings)
    ingest(first, tmp_path / "store", as_of="2024-03-01", mappings_dir=mappings)
    path = mappings / "salesforce" / "Opportunity.rml.ttl"
    path.write_text(path.read_text() + "\n# edited\n")
    report = ingest(later, tmp_path / "store", as_of="2024-03-08", mappings_dir=mappings)
    assert report.rows_reused == 0


@pytest.mark.skipif(not DATASET.exists(), reason="../shared/datasets is not beside the project")
def test_the_real_salesforce_export_with_rows_changed_by_hand(tmp_path, monkeypatch):
    first = tmp_path / "first"
    shutil.copytree(DATASET, first, ignore=shutil.ignore_patterns("LICENSE*", "*.md", "*.txt"))
    later = tmp_path / "later"
    shutil.copytree(first, later)
    changed = 0
    for path in sorted(later.glob("*.csv")):
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
        if len(rows) < 4:
            continue
        header, body = rows[0], rows[1:]
        body[0] = [v + " (edited)" if v and not v[0].isdigit() and i == len(header) - 1 else v
                   for i, v in enumerate(body[0])]
        body = body[:-1]  # the last row gone
        with open(path, "w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows([header] + body)
        changed += 1
    assert changed
    reports = both_ways(tmp_path, [(first, "2025-01-01"), (later, "2025-01-08")], monkeypatch)
    assert reports[1].rows_reused > 0 or reports[1].reuse_missed
