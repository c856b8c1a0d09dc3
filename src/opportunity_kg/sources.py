"""Reading CSV exports as they really are.

CRM exports arrive with a byte-order mark, CRLF line ends, semicolons or tabs
instead of commas, quoted commas and newlines, JSON inside a cell, and now and
then cp1252 text from a spreadsheet re-save. :func:`read_csv` copes with all
of them and streams rows with the physical line each one starts on, so every
fact and every rejected row can be traced back to its file and line.
"""

import codecs
import csv
import sys
from dataclasses import dataclass

from .errors import DataError

#: bytes read at a time when checking a file's encoding
ENCODING_PROBE_CHUNK = 1 << 20
#: delimiters tried, in order of preference, when sniffing the header line
DELIMITERS = (",", ";", "\t", "|")

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class Row:
    """One record of a CSV file.

    ``line`` is the physical line the record starts on (the header is line 1);
    ``number`` counts data records from 1. ``values`` maps column to text;
    ``error`` is set instead when the record is malformed.
    """

    line: int
    number: int
    values: dict | None
    error: str | None = None


def detect_encoding(path):
    """'utf-8-sig' when the whole file decodes as UTF-8, else 'cp1252' (or latin-1)."""
    for encoding in ("utf-8-sig", "cp1252"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with open(path, "rb") as handle:
                while chunk := handle.read(ENCODING_PROBE_CHUNK):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
            return encoding
        except UnicodeDecodeError:
            continue
    return "latin-1"


def sniff_delimiter(header_line):
    """The delimiter that splits the header line into the most columns."""
    best, best_count = ",", 0
    for delimiter in DELIMITERS:
        count = len(next(csv.reader([header_line], delimiter=delimiter), []))
        if count > best_count:
            best, best_count = delimiter, count
    return best


class CsvSource:
    """An open CSV file: its header, encoding and delimiter, and its rows."""

    def __init__(self, path, *, delimiter=None, encoding=None, aliases=None):
        """``aliases`` maps a column name to other headers it may go by (HubSpot's labels
        for its internal names, say): a header found under an alias is read as the column."""
        self.path = path
        try:
            self.encoding = encoding or detect_encoding(path)
            with open(path, encoding=self.encoding, newline="") as handle:
                first = handle.readline()
        except FileNotFoundError:
            raise DataError("source file not found", file=path) from None
        except OSError as exc:
            raise DataError(f"cannot read source file: {exc.strerror}", file=path) from None
        self.delimiter = delimiter or sniff_delimiter(first)
        header = next(csv.reader([first], delimiter=self.delimiter), [])
        self.header = [name.strip() for name in header]
        self.renamed = {}
        for column, others in (aliases or {}).items():
            if column in self.header:
                continue
            folded = {name.casefold(): i for i, name in enumerate(self.header)}
            for other in others:
                index = folded.get(other.strip().casefold())
                if index is not None and self.header[index] not in self.renamed.values():
                    self.renamed[column] = self.header[index]
                    self.header[index] = column
                    break
        duplicates = {name for name in self.header if self.header.count(name) > 1}
        if duplicates:
            raise DataError(f"duplicate column names in header: {sorted(duplicates)}", file=path, line=1)

    def rows(self):
        """Yield a :class:`Row` per record, malformed records with ``error`` set."""
        if not self.header:
            return
        width = len(self.header)
        with open(self.path, encoding=self.encoding, newline="") as handle:
            lines = _LineCounter(handle)
            reader = csv.reader(lines, delimiter=self.delimiter, strict=True)
            try:
                next(reader)
            except StopIteration:
                return
            number = 0
            while True:
                start = lines.count + 1
                try:
                    record = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    number += 1
                    yield Row(start, number, None, f"malformed CSV: {exc}")
                    continue
                if not record or record == [""] and width > 1:
                    continue  # blank line
                number += 1
                if len(record) != width:
                    yield Row(start, number, None,
                              f"has {len(record)} fields, the header has {width}")
                    continue
                yield Row(start, number, dict(zip(self.header, record)))


class _LineCounter:
    """Wraps a file so the csv reader's position in physical lines is known."""

    def __init__(self, handle):
        self.handle = handle
        self.count = 0

    def __iter__(self):
        return self

    def __next__(self):
        line = self.handle.readline()
        if not line:
            raise StopIteration
        self.count += 1
        return line

