"""The query slots of a server: how many queries run at once, and how many of them one client's.

A slot is taken before a query starts and given back when its work has stopped: when the store has
produced its last row or its error, not when the answer began nor when the timeout answered the
client. Oxigraph cannot stop a query that is running, so a query past its timeout keeps its slot
until it ends by itself, and the slots bound how much work can pile up. Each client (by its address)
may hold at most ``max_queries_per_client`` of the ``max_concurrent_queries`` slots, so one client's
flood of slow queries leaves the others' share free.
"""

import threading
import time
from collections import Counter

from ..errors import Busy


class QuerySlots:
    """``total`` slots, at most ``per_client`` of them one client's."""

    def __init__(self, total, per_client):
        self.total, self.per_client = max(1, total), max(1, min(per_client, total))
        self.running = 0
        self.by_client = Counter()
        self.changed = threading.Condition()

    def take(self, client, timeout):
        """Wait up to ``timeout`` seconds for a slot for ``client``; return the function that gives it
        back (once, however often it is called). :class:`~opportunity_kg.errors.Busy` when none came."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.running >= self.total or self.by_client[client] >= self.per_client:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._busy(client)
                self.changed.wait(remaining)
            self.running += 1
            self.by_client[client] += 1
        given_back = threading.Event()

        def give_back():
            with self.changed:
                if given_back.is_set():
                    return
                given_back.set()
                self.running -= 1
                self.by_client[client] -= 1
                if not self.by_client[client]:
                    del self.by_client[client]
                self.changed.notify_all()

        return give_back

    def _busy(self, client):
        if self.by_client[client] >= self.per_client:
            return Busy(f"{self.by_client[client]} of your queries are still running, the most one client may "
                        f"run at once (OKG_MAX_QUERIES_PER_CLIENT); a query past its timeout runs on until it ends. "
                        "Try again when one has finished")
        return Busy(f"the server is busy: all {self.total} query slots are taken by queries still running "
                    "(OKG_MAX_CONCURRENT_QUERIES); try again shortly")

    def status(self):
        """(queries running, clients running them)."""
        with self.changed:
            return self.running, len(self.by_client)
