"""What the loaded data lets each canned query and the forecast answer: fully, in part, or not at all.

A canned query names in its header the facts it cannot answer without (``#+ needs: stage history``)
and the facts it answers better with (``#+ uses: owner, close date``), by the names in :data:`FACTS`.
:func:`support` counts each fact once in the store (how many deals lack it, or whether the store holds
any of it) and says for each query:

- ``full``: every fact it needs and uses is there for every deal;
- ``partial``: it answers, but some deals lack a fact it uses, or the store has none of one; each
  note says how many and what the answer does about it (``36 of 500 deals have no owner: shown as
  "(no owner)"``);
- ``none``: the store holds none of a fact it needs, so its answer is empty for that reason.

``okg ingest`` prints it after each ingest, ``/api/queries`` gives it with each query, and each query's
page shows it, so an empty or thin answer always says why.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..store.history import INFERRED_STAGE, snapshots
from .queries import load_queries
from ..store import select_records

PREFIXES = """PREFIX okg: <https://w3id.org/opportunity-kg/ontology#>
PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
"""
#: the seconds each fact's count may take
FACT_TIMEOUT = 120
#: how many facts are counted at once: one per core, up to four
COUNT_THREADS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Fact:
    """One fact the canned queries read. ``among`` is the records counted ("deals", "open deals"), or
    None for a fact the store holds or not at all; ``has`` is the SPARQL test that ``?deal`` has it
    (or, with ``among`` None, a pattern that finds any of it); ``lacking`` says what a record without
    it lacks, ``effect`` what the answers do about it."""

    name: str
    among: str | None
    has: str
    lacking: str
    effect: str

    def count(self, store, timeout=FACT_TIMEOUT):
        """(records counted, how many lack the fact); for a fact held or not, (1 or 0, 0)."""
        if self.among is None:
            rows = list(select_records(store, f"{PREFIXES}SELECT ?x WHERE {{ {self.has} }} LIMIT 1", timeout))
            return (1 if rows else 0), 0
        scope = "?deal a okg:Opportunity ."
        if self.among == "open deals":
            scope += " FILTER NOT EXISTS { ?deal okg:isClosed true }"
        elif self.among == "lost deals":
            scope += " ?deal okg:isClosed true . FILTER NOT EXISTS { ?deal okg:isWon true }"
        query = (f"{PREFIXES}SELECT (COUNT(?deal) AS ?of) (SUM(IF(EXISTS {{ {self.has} }}, 0, 1)) AS ?lacking) "
                 f"WHERE {{ {scope} }}")
        row = next(select_records(store, query, timeout), {})
        return int(row.get("of") or 0), int(row.get("lacking") or 0)


def _literal(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _deal_fact(name, has, lacking, effect, among="deals"):
    return Fact(name, among, has, lacking, effect)


def _held(name, pattern, lacking, effect):
    return Fact(name, None, pattern, lacking, effect)


#: every fact a canned query may name in ``#+ needs:`` or ``#+ uses:``
FACTS = {f.name: f for f in [
    _held("deals", "?x a okg:Opportunity", "no opportunities", "nothing to answer from"),
    _held("open deals", "?x a okg:Opportunity FILTER NOT EXISTS { ?x okg:isClosed true }", "no open opportunities",
          "no pipeline to show"),
    _held("closed deals", "?x a okg:Opportunity ; okg:isClosed true", "no closed opportunities",
          "no outcomes to learn from"),
    _held("won deals", "?x a okg:Opportunity ; okg:isWon true", "no won opportunities", "no customers to compare"),
    _deal_fact("owner", "?deal okg:owner ?o", "have no owner", 'shown as "(no owner)"'),
    _deal_fact("account", "?deal okg:account ?a", "have no account", 'shown as "(no account)"'),
    _deal_fact("amount", "?deal okg:amount ?a", "have no amount", "counted as 0"),
    _deal_fact("close date", "?deal okg:closeDate ?d", "have no close date",
               'outside every period; listed as "(no close date)" where the query lists them', among="open deals"),
    _deal_fact("probability", "{ ?deal okg:probability ?p } UNION { ?deal okg:stage/okg:defaultProbability ?p }",
               "have no probability, nor a stage with a default one", "weighted as 0", among="open deals"),
    _deal_fact("stage", "?deal okg:stage ?s", "have no stage", 'shown as "(no stage)"'),
    _deal_fact("created date", "?deal okg:createdAt ?c", "have no created date", "left out of ages and cycle times"),
    _deal_fact("forecast category", "?deal okg:forecastCategory ?c", "have no forecast category",
               "in none of commit, best case and pipeline", among="open deals"),
    _deal_fact("team", "?deal okg:owner/okg:team ?t", "have no team (their owner's role)", 'shown as "(no team)"'),
    _deal_fact("territory", "?deal okg:territory ?t", "have no territory", 'shown as "(no territory)"'),
    _deal_fact("loss reason", "?deal okg:winLossReason ?r", "have no loss reason", 'shown as "(not recorded)"',
               among="lost deals"),
    _held("stage table", f"?x a okg:SalesStage FILTER NOT EXISTS {{ ?x rdfs:comment {_literal(INFERRED_STAGE)} }}",
          "no stage table", "stages are inferred from the deals: their order, default probability and "
          "open/closed flags are estimates"),
    _held("stage history", "?x okg:changeOf ?deal", "no stage history",
          "each deal counts only at its stage now"),
    # held, or not missed: a store with no stage history at all is told so by "stage history" alone
    _held("stage history days", "{ ?x okg:stateFrom ?day } UNION { BIND (1 AS ?x) FILTER NOT EXISTS { ?c okg:changeOf ?deal } }",
          "no record of when each stage change was its deal's latest (okg:stateFrom; a store ingested by an "
          "earlier version lacks it: ingest the export again)",
          "no past day's pipeline can be rebuilt; ingest the export again"),
    # (the closed stages first: Oxigraph took minutes over the changes first, on a store without the term)
    _held("closed stage days", "{ ?x okg:closedStateFrom ?day } UNION { BIND (1 AS ?x) FILTER NOT EXISTS { "
          "?s a okg:SalesStage ; okg:isClosed true . ?c okg:stage ?s ; okg:changeOf ?deal } }",
          "no record of when each stage change to a closed stage took effect (okg:closedStateFrom; a store "
          "ingested by an earlier version lacks it: ingest the export again)",
          "no deal can be seen to close between two days; ingest the export again"),
    _held("close date history", '?x okg:fieldChangeOf ?deal ; okg:fieldName "CloseDate"',
          "no close date history (field history)", "no slips can be seen"),
    _held("line items", "?x okg:lineItemOf ?deal", "no line items", 'every deal shown as "(no line items)"'),
    _held("contact roles", "?x okg:roleOn ?deal", "no contact roles", "no stakeholders are known"),
    _held("competitors", "?x okg:competitorOn ?deal", "no competitors", 'every deal shown as "(none)"'),
    _held("quotas", "?x a okg:Quota", "no quotas", "no coverage can be computed"),
    _held("account hierarchy", "?x okg:parentAccount ?p", "no account parents", "each account is its own hierarchy"),
    _held("legal entities", "?x a okg:LegalEntity", "no legal entities (no GLEIF file loaded)",
          "nothing to compare accounts with"),
    _held("entity matches", "?x a okg:EntityMatch", "no matches between records (okg match not run)",
          "nothing to list"),
    _held("reporting lines", "?x okg:reportsTo ?boss", "no reporting lines between contacts", "nothing to list"),
]}

#: what the forecast (``okg forecast``, ``/api/forecast``) needs and uses
FORECAST = ("forecast", ("deals", "open deals", "closed deals"),
            ("close date", "amount", "probability", "forecast category", "stage history", "owner"))


def count_facts(store, names=None):
    """fact name -> (records counted, how many lack it), for ``names`` (default every fact): counted
    on :data:`COUNT_THREADS` threads at once (Oxigraph reads without the GIL)."""
    names = list(names or FACTS)
    with ThreadPoolExecutor(max_workers=COUNT_THREADS) as pool:
        return dict(zip(names, pool.map(lambda name: FACTS[name].count(store), names)))


def judge(needs, uses, counts):
    """The support of one query from the fact counts: {"level": full|partial|none, "notes": [...]}."""
    notes, level = [], "full"
    missing = [FACTS[n].lacking for n in needs if counts[n][0] == 0]  # facts held or not (lint checks it)
    if missing:
        return {"level": "none", "notes": [f"{' and '.join(missing)} in the store, which the answer "
                                           "is made from: it is empty"]}
    for name in uses:
        of, lacking = counts[name]
        fact = FACTS[name]
        if fact.among is None and of == 0:
            notes.append(f"{fact.lacking}: {fact.effect}")
        elif fact.among is not None and lacking:
            notes.append(f"{lacking:,} of {of:,} {fact.among} {fact.lacking}: {fact.effect}")
        else:
            continue
        if level == "full":
            level = "partial"
    return {"level": level, "notes": notes}


_CACHE = {}


def generation(store):
    """What tells one state of a store from another: its snapshots and their content digests."""
    rows = store.query("SELECT ?g ?d WHERE { GRAPH ?g { ?g <https://w3id.org/opportunity-kg/ontology#contentDigest> "
                       "?d } }", use_default_graph_as_union=False)
    return tuple(sorted((r[0].value, r[1].value) for r in rows)) + tuple(snapshots(store))


def support(store, queries=None, cache=True):
    """For each canned query (and ``"forecast"``): whether the store's current data answers it fully,
    in part or not at all, with notes saying what is missing. With ``cache``, kept for the store's
    generation (its snapshots and their digests), so a server counts once per ingest."""
    key = (id(store), generation(store), None if queries is None else tuple(sorted(queries)))
    if cache and key in _CACHE:
        return _CACHE[key]
    queries = load_queries() if queries is None else queries  # read only when counting: not per request
    wanted = set(FORECAST[1]) | set(FORECAST[2])
    for query in queries.values():
        wanted |= {n for n in query.needs + query.uses if n in FACTS}
    counts = count_facts(store, sorted(wanted))
    out = {name: judge([n for n in q.needs if n in FACTS], [n for n in q.uses if n in FACTS], counts)
           for name, q in queries.items()}
    out[FORECAST[0]] = judge(FORECAST[1], FORECAST[2], counts)
    _CACHE.clear()
    _CACHE[key] = out
    return out


def summary_lines(result):
    """Lines for the CLI: one count line, then one line per query not fully supported."""
    levels = {"full": 0, "partial": 0, "none": 0}
    for entry in result.values():
        levels[entry["level"]] += 1
    lines = [f"canned queries and forecast: {levels['full']} answer fully, {levels['partial']} in part, "
             f"{levels['none']} not at all"]
    for name in sorted(result, key=lambda n: ({"none": 0, "partial": 1, "full": 2}[result[n]["level"]], n)):
        entry = result[name]
        if entry["level"] != "full":
            word = "not at all" if entry["level"] == "none" else "in part"
            lines.append(f"  {name}: {word}: {'; '.join(entry['notes'])}")
    return lines
