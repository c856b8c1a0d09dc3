"""Snapshots kept as changes: one current graph per system and what each snapshot added and
removed. Each snapshot's facts rebuild to exactly what a first ingest of its export gives,
whatever order the exports come in; a record read again unchanged is not rewritten; stores that
kept each snapshot whole are upgraded; a past snapshot can be materialised and forgotten."""

import csv
import shutil
from pathlib import Path

import pyoxigraph as ox
import pytest

from opportunity_kg.store import snapshots
from opportunity_kg.ingest import ingest
from opportunity_kg.analytics.queries import run_canned
from opportunity_kg.samples.sample import write_weekly_samples
from opportunity_kg.store.history import current_graphs, derived_facts, intervals_graph
from opportunity_kg.store import open_store, run_query

from .conftest import okg

DERIVED = "http://www.w3.org/ns/prov#wasDerivedFrom"
CORPUS = Path(__file__).parent / "corpus"


def facts(triples):
    """The facts, without the links to files and lines (an export and a copy of it with rows
    moved link the same facts to other lines)."""
    return {t for t in triples if t[1].value != DERIVED}


def graph(store, name):
    return {(q.subject, q.predicate, q.object) for q in store.quads_for_pattern(None, None, None, ox.NamedNode(name))}


@pytest.fixture(scope="module")
def weeks(tmp_path_factory):
    out = tmp_path_factory.mktemp("weeks")
    write_weekly_samples(out, 3, opportunities=60, seed=8)
    return sorted(p for p in out.iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def alone(weeks, tmp_path_factory):
    """Each week's export ingested into a store of its own: snapshot IRI -> its facts."""
    out = {}
    for week in weeks:
        path = tmp_path_factory.mktemp("alone") / "store"
        report = ingest(week, path)
        out[report.graph] = facts(graph(open_store(path, read_only=True), snapshots.current_graph("salesforce")))
    return out


@pytest.mark.parametrize("order", [[2, 0, 1], [1, 2, 0], [0, 2, 1, 1]])
def test_each_snapshot_rebuilds_to_a_first_ingest_of_its_export(weeks, alone, tmp_path, order):
    """In order, as a backfill of older weeks, and with a week ingested twice: every snapshot's
    facts are those of its export alone, and the current graph is the newest week's."""
    path = tmp_path / "store"
    for i in order:
        ingest(weeks[i], path)
    store = open_store(path)
    for iri, expected in alone.items():
        assert facts(snapshots.snapshot_triples(store, iri)) == expected
    newest = max(alone)
    assert facts(graph(store, snapshots.current_graph("salesforce"))) == alone[newest]


def test_a_new_export_of_a_stored_date_replaces_that_snapshot(weeks, alone, tmp_path):
    """Week 2's date first loaded with week 3's export (a wrong export), then with its own: the
    chain holds week 2's facts on its date, before and after the weeks around it."""
    path = tmp_path / "store"
    dates = sorted(alone)
    ingest(weeks[0], path)
    ingest(weeks[2], path)
    ingest(weeks[2], path, as_of=dates[1].rsplit("/", 1)[-1])  # wrong: week 3's facts as of week 2
    store = open_store(path)
    assert facts(snapshots.snapshot_triples(store, dates[1])) == alone[dates[2]]
    del store
    report = ingest(weeks[1], path)
    assert report.changed and report.graph == dates[1]
    store = open_store(path)
    for iri, expected in alone.items():
        assert facts(snapshots.snapshot_triples(store, iri)) == expected


def test_the_changes_are_exactly_what_differs_between_the_exports(weeks, alone, tmp_path):
    path = tmp_path / "store"
    for week in weeks:
        ingest(week, path)
    store = open_store(path, read_only=True)
    dates = sorted(alone)
    for older, newer in zip(dates, dates[1:]):
        added, removed = snapshots.changes(store, newer)
        assert facts(added) == alone[newer] - alone[older] and facts(removed) == alone[older] - alone[newer]
        assert added and removed
        # a link to a file and line changes only for a record whose facts changed
        changed = {t[0] for t in facts(added) | facts(removed)}
        assert {t[0] for t in added | removed if t[1].value == DERIVED} <= changed
    assert snapshots.changes(store, dates[0]) == (set(), set())  # the chain starts at the first snapshot
    # the digests the next ingest compares with: one per record of the current graph, and the derived
    # facts, rewritten subject by subject, the same as derived afresh
    current = graph(store, snapshots.current_graph("salesforce"))
    assert set(snapshots.read_digests(store, "salesforce")) == {t[0].value for t in current if t[1].value != DERIVED}
    assert graph(store, intervals_graph("salesforce")) == set(derived_facts(store, "salesforce"))
    # "now" is every named graph (read as their union, the fast way): each system's current graph,
    # its newest snapshot's description, history and intervals, the ontology; the rest is elsewhere
    assert {g.value for g in store.named_graphs()} == set(current_graphs(store))
    assert [g for g, _, _ in snapshots.snapshots(store)] and dates[-1] in current_graphs(store)
    # "now" is one current graph: each opportunity counted once, as the newest export has it
    count = list(run_query(store, "SELECT (COUNT(?o) AS ?n) WHERE { ?o a <https://w3id.org/opportunity-kg/ontology#Opportunity> }"
                      ).rows)[0][0].value
    with open(weeks[-1] / "Opportunity.csv", encoding="utf-8", newline="") as handle:
        assert int(count) == sum(1 for _ in csv.DictReader(handle))


def test_a_record_moved_to_another_line_is_not_rewritten(tmp_path):
    """A Data Loader extract (not our sample) exported again a week later with a new deal on the
    first line and one amount changed: every row below moved down a line, yet the snapshot's
    changes are the new deal and the amount, each with its link to the new export's line."""
    later = tmp_path / "later"
    shutil.copytree(CORPUS / "dataloader", later)
    with open(later / "opportunity.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    header = list(rows[0])
    new = dict(rows[0], ID="006000000000099AAA", NAME="Fabrikam pilot", AMOUNT="7000",
               SYSTEMMODSTAMP="2024-03-08 10:00:00")
    rows[2]["AMOUNT"] = "31000"
    rows[2]["SYSTEMMODSTAMP"] = "2024-03-08 11:00:00"
    with open(later / "opportunity.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows([new] + rows)
    path = tmp_path / "store"
    first = ingest(CORPUS / "dataloader", path)
    second = ingest(later, path)
    assert second.previous_snapshot == first.graph and second.history_changes == 1
    store = open_store(path, read_only=True)
    added, _ = snapshots.changes(store, second.graph)
    subjects = {t[0].value.rsplit("/", 1)[-1] for t in added}
    assert subjects == {"006000000000099AAA", rows[2]["ID"]}
    links = {t[2].value for t in added if t[1].value == DERIVED}
    assert links == {f"{second.graph}/opportunity.csv#line=2", f"{second.graph}/opportunity.csv#line=5"}
    # an unchanged deal keeps the link to the line the first export had it on
    kept = [t[2].value for t in graph(store, snapshots.current_graph("salesforce"))
            if t[0].value.endswith(rows[0]["ID"]) and t[1].value == DERIVED]
    assert kept == [f"{first.graph}/opportunity.csv#line=2"]


def _whole(path, tmp_path):
    """The store at ``path`` rewritten as an earlier version kept it: each snapshot's graph holding
    its facts beside its description, no current graph and no changes."""
    store = open_store(path)
    chain = [iri for _, iri in snapshots.chain(store, "salesforce")]
    everything = {iri: snapshots.snapshot_triples(store, iri) for iri in chain}
    descriptions = {}
    for iri in chain:
        descriptions[iri] = list(store.query(
            f"SELECT ?s ?p ?o WHERE {{ GRAPH ?g {{ ?s ?p ?o FILTER(STRSTARTS(STR(?s), '{iri}') && ?p NOT IN "
            f"({snapshots.ADDED}, {snapshots.REMOVED})) }} FILTER(?g IN (<{iri}>, <{snapshots.snapshots_graph(iri)}>)) }}"))
    for name in [g.value for g in store.named_graphs()]:
        if name in (snapshots.current_graph("salesforce"), snapshots.snapshots_graph(chain[0])) or name in chain:
            store.remove_graph(ox.NamedNode(name))
    for iri, triples in everything.items():
        store.extend(ox.Quad(*t, ox.NamedNode(iri)) for t in list(triples) + [tuple(r) for r in descriptions[iri]])
    store.flush()
    return chain


def test_a_store_that_kept_snapshots_whole_still_answers_and_is_upgraded(weeks, alone, tmp_path):
    path = tmp_path / "store"
    for week in weeks[:2]:
        ingest(week, path)
    before = list(run_canned(open_store(path, read_only=True), "weighted-pipeline", {"period": "2026"}).rows)
    chain = _whole(path, tmp_path)
    store = open_store(path, read_only=True)
    assert snapshots.whole_snapshots(store) == ["salesforce"]
    assert list(run_canned(store, "weighted-pipeline", {"period": "2026"}).rows) == before != []  # read as it is
    with pytest.raises(Exception, match="okg snapshot --upgrade"):
        snapshots.snapshot_triples(store, chain[0])
    del store
    report = ingest(weeks[2], path)
    assert any("now kept as changes" in w for w in report.warnings)
    store = open_store(path)
    assert snapshots.whole_snapshots(store) == []
    for iri, expected in alone.items():
        assert facts(snapshots.snapshot_triples(store, iri)) == expected
    for iri in chain:  # the past snapshots' graphs are gone: their descriptions are in the snapshots graph
        assert not graph(store, iri)
        assert (ox.NamedNode(iri), ox.NamedNode(snapshots.OKG + "asOf"), ox.Literal(
            iri.rsplit("/", 1)[1], datatype=ox.NamedNode("http://www.w3.org/2001/XMLSchema#date"))) in \
            graph(store, snapshots.snapshots_graph(iri))


def test_okg_snapshot_lists_writes_materialises_and_upgrades(weeks, alone, tmp_path):
    path = tmp_path / "store"
    for week in weeks[:2]:
        ingest(week, path)
    dates = sorted(alone)[:2]
    listing = okg("snapshot", "--store", str(path)).stdout
    assert listing.splitlines()[0].split() == ["system", "as_of", "graph", "added", "removed", "facts", "materialised"]
    assert "current" in listing.splitlines()[2] and len(listing.splitlines()) == 3
    out = tmp_path / "first.nt"
    okg("snapshot", dates[0].rsplit("/", 1)[-1], "--store", str(path), "--out", str(out))
    written = {(q.subject, q.predicate, q.object) for q in ox.parse(path=str(out), format=ox.RdfFormat.N_TRIPLES)}
    assert facts(written) == alone[dates[0]]
    said = okg("snapshot", dates[0], "--store", str(path), "--materialise").stdout
    assert f"{len(written):,} facts" in said
    store = open_store(path, read_only=True)
    assert facts(graph(store, dates[0])) >= alone[dates[0]]
    del store
    okg("snapshot", dates[0], "--store", str(path), "--forget")
    store = open_store(path, read_only=True)
    assert not facts(graph(store, dates[0])) & alone[dates[0]]
    del store
    refused = okg("snapshot", dates[1], "--store", str(path), "--materialise", check=False)
    assert refused.returncode == 1 and "latest snapshot" in refused.stderr and "/current>" in refused.stderr
    unknown = okg("snapshot", "1999-01-01", "--store", str(path), check=False)
    assert "no snapshot '1999-01-01'" in unknown.stderr and dates[1].rsplit("/", 1)[-1] in unknown.stderr
    _whole(path, tmp_path)
    assert "salesforce now kept as changes" in okg("snapshot", "--upgrade", "--store", str(path)).stdout
    assert "nothing to upgrade" in okg("snapshot", "--upgrade", "--store", str(path)).stdout


def test_the_endpoint_says_when_a_query_names_a_snapshot_kept_as_changes(weeks, tmp_path):
    import requests

    from .conftest import okg_serve

    path = tmp_path / "store"
    for week in weeks[:2]:
        report = ingest(week, path)
    first = snapshots.chain(open_store(path, read_only=True), "salesforce")[0][1]
    query = f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{first}> {{ ?o a <https://w3id.org/opportunity-kg/ontology#Opportunity> }} }}"
    with okg_serve(path, wait="/health") as (base, _):
        answer = requests.get(base + "/sparql", params={"query": query}, headers={"Accept": "text/csv"})
        assert answer.text.splitlines()[1] == "0" and answer.headers["OKG-Snapshots-As-Changes"] == f"<{first}>"
        latest = requests.get(base + "/sparql", params={"query": query.replace(first, report.graph)})
        assert "OKG-Snapshots-As-Changes" not in latest.headers
    snapshots.materialise_snapshot(path, first)
    with okg_serve(path, wait="/health") as (base, _):
        answer = requests.get(base + "/sparql", params={"query": query}, headers={"Accept": "text/csv"})
        assert int(answer.text.splitlines()[1]) > 0 and "OKG-Snapshots-As-Changes" not in answer.headers


def test_the_store_is_compacted_once_enough_facts_were_removed(weeks, tmp_path, monkeypatch):
    """A re-ingest compacts the store only when the facts removed since the last compaction reach
    OKG_COMPACT_SHARE of the snapshot's triples; the running count is kept in the snapshots graph."""
    from opportunity_kg.ingest.publish import REMOVED_SINCE
    from opportunity_kg.store.history import snapshots_graph_of

    store_path = tmp_path / "store"
    kept = ox.NamedNode(snapshots_graph_of("salesforce"))

    def removed_since():
        store = open_store(store_path, read_only=True)
        return [int(q.object.value) for q in store.quads_for_pattern(kept, REMOVED_SINCE, None, kept)]

    monkeypatch.setenv("OKG_COMPACT_SHARE", "1000")  # far more than a week removes
    assert not ingest(weeks[0], store_path).compacted
    second = ingest(weeks[1], store_path)
    assert second.facts_removed > 0 and not second.compacted
    assert removed_since() == [second.facts_removed]
    # folded in memory, the report counts the changes it wrote: the same as the store holds
    held = snapshots.count_changes(open_store(store_path, read_only=True), second.graph)
    assert (second.facts_added, second.facts_removed) == held and held[0] > 0
    monkeypatch.setenv("OKG_COMPACT_SHARE", "0")  # every re-ingest that changed something
    third = ingest(weeks[2], store_path)
    assert third.compacted and removed_since() == [0]
    assert run_query(open_store(store_path, read_only=True), "ASK { ?s a <https://w3id.org/opportunity-kg/ontology#Opportunity> }").rows


def test_digests_kept_one_quad_each_are_compared_whole_once(weeks, alone, tmp_path):
    """A store whose record and derived digests were kept one quad each (okg:recordDigest and
    okg:derivedDigest, before the digest tables): the next ingest finds no table, compares the
    records whole, stores exactly the changes and the same derived facts, drops the old quads and
    keeps tables from then on."""
    path = tmp_path / "store"
    ingest(weeks[0], path)
    store = open_store(path)
    system_graph = ox.NamedNode(snapshots.snapshots_graph_of("salesforce"))
    tables = [q for q in store.quads_for_pattern(None, None, None, system_graph)
              if q.predicate.value.endswith(("#recordDigests", "#derivedDigests"))]
    assert {q.predicate.value.rsplit("#")[-1] for q in tables} == {"recordDigests", "derivedDigests"}
    for q in tables:  # as the version before the tables wrote them: a quad per subject
        store.remove(q)
        for line in q.object.value.split("\n"):
            iri, digest = line.split(" ")
            store.add(ox.Quad(ox.NamedNode(iri), ox.NamedNode(q.predicate.value[:-1]), ox.Literal(digest),
                              q.graph_name))
    del store
    ingest(weeks[1], path)
    store = open_store(path)  # a past snapshot is rebuilt in a graph of its own
    dates = sorted(alone)
    added, removed = snapshots.changes(store, dates[1])
    assert facts(added) == alone[dates[1]] - alone[dates[0]] and facts(removed) == alone[dates[0]] - alone[dates[1]]
    assert facts(snapshots.snapshot_triples(store, dates[1])) == alone[dates[1]]
    assert graph(store, intervals_graph("salesforce")) == set(derived_facts(store, "salesforce"))
    kept = {q.predicate.value.rsplit("#")[-1] for q in store.quads_for_pattern(None, None, None, system_graph)}
    assert {"recordDigests", "derivedDigests"} <= kept and not kept & {"recordDigest", "derivedDigest"}
    current = graph(store, snapshots.current_graph("salesforce"))
    assert set(snapshots.read_digests(store, "salesforce")) == {t[0].value for t in current if t[1].value != DERIVED}
