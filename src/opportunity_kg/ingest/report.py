"""What an ingest tells its user: the report, the row warnings, the quarantine and warnings files."""

import csv
import json
from dataclasses import dataclass, field

QUARANTINE_COLUMNS = ["source_file", "line", "record_id", "field", "value", "reason", "row"]
WARNING_COLUMNS = ["source_file", "line", "record_id", "field", "value", "kind", "message"]


@dataclass
class FileCounts:
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_deleted: int = 0
    triples: int = 0


@dataclass
class IngestReport:
    source: str
    as_of: str
    graph: str
    store: str
    quarantine_file: str
    files: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    triples: int = 0
    unmapped: list = field(default_factory=list)
    lookups: list = field(default_factory=list)
    previous_snapshot: str | None = None
    facts_added: int = 0  # what the snapshot changed against the one before it (kept as changes)
    facts_removed: int = 0
    current_graph: str = ""  # where the system's latest facts are
    history_changes: int = 0
    parent_changes: int = 0
    changed: bool = True
    compacted: bool = False  # whether this ingest compacted the store (the ``compact_share`` setting)
    # the deals whose stage intervals and states were made again (None: every deal's, see DeriveScope)
    stage_facts_remade: int | None = None
    digest: str = ""
    #: the rows read again unchanged and not mapped (:mod:`opportunity_kg.ingest.unchanged`), and why
    #: every row was mapped when a re-ingest could not do so ("" when it did, or did not try)
    rows_reused: int = 0
    reuse_missed: str = ""
    warnings_file: str = ""
    #: row warnings by kind ("value dropped", "warning") and the notes about whole files ("note")
    warning_counts: dict = field(default_factory=dict)
    #: for each canned query and "forecast": {"level": full|partial|none, "notes": [...]}, from the
    #: store after the ingest (:func:`opportunity_kg.analytics.support.support`)
    support: dict = field(default_factory=dict)

    @property
    def totals(self):
        total = FileCounts()
        for counts in self.files.values():
            total.rows_read += counts.rows_read
            total.rows_loaded += counts.rows_loaded
            total.rows_quarantined += counts.rows_quarantined
            total.rows_deleted += counts.rows_deleted
        total.triples = self.triples
        return total

    def as_dict(self):
        return {
            "source": self.source, "as_of": self.as_of, "graph": self.graph, "store": self.store,
            "quarantine_file": self.quarantine_file,
            "files": {name: vars(c) for name, c in self.files.items()},
            "total": vars(self.totals), "skipped": self.skipped, "unmapped": self.unmapped,
            "warnings": self.warnings, "warnings_file": self.warnings_file,
            "warning_counts": self.warning_counts, "support": self.support, "lookups": self.lookups,
            "previous_snapshot": self.previous_snapshot,
            "facts_added": self.facts_added, "facts_removed": self.facts_removed, "current_graph": self.current_graph,
            "history_changes": self.history_changes, "parent_changes": self.parent_changes,
            "changed": self.changed, "compacted": self.compacted, "digest": self.digest,
            "stage_facts_remade": self.stage_facts_remade,
            "rows_reused": self.rows_reused, "reuse_missed": self.reuse_missed,
        }


@dataclass(frozen=True)
class RowWarning:
    """A warning about one row: where it is, the column and value in the file's own words, what
    kind of warning it is and what it says."""
    file: str
    line: int
    record_id: str
    column: str
    value: str
    kind: str
    message: str

    def text(self):
        where = f"{self.file} line {self.line}" if self.line else self.file
        column = f" {self.column} {self.value!r}:" if self.column and self.kind == "value dropped" else ""
        return f"warning: {where}:{column} {self.message}"


def unique(warnings):
    """Each warning once, in file and line order."""
    return sorted(set(warnings), key=lambda w: (w.file, w.line, w.column, w.message))


def in_file_words(headers, column):
    """A column the mapping reads (or several, "A, B") as the file names it: ``headers`` maps a
    column to the file's own header where they differ (an alias, another case)."""
    return ", ".join(headers.get(c.strip(), c.strip()) for c in column.split(",")) if column else ""


def warnings_path(quarantine):
    """The warnings file that goes with a quarantine file."""
    name = quarantine.name
    return quarantine.with_name(name.replace("quarantine", "warnings") if "quarantine" in name
                                else quarantine.stem + "-warnings.csv")


def write_warnings(path, warnings):
    """Every row warning of this run, in the file's own words (or just the header when there are none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(WARNING_COLUMNS)
        for w in warnings:
            writer.writerow([w.file, w.line or "", w.record_id, w.column, w.value, w.kind, w.message])


def write_quarantine(path, rejects, renames=None):
    """Write this run's rejected rows (or an empty file with the header when there are none).

    Fields and the row's JSON use the file's own headers, also where the mapping
    read a column under an alias."""
    renames = renames or {}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(QUARANTINE_COLUMNS)
        merged = {}  # one entry per rejected line; a line two triples maps rejected gets both reasons
        for reject in sorted(rejects, key=lambda r: (r[0], r[1])):
            key = (reject[0], reject[1])
            if key in merged and reject[5] not in merged[key][5]:
                merged[key] = merged[key][:5] + (merged[key][5] + "; " + reject[5],) + merged[key][6:]
            merged.setdefault(key, tuple(reject))
        for name, line, record_id, column, value, reason, values in merged.values():
            header = renames.get(name, {})
            if header:
                column = in_file_words(header, column)
                values = {header.get(k, k): v for k, v in values.items()} if values is not None else None
            writer.writerow([name, line, record_id, column, value, reason,
                             json.dumps(values, ensure_ascii=False) if values is not None else ""])
