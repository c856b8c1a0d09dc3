"""The one query runner every route goes through: the store (and which generation of it), the query
slots, the timeout and the row limit, the kept canned answers and the answers made ahead."""

import logging
import os
import pickle
import threading
import time
from collections import Counter, OrderedDict
from datetime import date

from flask import current_app, g, has_request_context, request

from ..errors import OkgError, QueryTimeout
from ..store.history import snapshots
from ..analytics.queries import load_queries
from ..store import Result, run_query
from ..store.processes import SERVER_PROCESSES, ProcessesEnded
from ..analytics.support import generation
from .formats import TABLE_FORMATS, prime, table_body
from .slots import QuerySlots

log = logging.getLogger("opportunity_kg.web")

#: how often the server looks whether an ingest made a new store generation (to answer ahead again)
WARM_CHECK_SECONDS = 5
#: how often a server process looks whether another, sharing its query workers, has made an answer
#: ahead that it said it would make
SHARED_WAIT_SECONDS = 0.2


class AnswerCache:
    """Whole canned-query answers by (query text, store generation), the least recently used dropped
    past ``entries``."""

    def __init__(self, entries):
        self.entries, self.kept, self.lock = entries, OrderedDict(), threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.kept:
                self.kept.move_to_end(key)
                return self.kept[key]
        return None

    def put(self, key, value):
        if not self.entries:
            return
        with self.lock:
            self.kept[key] = value
            self.kept.move_to_end(key)
            while len(self.kept) > self.entries:
                self.kept.popitem(last=False)


class QueryRunner:
    """Runs every query of the app: ``store`` gives the store as it is now (a new generation after an
    ingest), ``in_memory`` whether queries read an in-memory copy, ``workers`` the worker processes
    queries run in (or None: on threads); ``limits`` are the settings."""

    def __init__(self, store, limits, in_memory=lambda: False, workers=lambda: None):
        self.store, self.limits, self.in_memory, self.workers = store, limits, in_memory, workers
        # the server's slots shared out among its processes (okg serve --workers): each takes its share
        share = max(1, int(os.environ.get(SERVER_PROCESSES, "1") or 1))
        self.slots = QuerySlots(max(1, limits["max_concurrent_queries"] // share),
                                max(1, limits["max_queries_per_client"] // share))
        self.answers = AnswerCache(limits["cache_entries"])
        self.answered_ahead_for = None  # (store generation, canned answers made ahead for it)

    def execute(self, query, timeout=None, client=None, **kwargs):
        """Run ``query`` under the timeout (``query_timeout`` unless given) and the row limit, in a slot
        of the ``client``'s (by default the Flask request's address)."""
        if client is None:  # the thread answering ahead has no request, and no client to count against
            client = request.remote_addr if has_request_context() else "(answering ahead)"
        give_back = self.slots.take(client, self.limits["query_timeout"])  # given back when the work stops
        started = time.monotonic()
        limits = {"timeout": timeout or self.limits["query_timeout"], "max_rows": self.limits["max_rows"],
                  "on_done": give_back}
        workers = self.ready_workers()  # worker processes, ended at the timeout; else a thread of this process
        try:
            result = workers.run(query, **limits, **kwargs) if workers is not None else None
        except ProcessesEnded:
            result = None
        if result is None:
            result = run_query(self.store(), query, **limits, **kwargs)
        if has_request_context():
            g.query = (result.kind, (time.monotonic() - started) * 1000)
        return result

    def ready_workers(self):
        """The worker processes queries run in, once they are ready; else None."""
        workers = self.workers()
        return workers if workers is not None and workers.ready.is_set() else None

    def settling(self):
        """Whether the worker processes are still opening (or copying) the store."""
        workers = self.workers()
        return workers is not None and not workers.ready.is_set() and workers.failed is None

    def answer(self, text, timeout=None):
        """A canned query's whole answer, from the kept ones when the store's generation has it (this
        process's, else those kept by the server processes sharing its query workers): (result, hit)."""
        kept = self.answer_kept(text)
        if kept is not None:
            return kept, True
        key, shared = (text, generation(self.store())), self.ready_workers()
        result = self.execute(text, timeout=timeout)
        # with the tables written from it, by format (:func:`~.formats.table_body`)
        kept = Result(result.kind, result.variables, prime(result.rows), result.cut, bodies={})
        if shared is not None and self.limits["cache_entries"]:  # for the other server processes too, before
            # any thread here can find it and write its tables
            shared.keep(text, pickle.dumps(kept, protocol=pickle.HIGHEST_PROTOCOL), self.limits["cache_entries"])
        self.answers.put(key, kept)
        return kept, False

    def supported(self):
        """What the store's data lets each canned query and the forecast answer (kept per store generation)."""
        from ..analytics.support import support

        return support(self.store())

    def answered_ahead(self, store_now):
        """How many canned answers were made ahead for the store's current generation (None: not yet)."""
        made = self.answered_ahead_for
        return made[1] if made and made[0] == generation(store_now) else None

    def warm(self):
        """Answer ahead of the first user, one at a time and under ``warm_timeout``, each canned query
        (:func:`questions_ahead`); how many answers were made."""
        from ..periods import quarter_label, quarter_of

        self.supported()  # what each answer's OKG-Support header says, worked out once per generation
        days = [date.fromisoformat(a) for _, _, a in snapshots(self.store())] or [date.today()]
        now = quarter_of(max(days))
        labels = [quarter_label(s) for s, _ in (now, quarter_of(now[1]))]
        made = Counter()
        questions = list(questions_ahead(load_queries().values(), labels))[:self.limits["cache_entries"]]
        for query, values in questions:  # (more would push the first ones out of the kept answers)
            key = query.bind(values)
            turn = self._turn(key)
            if turn == "make":
                made[self._answer_ahead(query, values)] += 1
                workers = self.ready_workers()
                if workers is not None:
                    workers.made(key)
            else:  # made by another server process (or failed there, which it logged)
                kept = self.answer_kept(key)
                if kept is not None:
                    self._write_tables(kept)
                    made["shared"] += 1
        log.info("canned answers made ahead: %d here, %d by the other server processes, %d failed", made["made"],
                 made["shared"], made["failed"])
        return made["made"] + made["shared"]

    def _turn(self, key):
        """Whether this process makes the answer ``key`` ahead ("make"), or takes it from another
        server process sharing its query workers ("skip": made, or failed, there); waits its turn."""
        while True:
            workers = self.ready_workers()
            turn = workers.claim(key) if workers is not None else "make"
            if turn != "wait":
                return turn
            time.sleep(SHARED_WAIT_SECONDS)

    def answer_kept(self, text):
        """A canned answer kept for the store's generation, here or by another server process; else None."""
        key = (text, generation(self.store()))
        kept = self.answers.get(key)
        if kept is not None:
            return kept
        shared = self.ready_workers()
        found = shared.kept(text) if shared is not None and self.limits["cache_entries"] else None
        if found is None:
            return None
        kept = pickle.loads(found)
        self.answers.put(key, kept)
        return kept

    def _write_tables(self, kept):
        """Write a kept answer's table in each format: a dashboard's first call is then only bytes to send."""
        for fmt in sorted(set(TABLE_FORMATS.values())):
            table_body(kept, fmt, self.limits)

    def _answer_ahead(self, query, values):
        """Make one canned answer ahead, with its tables in each format: "made" (here), "shared" (taken
        from another server process) or "failed" (logged)."""
        try:
            kept, hit = self.answer(query.bind(values), timeout=self.limits["warm_timeout"])
            self._write_tables(kept)
            return "shared" if hit else "made"
        except OkgError as exc:  # the user who asks it will meet the same error, or its answer late
            hint = f" (answers made ahead run under OKG_WARM_TIMEOUT, {self.limits['warm_timeout']:g} s)" \
                if isinstance(exc, QueryTimeout) else ""
            log.warning("answering %s ahead (%s) failed: %s%s", query.name,
                        ", ".join(f"{k}={v}" for k, v in values.items()) or "its defaults", exc, hint)
            return "failed"

    def keep_warm(self):
        """Answer ahead again whenever an ingest has made a new store generation (on a thread of its own)."""
        seen = None
        while True:
            try:
                now = generation(self.store())
                if now != seen and not self.settling():  # answered where users' queries will be
                    self.answered_ahead_for = (now, self.warm())
                    seen = now
            except Exception:  # a store being swapped: try again on the next round
                log.debug("warming the canned queries failed", exc_info=True)
            time.sleep(WARM_CHECK_SECONDS)


def questions_ahead(queries, periods):
    """(query, parameter values) a dashboard would ask first of each canned query: its defaults, then
    each other choice of each choice parameter (one at a time), each with every period of ``periods``
    where a period is required. None of a query that needs a record or a day: nothing to guess."""
    for query in queries:
        required = [p for p in query.params if p.required and p.default is None]
        if any(p.type != "period" for p in required):
            continue
        variants = [{}] + [{p.name: choice} for p in query.params if p.choices
                           for choice in p.choices if choice != p.default]
        for label in periods if required else [None]:
            for variant in variants:
                yield query, {**{p.name: label for p in required}, **variant}


def runner():
    """The query runner of the app answering the request."""
    return current_app.extensions["okg"]
