"""Ingest: bad rows go to quarantine with file, line, field and reason; counts add up; loads are repeatable."""

import csv
import shutil
from pathlib import Path

import pytest

from opportunity_kg.errors import OkgError
from opportunity_kg.ingest import ingest
from opportunity_kg.store import open_store, run_query

OPP = "Opportunity.csv"


@pytest.fixture
def broken_export(sample_export, tmp_path):
    """The sample with six kinds of bad opportunity rows, each on a known line."""
    export = tmp_path / "export"
    shutil.copytree(sample_export, export)
    with open(export / OPP, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header, rows = reader.fieldnames, list(reader)
    bad = {  # what the record cannot mean anything without: quarantined
        2: ("StageName", "", "needs exactly one stage"),
        3: ("Id", "", "has no Id"),
        6: ("Id", rows[0]["Id"], "duplicate"),
    }
    dropped = {  # a bad optional value (shapes of severity sh:Warning): left out, the row loads
        4: ("Probability", "150", "from 0 to 100"),
        5: ("ForecastCategoryName", "Hopeful", "unknown forecast category"),
        7: ("Amount", "-500.00", "not negative"),
        8: ("CloseDate", "someday", "not a date"),
    }
    for line, (column, value, _) in list(bad.items()) + list(dropped.items()):
        rows[line - 2][column] = value
    with open(export / OPP, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
        handle.write("006SHORTROW,false\r\n")  # a row with too few fields
    bad[len(rows) + 2] = ("", "", "fields")
    return export, bad, dropped


def quarantine_rows(report):
    with open(report.quarantine_file, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_bad_rows_are_quarantined_with_reasons(broken_export, tmp_path):
    export, bad, dropped = broken_export
    report = ingest(export, tmp_path / "store")
    counts = report.files[OPP]
    assert counts.rows_read == counts.rows_loaded + counts.rows_quarantined
    rejected = {int(r["line"]): r for r in quarantine_rows(report) if r["source_file"] == OPP}
    assert set(rejected) == set(bad)
    for line, (column, value, reason) in bad.items():
        row = rejected[line]
        assert reason in row["reason"], row
        if column and column != "Id":
            assert row["field"] == column and row["value"] == value, row
    assert counts.rows_quarantined == len(rejected)
    with open(report.warnings_file, encoding="utf-8", newline="") as handle:
        warned = {int(w["line"]): w for w in csv.DictReader(handle) if w["kind"] == "value dropped"}
    assert set(warned) == set(dropped)
    for line, (column, value, reason) in dropped.items():
        assert (warned[line]["field"], warned[line]["value"]) == (column, value)
        assert reason in warned[line]["message"]


def test_a_negative_amount_is_dropped_by_its_warning_shape(broken_export, tmp_path):
    """okg:amount's shape has severity sh:Warning: -500.00 breaks it, so the amount is left out and
    the deal loads without it."""
    export, _, _ = broken_export
    report = ingest(export, tmp_path / "store")
    with open(report.warnings_file, encoding="utf-8", newline="") as handle:
        warning = next(w for w in csv.DictReader(handle) if w["line"] == "7")
    assert (warning["field"], warning["value"]) == ("Amount", "-500.00")
    assert "must be a single number, not negative" in warning["message"]
    store = open_store(tmp_path / "store")
    okg = "https://w3id.org/opportunity-kg/ontology#"
    deal = f"""?o <{okg}sourceId> "{warning['record_id']}" """
    assert run_query(store, f"ASK {{ {deal} }}").rows is True
    assert run_query(store, f"ASK {{ {deal} ; <{okg}amount> ?a }}").rows is False


def test_ingesting_twice_changes_nothing(sample_export, tmp_path):
    first = ingest(sample_export, tmp_path / "store")
    second = ingest(sample_export, tmp_path / "store")
    assert first.changed and not second.changed
    assert vars(first.totals) == vars(second.totals)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store", "store-quarantine.csv", "store-warnings.csv",
                                                          "store.lock"]  # no copy left
    store = open_store(tmp_path / "store")
    n = list(run_query(store, "SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }").rows)[0][0]
    assert int(n.value) > first.triples


def test_missing_required_column_names_file_and_column(sample_export, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(sample_export, export)
    with open(export / OPP, encoding="utf-8") as handle:
        text = handle.read()
    header, rest = text.split("\n", 1)
    # neither the Id nor the Name that could name the deals instead
    header = ",".join({"Id": "RecordKey", "Name": "Title"}.get(c, c) for c in header.split(","))
    (export / OPP).write_text(header + "\n" + rest, encoding="utf-8")
    with pytest.raises(OkgError) as info:
        ingest(export, tmp_path / "store")
    message = str(info.value)
    assert "Opportunity.csv" in message and "'Id'" in message
    assert not (tmp_path / "store").exists()  # nothing written


def test_a_failed_ingest_names_the_file_and_leaves_no_loader_running(sample_export, tmp_path):
    """A reference file with a Turtle error, read after every row is mapped and while the on-disk
    store is being bulk-loaded: the error names the file and line, no store is written, and no
    loading thread or named pipe is left behind (they would hold the staged store open)."""
    import tempfile
    import threading

    from opportunity_kg.paths import MAPPINGS_DIR

    mappings = tmp_path / "mappings"
    shutil.copytree(MAPPINGS_DIR, mappings)
    (mappings / "salesforce" / "reference").mkdir()
    (mappings / "salesforce" / "reference" / "regions.ttl").write_text(
        '@prefix ex: <http://example.com/> .\nex:emea ex:label "EMEA" .\nex:apac ex:label "APAC .\n',
        encoding="utf-8")

    def loading():
        return sorted(t.name for t in threading.enumerate() if t.name in ("okg-loader", "okg-bulk-load"))

    def pipes():
        return set(Path(tempfile.gettempdir()).glob("okg-load-*"))

    threads, folders = loading(), pipes()
    with pytest.raises(OkgError) as info:
        ingest(sample_export, tmp_path / "store", mappings_dir=mappings)
    assert info.value.file.name == "regions.ttl" and info.value.line == 3
    assert "not valid Turtle" in str(info.value)
    assert not (tmp_path / "store").exists()
    assert loading() == threads and pipes() == folders


def test_a_missing_optional_column_is_one_note_per_file(sample_export, tmp_path):
    """Loss_Reason__c feeds two triples maps of Opportunity.csv: a file without it gets one note
    that names it once, and its rows still load."""
    export = tmp_path / "export"
    shutil.copytree(sample_export, export)
    with open(export / OPP, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(export / OPP, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[c for c in rows[0] if c != "Loss_Reason__c"],
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    report = ingest(export, tmp_path / "store")
    notes = [w for w in report.warnings if w.startswith("Opportunity.csv: no column")]
    assert notes == ["Opportunity.csv: no column Loss_Reason__c; read as empty"]
    assert report.files[OPP].rows_loaded == len(rows)


def test_unknown_export_is_named(tmp_path):
    (tmp_path / "things.csv").write_text("a,b\n1,2\n")
    with pytest.raises(OkgError) as info:
        ingest(tmp_path, tmp_path / "store")
    assert "--source" in str(info.value) and "things.csv" in str(info.value)


def test_every_fact_traces_to_file_and_line(sample_store, open_sample_store, sample_export):
    q = """PREFIX okg: <https://w3id.org/opportunity-kg/ontology#>
           PREFIX prov: <http://www.w3.org/ns/prov#>
           SELECT ?id ?record WHERE { ?o a okg:Opportunity ; okg:sourceId ?id ; prov:wasDerivedFrom ?record }"""
    rows = {r[0].value: r[1].value for r in run_query(open_sample_store, q).rows}
    with open(sample_export / OPP, encoding="utf-8", newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            assert rows[row["Id"]].endswith(f"/{OPP}#line={line}")


def _graph_triples(store, graph):
    """A snapshot's description and its facts (rebuilt from the chain of changes)."""
    import pyoxigraph as ox

    from opportunity_kg.store.snapshots import snapshot_triples

    described = {(q.subject, q.predicate, q.object) for q in store.quads_for_pattern(None, None, None, ox.NamedNode(graph))}
    return described | set(snapshot_triples(store, graph))


def test_a_corrected_export_of_the_same_date_replaces_the_snapshot_exactly(sample_export, tmp_path):
    """A second export with the same as-of date changes the snapshot to exactly what a first
    ingest of it would give: the changed amount replaced, the removed row's facts gone."""
    first = ingest(sample_export, tmp_path / "store")
    corrected = tmp_path / "corrected"
    shutil.copytree(sample_export, corrected)
    with open(corrected / OPP, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header, rows = reader.fieldnames, list(reader)
    removed = rows.pop(3)["Id"]
    rows[0]["Amount"] = "123456.00"
    with open(corrected / OPP, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    second = ingest(corrected, tmp_path / "store", as_of=first.as_of)
    fresh = ingest(corrected, tmp_path / "fresh", as_of=first.as_of)
    assert second.changed and second.graph == first.graph and second.digest == fresh.digest != first.digest
    run = f"<{first.graph}#ingest-run>"
    updated = {t for t in _graph_triples(open_store(tmp_path / "store"), first.graph) if str(t[0]) != run}
    expected = {t for t in _graph_triples(open_store(tmp_path / "fresh"), first.graph) if str(t[0]) != run}
    assert updated == expected
    assert not any(t[0].value.endswith("/" + removed) for t in updated)
    assert any(t[1].value.endswith("#amount") and float(t[2].value) == 123456 for t in updated)


def test_the_content_digest_is_what_its_definition_says(sample_export, tmp_path):
    """okg:contentDigest: the sum of each distinct triple's BLAKE2b-128 hash of its N-Triples
    form, modulo 2**128, over the snapshot graph but the ingest run's own triples."""
    import hashlib

    report = ingest(sample_export, tmp_path / "store")
    triples = _graph_triples(open_store(tmp_path / "store"), report.graph)
    digest_term = "https://w3id.org/opportunity-kg/ontology#contentDigest"
    stored = [t[2].value for t in triples if t[1].value == digest_term]
    total = sum(int.from_bytes(hashlib.blake2b(f"{s} {p} {o} .".encode(), digest_size=16).digest(), "big")
                for s, p, o in triples if s.value != report.graph + "#ingest-run" and p.value != digest_term)
    assert stored == [report.digest] == [f"{total % 2 ** 128:032x}"]


def _without_rows(export, target, name, lines):
    """A copy of ``export`` whose file ``name`` lacks the given data lines (2 is the first)."""
    shutil.copytree(export, target)
    with open(export / name, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    kept = [rows[0]] + [row for line, row in enumerate(rows[1:], start=2) if line not in lines]
    with open(target / name, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(kept)


def _data_triples(store, graph):
    """A snapshot's triples without its provenance and the links to files and lines (which differ
    between an export and a copy of it with fewer lines)."""
    return {t for t in _graph_triples(store, graph)
            if not str(t[0]).startswith(f"<{graph}") and not str(t[1]).endswith("#wasDerivedFrom>")}


@pytest.mark.parametrize("in_memory", ["auto", "5000000", "0", "1000"])
def test_rejected_rows_leave_what_an_export_without_them_gives(broken_export, tmp_path, monkeypatch, in_memory):
    """Validation in memory, on disk from the start (setting 0), or on disk after the in-memory copy
    outgrew the setting: the snapshot holds exactly what the export without the rejected rows
    gives, shared facts included: line 2, rejected for its negative amount, names the loss reason
    most rows name, whose record must stay whole."""
    export, bad, _ = broken_export
    with open(export / OPP, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    reasons = [r["Loss_Reason__c"] for r in rows if r["Loss_Reason__c"]]
    common = max(set(reasons), key=reasons.count)
    rows[0]["Loss_Reason__c"] = common
    with open(export / OPP, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[:-1])  # the short row is written as it was
        handle.write("006SHORTROW,false\r\n")
    monkeypatch.setenv("OKG_INGEST_MEMORY_TRIPLES", in_memory)
    report = ingest(export, tmp_path / "store")
    rejected = {(r["source_file"], int(r["line"])) for r in quarantine_rows(report)}
    assert {(OPP, line) for line in bad} <= rejected
    assert report.totals.rows_read == report.totals.rows_loaded + report.totals.rows_quarantined
    # an export that outgrew the in-memory copy says so (0 is on disk by choice, from the start)
    spilled = [w for w in report.warnings if "ingest_memory_triples" in w]
    assert len(spilled) == (in_memory == "1000")

    monkeypatch.delenv("OKG_INGEST_MEMORY_TRIPLES")
    clean = tmp_path / "clean-0"
    for name in {name for name, _ in rejected}:
        _without_rows(clean if clean.exists() else export, tmp_path / f"clean-{len(list(tmp_path.glob('clean-*')))}",
                      name, {line for file, line in rejected if file == name})
        clean = sorted(tmp_path.glob("clean-*"))[-1]
    expected = ingest(clean, tmp_path / "clean-store", as_of=report.as_of)
    assert expected.totals.rows_quarantined == 0
    got = _data_triples(open_store(tmp_path / "store"), report.graph)
    want = _data_triples(open_store(tmp_path / "clean-store"), expected.graph)
    assert got == want
    assert report.triples == expected.triples
    assert any(str(t[0]).endswith(f"/loss-reason/{common}>") for t in got)
