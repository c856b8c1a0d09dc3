"""The ingest's stages one at a time (opportunity_kg.ingest: read, map, load, check, count, publish,
derive), on the hand-written Data Loader extract of tests/corpus (not on ``okg sample``), in real
Oxigraph stores; each test stops after the stage it is about and looks at what that stage left."""

import csv
import os
import shutil
from pathlib import Path

import pyoxigraph as ox
import pytest

from opportunity_kg.errors import OkgError
from opportunity_kg.store.history import history_graph, intervals_graph
from opportunity_kg.ingest.check import check_rows
from opportunity_kg.ingest.count import check_accounts, count_rows
from opportunity_kg.ingest.derive import derive
from opportunity_kg.ingest.load import Target
from opportunity_kg.ingest.mapping import load_reference, map_export
from opportunity_kg.ingest.publish import describe, publish
from opportunity_kg.ingest.read import as_of_in, plan_export
from opportunity_kg.ingest.report import IngestReport
from opportunity_kg.ingest.rows import DERIVED, Rows
from opportunity_kg.ingest.state import Run
from opportunity_kg.progress import Progress
from opportunity_kg.validation.validate import droppable, from_rdflib, load_ontology, load_shapes, value_rules

CORPUS = Path(__file__).parent / "corpus" / "dataloader"
QUIET = Progress(enabled=False)


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def model():
    shapes, ontology = load_shapes(), load_ontology()
    return shapes, ontology, [tuple(from_rdflib(t) for t in spo) for spo in ontology]


def start(folder, model, store=None):
    """The read stage and a load target in an in-memory store (``store``, or a new one)."""
    shapes, _, ontology_triples = model
    plan = plan_export(folder)
    for mapping, _ in plan.planned:
        mapping.droppable = droppable(value_rules(shapes))
    as_of, _ = as_of_in(plan.planned)
    graph = f"https://w3id.org/opportunity-kg/graph/{plan.source}/{as_of}"
    run = Run(plan, as_of, graph, Rows(graph))
    target = Target(store if store is not None else ox.Store(), None, plan.source, graph, as_of, ontology_triples)
    return run, target


def mapped(folder, model, store=None):
    """read, then map and load."""
    run, target = start(folder, model, store)
    map_export(run, target, QUIET)
    load_reference(run, target)
    target.close()
    return run, target


def test_read_plans_each_file_for_its_triples_maps_and_finds_the_as_of_date():
    plan = plan_export(CORPUS)
    assert plan.source == "salesforce"
    read = {tm.source.path.name for _, tm in plan.planned}
    assert read == {p.name for p in CORPUS.glob("*.csv")}  # each file of the extract, under its own name
    assert "OpportunityLineItem.csv" in plan.skipped  # a table the mappings read that the extract lacks
    assert plan.unmapped(read) == []
    newest = max(r["SYSTEMMODSTAMP"] for p in CORPUS.glob("*.csv") for r in read_csv(p) if r.get("SYSTEMMODSTAMP"))
    assert as_of_in(plan.planned) == (newest[:10], None)


def test_read_refuses_what_it_cannot_plan(tmp_path):
    with pytest.raises(OkgError, match="does not exist"):
        plan_export(tmp_path / "nowhere")
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(OkgError, match="cannot tell which system"):
        plan_export(tmp_path)


def test_map_gives_every_row_read_a_place(model):
    """Each line read is loaded (its subject links to it), rejected with a reason, or deleted."""
    run, target = mapped(CORPUS, model)
    links = {q.object.value for q in target.store.quads_for_pattern(None, DERIVED, None, target.graph)}
    for path in CORPUS.glob("*.csv"):
        rows = read_csv(path)
        assert len(run.lines_read[path.name]) == len(rows)
        deleted = {i + 2 for i, r in enumerate(rows) if r.get("ISDELETED") == "1"}
        assert run.deleted[path.name] == deleted
        rejected = {line for name, line, *_ in run.rejects if name == path.name}
        loaded = {int(link.rpartition("#line=")[2]) for link in links if f"/{path.name}#line=" in link}
        assert loaded | rejected | deleted == run.lines_read[path.name], path.name
        assert not loaded & (rejected | deleted)
    no_id = [r for r in run.rejects if "names no record" in r[5]]
    assert [(r[0], r[3]) for r in no_id] == [("opportunity.csv", "Id")]


def test_check_quarantines_what_breaks_a_shape_and_drops_a_warned_value(model, tmp_path):
    folder = tmp_path / "export"
    shutil.copytree(CORPUS, folder)
    accounts = read_csv(folder / "account.csv")
    accounts[0]["PARENTID"], accounts[3]["PARENTID"] = accounts[3]["ID"], accounts[0]["ID"]  # a cycle
    write_csv(folder / "account.csv", accounts)
    run, target = mapped(folder, model)
    before = len(run.rejects)
    check_rows(run, target, *model[:2], QUIET)
    cycle = [r for r in run.rejects[before:] if r[0] == "account.csv"]
    assert sorted(r[1] for r in cycle) == [2, 5]
    assert all("cycle" in r[5] and r[3].casefold() == "parentid" for r in cycle), cycle
    for _, line, *_ in cycle:  # their facts are out of the loaded graph
        link = ox.NamedNode(f"{run.graph}/account.csv#line={line}")
        assert not list(target.store.quads_for_pattern(None, DERIVED, link, target.graph))
    dropped = [w for w in run.warnings if w.kind == "value dropped"]
    assert {(w.file, w.column) for w in dropped} >= {("account.csv", "WEBSITE")}


def test_count_adds_up_and_the_digest_is_the_same_for_the_same_rows(model):
    digests = []
    for _ in range(2):
        run, target = mapped(CORPUS, model)
        check_rows(run, target, *model[:2], QUIET)
        digest, records = count_rows(run, target, QUIET)
        for name, counts in run.counts.items():
            assert counts.rows_read == counts.rows_loaded + counts.rows_quarantined + counts.rows_deleted, name
        assert run.counts["opportunity.csv"].rows_loaded == len(read_csv(CORPUS / "opportunity.csv")) \
            - run.counts["opportunity.csv"].rows_quarantined - run.counts["opportunity.csv"].rows_deleted
        assert records and all(isinstance(d, int) for d in records.values())
        digests.append(digest)
    assert digests[0] == digests[1]
    with pytest.raises(OkgError, match="do not add up"):
        check_accounts("opportunity.csv", {2, 3, 4}, {2}, {3}, set())


def test_counting_in_a_process_of_its_own_gives_the_same_counts_and_digests(model):
    """What the first ingest does: a process of its own counts while this one does other work; the
    counts, the snapshot's digest and each record's are those counted here, and the work done
    meanwhile is kept. Work that fails meanwhile fails the count, and the counting process goes."""
    import multiprocessing

    results = []
    for meanwhile in (None, lambda: "derived meanwhile"):
        run, target = mapped(CORPUS, model)
        check_rows(run, target, *model[:2], QUIET)
        digest, records = count_rows(run, target, QUIET, meanwhile=meanwhile)
        results.append((digest, records, {n: vars(c) for n, c in run.counts.items()}))
        if meanwhile is not None:
            assert run.meanwhile == "derived meanwhile"
    assert results[0][0] == results[1][0] and results[0][1] == results[1][1] and results[0][2] == results[1][2]
    assert sum(c["triples"] for c in results[1][2].values()) > 0

    def fails():
        raise OkgError("the work meanwhile failed")

    run, target = mapped(CORPUS, model)
    check_rows(run, target, *model[:2], QUIET)
    with pytest.raises(OkgError, match="meanwhile failed"):
        count_rows(run, target, QUIET, meanwhile=fails)
    assert not [p for p in multiprocessing.active_children() if p.name == "okg-count"]


def test_load_streams_into_an_on_disk_store_in_one_bulk_load(tmp_path, monkeypatch):
    """The on-disk store takes the chunks through one bulk load fed by a named pipe (one bulk load per
    chunk slows as the store grows); it ends up holding what chunk-by-chunk loading gives, a bulk
    load that fails is the loader's error without keeping its caller waiting, and no pipe is left."""
    import tempfile
    import threading

    from opportunity_kg.store import Loader

    def triples(n):
        return [(ox.NamedNode(f"http://example.com/deal/{i}"), ox.NamedNode("http://example.com/amount"),
                 ox.Literal(str(i * 7), datatype=ox.NamedNode("http://www.w3.org/2001/XMLSchema#integer")))
                for i in range(n)]

    def bulk_loads():
        return sum(t.name == "okg-bulk-load" for t in threading.enumerate())

    pipes, running = set(Path(tempfile.gettempdir()).glob("okg-load-*")), bulk_loads()
    graph = ox.NamedNode("http://example.com/g")
    streamed, chunked, memory = ox.Store(str(tmp_path / "a")), ox.Store(str(tmp_path / "b")), ox.Store()
    loader = Loader([(streamed, graph), (chunked, graph), (memory, graph)], chunk=997, streamed=[streamed])
    for start in range(0, 20_000, 1000):
        loader.add(triples(20_000)[start:start + 1000])
    loader.add_line('<http://example.com/deal/x> <http://example.com/name> "Café \\"Ü\\"" .')
    assert bulk_loads() == running + 1  # one bulk load, running while the chunks come
    loader.close()
    assert bulk_loads() == running
    held = [sorted(str(q) for q in store.quads_for_pattern(None, None, None, graph))
            for store in (streamed, chunked, memory)]
    assert len(held[0]) == 20_001 and held[0] == held[1] == held[2]

    broken = ox.Store(str(tmp_path / "c"))
    loader = Loader([(broken, graph)], chunk=10, streamed=[broken])
    loader.add_line("<not an IRI> <http://example.com/p> <http://example.com/o> .")
    finished = []
    feeding = threading.Thread(target=lambda: finished.append([loader.add(triples(50)) for _ in range(200)]))
    feeding.start()
    feeding.join(timeout=60)
    assert finished, "the loader kept its caller waiting after its bulk load failed"
    with pytest.raises(OkgError, match="the store failed while loading"):
        loader.close()
    assert set(Path(tempfile.gettempdir()).glob("okg-load-*")) == pipes

    def no_pipes(path, *args):  # a temporary folder on a file system without named pipes
        raise OSError(f"cannot make a named pipe at {path}")

    monkeypatch.setattr(os, "mkfifo", no_pipes)
    fallback = ox.Store(str(tmp_path / "d"))
    loader = Loader([(fallback, graph)], chunk=997, streamed=[fallback])
    loader.add(triples(5000))
    loader.close()
    assert len(fallback) == 5000 and set(Path(tempfile.gettempdir()).glob("okg-load-*")) == pipes


def through_publish(folder, model, store):
    run, target = mapped(folder, model, store)
    check_rows(run, target, *model[:2], QUIET)
    digest, records = count_rows(run, target, QUIET)
    report = IngestReport(run.source, run.as_of, run.graph, "memory", "q.csv", run.counts)
    describe(report, target, digest, folder)
    changes, changed = publish(report, target, records, QUIET)
    return report, target, changes, changed


def test_publish_folds_a_later_export_in_as_changes_and_derive_keeps_the_history(model, tmp_path):
    store = ox.Store()
    first, target, changes, changed = through_publish(CORPUS, model, store)
    assert changed and changes == [] and first.previous_snapshot is None
    assert derive(first, target, changes, QUIET)
    assert store.contains_named_graph(ox.NamedNode(intervals_graph("salesforce")))

    folder = tmp_path / "week2"
    shutil.copytree(CORPUS, folder)
    opportunities = read_csv(folder / "opportunity.csv")
    opportunities[0]["AMOUNT"] = "12500"
    opportunities[0]["SYSTEMMODSTAMP"] = "2024-03-08 10:00:00"
    write_csv(folder / "opportunity.csv", opportunities)
    second, target, changes, changed = through_publish(folder, model, store)
    assert changed and second.previous_snapshot == first.graph
    assert second.facts_added >= 1 and second.facts_removed >= 1
    assert any("12500" in str(t[2]) for t in changes), changes  # a field change of the amount
    derive(second, target, changes, QUIET)
    history = list(store.quads_for_pattern(None, None, None, ox.NamedNode(history_graph("salesforce"))))
    assert any("12500" in q.object.value for q in history)

    again, _, _, changed = through_publish(folder, model, store)  # the same export again changes nothing
    assert not changed and again.digest == second.digest
