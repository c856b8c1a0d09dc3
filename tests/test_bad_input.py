"""Bad input, one test each: every case either loads, loads with a warning that names it, or lands in the
quarantine file with file, line, field and reason; read always equals loaded plus quarantined."""

import csv
import shutil

import pytest

from opportunity_kg.ingest import ingest
from opportunity_kg.store import open_store, run_query


def rewrite(path, change, encoding="utf-8", delimiter=",", newline="\r\n"):
    """Rewrite a sample CSV file: ``change(rows)`` edits the list of row dicts in place."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header, rows = reader.fieldnames, list(reader)
    change(rows)
    with open(path, "w", encoding=encoding, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, delimiter=delimiter, lineterminator=newline)
        writer.writeheader()
        writer.writerows(rows)
    return rows


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    """A small sample (60 opportunities): every test here ingests a changed copy of it."""
    from opportunity_kg.samples.sample import write_sample

    folder = tmp_path_factory.mktemp("small")
    write_sample(folder, opportunities=60, seed=5)
    return folder


@pytest.fixture
def export(small_export, tmp_path):
    folder = tmp_path / "export"
    shutil.copytree(small_export, folder)
    return folder


def run(folder, tmp_path):
    report = ingest(folder, tmp_path / "store")
    t = report.totals
    assert t.rows_read == t.rows_loaded + t.rows_quarantined + t.rows_deleted
    for counts in report.files.values():
        assert counts.rows_read == counts.rows_loaded + counts.rows_quarantined + counts.rows_deleted
    with open(report.quarantine_file, encoding="utf-8", newline="") as handle:
        rejected = list(csv.DictReader(handle))
    assert len(rejected) == t.rows_quarantined
    return report, rejected


def test_unknown_stage_name_loads_with_a_warning(export, tmp_path):
    rows = rewrite(export / "Opportunity.csv", lambda rows: rows[0].update(StageName="Dreaming"))
    report, rejected = run(export, tmp_path)
    assert rejected == []
    assert any("Opportunity.csv line 2" in w and "Dreaming" in w and "not one of the sales stages" in w
               for w in report.warnings), report.warnings
    assert rows[0]["StageName"] == "Dreaming"


def test_references_to_missing_account_and_owner_load_with_warnings(export, tmp_path):
    def change(rows):
        rows[0]["AccountId"] = "001MISSINGACCOUNT1"
        rows[1]["OwnerId"] = "005MISSINGOWNER001"
    rewrite(export / "Opportunity.csv", change)
    report, rejected = run(export, tmp_path)
    assert rejected == []
    assert any("line 2" in w and "AccountId 001MISSINGACCOUNT1 is not in the export" in w for w in report.warnings)
    assert any("line 3" in w and "OwnerId 005MISSINGOWNER001 is not in the export" in w for w in report.warnings)


@pytest.mark.parametrize("table,column", [("Account.csv", "ParentId"), ("Contact.csv", "ReportsToId"),
                                          ("Territory2.csv", "ParentTerritory2Id")])
def test_cycles_are_quarantined_with_both_rows(export, tmp_path, table, column):
    def change(rows):
        rows[3][column], rows[4][column] = rows[4]["Id"], rows[3]["Id"]
    rewrite(export / table, change)
    report, rejected = run(export, tmp_path)
    cyclic = [r for r in rejected if r["source_file"] == table]
    assert sorted(int(r["line"]) for r in cyclic) == [5, 6]
    assert all("the hierarchy has a cycle" in r["reason"] and r["field"] == column for r in cyclic), cyclic


@pytest.mark.parametrize("column,value,reason", [("Amount", "a lot", "not an amount"),
                                                 ("CloseDate", "31/31/2026", "not a date"),
                                                 ("Amount", "-10", "not negative"),
                                                 ("Probability", "150", "from 0 to 100")])
def test_a_bad_optional_value_is_dropped_with_a_warning_and_the_row_loads(export, tmp_path, column, value,
                                                                          reason):
    """Amount, close date and probability have shapes of severity sh:Warning: a value that breaks
    them is left out, named in the warnings file, and the deal loads without it."""
    rows = rewrite(export / "Opportunity.csv", lambda rows: rows[5].update({column: value}))
    report, rejected = run(export, tmp_path)
    assert rejected == []
    with open(report.warnings_file, encoding="utf-8", newline="") as handle:
        dropped = [w for w in csv.DictReader(handle) if w["kind"] == "value dropped"]
    assert [(w["source_file"], w["line"], w["record_id"], w["field"], w["value"]) for w in dropped] == \
        [("Opportunity.csv", "7", rows[5]["Id"], column, value)]
    assert reason in dropped[0]["message"]
    assert report.warning_counts["value dropped"] == 1
    store = open_store(tmp_path / "store")
    predicate = {"Amount": "amount", "CloseDate": "closeDate", "Probability": "probability"}[column]
    query = f"""PREFIX okg: <https://w3id.org/opportunity-kg/ontology#>
                SELECT ?o ?v WHERE {{ ?o okg:sourceId "{rows[5]['Id']}" OPTIONAL {{ ?o okg:{predicate} ?v }} }}"""
    found = list(run_query(store, query).rows)
    assert len(found) == 1 and found[0][1] is None  # the deal is there, without the bad value


def test_duplicate_ids_keep_the_first(export, tmp_path):
    rows = rewrite(export / "Account.csv", lambda rows: rows.append(dict(rows[0], Name="Copy")))
    _, rejected = run(export, tmp_path)
    assert [(r["line"], r["reason"]) for r in rejected] == [(str(len(rows) + 1),
                                                             "duplicate record: the same Id is on line 2")]


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
def test_spreadsheet_encodings_keep_accents(export, tmp_path, encoding):
    rewrite(export / "Account.csv", lambda rows: rows[0].update(Name="Société Générale Électrique"),
            encoding=encoding)
    report, rejected = run(export, tmp_path)
    assert rejected == []
    store = open_store(tmp_path / "store")
    names = [r[0].value for r in run_query(store, 'PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#> '
                                                  'SELECT ?n WHERE { ?a rdfs:label ?n FILTER(CONTAINS(?n, "Soci")) }').rows]
    assert names == ["Société Générale Électrique"]


@pytest.mark.parametrize("delimiter,newline", [(";", "\r\n"), ("\t", "\n"), ("|", "\n")])
def test_other_delimiters_and_line_ends_load(export, tmp_path, delimiter, newline):
    rows = rewrite(export / "Opportunity.csv", lambda rows: None, delimiter=delimiter, newline=newline)
    report, rejected = run(export, tmp_path)
    assert rejected == [] and report.files["Opportunity.csv"].rows_loaded == len(rows)


def test_quoted_commas_newlines_and_json_in_cells(export, tmp_path):
    note = 'Renewal, "multi-year"\nsee {"terms": [1, 2], "owner": "legal"}'
    rows = rewrite(export / "Opportunity.csv", lambda rows: rows[2].update(Name=note))
    report, rejected = run(export, tmp_path)
    assert rejected == [] and report.files["Opportunity.csv"].rows_loaded == len(rows)
    store = open_store(tmp_path / "store")
    q = f'PREFIX okg: <https://w3id.org/opportunity-kg/ontology#> PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#> ' \
        f'SELECT ?n ?record WHERE {{ ?o okg:sourceId "{rows[2]["Id"]}" ; rdfs:label ?n ; ' \
        f'<http://www.w3.org/ns/prov#wasDerivedFrom> ?record }}'
    [(name, record)] = [(r[0].value, r[1].value) for r in run_query(store, q).rows]
    assert name == note and record.endswith("Opportunity.csv#line=4")
    later = rows[3]["Id"]  # the row after the two-line cell starts on line 6
    q = f'PREFIX okg: <https://w3id.org/opportunity-kg/ontology#> SELECT ?record WHERE {{ ?o okg:sourceId "{later}" ; ' \
        f'<http://www.w3.org/ns/prov#wasDerivedFrom> ?record }}'
    assert [r[0].value for r in run_query(store, q).rows][0].endswith("#line=6")


@pytest.mark.parametrize("content", ["", "Id,Name,ParentId\r\n"])
def test_empty_and_header_only_files_load_nothing_and_fail_nothing(export, tmp_path, content):
    (export / "Territory2.csv").write_text(content, encoding="utf-8")
    report, rejected = run(export, tmp_path)
    assert rejected == [] and report.files["Territory2.csv"].rows_read == 0


def test_byte_order_mark_does_not_eat_the_first_column(export, tmp_path):
    rows = rewrite(export / "Account.csv", lambda rows: None, encoding="utf-8-sig")
    report, rejected = run(export, tmp_path)
    assert rejected == [] and report.files["Account.csv"].rows_loaded == len(rows)


def test_progress_is_quiet_in_scripts_and_shown_on_request(export, tmp_path):
    from .conftest import okg

    quiet = okg("ingest", export, "--store", tmp_path / "a")
    assert quiet.stderr == ""
    shown = okg("ingest", export, "--store", tmp_path / "b", "--progress")
    assert "validating" in shown.stderr and "triples to the store" in shown.stderr
