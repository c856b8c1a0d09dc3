"""Every limit and default of opportunity-kg, named, with a safe default and a description.

A setting is read from the environment as ``OKG_<NAME>`` (for example
``OKG_QUERY_TIMEOUT=10``) or given to :func:`opportunity_kg.web.create_app`;
the README lists them all (a test checks that it does).
"""

import os
from dataclasses import dataclass

from .errors import OkgError


@dataclass(frozen=True)
class Setting:
    name: str
    default: object
    description: str


SETTINGS = {s.name: s for s in [
    Setting("query_timeout", 30.0,
            "Seconds a SPARQL or canned query may run before it is stopped and answered with a timeout error."),
    Setting("max_rows", 100_000,
            "Most result rows (or triples) one query returns; longer results are cut at this many, and the "
            "HTTP answer then carries `OKG-Rows-Cut: <limit>` (and its log line says `cut at N rows`)."),
    Setting("max_request_bytes", 1_000_000,
            "Largest HTTP request body accepted, in bytes (a query sent by POST)."),
    Setting("max_concurrent_queries", 8,
            "Queries that may run at once (in the whole server: with `okg serve --workers N`, each process "
            "runs its Nth); further requests wait for a free slot up to the query timeout, "
            "then get 503 with Retry-After. A slot is held until its query's work has stopped: its worker "
            "process has answered or been ended (see `OKG_QUERY_PROCESSES`)."),
    Setting("query_processes", 2,
            "Worker processes `okg serve` keeps ready to run queries in. Each query runs in one, which is "
            "ended when the query passes its timeout, is cut at the row limit or loses its client, so its CPU "
            "and memory are free again at once (Oxigraph cannot stop a query otherwise), and is replaced. "
            "Workers share the server's in-memory copy of the store. 0 runs queries on threads of the server "
            "instead, where a query past its timeout is answered with 503 but runs on until it ends (also "
            "so when updates are on, with `OKG_UPDATE_TOKEN`)."),
    Setting("query_memory_mb", 2048,
            "Most memory (MB) one query's worker process may take beyond the store it shares: a query that "
            "needs more (a huge sort or join) ends at once with a 500 `store_error` that says so, instead of "
            "taking the machine's memory until its timeout (a limit on its address space: the pages of the "
            "shared copy it writes to are not counted). 0: no limit. Only with worker processes "
            "(`OKG_QUERY_PROCESSES`)."),
    Setting("max_queries_per_client", 4,
            "Queries one client (by its address) may run at once, of the `OKG_MAX_CONCURRENT_QUERIES` (with N "
            "server processes, its Nth in each, at least one): a "
            "client over it waits for one of its own to finish, so one client's flood of slow queries leaves "
            "the other slots to others."),
    Setting("update_token", "",
            "Secret that turns on the SPARQL update URL (/update), for requests with `Authorization: Bearer "
            "<token>`. Empty (the default): updates are off and the store is opened read-only."),
    Setting("remote_timeout", 300.0,
            "Seconds one request to a SPARQL server used as the store (`--store http://...`) may take "
            "before it is given up."),
    Setting("ingest_memory_triples", "auto",
            "Most triples `okg ingest` also keeps in an in-memory copy of the snapshot, where validation, "
            "counting and the comparison with the previous snapshot run about five times faster than in the "
            "on-disk store. `auto` (the default): as many as fit in 75% of the memory available when the "
            "ingest starts, at 450 bytes a triple (5,000,000 when it cannot be read). A larger export is "
            "validated in the on-disk staged store instead, with memory flat as exports grow; a number sets "
            "the cap, 0 always validates on disk."),
    Setting("ingest_reuse_rows", True,
            "Whether a re-ingest reads again unchanged the rows the last ingest of the system loaded cleanly: "
            "only the records whose rows changed (and the parts of the same deal) are mapped, validated, "
            "counted and compared; the others keep their facts (see \"Weekly exports\" in the README). "
            "Off: 0, false or no: every row is mapped, as a first ingest does."),
    Setting("compact_share", 0.1,
            "A re-ingest compacts the on-disk store (RocksDB's compaction, after which reads are as fast as in "
            "a fresh store; about 1 s per 200,000 triples here) once the facts re-ingests have removed since "
            "the last compaction reach this share of the snapshot's triples. 0: after every re-ingest that "
            "changed something."),
    Setting("serve_memory_triples", "auto",
            "Most triples (of every graph) `okg serve` copies into memory, where queries answer two to nine "
            "times faster than from the on-disk store. `auto` (the default): as many as fit in half the memory "
            "the machine (or its container) has available when the store is opened, at 450 bytes a triple. The "
            "copy is made (in the process the query workers are forked from) when the server opens a store, "
            "and again after each ingest; queries read the disk store until it is done. It takes about 20 s and 450 MB of memory per million "
            "triples here. A larger store is served from disk, and so is one open for updates "
            "(`OKG_UPDATE_TOKEN`). A number sets the cap; 0 turns the copy off."),
    Setting("cache_entries", 256,
            "Canned-query answers `okg serve` keeps, keyed by the query, its parameters and the store's "
            "generation (its snapshots and their digests), so a repeated question is answered from memory and "
            "an ingest makes every kept answer stale. Each query's defaults, each choice of its choice "
            "parameters, and the current and next quarter are answered ahead after the server opens a store and "
            "after each ingest, one at a time. 0 turns it off."),
    Setting("warm_timeout", 600.0,
            "Seconds a canned query answered ahead (see `OKG_CACHE_ENTRIES`) may run: longer than "
            "`OKG_QUERY_TIMEOUT`, since no one waits for it, so that the slowest canned queries of a big store "
            "are ready when the first user asks. It runs in a worker process, ended at this timeout."),
    Setting("csv_formula_guard", True,
            "Whether the canned-query and forecast CSV (`/api/queries/NAME.csv`, `/api/forecast.csv`, and "
            "`okg query NAME --format csv`) neutralise text cells a spreadsheet would run as a formula: a cell "
            "starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'` (numbers stay "
            "numbers). `/sparql` always writes the standard formats untouched. Off: 0, false or no."),
    Setting("cors_origins", "",
            "Comma-separated origins browser tools may call the API from (CORS), or `*` for any. "
            "Empty (the default): no cross-origin access."),
]}


def get(name, overrides=None):
    """The value of setting ``name``: an override, else ``OKG_<NAME>`` from the environment, else the
    default. A value that is not of the setting's kind is an :class:`~opportunity_kg.errors.OkgError`
    naming the variable."""
    setting = SETTINGS[name]
    if overrides and name in overrides:
        value = overrides[name]
        if isinstance(setting.default, bool) and isinstance(value, str):
            return value.strip().lower() not in ("0", "false", "no", "off")
        return _typed(name, setting, value)
    raw = os.environ.get("OKG_" + name.upper())
    if raw is not None and raw != "":
        if isinstance(setting.default, bool):
            return raw.strip().lower() not in ("0", "false", "no", "off")
        return _typed(name, setting, raw)
    return setting.default


def _typed(name, setting, value):
    kind = type(setting.default)
    try:
        return kind(value)
    except ValueError:
        wanted = {int: "a whole number", float: "a number"}.get(kind, "a value of its kind")
        raise OkgError(f"OKG_{name.upper()} is {value!r}: give {wanted} (default {setting.default})") from None


def all_settings(overrides=None):
    return {name: get(name, overrides) for name in SETTINGS}
