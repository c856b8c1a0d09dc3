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
- The worker processes of one ``okg serve`` (granian's ``--workers``) share one zygote per store
  generation, and so one in-memory copy: ``okg serve`` names itself in :data:`SERVER_ID`, and the
  first of its processes to need a generation's zygote starts it listening on a Unix socket named by
  the server, the store generation and the settings (:func:`shared_socket`); the others connect to
  it. Such a zygote ends when the last of its servers' sockets closes.

The cost: a query's answer crosses a socket (pickled in batches of rows, about 0.1 ms for a short
answer), and each stopped query costs a fork (a few milliseconds).
"""

import collections
import fcntl
import hashlib
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyoxigraph as ox

from ..errors import OkgError, QueryError, StoreFailed
from . import dataset_arguments, produce_answer, read_answer, timed_out

#: worker processes kept forked ahead of the queries
SPARE = 2
#: how long to wait for an ended worker to be gone before giving its slot back anyway (seconds)
END_WAIT = 2.0
#: a worker whose query ran this long is ended rather than kept for the next (seconds): it has likely
#: made many pages of the shared in-memory copy its own. Oxigraph writes to the pages of the in-memory
#: store it reads, and the system copies each such page for the worker: a canned query over the
#: 100,000-opportunity store left its worker 7.5 GB of its own, which the address-space limit
#: (:func:`limit_memory`) does not see
KEEP_AFTER_SECONDS = 1.0
#: how often a server process tries again to reach a shared zygote that ended as it connected
RECONNECTS = 2

#: the environment variable ``okg serve`` names itself in for its worker processes, which then share
#: one zygote per store generation (see the module's description)
SERVER_ID = "_OKG_SERVE_ID"
#: the environment variable ``okg serve`` gives its number of processes in: each takes its share of
#: the query slots, so that the server as a whole runs at most ``max_concurrent_queries``
SERVER_PROCESSES = "_OKG_SERVE_PROCESSES"
#: how much likelier than others the system is to end a worker when memory runs out (Linux's
#: oom_score_adj): a query's worker, never the zygote holding the in-memory copy for all
WORKER_OOM_SCORE = 800

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
        self.started = None  # when its query was sent (time.monotonic())

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

    def __init__(self, path, memory_triples, log=None, spare=SPARE, memory_mb=0, server=None):
        self.path, self.spare, self.memory_mb = str(path), spare, memory_mb
        self._log = log or (lambda message: None)
        self.ready, self.in_memory, self.failed, self.closed = threading.Event(), False, None, False
        self._idle, self._busy, self._lock, self._control_lock = [], set(), threading.Lock(), threading.Lock()
        self._top_up_lock = threading.Lock()
        self._zygote, self.shared = None, None
        self._start = (memory_triples, memory_mb)
        server = server if server is not None else os.environ.get(SERVER_ID)
        if server:
            self.shared = shared_socket(server, self.path, memory_triples, memory_mb)
        self._connect()
        threading.Thread(target=self._wait_ready, daemon=True, name="okg-zygote").start()

    def _connect(self):
        """Start this generation's zygote, or (shared) connect to the one this server's processes share."""
        if self.shared is not None:
            try:
                self._control, self._zygote = connect_or_start(self.shared, self.path, *self._start)
                return
            except OSError as exc:  # no socket could be made there: a zygote of its own
                self._log(f"the server's processes do not share their query workers: {exc}")
                self.shared = None
        self._control, theirs = socket.socketpair()
        self._zygote = start_zygote(theirs, self.path, *self._start)

    def _wait_ready(self):
        started = time.monotonic()
        for attempt in range(RECONNECTS + 1):
            try:
                message = recv_frame(self._control)
            except OSError as exc:
                message = ("failed", str(exc))
            if message is not None or self.shared is None or self.closed or attempt == RECONNECTS:
                break
            self._control.close()  # a shared zygote that ended as this process came: start or find another
            self._connect()
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
        with self._control_lock:
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

    def kept(self, key):
        """The answer (pickled) a server process sharing this zygote kept under ``key``, or None."""
        return self._ask(("get", key), None)

    def keep(self, key, answer, most):
        """Keep ``answer`` (pickled) under ``key`` for the server processes sharing this zygote, the
        least recently used dropped past ``most``."""
        self._ask(("put", key, answer, most), None, reply=False)

    def claim(self, key):
        """Who makes the answer ``key`` ahead: "make" (this process), "wait" (another is making the
        answers ahead) or "skip" (it is made, or failed, already). The first of the processes sharing
        the zygote to claim one makes them all, one at a time as a single process would, so that each
        is made once and never two heavy ones at once; "make" without a shared zygote."""
        return self._ask(("claim", key), "make")

    def made(self, key):
        """Say that this process is done with making the answer ``key`` ahead (kept or failed)."""
        self._ask(("made", key), None, reply=False)

    def _ask(self, request, otherwise, reply=True):
        if self.shared is None or not self.ready.is_set():
            return otherwise
        with self._control_lock:
            try:
                send_frame(self._control, request)
                return recv_frame(self._control) if reply else otherwise
            except OSError:
                return otherwise

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
                worker.started = time.monotonic()
                send_frame(worker.sock, request)
                return worker
            except OSError:
                self._give_back(worker, False)
        raise ProcessesEnded("no worker process takes queries")

    def _give_back(self, worker, whole):
        """A worker whose query ended: kept when it answered to the end, else ended and replaced."""
        with self._lock:
            self._busy.discard(worker)
            # a query that ran long has likely made pages of the shared copy its own: not kept
            keep = whole and not self.closed and worker.started is not None \
                and time.monotonic() - worker.started < KEEP_AFTER_SECONDS
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
        """What ``/health`` says of the workers: ready, idle, busy, why they failed (if they did), and
        whether they are shared with the server's other processes."""
        with self._lock:
            return {"ready": self.ready.is_set(), "idle": len(self._idle), "busy": len(self._busy),
                    "failed": self.failed, "shared": self.shared is not None}

    def close(self):
        """End the zygote and every worker: the idle ones now, the busy ones, and then the zygote
        (whose end ends them), as their queries stop."""
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle, []
            busy = bool(self._busy)
        for worker in idle:
            worker.end()
        if not self.ready.is_set() and self._zygote is not None:
            # still copying a store that has been swapped out: stop at once (a shared zygote's other
            # servers see the same swap)
            self._zygote.kill()
        if not busy:
            self._end_zygote()

    def _end_zygote(self):
        self._control.close()  # a ready zygote ends when it reads the end of its socket (the last one, if shared)
        if self._zygote is not None:
            threading.Thread(target=self._reap, daemon=True, name="okg-zygote-end").start()

    def _reap(self):
        if self.shared is not None:  # other servers may still use it: it ends when they close theirs
            self._zygote.wait()
            return
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


def _first_to_go(score):
    """Have the system end this process before others when memory runs out (Linux only)."""
    try:
        with open("/proc/self/oom_score_adj", "w", encoding="ascii") as adjust:
            adjust.write(str(score))
    except OSError:
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


def start_zygote(sock, path, memory_triples, memory_mb):
    """Start a zygote process on ``sock`` (the other end of a server's control socket, or a listening
    socket for a shared zygote), which is closed here; its :class:`subprocess.Popen`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "opportunity_kg.store.processes", str(sock.fileno()), path,
         str(memory_triples), str(memory_mb)], pass_fds=[sock.fileno()], stdin=subprocess.DEVNULL)
    sock.close()
    return process


#: the file a server process locks while it looks for a shared zygote, or starts one
START_LOCK = "start.lock"
#: the longest path a Unix socket may have (108 bytes with its final NUL on Linux)
SOCKET_PATH_MAX = 107


def shared_socket(server, path, memory_triples, memory_mb):
    """Where the zygote ``server``'s processes share for the store generation at ``path`` listens: a
    socket in a folder of this user's only, named by the server, the store directory's identity
    (an ingest swaps in a new one) and the settings the zygote runs with; None where there is no
    such place (the processes then have a zygote each)."""
    try:
        info = os.stat(path)
        folder = Path(tempfile.gettempdir()) / f"okg-{os.getuid()}"
        folder.mkdir(mode=0o700, exist_ok=True)
        if folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o077:
            return None  # not ours alone: another user could ask for workers on our store
    except OSError:
        return None
    key = f"{server}|{os.path.realpath(path)}|{info.st_dev}|{info.st_ino}|{memory_triples}|{memory_mb}"
    name = folder / f"z-{hashlib.blake2b(key.encode('utf-8'), digest_size=10).hexdigest()}.sock"
    return name if len(os.fsencode(name)) <= SOCKET_PATH_MAX else None


def connect_or_start(name, path, memory_triples, memory_mb):
    """(a control socket connected to the shared zygote listening at ``name``, the zygote's
    :class:`subprocess.Popen` if this process started it, else None). The first server process to
    come starts it, under a lock, so that there is one."""
    with open(name.with_name(START_LOCK), "a+b") as lock:  # one for every zygote of the user: held for moments
        fcntl.flock(lock, fcntl.LOCK_EX)
        control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            control.connect(str(name))
            return control, None
        except OSError:  # none yet, or one that has ended without tidying up
            pass
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(name))
        listener.listen(64)
        control.connect(str(name))  # waits in the listener's queue until the store is open
        return control, start_zygote(listener, path, memory_triples, memory_mb)


def zygote(control, path, memory_triples, memory_mb=0):
    """The zygote's life (see the module's description): open the store, copy it into memory when it
    fits, say so, then fork a worker for each request until the server closes ``control`` (or, for
    a listening socket, until the last server connected to it has closed its own)."""
    from . import copy_to_memory, memory_quads
    from .history import current_dataset

    listening = control.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
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
        failed = ("failed", f"the store could not be opened: {exc}")
        for server in _waiting_servers(control) if listening else [control]:
            send_frame(server, failed)
        return
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # ended workers are reaped by the system
    ready = ("ready", store is not None, size, why)
    servers = [] if listening else [control]
    answers = (collections.OrderedDict(), set(), [])  # answers kept for the servers, those done, who makes them
    if not listening:
        send_frame(control, ready)
    while True:
        if listening:  # new servers' sockets, and the requests of those connected
            waiting, _, _ = select.select([control] + servers, [], [], None if servers else 10)
            if not waiting:  # the server that started it has gone before it connected
                break
        else:
            waiting = servers
        if control in waiting and listening:
            server, _ = control.accept()
            send_frame(server, ready)
            servers.append(server)
            continue
        sock = waiting[0]
        try:
            request = recv_frame(sock)
        except OSError:  # that server has gone
            request = None
        if isinstance(request, tuple):
            _keep_answers(sock, request, answers)
            continue
        if request != "fork":
            if answers[2] and answers[2][0] is sock:
                answers[2].clear()  # the process making the answers ahead has gone: another takes over
            servers.remove(sock)
            sock.close()
            if servers:
                continue
            break
        _fork_worker(sock, [control] + servers, store, path, memory_mb)
    if listening:
        name = control.getsockname()
        try:
            os.unlink(name)  # before the socket closes: a server coming now starts a new zygote
        except OSError:
            pass
        control.close()


def _keep_answers(sock, request, answers):
    """Answer a server's request about the answers kept for the servers sharing this zygote: ``get``
    one, ``put`` one (the least recently used dropped past the number given), ``claim`` the making
    of one ahead (see :meth:`QueryProcesses.claim`) or say it is ``made``."""
    kept, done, maker = answers
    try:
        if request[0] == "get":
            found = kept.get(request[1])
            if found is not None:
                kept.move_to_end(request[1])
            send_frame(sock, found)
        elif request[0] == "put":
            _, key, answer, most = request
            kept[key] = answer
            kept.move_to_end(key)
            while len(kept) > most:
                kept.popitem(last=False)
        elif request[0] == "claim":
            if request[1] in kept or request[1] in done:
                send_frame(sock, "skip")
                return
            if not maker:
                maker.append(sock)
            send_frame(sock, "make" if maker[0] is sock else "wait")
        elif request[0] == "made":
            done.add(request[1])
    except OSError:
        pass  # that server has gone: the loop finds its socket closed


def _waiting_servers(listener):
    """The servers' sockets waiting in ``listener``'s queue now, accepted (and then the listener unlinked
    and closed: a server that comes later starts another zygote)."""
    listener.setblocking(False)
    found = []
    while True:
        try:
            found.append(listener.accept()[0])
        except OSError:
            break
    try:
        os.unlink(listener.getsockname())
    except OSError:
        pass
    listener.close()
    for server in found:
        server.setblocking(True)
    return found


def _fork_worker(sock, others, store, path, memory_mb):
    """Fork one worker and hand its socket to the server on ``sock`` (``others``: every socket of
    the zygote, which the worker closes)."""
    mine, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        try:
            end_with_parent()  # a server that dies (its socket closes) ends the zygote, and that us
            for each in others:
                each.close()
            theirs.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C stops the server, which ends us
            _first_to_go(WORKER_OOM_SCORE)
            worker_store = store if store is not None else ox.Store.read_only(path)
            limit_memory(memory_mb)
            serve_queries(mine, worker_store)
        finally:
            os._exit(0)
    mine.close()
    try:
        socket.send_fds(sock, [_FRAME.pack(pid)], [theirs.fileno()])
    except OSError:  # that server has gone: so does the worker
        os.kill(pid, signal.SIGKILL)
    theirs.close()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server ends us when it stops
    zygote(socket.socket(fileno=int(sys.argv[1])), sys.argv[2], sys.argv[3], int(sys.argv[4]))
