"""What one ingest has found so far, handed from stage to stage."""

from collections import defaultdict
from dataclasses import dataclass, field

from .read import Plan
from .rows import Rows


@dataclass
class Run:
    """The rows an ingest has read, rejected and warned about, and its notes, by file and line.

    ``rejects`` are (file, line, record id, column, value, reason, the row's values);
    ``warnings`` are :class:`~opportunity_kg.ingest.report.RowWarning` s; ``notes`` are one line
    each about the export as a whole, ``file_notes`` about one file (an empty one)."""
    plan: Plan
    as_of: str
    graph: str
    rows: Rows
    counts: dict = field(default_factory=dict)  # file -> FileCounts, in the order the files were read
    rejects: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    file_notes: list = field(default_factory=list)
    deleted: dict = field(default_factory=lambda: defaultdict(set))  # file -> lines the export marks deleted
    lines_read: dict = field(default_factory=lambda: defaultdict(set))  # file -> every line read, once
    #: subject -> (file, line, "quarantined" or "deleted") of records left out
    gone: dict = field(default_factory=dict)
    reference: list = field(default_factory=list)  # (name, triples) of the system's reference files
    #: the rows read again unchanged, not mapped (:class:`~opportunity_kg.ingest.unchanged.Reuse`), or None
    reuse: object = None
    #: (file, line) -> the row's key, and the subjects each triples map of its file gave it, for the
    #: next ingest's table of unchanged rows (None: no table is kept)
    row_keys: dict | None = None
    row_subjects: dict = field(default_factory=dict)
    meanwhile: object = None  # what the work done while the triples were counted returned (count_rows)

    @property
    def source(self):
        return self.plan.source
