"""Stage 5, count: every row read is loaded, quarantined or deleted; the triples each file gave; the
snapshot's digest and each record's, read back from the loaded graph."""

import gc
import hashlib
import multiprocessing
import threading
import warnings
from collections import defaultdict

import pyoxigraph as ox

from ..errors import OkgError
from ..store.snapshots import record_entry
from ..vocabulary import PROV

LINK = f"<{PROV}wasDerivedFrom> ".encode()


#: bytes of N-Triples sent at once to the process that counts beside other work
COUNT_CHUNK = 1 << 20


def count_rows(run, target, progress, meanwhile=None):
    """Fill ``run.counts`` (rows read, loaded, quarantined and deleted, triples per file) and return
    (the sum of the loaded triples' digests, each record's digest). Stops the ingest if the rows
    do not add up.

    ``meanwhile``, a function, is work of the caller's that does not need the counts: it is called
    here while a process of its own counts (the count is Python, and Python runs on one core per
    process), and what it returns is kept in ``run.meanwhile``. The first ingest derives its stage
    facts then."""
    quarantined = defaultdict(set)
    for name, line, *_ in run.rejects:
        quarantined[name].add(line)
    for name, read in run.lines_read.items():
        counts = run.counts[name]
        counts.rows_read = len(read)
        counts.rows_quarantined = len(quarantined[name])
        counts.rows_deleted = len(run.deleted[name] - quarantined[name])
    progress.phase("counting the snapshot's triples")
    # the on-disk store writes each subject's triples together; the in-memory one may not
    tally = Tally(run.counts, run.rows.files, run.reference, runs=target.check is not None, records=True)
    if meanwhile is not None and "fork" not in multiprocessing.get_all_start_methods():
        run.meanwhile, meanwhile = meanwhile(), None  # (Windows has no fork: one after the other)
    if meanwhile is None:
        target.working.dump(tally, ox.RdfFormat.N_TRIPLES, from_graph=target.graph)
        tally.close(final=True)
    else:
        tally, run.meanwhile = count_apart(tally, target.working, target.graph, meanwhile)
        for name, counted in tally.counts.items():
            run.counts[name].triples = counted.triples
    for name, read in run.lines_read.items():
        loaded = tally.loaded.get(name, set())
        if run.reuse is not None:  # and the rows read again unchanged (ingest.unchanged)
            loaded = loaded | run.reuse.lines.get(name, set())
        run.counts[name].rows_loaded = len(loaded)
        check_accounts(name, read, loaded, quarantined[name], run.deleted[name])
    return tally.digest, tally.entries()


def count_apart(tally, store, graph, meanwhile):
    """(``tally`` filled with ``graph`` of ``store`` in a process of its own, what ``meanwhile()``
    returned here in the meantime). A thread here streams the graph to the process as N-Triples."""
    # a fork: it starts at once and runs no module again (a spawned process would import the caller's
    # main module, and run a script that calls ingest() without a __main__ guard a second time); it
    # only hashes the text it is sent, and touches none of the stores it shares with this process
    context = multiprocessing.get_context("fork")
    here, there = context.Pipe()
    process = context.Process(target=_tally_in_process, args=(there, tally), name="okg-count", daemon=True)
    # this process's objects are kept out of the child's garbage collections, which would touch each
    # one and so make the system copy every page they are on
    gc.freeze()
    try:
        with warnings.catch_warnings():  # Python 3.12 warns of a fork beside other threads (the stores'):
            warnings.simplefilter("ignore", DeprecationWarning)  # the child takes none of their locks
            process.start()
    finally:
        gc.unfreeze()
    there.close()
    failed = []

    def send():
        sender = _Sender(here)
        try:
            store.dump(sender, ox.RdfFormat.N_TRIPLES, from_graph=graph)
            sender.flush()
        except Exception as exc:  # noqa: BLE001  (raised below, once the work here is done)
            failed.append(exc)
        finally:
            try:
                here.send_bytes(b"")  # the end of the graph
            except OSError as exc:
                failed.append(exc)

    feeding = threading.Thread(target=send, name="okg-count-feed", daemon=True)
    feeding.start()
    try:
        result = meanwhile()
        feeding.join()
        if failed:
            raise failed[0]
        tally = here.recv()
    except EOFError:
        raise OkgError("counting the snapshot's triples failed: the process counting them ended early; "
                       "nothing was stored") from None
    except BaseException:
        process.kill()
        raise
    finally:
        process.join()
        here.close()
    return tally, result


def _tally_in_process(connection, tally):
    """The process of :func:`count_apart`: the graph's N-Triples in, the filled tally back."""
    while True:
        chunk = connection.recv_bytes()
        if not chunk:
            break
        tally.write(chunk)
    tally.close(final=True)
    tally.entries()  # made here, from what only the count needed (not sent back)
    tally.counted_for = tally.counted = None
    connection.send(tally)
    connection.close()


class _Sender:
    """A file-like sink that sends what a store dumps into it in chunks of :data:`COUNT_CHUNK`."""

    def __init__(self, connection):
        self.connection, self.parts, self.size = connection, [], 0

    def write(self, chunk):
        data = bytes(chunk)
        self.parts.append(data)
        self.size += len(data)
        if self.size >= COUNT_CHUNK:
            self.flush()
        return len(data)

    def flush(self):
        if self.parts:
            self.connection.send_bytes(b"".join(self.parts))
            self.parts, self.size = [], 0


def check_accounts(name, read, loaded, quarantined, deleted):
    """Every line read is loaded, quarantined or deleted, and only one of them: else the ingest stops."""
    overlap = (loaded & quarantined) | (loaded & deleted)
    lost = read - loaded - quarantined - deleted
    if overlap or lost:
        lines = sorted(overlap or lost)[:5]
        raise OkgError(f"{name}: the rows do not add up (read {len(read)}, loaded {len(loaded)}, "
                       f"quarantined {len(quarantined)}, deleted {len(deleted)}; lines {lines} are "
                       f"{'counted twice' if overlap else 'in none'}); nothing was stored. This is a bug: "
                       "please report it with the file")


def triple_digest(triple):
    """A triple's part of a snapshot's ``okg:contentDigest``: the BLAKE2b-128 hash of its N-Triples form."""
    return line_digest(f"{triple[0]} {triple[1]} {triple[2]} .".encode("utf-8"))


def line_digest(line):
    """The BLAKE2b-128 hash of one N-Triples line (bytes, without its line break), as a number."""
    return int.from_bytes(hashlib.blake2b(line, digest_size=16).digest(), "big")


class Tally:
    """A file-like sink a store dumps a graph into as N-Triples (streamed, in subject order): it sums
    each line's :func:`line_digest`, and counts the triples into ``counts`` (file -> FileCounts).
    A triple counts once, for the first file (in ``counts`` order) with a row about its subject,
    or else for the reference file that gives it; the links to files and lines are in the
    digest, not in the counts. ``loaded`` holds the lines of each file that gave facts."""

    def __init__(self, counts, files, reference, runs=True, records=False):
        self.counts, self.order = counts, {name: i for i, name in enumerate(counts)}
        self.files = {iri.encode(): name for iri, name in files.items()}
        self.reference = {}
        for name, triples in reference:
            for t in triples:
                self.reference.setdefault(f"{t[0]} {t[1]} {t[2]} .".encode(), name)
        self.digest, self.lines, self.rest, self.current, self.group, self.sources = 0, 0, b"", None, [], set()
        self.loaded = defaultdict(set)  # file -> the lines whose rows gave facts
        # a store may write one subject's triples in more than one run (Oxigraph's in-memory store does):
        # with ``runs``, the file a subject's triples count for, and the triples of runs naming no file yet
        self.counted_for, self.counted, self.pending = {}, {}, defaultdict(list)
        self.runs = runs
        self.records = {} if records else None  # subject (N-Triples bytes) -> the sum of its facts' digests
        self.made = None  # :meth:`entries`

    def write(self, chunk):
        lines = (self.rest + bytes(chunk)).split(b"\n")
        self.rest = lines.pop()
        self.lines += len(lines)
        blake2b, from_bytes, records, files = hashlib.blake2b, int.from_bytes, self.records, self.files
        digest = 0
        for line in lines:  # line_digest, written out: this loop runs once per triple of the snapshot
            hashed = from_bytes(blake2b(line, digest_size=16).digest(), "big")
            digest += hashed
            cut = line.index(b" ")
            subject = line[:cut]
            if subject != self.current:
                self.close()
                self.current = subject
            if line.startswith(LINK, cut + 1):
                file, _, number = line[cut + 2 + len(LINK):-3].rpartition(b"#line=")
                if file in files:
                    self.sources.add(files[file])
                    self.loaded[files[file]].add(int(number))
                    continue
            elif records is not None:  # a record's facts, not its links
                records[subject] = records.get(subject, 0) + hashed
            self.group.append(line)
        self.digest += digest
        return len(chunk)

    def flush(self):
        pass

    def entries(self):
        """Each record's :func:`~opportunity_kg.store.snapshots.record_entry` (subject IRI, or ``_:``
        for a blank node -> entry): its digest, and the file its triples counted for and how many,
        where the store wrote each subject's triples in runs the tally remembers (``runs``)."""
        if self.made is None and self.records is not None:
            counted_for, counted = self.counted_for or {}, self.counted or {}
            self.made = {(key[1:-1] if key.startswith(b"<") else key).decode():
                         record_entry(value, counted_for.get(key), counted.get(key, 0))
                         for key, value in self.records.items()}
            self.records = None
        return self.made

    def close(self, final=False):
        subject = self.current if self.runs else None  # a store that writes each subject once needs no memory
        if self.sources:
            first = min(self.sources | ({self.counted_for[subject]} if subject in self.counted_for else set()),
                        key=self.order.get)
            if subject in self.counted_for and first != self.counted_for[subject]:
                self.counts[self.counted_for[subject]].triples -= self.counted[subject]
                self.counts[first].triples += self.counted[subject]
            lines = self.group + self.pending.pop(subject, [])
            self.counts[first].triples += len(lines)
            if subject is not None:
                self.counted_for[subject] = first
                self.counted[subject] = self.counted.get(subject, 0) + len(lines)
        elif subject in self.counted_for:
            self.counts[self.counted_for[subject]].triples += len(self.group)
            self.counted[subject] += len(self.group)
        elif subject is None:  # no file names these triples: they count for the reference file that gives them
            for line in self.group:
                name = self.reference.get(line)
                if name is not None:
                    self.counts[name].triples += 1
        elif self.group:
            self.pending[subject].extend(self.group)
        self.group, self.sources = [], set()
        if final:  # triples of subjects no row named: the reference data's, if they are
            for lines in self.pending.values():
                for line in lines:
                    name = self.reference.get(line)
                    if name is not None:
                        self.counts[name].triples += 1
            self.pending.clear()
