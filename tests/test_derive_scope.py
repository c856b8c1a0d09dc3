"""A re-ingest makes the stage intervals and states again only for the deals whose stage changes
came, went or changed (:class:`~opportunity_kg.store.history.DeriveScope`); the deal-level facts,
inferred stages and hierarchy spells, which depend on other deals, are made for all. Whatever
the scope, the derived graph is exactly what deriving afresh from the store gives: checked on a
hand-written Data Loader export with a stage table added (rows edited, moved, deleted, added),
on the same without the stage table (stages inferred: every deal again), and on HubSpot exports
whose history comes from comparing snapshots."""

import csv
import shutil
from pathlib import Path

import pyoxigraph as ox

from opportunity_kg.ingest import ingest
from opportunity_kg.store import open_store
from opportunity_kg.store.history import derived_facts, intervals_graph

from .conftest import hubspot_weeks

CORPUS = Path(__file__).parent / "corpus"

#: a Data Loader extract of OpportunityStage (upper-case headers, 0/1 flags), as Salesforce has them
STAGES = [("01J000000000001AAA", "Prospecting", "1", "0", "0", "10"),
          ("01J000000000002AAA", "Negotiation/Review", "2", "0", "0", "80"),
          ("01J000000000003AAA", "Closed Won", "3", "1", "1", "100"),
          ("01J000000000004AAA", "Closed Lost", "4", "1", "0", "0")]


def derived_as_stored(path, system):
    store = open_store(path, read_only=True)
    stored = {(q.subject, q.predicate, q.object)
              for q in store.quads_for_pattern(None, None, None, ox.NamedNode(intervals_graph(system)))}
    return stored, set(derived_facts(store, system))


def read(path):
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows


def write(path, rows, header=None):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header or list(rows[0]), quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows(rows)


def dataloader_weeks(tmp_path, stage_table):
    """The corpus's Data Loader extract, then the same a week later with: one history row's stage
    edited, a deal deleted (IsDeleted) with its history, a new history row for another deal, and
    the history rows in another order (lines moved)."""
    first, later = tmp_path / "first", tmp_path / "later"
    shutil.copytree(CORPUS / "dataloader", first)
    if stage_table:
        write(first / "opportunitystage.csv",
              [dict(zip(("ID", "MASTERLABEL", "SORTORDER", "ISCLOSED", "ISWON", "DEFAULTPROBABILITY"), row))
               for row in STAGES])
    shutil.copytree(first, later)
    history = read(later / "opportunityhistory.csv")
    deals = read(later / "opportunity.csv")
    gone = deals[4]["ID"]  # Closed Lost: deleted in the later export
    deals[4]["ISDELETED"] = "1"
    history = [r for r in history if r["OPPORTUNITYID"] != gone]
    edited = next(r for r in history if r["STAGENAME"] == "Negotiation/Review")
    edited["STAGENAME"] = "Prospecting"
    history.append(dict(history[0], ID="008000000000099AAA", STAGENAME="Negotiation/Review",
                        CREATEDDATE="2024-03-05 09:00:00"))
    history.reverse()
    write(later / "opportunityhistory.csv", history)
    write(later / "opportunity.csv", deals)
    return first, later, {edited["OPPORTUNITYID"], history[0]["OPPORTUNITYID"], gone}, gone


def test_a_re_ingest_remakes_the_intervals_of_the_deals_whose_history_changed(tmp_path):
    first, later, touched, gone = dataloader_weeks(tmp_path, stage_table=True)
    path = tmp_path / "store"
    before = ingest(first, path, as_of="2024-03-01")
    assert before.stage_facts_remade is None  # the first: every deal
    report = ingest(later, path, as_of="2024-03-08")
    assert report.files["opportunity.csv"].rows_deleted == before.files["opportunity.csv"].rows_deleted + 1
    # the deals whose stage changes came, went or changed, and no other
    assert report.stage_facts_remade == len(touched)
    stored, afresh = derived_as_stored(path, "salesforce")
    assert stored == afresh
    # the deleted deal's intervals went with it; the others' are there
    of = {t[2].value.rsplit("/", 1)[-1] for t in stored if t[1].value.endswith("#intervalOf")}
    assert gone not in of and len(of) >= 4


def test_without_a_stage_table_the_stages_are_inferred_and_every_deal_is_remade(tmp_path):
    first, later, _, _ = dataloader_weeks(tmp_path, stage_table=False)
    path = tmp_path / "store"
    ingest(first, path, as_of="2024-03-01")
    report = ingest(later, path, as_of="2024-03-08")
    assert report.stage_facts_remade is None
    stored, afresh = derived_as_stored(path, "salesforce")
    assert stored == afresh


def test_hubspot_history_from_comparing_snapshots(tmp_path):
    """HubSpot exports have no stage history: it comes from comparing weekly exports, in which a
    quarter of the deals move to a random stage and some amounts change."""
    dates = ["2026-11-16", "2026-11-23", "2026-12-07"]
    remade = []
    for folder, as_of in zip(hubspot_weeks(tmp_path, dates, seed=5, moves=7), dates):
        remade.append(ingest(folder, tmp_path / "store", as_of=as_of).stage_facts_remade)
        stored, afresh = derived_as_stored(tmp_path / "store", "hubspot")
        assert stored == afresh
    assert remade[0] is None and all(n is not None and 0 < n < 120 for n in remade[1:])
