"""Ingest a CRM export: map, validate, quarantine, load one snapshot atomically.

:func:`ingest` is the one entry point the CLI, the web layer's callers and the tests use. It runs
these stages, each a module of this package:

1. **read** (:mod:`.read`): which system the export came from, which of its files each triples
   map of ``mappings/<system>/`` reads, and the date it is as of;
2. **map** (:mod:`.mapping`): every row through its triples map; a row is loaded, rejected
   (unreadable, unmappable, no Id, a duplicate Id, no facts) or counted as deleted. No row's
   triples stay in Python's memory: each row's subject links to its file and line
   (``prov:wasDerivedFrom``), and a row is read and mapped again when it has to be taken out or
   named (:mod:`.rows`);
3. **load** (:mod:`.load`): meanwhile other threads bulk-load the triples into a staged copy of
   the store and, up to the setting ``ingest_memory_triples``, into an in-memory store with the
   ontology where validation runs several times faster;
4. **check** (:mod:`.check`): the SHACL shapes; rows whose facts break one are taken out, then
   validation runs again; warnings become row warnings in the file's own words;
5. **count** (:mod:`.count`): every row read is loaded, quarantined or deleted (else nothing is
   stored); the triples of each file; the snapshot's and each record's digest. On a first ingest a
   process of its own counts, while this one derives the stage facts (stage 7), which need no
   counts: counting is Python, and one Python process runs on one core;
6. **publish** (:mod:`.publish`): the snapshot's PROV-O description and ``okg:contentDigest``; it
   becomes its system's newest state (the first one its current graph, a later one folded in as
   changes, see :mod:`opportunity_kg.store.snapshots`), or changes nothing when its digest is the
   stored one. For a SPARQL server the snapshot is built in memory and only its differences are
   sent;
7. **derive** (:mod:`.derive`): the history of field changes from the comparison, and the stage
   intervals rewritten where they changed.

The rejected rows go to a quarantine CSV (file, line, field, value, reason) and the warnings to a
warnings CSV (:mod:`.report`); the staged store is swapped in only when all went well.
Rows read always equal rows loaded plus rows quarantined plus rows deleted, per file and in total.
"""

from .pipeline import ingest
from .read import detect_source, export_files, mapping_files
from .report import FileCounts, IngestReport, RowWarning

__all__ = ["FileCounts", "IngestReport", "RowWarning", "detect_source", "export_files", "ingest", "mapping_files"]
