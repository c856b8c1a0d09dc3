"""Reading CSV files as exports really write them."""

import pytest

from opportunity_kg.errors import DataError
from opportunity_kg.readers.sources import CsvSource


def write(tmp_path, data, name="t.csv"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def rows(path):
    return list(CsvSource(path).rows())


def test_bom_and_crlf(tmp_path):
    path = write(tmp_path, "\ufeffId,Name\r\n1,Acme\r\n2,Globex\r\n".encode("utf-8"))
    source = CsvSource(path)
    assert source.header == ["Id", "Name"]
    assert [r.values for r in source.rows()] == [{"Id": "1", "Name": "Acme"}, {"Id": "2", "Name": "Globex"}]


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_other_delimiters(tmp_path, delimiter):
    path = write(tmp_path, f"Id{delimiter}Name{delimiter}Amount\n1{delimiter}A, B{delimiter}5\n".encode())
    assert rows(path)[0].values == {"Id": "1", "Name": "A, B", "Amount": "5"}


def test_quoted_commas_newlines_and_json_keep_line_numbers(tmp_path):
    data = ('Id,Name,Address\n1,"Smith, Jones and Co","{""city"":""Paris""}"\n'
            '2,"two\nlines",x\n3,plain,y\n')
    result = rows(write(tmp_path, data.encode()))
    assert [r.line for r in result] == [2, 3, 5]
    assert result[0].values["Name"] == "Smith, Jones and Co"
    assert result[0].values["Address"] == '{"city":"Paris"}'
    assert result[1].values["Name"] == "two\nlines"


def test_cp1252_text(tmp_path):
    path = write(tmp_path, "Id,Name\n1,Müller & Søn – “Café”\n".encode("cp1252"))
    assert rows(path)[0].values["Name"] == "Müller & Søn – “Café”"


def test_empty_and_header_only_files(tmp_path):
    assert rows(write(tmp_path, b"", "empty.csv")) == []
    assert rows(write(tmp_path, b"Id,Name\r\n", "header.csv")) == []


def test_short_row_is_reported_with_its_line(tmp_path):
    result = rows(write(tmp_path, b"Id,Name,Amount\n1,A,5\n2,B\n3,C,7\n"))
    assert [r.error is None for r in result] == [True, False, True]
    assert result[1].line == 3 and "2 fields" in result[1].error


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(DataError) as info:
        CsvSource(tmp_path / "nope.csv")
    assert "nope.csv" in str(info.value)
