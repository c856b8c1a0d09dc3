"""Queries in worker processes, so that a query past its timeout really stops.

Oxigraph cannot stop a query once it runs, and a thread cannot be killed: a runaway query would keep
its CPU and memory until it ends by itself. So a server runs each query in a worker process, and
ends the process (SIGKILL) when the query passes its timeout, when the row limit cuts the answer,
or when the client has gone; the operating system then frees its CPU and memory at once.

- A *zygote* process (started fresh, with nothing of the server's) opens the store read-only and,
  when it fits (``serve_memory_triples``), copies it into memory. It has one thread and does nothing
  else: it forks the workers. A worker forked from it shares the in-memory copy with it and with
  every other worker (the pages are copied only if written, and queries do not write them); a store
  too big for memory is opened read-only by each worker, after the fork.
- The server keeps :data:`SPARE` workers forked ahead, takes one per query, sends it the query over a
  socket, and reads the answer back in batches of rows, as from a thread (:func:`read_answer`). A
  worker that answered to the end is kept for the next query; one that was stopped is ended and
  replaced. The query's slot is given back only once its worker has gone.
- Each store generation (an ingest swaps a new store in) has its own zygote; the old one's idle
  workers are ended at once, its busy ones as their queries end, and then the zygote.
- A zygote ends when the server's end of its socket closes (the server stopped or died), and a
  worker when its zygote ends (the system kills it), so no query runs on without a server.

The cost: a query's answer crosses a socket (pickled in batches of rows, about 0.1 ms for a short
answer), and each stopped query costs a fork (a few milliseconds).
"""

import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pyoxigraph as ox

from ..errors import OkgError, QueryError, StoreFailed
from . import dataset_arguments, produce_answer, read_answer, timed_out

#: worker processes kept forked ahead of the queries
SPARE = 2
#: how long to wait for an ended worker to be gone before giving its slot back anyway (seconds)
END_WAIT = 2.0

_FRAME = struct.Struct("!Q")


def send_frame(sock, item):
    data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_FRAME.pack(len(data)) + data)


def recv_frame(sock):
    """The next item from ``sock``; None when the other end has closed it."""
    header = _recv_exactly(sock, _FRAME.size)
    if header is None:
        return None
    data = _recv_exactly(sock, _FRAME.unpack(header)[0])
    if data is None:
        return None
    return pickle.loads(data)


def _recv_exactly(sock, size):
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class ProcessesEnded(OSError):
    """The zygote has gone: no more workers can be forked."""


class Worker:
    """One worker process: its process id and the server's end of its socket."""

    def __init__(self, pid, sock):
        self.pid, self.sock = pid, sock

    def end(self):
        """End the process (whatever it is doing) and wait until it has gone."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.sock.close()
        deadline = time.monotonic() + END_WAIT
        while time.monotonic() < deadline:  # the zygote reaps it (it ignores SIGCHLD)
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.002)


class QueryProcesses:
    """The worker processes of one store generation at ``path`` (see the module's description).
    ``ready`` is set once the zygote has opened (and perhaps copied) the store; until then, and if it
    failed, ``failed`` says why and the server answers on threads of its own."""

    def __init__(self, path, memory_triples, log=None, spare=SPARE, memory_mb=0):
        self.path, self.spare, self.memory_mb = str(path), spare, memory_mb
        self._log = log or (lambda message: None)
        self.ready, self.in_memory, self.failed, self.closed = threading.Event(), False, None, False
        self._idle, self._busy, self._lock, self._fork_lock = [], set(), threading.Lock(), threading.Lock()
        self._top_up_lock = threading.Lock()
        self._control, theirs = socket.socketpair()
        self._zygote = subprocess.Popen(
            [sys.executable, "-m", "opportunity_kg.store.processes", str(theirs.fileno()), self.path,
             str(memory_triples), str(memory_mb)], pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        theirs.close()
        threading.Thread(target=self._wait_ready, daemon=True, name="okg-zygote").start()

    def _wait_ready(self):
        started = time.monotonic()
        try:
            message = recv_frame(self._control)
        except OSError as exc:
            message = ("failed", str(exc))
        if self.closed:
            return  # swapped out before it was ready
        if message is None or message[0] != "ready":
            self.failed = message[1] if message else "the process that opens the store ended"
            self._log(f"queries run on threads, and a query past its timeout runs on: {self.failed}")
            return
        _, self.in_memory, size, why = message
        where = (f"from memory: {size:,} quads copied in {time.monotonic() - started:.1f} s" if self.in_memory
                 else f"from disk: {why}")
        self._log(f"store served {where}; queries run in worker processes, ended at their timeout")
        self._top_up()
        self.ready.set()

    def _fork(self):
        with self._fork_lock:
            try:
                send_frame(self._control, "fork")
                data, fds, _, _ = socket.recv_fds(self._control, _FRAME.size, 1)
            except OSError:
                data, fds = b"", []
        if len(data) < _FRAME.size or not fds:
            self.failed = "the process the query workers are forked from has ended"
            self.ready.clear()
            self._log(f"queries run on threads from now on, and a query past its timeout runs on: {self.failed}")
            raise ProcessesEnded(self.failed)
        return Worker(_FRAME.unpack(data)[0], socket.socket(fileno=fds[0]))

    def _top_up(self):
        """Fork workers until :attr:`spare` are idle (one top-up at a time, so never more)."""
        with self._top_up_lock:
            self._fork_spares()

    def _fork_spares(self):
        while not self.closed:
            with self._lock:
                if len(self._idle) >= self.spare:
                    return
            try:
                worker = self._fork()
            except OSError:  # the zygote has gone (ProcessesEnded says so)
                return
            with self._lock:
                if self.closed:
                    worker.end()
                    return
                self._idle.append(worker)

    def _take(self):
        with self._lock:
            worker = self._idle.pop() if self._idle else None
            if worker is not None:
                self._busy.add(worker)
        if worker is None:
            worker = self._fork()
            with self._lock:
                self._busy.add(worker)
        return worker

    def _send(self, request):
        """A worker that has taken ``request``: an idle one, else a new one. One that died while idle
        (killed from outside, say) is ended and another tried."""
        for _ in range(3):
            worker = self._take()
            try:
                send_frame(worker.sock, request)
                return worker
            except OSError:
                self._give_back(worker, False)
        raise ProcessesEnded("no worker process takes queries")

    def _give_back(self, worker, whole):
        """A worker whose query ended: kept when it answered to the end, else ended and replaced."""
        with self._lock:
            self._busy.discard(worker)
            keep = whole and not self.closed
            if keep:
                self._idle.append(worker)
            last = self.closed and not self._busy
        if not keep:
            worker.end()
            if not self.closed:
                threading.Thread(target=self._top_up, daemon=True, name="okg-fork").start()
        if last:
            self._end_zygote()

    def run(self, query, *, timeout, max_rows, default_graph=None, named_graphs=None, union_default=True,
            base_iri=None, on_done=None):
        """:func:`~opportunity_kg.store.run_query` in a worker process (the same arguments and
        :class:`~opportunity_kg.store.Result`); ``on_done`` is called once the worker is idle again
        or has gone."""
        deadline = time.monotonic() + timeout
        try:
            dataset_arguments(None, default_graph, named_graphs, False, base_iri)  # a graph IRI that is not one
        except OkgError:
            if on_done is not None:
                on_done()
            raise
        # ProcessesEnded: the caller runs the query another way
        worker = self._send((query, default_graph, named_graphs, union_default, base_iri))
        state = {"whole": False, "stopped": False}

        def stop():
            if state["stopped"]:
                return
            state["stopped"] = True
            self._give_back(worker, state["whole"])
            if on_done is not None:
                on_done()

        def take():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise timed_out(timeout)
            worker.sock.settimeout(remaining)
            try:
                item = recv_frame(worker.sock)
            except socket.timeout:
                raise timed_out(timeout) from None
            except OSError:
                item = None
            if item is None:
                limit = (f"more than the {self.memory_mb:,} MB a query may take (OKG_QUERY_MEMORY_MB)"
                         if self.memory_mb else "more memory than the machine had")
                failed = StoreFailed(f"the process answering the query ended before its answer was whole: most "
                                     f"likely the query needed {limit}; narrow it (a LIMIT, fewer rows to sort or "
                                     "join)")
                self._log(f"a query's worker process ended: {failed.message}")
                raise failed
            if item[0] in ("ask", "end", "error") or item[0] in ("select", "graph") and item[1][2]:
                state["whole"] = True  # the worker has sent all it had: it may answer another query
            if item[0] == "error":
                kind, message = item[1]
                return "error", (QueryError if kind == "query" else StoreFailed)(message)
            return item

        return read_answer(take, max_rows, stop)  # an answer dropped unread ends its worker

    def status(self):
        """What ``/health`` says of the workers: ready, idle, busy, and why they failed (if they did)."""
        with self._lock:
            return {"ready": self.ready.is_set(), "idle": len(self._idle), "busy": len(self._busy),
                    "failed": self.failed}

    def close(self):
        """End the zygote and every worker: the idle ones now, the busy ones, and then the zygote
        (whose end ends them), as their queries stop."""
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle, []
            busy = bool(self._busy)
        for worker in idle:
            worker.end()
        if not self.ready.is_set():
            self._zygote.kill()  # still copying a store that has been swapped out: stop at once
        if not busy:
            self._end_zygote()

    def _end_zygote(self):
        self._control.close()  # a ready zygote ends when it reads the end of its socket
        threading.Thread(target=self._reap, daemon=True, name="okg-zygote-end").start()

    def _reap(self):
        try:
            self._zygote.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._zygote.kill()
            self._zygote.wait()


def serve_queries(sock, store):
    """A worker's loop: answer each query that comes on ``sock`` until the server closes it."""

    def send(item):
        if item[0] == "error":
            item = ("error", ("query" if isinstance(item[1], QueryError) else "store", item[1].message))
        send_frame(sock, item)
        return True

    while True:
        request = recv_frame(sock)
        if request is None:
            return
        query, default_graph, named_graphs, union_default, base_iri = request
        try:
            kwargs = dataset_arguments(store, default_graph, named_graphs, union_default, base_iri)
        except OkgError as exc:
            send(("error", exc))
            continue
        produce_answer(store, query, kwargs, send)


def end_with_parent():
    """Have the system end this process (SIGKILL) when the process that forked it ends: a worker
    never outlives its zygote, so no query runs on after its server has gone. Linux only."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def limit_memory(memory_mb):
    """Let this process take at most ``memory_mb`` MB more address space than it has now (what it
    shares with the zygote is already counted): past it an allocation fails and the process ends."""
    if not memory_mb:
        return
    import resource

    with open("/proc/self/status", encoding="ascii") as status:
        size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    limit = size + int(memory_mb) * 2 ** 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def zygote(control, path, memory_triples, memory_mb=0):
    """The zygote's life (see the module's description): open the store, copy it into memory when it
    fits, say so, then fork a worker for each request until the server closes ``control``."""
    from . import copy_to_memory, memory_quads
    from .history import current_dataset

    try:
        disk = ox.Store.read_only(path)
        size = len(disk)
        cap, why = memory_quads(memory_triples)
        store = None
        if size <= cap:
            store = copy_to_memory(disk)
            current_dataset(store, remember=True)
        del disk
        why = "" if store is not None else f"{size:,} quads is more than {why}"
    except (OSError, RuntimeError, ValueError) as exc:
        send_frame(control, ("failed", f"the store could not be opened: {exc}"))
        return
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # ended workers are reaped by the system
    send_frame(control, ("ready", store is not None, size, why))
    while recv_frame(control) == "fork":
        mine, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            try:
                end_with_parent()  # a server that dies (its socket closes) ends the zygote, and that us
                control.close()
                theirs.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C stops the server, which ends us
                worker_store = store if store is not None else ox.Store.read_only(path)
                limit_memory(memory_mb)
                serve_queries(mine, worker_store)
            finally:
                os._exit(0)
        mine.close()
        socket.send_fds(control, [_FRAME.pack(pid)], [theirs.fileno()])
        theirs.close()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server ends us when it stops
    zygote(socket.socket(fileno=int(sys.argv[1])), sys.argv[2], sys.argv[3], int(sys.argv[4]))
