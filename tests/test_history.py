"""A later export of the same org keeps the earlier snapshot, and what changed becomes history."""

import csv
import shutil

import pytest

from opportunity_kg.store import snapshots
from opportunity_kg.mapping.functions import to_decimal
from opportunity_kg.ingest import ingest
from opportunity_kg.store import open_store, run_query

PREFIX = "PREFIX okg: <https://w3id.org/opportunity-kg/ontology#>\n"


def rewrite(path, change):
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header, rows = reader.fieldnames, list(reader)
    change(rows)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return rows


@pytest.fixture(scope="module")
def two_snapshots(tmp_path_factory):
    """The sample as of 2026-11-16, then a later export without history tables where three
    opportunities moved: one stage, one amount, one close date (and stage)."""
    from opportunity_kg.samples.sample import write_sample

    root = tmp_path_factory.mktemp("history")
    first, later = root / "first", root / "later"
    write_sample(first, opportunities=80, seed=3)
    shutil.copytree(first, later)
    for name in ("OpportunityHistory.csv", "OpportunityFieldHistory.csv"):
        (later / name).unlink()
    moved = {}

    def change(rows):
        open_rows = [r for r in rows if r["IsClosed"] == "false"]
        a = next(r for r in open_rows if r["StageName"] != "Negotiation/Review")  # so its stage does move
        b, c = [r for r in open_rows if r is not a][:2]
        moved["stage"] = (a["Id"], a["StageName"], "Negotiation/Review")
        a["StageName"] = "Negotiation/Review"
        moved["amount"] = (b["Id"], b["Amount"], "123456.00")
        b["Amount"] = "123456.00"
        moved["close"] = (c["Id"], c["CloseDate"], "2027-03-31")
        c["CloseDate"] = "2027-03-31"
    rows = rewrite(later / "Opportunity.csv", change)
    store = root / "store"
    reports = [ingest(first, store, as_of="2026-11-16"), ingest(later, store, as_of="2026-12-01")]
    return store, reports, moved, rows


def select(store_path, query):
    store = open_store(store_path)
    try:
        return [[t.value if t is not None else None for t in row] for row in run_query(store, PREFIX + query).rows]
    finally:
        del store


def test_changes_become_history_events(two_snapshots):
    store, reports, moved, _ = two_snapshots
    assert reports[1].previous_snapshot.endswith("/salesforce/2026-11-16") and reports[1].history_changes == 3
    got = select(store, """SELECT ?id ?field ?old ?new ?at WHERE { ?c a okg:FieldChange ; okg:fieldName ?field ;
        okg:oldValue ?old ; okg:newValue ?new ; okg:changedAt ?at ; okg:fieldChangeOf/okg:sourceId ?id .
        FILTER (STRSTARTS(STR(?c), "https://w3id.org/opportunity-kg/graph/salesforce/history/")) }""")
    stage_id, old_stage, _ = moved["stage"]
    amount_id, old_amount, _ = moved["amount"]
    close_id, old_close, _ = moved["close"]
    assert sorted(map(tuple, got)) == sorted([
        (stage_id, "StageName", f"https://w3id.org/opportunity-kg/id/salesforce/stage/{old_stage.replace(' ', '%20')}",
         "https://w3id.org/opportunity-kg/id/salesforce/stage/Negotiation%2FReview", "2026-12-01T00:00:00Z"),
        (amount_id, "Amount", to_decimal(old_amount), "123456", "2026-12-01T00:00:00Z"),
        (close_id, "CloseDate", old_close, "2027-03-31", "2026-12-01T00:00:00Z"),
    ])
    stage_changes = select(store, f"""SELECT ?at WHERE {{ ?c a okg:StageChange ; okg:changeOf/okg:sourceId "{stage_id}" ;
        okg:stage <https://w3id.org/opportunity-kg/id/salesforce/stage/Negotiation%2FReview> ; okg:changedAt ?at }}""")
    assert stage_changes == [["2026-12-01T00:00:00Z"]]


def test_earlier_snapshot_is_kept_and_now_counts_each_opportunity_once(two_snapshots):
    store, _, moved, rows = two_snapshots
    from opportunity_kg.store.history import snapshots as listed

    assert sorted(a for _, _, a in listed(open_store(store, read_only=True))) == ["2026-11-16", "2026-12-01"]
    # "now" knows both dates (the newest in its description, the older in the intervals graph)
    dates = select(store, "SELECT ?d WHERE { ?g a okg:Snapshot ; okg:asOf ?d } ORDER BY ?d")
    assert dates == [["2026-11-16"], ["2026-12-01"]]
    assert select(store, "SELECT (COUNT(?o) AS ?n) WHERE { ?o a okg:Opportunity }") == [[str(len(rows))]]
    amount_id = moved["amount"][0]
    assert select(store, f'SELECT ?a WHERE {{ ?o okg:sourceId "{amount_id}" ; okg:amount ?a }}') == [["123456"]]
    earlier = "https://w3id.org/opportunity-kg/graph/salesforce/2026-11-16"
    old_amount = f'SELECT ?a WHERE {{ GRAPH <{earlier}> {{ ?o okg:sourceId "{amount_id}" ; okg:amount ?a }} }}'
    assert select(store, old_amount) == []  # kept as changes: the snapshot's own graph holds its description
    snapshots.materialise_snapshot(store, "2026-11-16")
    try:
        old = select(store, old_amount)
        assert old != [["123456"]] and len(old) == 1
        assert select(store, "SELECT (COUNT(?o) AS ?n) WHERE { ?o a okg:Opportunity }") == [[str(len(rows))]]
    finally:
        snapshots.dematerialise_snapshot(store, "2026-11-16")
    assert select(store, old_amount) == []


def test_ingesting_the_later_export_again_changes_nothing(two_snapshots, tmp_path):
    store, reports, _, _ = two_snapshots
    later = store.parent / "later"
    again = ingest(later, store, as_of="2026-12-01")
    assert again.changed is False and again.history_changes == 3


def test_stage_intervals_summarise_the_stage_history(sample_export, sample_store, open_sample_store):
    """One interval per run of stage-history rows at the same stage, ending where the next run starts,
    with its whole days; valid against the shapes; in the default dataset."""
    import pyoxigraph as ox
    from datetime import date

    from opportunity_kg.store.history import intervals_graph
    from opportunity_kg.validation.validate import validate_triples

    runs = {}
    rows = {}
    with open(sample_export / "OpportunityHistory.csv", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            rows.setdefault(row["OpportunityId"], set()).add((row["CreatedDate"][:19], row["StageName"]))
    for deal, changes in rows.items():
        kept = []
        for at, stage in sorted(changes):
            if not kept or kept[-1][1] != stage:
                kept.append((at, stage))
        runs[deal] = [(stage, (date.fromisoformat(kept[i + 1][0][:10]) - date.fromisoformat(at[:10])).days
                       if i + 1 < len(kept) else None) for i, (at, stage) in enumerate(kept)]
    got = {}
    q = """SELECT ?id ?start ?stage ?days WHERE { ?i a okg:StageInterval ; okg:intervalOf/okg:sourceId ?id ;
           okg:startedAt ?start ; okg:intervalStage/rdfs:label ?stage . OPTIONAL { ?i okg:durationDays ?days } }"""
    for deal, start, stage, days in (
            [t.value if t is not None else None for t in row]
            for row in run_query(open_sample_store, PREFIX + "PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>\n" + q).rows):
        got.setdefault(deal, []).append((start, stage, int(days) if days is not None else None))
    assert {d: [(s, n) for _, s, n in sorted(v)] for d, v in got.items()} == runs
    graph = ox.NamedNode(intervals_graph("salesforce"))
    triples = [(q.subject, q.predicate, q.object) for q in open_sample_store.quads_for_pattern(None, None, None, graph)]
    assert triples and [v for v in validate_triples(triples) if v.severity.endswith("Violation")] == []


def test_now_is_read_as_the_union_only_when_it_is_every_graph(two_snapshots, open_sample_store):
    """"Now" is every named graph, with one snapshot per system or several (older ones are kept
    as changes, outside the named graphs), and queries read the union (faster in Oxigraph) with
    the same answers as naming the graphs; while an older snapshot is materialised in a graph of
    its own, they must not."""
    from opportunity_kg.store.history import current_dataset

    query = PREFIX + "SELECT ?o ?a WHERE { ?o a okg:Opportunity ; okg:amount ?a } ORDER BY ?o ?a"

    def check(store, expected_whole):
        graphs, whole = current_dataset(store)
        assert whole is expected_whole
        as_named = [[t.value for t in row] for row in run_query(store, query, default_graph=graphs).rows]
        as_default = [[t.value for t in row] for row in run_query(store, query).rows]
        assert as_default == as_named and len(as_named) >= 80
        union = [[t.value for t in row] for row in store.query(query, use_default_graph_as_union=True)]
        assert (union == as_named) is expected_whole  # materialised: the union counts old amounts too

    check(open_sample_store, True)
    check(open_store(two_snapshots[0], read_only=True), True)
    snapshots.materialise_snapshot(two_snapshots[0], "2026-11-16")
    try:
        check(open_store(two_snapshots[0], read_only=True), False)
    finally:
        snapshots.dematerialise_snapshot(two_snapshots[0], "2026-11-16")


@pytest.fixture(scope="module")
def moved_parents(tmp_path_factory):
    """Two Salesforce snapshots: between them one subsidiary moves to another group and one is
    cut loose; with the GLEIF sample (whose own acquisition is on 2026-03-31) and okg match."""
    from opportunity_kg.analytics.match import match_store
    from opportunity_kg.samples.sample import write_sample
    from opportunity_kg.samples.sample_systems import write_system_sample

    root = tmp_path_factory.mktemp("parents")
    first, later = root / "first", root / "later"
    write_sample(first, opportunities=80, seed=3)
    shutil.copytree(first, later)
    names, moves = {}, {}

    def change(rows):
        names.update({r["Id"]: r["Name"] for r in rows})
        tops = [r for r in rows if not r["ParentId"]]
        children = [r for r in rows if r["ParentId"] in {t["Id"] for t in tops}]
        moved, freed = children[0], children[1]
        new_top = next(t for t in tops if t["Id"] != moved["ParentId"])
        moves["moved"] = (moved["Id"], moved["ParentId"], new_top["Id"])
        moves["freed"] = (freed["Id"], freed["ParentId"], "")
        moved["ParentId"], freed["ParentId"] = new_top["Id"], ""
    rewrite(later / "Account.csv", change)
    write_system_sample("gleif", root / "gleif", opportunities=80, seed=3)
    store = root / "store"
    reports = [ingest(first, store, as_of="2026-11-16"), ingest(later, store, as_of="2026-12-01"),
               ingest(root / "gleif", store)]
    match_store(store)
    return store, reports, moves, names, root


def _canned(store_path, name, args):
    from opportunity_kg.analytics.queries import get_query
    from opportunity_kg.store import select_records

    store = open_store(store_path)
    try:
        return list(select_records(store, get_query(name).bind(args)))
    finally:
        del store


def test_crm_parent_changes_become_history(moved_parents):
    store, reports, moves, names, _ = moved_parents
    assert reports[1].parent_changes == 2 and reports[1].history_changes == 0
    got = select(store, """SELECT ?id ?old ?new ?at WHERE { ?c a okg:ParentChange ; okg:parentChangeOf/okg:sourceId ?id ;
        okg:changedAt ?at OPTIONAL { ?c okg:previousParent/okg:sourceId ?old } OPTIONAL { ?c okg:newParent/okg:sourceId ?new } }""")
    assert sorted(map(tuple, got)) == sorted((aid, old, new or None, "2026-12-01T00:00:00Z")
                                             for aid, old, new in moves.values())
    # ingesting the later export again records nothing new
    assert ingest(store.parent / "later", store, as_of="2026-12-01").changed is False


def test_crm_parents_on_a_date_read_the_snapshot_of_that_day(moved_parents):
    store, _, moves, names, _ = moved_parents
    aid, old, new = moves["moved"]
    by_day = {}
    for day in ("2026-01-01", "2026-11-20", "2026-12-05"):
        [row] = _canned(store, "crm-parents-on-date", {"on": day, "account_id": aid})
        by_day[day] = (row["direct_parent"], row["ultimate_parent"], row["recorded_on"])
    # before the first snapshot: the first one, and it says so
    assert by_day["2026-01-01"] == by_day["2026-11-20"] == (names[old], names[old], "2026-11-16")
    assert by_day["2026-12-05"] == (names[new], names[new], "2026-12-01")
    freed = _canned(store, "crm-parents-on-date", {"on": "2026-12-05", "account_id": moves["freed"][0]})
    assert freed[0]["direct_parent"] is None and freed[0]["ultimate_parent"] == names[moves["freed"][0]]
    everyone = _canned(store, "crm-parents-on-date", {"on": "2026-12-05", "system": "salesforce"})
    assert len(everyone) == len(names)
    assert _canned(store, "crm-parents-on-date", {"on": "2026-12-05", "system": "hubspot"}) == []


def test_gleif_parents_on_a_date_sit_beside_the_crm_ones(moved_parents):
    """The GLEIF acquisition of 2026-03-31: an account linked to the acquired entity shows its old
    GLEIF ultimate parent before that day and the new one after."""
    store, _, _, _, root = moved_parents
    rr = next((root / "gleif").glob("*rr*.csv"))
    ended = [r for r in csv.DictReader(open(rr, encoding="utf-8")) if r["Relationship.Period.1.endDate"]]
    child = ended[0]["Relationship.StartNode.NodeID"]
    [account] = select(store, f"""SELECT ?id WHERE {{ ?a okg:legalEntity <https://w3id.org/opportunity-kg/id/lei/{child}> ;
        okg:sourceId ?id }}""")
    before = _canned(store, "crm-parents-on-date", {"on": "2026-03-01", "account_id": account[0]})
    after = _canned(store, "crm-parents-on-date", {"on": "2026-04-01", "account_id": account[0]})
    assert before[0]["gleif_ultimate_parent"] and after[0]["gleif_ultimate_parent"]
    assert before[0]["gleif_ultimate_parent"] != after[0]["gleif_ultimate_parent"]
    # the CRM did not change its parent: the conflict is visible side by side
    assert before[0]["ultimate_parent"] == after[0]["ultimate_parent"]


def test_hierarchy_changes_list_both_sources(moved_parents):
    store, _, moves, names, _ = moved_parents
    rows = _canned(store, "hierarchy-changes", {"from": "2026-01-01", "to": "2026-12-31"})
    crm = {(r["record_id"], r["previous_parent"], r["new_parent"], r["changed_on"]) for r in rows
           if r["source"] == "salesforce"}
    assert crm == {(aid, names[old], names.get(new, ""), "2026-12-01") for aid, old, new in moves.values()}
    gleif = [r for r in rows if r["source"] == "gleif"]
    assert len(gleif) == 1 and gleif[0]["changed_on"] == "2026-03-31"
    assert gleif[0]["previous_parent"] and gleif[0]["new_parent"] and gleif[0]["previous_parent"] != gleif[0]["new_parent"]
    assert [r["source"] for r in _canned(store, "hierarchy-changes", {"from": "2026-04-01", "to": "2026-12-31"})] \
        == ["salesforce", "salesforce"]


def test_an_entity_without_a_gleif_parent_is_its_own_ultimate_parent(moved_parents):
    store = moved_parents[0]
    linked = dict(select(store, """SELECT ?id ?name WHERE { ?a okg:sourceId ?id ; okg:legalEntity ?e .
        ?e okg:legalName ?name FILTER NOT EXISTS { ?r okg:childEntity ?e } }"""))
    assert linked
    rows = {r["account_id"]: r for r in _canned(store, "crm-parents-on-date", {"on": "2026-12-05"})}
    for account_id, name in linked.items():
        assert rows[account_id]["gleif_ultimate_parent"] == name
    unlinked = [r for r in rows.values() if r["account_id"] not in linked and r["gleif_ultimate_parent"] is None]
    assert unlinked  # about one company in ten is not in GLEIF


def test_close_date_pushed_is_derived_from_the_export_history_and_the_snapshots(two_snapshots):
    """okg:closeDatePushed follows "now": the later export has no field history table, so the first
    export's history rows (its snapshot's) no longer count, and the one deal true is the one whose
    close date the later export moved later (a change of our own history); every deal has the fact.
    (A deal pushed in an export's own history table: test_win_patterns, over the sample.)"""
    store, _, moved, rows = two_snapshots
    close_id, old_close, new_close = moved["close"]
    assert old_close < new_close
    first = store.parent / "first"
    with open(first / "OpportunityFieldHistory.csv", encoding="utf-8", newline="") as handle:
        pushed = {r["OpportunityId"] for r in csv.DictReader(handle) if r["Field"] == "CloseDate"
                  and r["NewValue"] > r["OldValue"]}
    got = dict(map(tuple, select(store, """SELECT ?id ?pushed WHERE { ?d a okg:Opportunity ; okg:sourceId ?id ;
        okg:closeDatePushed ?pushed }""")))
    assert set(got) == {r["Id"] for r in rows}
    assert {k for k, v in got.items() if v == "true"} == {close_id}
    assert pushed - {close_id}  # which the first snapshot alone holds


def test_related_account_won_before_reads_parents_siblings_and_dates():
    """okg:relatedAccountWonBefore on a hand-made hierarchy: a parent P with children A and B."""
    import pyoxigraph as ox

    from opportunity_kg.store.history import deal_patterns

    okg = "https://w3id.org/opportunity-kg/ontology#"
    graph = ox.NamedNode("urn:test:facts")
    node = {name: ox.NamedNode(f"urn:test:{name}") for name in ("P", "A", "B", "C", "won-on-B", "won-on-P",
                                                                "after", "before", "on-P", "on-C", "no-created")}

    def date_(text, kind="date"):
        return ox.Literal(text, datatype=ox.NamedNode(f"http://www.w3.org/2001/XMLSchema#{kind}"))

    triples = [("A", "parentAccount", node["P"]), ("B", "parentAccount", node["P"]),
               ("won-on-B", "account", node["B"]), ("won-on-B", "closeDate", date_("2026-01-10")),
               ("won-on-P", "account", node["P"]), ("won-on-P", "closeDate", date_("2026-04-01")),
               ("after", "account", node["A"]), ("after", "createdAt", date_("2026-02-01T09:00:00Z", "dateTime")),
               ("before", "account", node["A"]), ("before", "createdAt", date_("2026-01-10T09:00:00Z", "dateTime")),
               ("on-P", "account", node["P"]), ("on-P", "createdAt", date_("2026-06-01T09:00:00Z", "dateTime")),
               ("on-C", "account", node["C"]), ("on-C", "createdAt", date_("2026-06-01T09:00:00Z", "dateTime")),
               ("no-created", "account", node["A"])]
    store = ox.Store()
    store.extend([ox.Quad(node[s], ox.NamedNode(okg + p), o, graph) for s, p, o in triples])
    deals = {node[n] for n in ("won-on-B", "won-on-P", "after", "before", "on-P", "on-C", "no-created")}
    facts = {(s.value.rsplit(":", 1)[1], p.value.rsplit("#", 1)[1]): o.value
             for s, p, o in deal_patterns([(store, graph)], deals, {node["won-on-B"], node["won-on-P"]})}
    related = {deal for (deal, name), value in facts.items() if name == "relatedAccountWonBefore" and value == "true"}
    # "after": sibling B won on 2026-01-10, before A's deal was created on 02-01; "before": created that
    # same day, so not before; "won-on-B": the parent's win (04-01) came after it; "on-P": P has no parent;
    # "on-C": C has none; "no-created": no created date to compare
    assert related == {"after"}
    assert {name for (_, name) in facts} == {"relatedAccountWonBefore", "closeDatePushed"}
    assert len(facts) == 2 * len(deals)
