"""The store: open it (on disk, or a SPARQL server), write changes atomically, run queries with limits.

:func:`staged` gives a writable copy of the store (a checkpoint) that is
swapped in atomically at the end; :class:`Loader` bulk-loads triples into it on
threads of their own; :func:`graph_changes` works out what makes the stored
graphs hold new triples, and :func:`write_changes` writes them through a
staged copy (:func:`recover` tidies up after a killed write). :class:`ReadOnlyStore` is the server's view, which follows
those swaps. Queries run on a worker thread (pyoxigraph releases the GIL while it
evaluates), so a query that passes the timeout is answered with
:class:`~opportunity_kg.errors.QueryTimeout` while the caller goes on; a server
runs them in worker processes instead (:mod:`.processes`), which it ends at the
timeout. Both hand over the answer the same way (:func:`produce_answer`,
:func:`read_answer`).
"""

import contextlib
import errno
import fcntl
import gc
import itertools
import os
import queue
import shutil
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import pyoxigraph as ox

from .. import settings
from ..errors import OkgError, QueryError, QueryTimeout
from .history import ONTOLOGY_GRAPH  # noqa: F401  (re-exported: where the ontology graph is named)
from .remote import RemoteStore, is_remote
from ..mapping.rml import quad_data



#: what an unfinished write leaves beside a store: the copy being written, and the store it replaces
STAGING_SUFFIX, PREVIOUS_SUFFIX = ".staging", ".previous"
#: the file that marks a staging copy as complete
COMPLETE_MARKER = "okg-write-complete"


def _beside(path, suffix):
    return path.with_name(path.name + suffix)


def recover(path):
    """Finish or undo a write that was cut short (a killed ingest), so ``path`` holds a whole store.

    A write copies the store (``.staging``), changes the copy, marks it complete, then swaps it
    in (the old store is ``.previous`` for a moment). Killed before the mark, the copy is thrown
    away; killed during the swap, the complete copy, else the old store, is put back.
    """
    path = Path(path)
    staging, previous = _beside(path, STAGING_SUFFIX), _beside(path, PREVIOUS_SUFFIX)
    complete = (staging / COMPLETE_MARKER).exists()
    if not path.exists():
        if complete:
            os.rename(staging, path)
        elif previous.exists():
            os.rename(previous, path)
    if previous.exists() and path.exists():
        shutil.rmtree(previous)
    if staging.exists() and not (staging / COMPLETE_MARKER).exists() or staging.exists() and path.exists():
        shutil.rmtree(staging)
    marker = path / COMPLETE_MARKER
    if marker.exists():
        marker.unlink()


def open_store(path, *, create=True, read_only=False):
    """Open (or create) the on-disk store at ``path`` (after :func:`recover`), or the SPARQL server
    a URL names (:mod:`opportunity_kg.store.remote`). ``read_only`` opens an existing store without a
    lock and without writing anything beside it, so any number of readers (``okg query``,
    ``okg forecast``, a server) run side by side, and beside an ingest."""
    if is_remote(path):
        return RemoteStore(path)
    path = Path(path)
    if read_only:
        check_is_store(path)
        try:
            return ox.Store.read_only(str(path))
        except OSError as exc:
            raise OkgError(f"cannot open the store at {path}: {exc}") from None
    recover_if_free(path)
    if not create:
        check_is_store(path)
    try:
        return ox.Store(str(path))
    except OSError as exc:
        text = str(exc)
        if "lock" in text.lower():
            raise OkgError(f"the store at {path} is in use by another process (an ingest or a server); "
                           "stop it or wait for it to finish") from None
        raise OkgError(f"cannot open the store at {path}: {text}") from None


def recover_if_free(path):
    """:func:`recover` ``path`` unless a write holds it now (that write finishes its own work)."""
    with _write_lock(Path(path), wait=False) as free:
        if free:
            recover(path)


def check_is_store(path):
    if not path.exists():
        raise OkgError(f"no store at {path}: run `okg ingest EXPORT --store {path}` first")
    if not (path / "CURRENT").exists():  # every Oxigraph (RocksDB) store has one
        raise OkgError(f"{path} is not a store (it holds no Oxigraph database); if it is an export, "
                       f"load it first: okg ingest {path} --store STORE")


class ReadOnlyStore:
    """The store at ``path`` opened read-only, for a server: it takes no lock, so an ingest can
    write meanwhile, and it reopens itself when an ingest has swapped in a new store (the
    directory changes), so each query sees one whole store, the old one or the new one.

    A store of at most ``memory_triples`` quads (the ``serve_memory_triples`` setting) is also
    copied into memory on a thread of its own, where Oxigraph answers two to nine times faster;
    queries read the disk store until the copy is whole, then the copy, until the next swap. One
    copy runs at a time, and a copy of a store that has since been swapped out stops."""

    def __init__(self, path, writable=False, memory_triples=0, log=None, workers=None):
        self.path = Path(path)
        self.writable = writable  # for the update URL: one read-write handle, never reopened
        self.memory_triples = 0 if writable else memory_triples  # a number, or "auto" (:func:`memory_quads`)
        # with ``workers`` (path -> :class:`~.processes.QueryProcesses`), each generation's queries run in
        # worker processes, which also hold the in-memory copy; this process keeps the disk store for its
        # own small lookups
        self.make_workers = None if writable else workers
        self._log = log or (lambda message: None)
        self._lock = threading.Lock()
        self._store, self._identity, self._memory, self._workers = None, None, None, None
        self.current()

    def workers(self):
        """The current generation's :class:`~.processes.QueryProcesses` (perhaps not ready yet), or None."""
        self.current()
        return self._workers

    def _stat(self):
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None  # mid-swap: keep the store already open
        return (info.st_ino, info.st_dev)

    @property
    def in_memory(self):
        """Whether queries are read from the in-memory copy now."""
        workers = self._workers
        if workers is not None and workers.ready.is_set():
            return workers.in_memory
        return self._memory is not None

    def current(self):
        identity = self._stat()
        with self._lock:
            if self.writable:
                if self._store is None:
                    self._store = open_store(self.path, create=False)
                return self._store
            if self._store is None or identity is not None and identity != self._identity:
                if not self.path.exists():
                    raise OkgError(f"no store at {self.path}: run `okg ingest EXPORT --store {self.path}` first")
                try:
                    self._store = ox.Store.read_only(str(self.path))
                    from .history import current_dataset

                    current_dataset(self._store, remember=True)  # it never changes: work out "now" once
                except OSError as exc:
                    raise OkgError(f"cannot open the store at {self.path}: {exc}") from None
                self._identity, self._memory = identity, None
                if self.make_workers is not None:
                    if self._workers is not None:
                        self._workers.close()
                    self._workers = self.make_workers(self.path)
                elif self.memory_triples == "auto" or int(self.memory_triples) > 0:
                    threading.Thread(target=self._copy, args=(self._store, identity), daemon=True).start()
            return self._store if self._memory is None else self._memory  # (a Store's truth value counts it)

    def _copy(self, disk, identity):
        """Copy ``disk`` into memory and serve the copy, unless it is too big or has been replaced."""
        def wanted():
            return self._store is disk

        with _COPYING:
            if not wanted():
                return
            started = time.monotonic()
            try:
                size = len(disk)
                cap, why = memory_quads(self.memory_triples)
                if size > cap:
                    self._log(f"store served from disk: {size:,} quads is more than {why}")
                    return
                memory = copy_to_memory(disk, wanted)
                from .history import current_dataset

                current_dataset(memory, remember=True)
            except (OSError, RuntimeError, SyntaxError, ValueError) as exc:
                if wanted():
                    self._log(f"store served from disk: copying it into memory failed: {exc}")
                return
            with self._lock:
                if self._identity == identity and wanted():
                    self._memory = memory
                    self._log(f"store served from memory: {size:,} quads copied in "
                              f"{time.monotonic() - started:.1f} s")


#: one copy into memory at a time, so swaps in quick succession never hold several
_COPYING = threading.Lock()
#: the memory an in-memory copy takes per quad, measured here (about 450 MB per million triples)
MEMORY_BYTES_PER_QUAD = 450
#: the share of the available memory an in-memory copy may take with ``serve_memory_triples=auto``
MEMORY_SHARE = 0.5
#: the share ``okg ingest`` may take with ``ingest_memory_triples=auto``: an ingest is a batch job that
#: reads the available memory when it starts, after what a server beside it already holds
INGEST_MEMORY_SHARE = 0.75


def memory_quads(setting, name="serve_memory_triples", share=MEMORY_SHARE):
    """(most quads to copy into memory, the words that say why) for the setting ``name`` (whose value
    is ``setting``): a number as it is; ``auto`` as many as fit in ``share`` of the memory available
    now, at :data:`MEMORY_BYTES_PER_QUAD` each (5 million when the available memory cannot be read)."""
    if str(setting).strip().lower() != "auto":
        try:
            cap = int(str(setting).strip().replace("_", "").replace(",", ""))
        except ValueError:
            raise OkgError(f"OKG_{name.upper()} is {setting!r}: give a number of triples (0 for none) or auto") from None
        return cap, f"{name} ({cap:,})"
    available = available_memory()
    if available is None:
        return 5_000_000, f"5,000,000 ({name}=auto, and the available memory cannot be read)"
    cap = int(available * share / MEMORY_BYTES_PER_QUAD)
    part = "half" if share == 0.5 else f"{share:.0%} of"
    return cap, (f"{cap:,}, what {part} the {available / 2 ** 20:,.0f} MB of memory available holds at "
                 f"{MEMORY_BYTES_PER_QUAD} bytes a quad ({name}=auto)")


def available_memory():
    """Bytes of memory available now: the system's MemAvailable, or less where a container (cgroup v2
    or v1) limits this process to less; None where neither can be read."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text(encoding="ascii").strip()
            usage = int(Path(usage_file).read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2 ** 60:  # "max", or v1's huge number: no limit
            found.append(max(0, int(limit) - usage))
        break
    return min(found) if found else None


class _Superseded(OSError):
    """The store being copied has been swapped out."""


def copy_to_memory(store, wanted=None):
    """An in-memory store holding every quad of ``store``: its N-Quads dump streamed through a pipe
    into a bulk load, so no quad is held as a Python object. The copy stops (with an OSError) as
    soon as ``wanted()`` turns false."""
    memory = ox.Store()
    read_end, write_end = os.pipe()
    failure = []

    class Pipe:
        def __init__(self, out):
            self.out = out

        def write(self, data):
            if wanted is not None and not wanted():
                raise _Superseded("the store was swapped out while it was being copied")
            return self.out.write(data)

        def flush(self):
            self.out.flush()

    def dump():
        try:
            with os.fdopen(write_end, "wb") as out:
                store.dump(Pipe(out), ox.RdfFormat.N_QUADS)
        except (OSError, RuntimeError) as exc:
            failure.append(exc)

    writer = threading.Thread(target=dump, daemon=True)
    writer.start()
    with os.fdopen(read_end, "rb") as source:
        memory.bulk_load(source, ox.RdfFormat.N_QUADS)
    writer.join()
    if failure:
        raise failure[0]
    return memory


@contextlib.contextmanager
def _write_lock(path, wait=True):
    """An exclusive lock on ``PATH.lock`` while a write (or a recovery) runs; yields whether it was got."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(_beside(path, ".lock"), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def graph_changes(store, graphs, *, ignore_subjects=()):
    """What makes each named graph hold exactly the given triples: (adds, removes) as quads.

    ``graphs`` maps a graph IRI to a collection of triples. Nothing when the
    graphs are already equal (triples whose subject is in ``ignore_subjects``,
    such as an ingest run's own timestamp, do not count as a change).
    """
    adds, removes = [], []
    for graph, triples in graphs.items():
        name = ox.NamedNode(graph)
        new = {t[:3] if isinstance(t, tuple) else (t.subject, t.predicate, t.object) for t in triples}
        old = {(q.subject, q.predicate, q.object) for q in store.quads_for_pattern(None, None, None, name)}
        adds += [(*t, name) for t in new - old]
        removes += [(*t, name) for t in old - new]
    ignored = {ox.NamedNode(s) if isinstance(s, str) else s for s in ignore_subjects}
    if not [q for q in adds + removes if q[0] not in ignored]:
        return [], []
    return adds, removes


class Staging:
    """A writable copy of a store (see :func:`staged`); ``keep = False`` throws it away at the end."""

    def __init__(self, store):
        self.store = store
        self.keep = True


def _remove(folder, attempts=20):
    """Remove a store's folder once the store is closed: a store still open somewhere can write a
    file while the folder is removed, so the store is let go first and the removal tried again.
    What is left in the end (never a whole store) goes at the next write, by :func:`recover`."""
    gc.collect()  # a handle held in a reference cycle closes the store only when collected
    for _ in range(attempts):
        try:
            shutil.rmtree(folder)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def staged(path):
    """A writable copy of the store at ``path`` (a :class:`Staging`), swapped in atomically at the end.

    The store is copied (a RocksDB checkpoint: hard links, not a copy of the
    data) under an exclusive lock; the caller changes the copy, which is then
    marked complete and takes the store's place. A process killed at any point
    leaves either the old store or the new one, never a mix (:func:`recover`
    tidies up on the next open); an exception, or ``keep = False``, throws the
    copy away. Servers reading the store meanwhile see the old store, then the new.
    """
    path = Path(path)
    staging, previous = _beside(path, STAGING_SUFFIX), _beside(path, PREVIOUS_SUFFIX)
    with _write_lock(path):
        recover(path)
        if path.exists():
            original = open_store(path)
            original.backup(str(staging))
            del original
        work = Staging(ox.Store(str(staging)))
        try:
            yield work
        except BaseException:
            work.store = None
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if not work.keep:
            work.store = None
            _remove(staging)
            return
        work.store.flush()
        work.store = None
        (staging / COMPLETE_MARKER).write_text("", encoding="utf-8")
        if path.exists():
            os.rename(path, previous)
        os.rename(staging, path)
        recover(path)


class Loader:
    """Bulk-loads triples (tuples of terms) into one graph of each of several stores, each on a
    thread of its own, in chunks, while the caller makes the next ones: pyoxigraph's
    ``bulk_load`` releases the GIL, so mapping and loading use every core. ``targets`` is a
    list of (store, graph name or None for the default graph). :meth:`close` waits for the
    last chunk and raises what a thread raised.

    The stores in ``streamed`` (on-disk ones) take every chunk in one bulk load, fed through a
    named pipe as the chunks come (:meth:`_stream`): a bulk load per chunk writes RocksDB files
    per chunk, which the store then merges again and again as it grows (docs/benchmarks.md,
    "Ingest"). Where the system has no named pipes, they too are loaded chunk by chunk."""

    def __init__(self, targets, chunk=None, streamed=()):
        self.chunk = chunk or LOAD_CHUNK
        self.buffer, self.lines, self.errors, self.count = [], [], [], 0
        self.queues, self.threads, self.stores = [], [], []
        for store, graph in targets:
            self.attach(store, graph, streamed=any(store is s for s in streamed))

    def attach(self, store, graph, streamed=False):
        """Load the next chunks into ``graph`` of ``store`` too (in one bulk load if ``streamed``)."""
        self.stores.append(store)
        channel = queue.Queue(maxsize=2)  # at most two chunks of text wait: memory stays bounded
        run = self._stream if streamed and hasattr(os, "mkfifo") else self._run
        thread = threading.Thread(target=run, args=(store, graph, channel), name="okg-loader", daemon=True)
        thread.start()
        self.queues.append(channel)
        self.threads.append(thread)

    def _run(self, store, graph, channel):
        while True:
            text = channel.get()
            if text is None:
                return
            if not self.errors:
                try:
                    store.bulk_load(text, format=ox.RdfFormat.N_TRIPLES, to_graph=graph)
                except Exception as exc:  # noqa: BLE001  (handed to the caller by close)
                    self.errors.append(exc)

    def _stream(self, store, graph, channel):
        """Feed each chunk of ``channel`` to one ``bulk_load`` of ``store``, which reads a named pipe on
        a thread of its own (in Rust, without the GIL) until the last chunk has been written."""
        folder = Path(tempfile.mkdtemp(prefix="okg-load-"))
        pipe = folder / "triples.nt"
        try:
            os.mkfifo(pipe)
        except OSError:  # a temporary folder that cannot hold a named pipe: chunk by chunk
            shutil.rmtree(folder, ignore_errors=True)
            return self._run(store, graph, channel)

        def load():
            try:
                store.bulk_load(path=str(pipe), format=ox.RdfFormat.N_TRIPLES, to_graph=graph)
            except Exception as exc:  # noqa: BLE001  (handed to the caller by close)
                self.errors.append(exc)

        loading = threading.Thread(target=load, name="okg-bulk-load", daemon=True)
        loading.start()
        ended = False  # whether the last chunk has been taken
        try:
            feed = _open_pipe(pipe, loading)
            with feed or contextlib.nullcontext():  # its end is the end of the input: the bulk load finishes
                for text in iter(channel.get, None):
                    if feed is not None and not self.errors:
                        feed.write(text)
                ended = True
            loading.join()
        except OSError as exc:  # the bulk load ended early (a broken pipe: its own error says why) or the pipe failed
            while not ended:  # take the rest, so that the caller is never kept waiting
                ended = channel.get() is None
            loading.join(timeout=PIPE_WAIT)
            if not self.errors:
                self.errors.append(exc)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def add(self, triples):
        self.count += len(triples)
        self.buffer.extend(triples)
        if len(self.buffer) >= self.chunk:
            self._send()

    def add_line(self, line):
        """Load one triple already written as an N-Triples line (``s p o .`` without its line break):
        for a caller that writes the line anyway, to hash it."""
        self.count += 1
        self.lines.append(line)
        if len(self.lines) >= self.chunk:
            self._send()

    def drop(self, store):
        """Stop loading into ``store`` (what it was sent is loaded first); the others go on."""
        for i, (target, channel, thread) in enumerate(zip(self.stores, self.queues, self.threads)):
            if target is store:
                channel.put(None)
                thread.join()
                del self.stores[i], self.queues[i], self.threads[i]
                return

    def _send(self):
        if self.lines:
            self.lines.append("")
            self.buffer.append("\n".join(self.lines))  # sent with the triples, as one more piece of text
            self.lines = []
        if self.buffer:
            text = "".join(t if isinstance(t, str) else f"{t[0]} {t[1]} {t[2]} .\n" for t in self.buffer).encode()
            for channel in self.queues:
                channel.put(text)
            self.buffer = []

    def close(self):
        self._send()
        self._end()
        if self.errors:
            raise OkgError(f"the store failed while loading: {self.errors[0]}")

    def abort(self):
        """Stop after a failure elsewhere: what was sent is loaded (into a store about to be thrown
        away) and every thread ends, so that none keeps the store, or its named pipe, open."""
        self.buffer, self.lines = [], []
        self._end()

    def _end(self):
        for channel in self.queues:
            channel.put(None)
        for thread in self.threads:
            thread.join()
        self.queues, self.threads, self.stores = [], [], []


def write_changes(path, adds, removes):
    """Apply the changes to the store at ``path`` atomically, at bulk-load speed (:func:`staged`),
    or to the SPARQL server it names."""
    if is_remote(path):
        RemoteStore(path).write(adds, removes)
        return len(adds), len(removes)
    with staged(path) as work:
        delete_quads(work.store, removes)
        by_graph = {}
        for quad in adds:
            by_graph.setdefault(quad[3], []).append(quad[:3])
        for graph, triples in by_graph.items():
            loader = Loader([(work.store, graph)])
            loader.add(triples)
            loader.close()
    return len(adds), len(removes)


def delete_quads(store, quads):
    """Remove the quads (tuples of terms; the graph may be ``ox.DefaultGraph()``) from the store, in batches."""
    quads = list(quads)
    for start in range(0, len(quads), DELETE_BATCH):
        batch = quads[start:start + DELETE_BATCH]
        named = [q for q in batch if not isinstance(q[3], ox.DefaultGraph)]
        plain = "\n".join(f"{q[0]} {q[1]} {q[2]} ." for q in batch if isinstance(q[3], ox.DefaultGraph))
        store.update(f"DELETE DATA {{ {quad_data(named)}\n{plain} }}")


def _open_pipe(pipe, reader):
    """The named pipe ``pipe`` opened for writing once ``reader`` (a thread) has opened it for reading;
    None if that thread ends first (opening it plainly would then wait for ever)."""
    while True:
        try:
            fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: nobody reads it yet
                raise
            if not reader.is_alive():
                return None
            time.sleep(0.001)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "wb")


#: quads removed per DELETE DATA update
DELETE_BATCH = 20000
#: quads bulk-loaded at a time
LOAD_CHUNK = 200_000
#: seconds a loader whose named pipe failed waits for its bulk load to end
PIPE_WAIT = 10


@dataclass
class Result:
    """A running query: ``kind`` is select, ask or graph. ``cut`` turns true once the rows have stopped
    at the row limit with more to come."""

    kind: str
    variables: list
    rows: object  # iterator of tuples (select) or triples (graph), or a bool (ask)
    cut: bool = False
    bodies: dict = None  # a kept answer's tables as written, by format (the web layer's)


#: rows handed from the query thread to the response at a time
ROW_BATCH = 500
class _Workers:
    """Threads that evaluate queries (pyoxigraph releases the GIL meanwhile), kept rather than
    started per query. They are daemon threads: a query that ran past its timeout cannot be
    cancelled inside pyoxigraph, and it must not keep a finished command from exiting."""

    def __init__(self, most):
        self.most, self.count, self.idle = most, 0, 0
        self.tasks = queue.Queue()
        self.lock = threading.Lock()

    def submit(self, task):
        with self.lock:
            if self.idle == 0 and self.count < self.most:
                self.count += 1
                threading.Thread(target=self._run, name="okg-query", daemon=True).start()
            self.tasks.put(task)

    def _run(self):
        while True:
            with self.lock:
                self.idle += 1
            task = self.tasks.get()
            with self.lock:
                self.idle -= 1
            task()
            del task  # let go of the query's store before waiting for the next one


_WORKERS = _Workers(64)


def run_query(store, query, *, timeout=None, default_graph=None, named_graphs=None, union_default=True,
              max_rows=None, base_iri=None, on_done=None):
    """Run a SPARQL query; return a :class:`Result` whose rows stream under the timeout.

    ``timeout`` (seconds) bounds the whole run, from parsing to the last row;
    ``max_rows`` bounds the rows the iterator yields. ``default_graph`` and
    ``named_graphs`` (lists of graph IRIs) set the dataset as the SPARQL
    Protocol's ``default-graph-uri`` and ``named-graph-uri`` do; without them
    the default graph is "now" (:func:`opportunity_kg.store.history.current_graphs`)
    and every graph is a named graph. ``base_iri`` resolves relative IRIs in the query (the endpoint's
    own IRI, for the SPARQL protocol). A graph IRI that is not an IRI is a :class:`QueryError`.
    ``on_done`` is called once the store has stopped working on the query: after its last row or its
    error, also when that is after the timeout answered the caller (a server's query slot is held until then).
    """
    submitted = []
    try:
        return _run_query(store, query, timeout, default_graph, named_graphs, union_default, max_rows, base_iri,
                          on_done, submitted)
    except BaseException:
        if on_done is not None and not submitted:
            on_done()  # the query never reached the store
        raise


def _run_query(store, query, timeout, default_graph, named_graphs, union_default, max_rows, base_iri, on_done,
               submitted):
    timeout = settings.get("query_timeout") if timeout is None else timeout
    max_rows = settings.get("max_rows") if max_rows is None else max_rows
    deadline = time.monotonic() + timeout
    kwargs = dataset_arguments(store, default_graph, named_graphs, union_default, base_iri)
    channel = queue.Queue(maxsize=256)
    stop = threading.Event()

    def send(item):
        """Hand an item to the reader; False once the reader has gone."""
        while not stop.is_set():
            try:
                channel.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            produce_answer(store, query, kwargs, send)
        finally:
            if on_done is not None:
                on_done()

    _WORKERS.submit(produce)
    submitted.append(True)  # from here the producer calls on_done

    def take():
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise queue.Empty
            return channel.get(timeout=remaining)
        except queue.Empty:
            raise timed_out(timeout) from None

    return read_answer(take, max_rows, stop.set)


def dataset_arguments(store, default_graph, named_graphs, union_default, base_iri):
    """pyoxigraph's query arguments for the dataset the SPARQL protocol's parameters name (see
    :func:`run_query`); a graph IRI that is not an IRI is a :class:`QueryError`."""
    kwargs = {"base_iri": base_iri} if base_iri else {}

    def graph_iris(iris, what):
        try:
            return [ox.NamedNode(g) for g in iris]
        except ValueError as exc:
            raise QueryError(f"{what} must be IRIs: {exc}", field=what) from None

    if default_graph is not None:
        kwargs["default_graph"] = graph_iris(default_graph, "default-graph-uri")
    elif union_default:
        from .history import current_dataset

        current, whole = current_dataset(store)
        if current and not whole:
            kwargs["default_graph"] = [ox.NamedNode(g) for g in current]
        else:
            kwargs["use_default_graph_as_union"] = True
    if named_graphs is not None:  # an empty list: no named graphs at all
        kwargs["named_graphs"] = graph_iris(named_graphs, "named-graph-uri")
    return kwargs


def produce_answer(store, query, kwargs, send):
    """Evaluate ``query`` and hand its answer to ``send`` as items: ("ask", bool); or (kind, (variables,
    first rows, whether they are all)) then ("rows", batch)... and ("end", None); or ("error", an
    :class:`OkgError`). Stops as soon as ``send`` returns False (the reader has gone)."""
    try:
        results = store.query(query, **kwargs)
        if isinstance(results, ox.QueryBoolean):
            send(("ask", bool(results)))
            return
        if isinstance(results, ox.QuerySolutions):
            kind, variables, rows = "select", list(results.variables), (tuple(s) for s in results)
        else:
            kind, variables, rows = "graph", None, iter(results)
        # rows go across in batches, the first with the head (and the end, for a short answer):
        # a hand-over between threads can wait for the GIL for milliseconds, so one per row,
        # or one for the head and one for the rows, would make a ten-row answer slow under load
        batch = list(itertools.islice(rows, ROW_BATCH))
        done = len(batch) < ROW_BATCH
        if not send((kind, (variables, batch, done))) or done:
            return
        while batch := list(itertools.islice(rows, ROW_BATCH)):
            if not send(("rows", batch)):
                return
        send(("end", None))
    except SyntaxError as exc:
        send(("error", QueryError(f"the query is not valid SPARQL: {exc}")))
    except OSError as exc:
        send(("error", OkgError(f"the store failed while answering: {exc}")))
    except Exception as exc:  # pyoxigraph raises RuntimeError for evaluation errors
        send(("error", QueryError(f"the query failed: {exc}")))


def timed_out(timeout):
    return QueryTimeout(f"the query ran longer than the {timeout:g} s timeout and was stopped; "
                        "narrow it or raise OKG_QUERY_TIMEOUT")


def read_answer(take, max_rows, stop):
    """The :class:`Result` of the items :func:`produce_answer` made, as ``take()`` gives them (it
    raises :class:`QueryTimeout` past the deadline); ``stop()`` is called once the reader stops
    reading (the last row, the row limit, an error, the timeout, or the rows dropped unread: it
    may be called more than once)."""
    try:
        kind, head = take()
        if kind == "error":
            raise head
    except BaseException:
        stop()
        raise
    if kind == "ask":
        stop()
        return Result("ask", [], head)
    variables, first, done = head

    def rows():
        count = 0
        try:
            batch = first
            while True:
                for row in batch:
                    if count >= max_rows:  # a row past the limit: the answer is cut
                        result.cut = True
                        return
                    count += 1
                    yield row
                if done:
                    return
                tag, batch = take()
                if tag == "error":
                    raise batch
                if tag == "end":
                    return
        finally:
            stop()

    result = Result(kind, variables or [], None)
    result.rows = rows()
    # an answer dropped unread (an error after the query ran, a client gone) stops its producer, which
    # then gives its slot back: nothing waits on a reader that will never come
    weakref.finalize(result, stop)
    return result


def select_records(store, query, timeout=None):
    """The rows of a SELECT query as dicts of variable name -> plain value (None where unbound)."""
    result = run_query(store, query, timeout=timeout, max_rows=10**12)
    names = [v.value for v in result.variables]
    for row in result.rows:
        yield dict(zip(names, (t.value if t is not None else None for t in row)))
