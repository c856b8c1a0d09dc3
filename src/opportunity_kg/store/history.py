"""History between snapshots, and which graphs make up "now".

Every ingest keeps its snapshot in a named graph of its own
(``graph/<system>/<as-of>``). :func:`changes_since` compares a new snapshot
with the latest earlier one of the same system and turns every change of an
opportunity's stage, amount or close date into history events, even when the
export has no history table: an ``okg:FieldChange`` per changed field and an
``okg:StageChange`` per stage change, dated at the new snapshot's as-of date,
derived (``prov:wasDerivedFrom``) from both snapshots. They accumulate in the
system's history graph (``graph/<system>/history``).

:func:`current_graphs` names the graphs of the default dataset queries see:
the latest snapshot of each system, the history and intervals graphs, the
ontology and the matches graph, so an opportunity in two snapshots is not
counted twice. Earlier snapshots stay
in the store as named graphs (``GRAPH <...>``) for "as of" questions.

:func:`stage_intervals` summarises each system's stage history, after every
ingest, as ``okg:StageInterval`` records in the system's intervals graph
(``graph/<system>/intervals``, part of "now"): each span a deal stood at one
stage, with its start, its end and its whole days, so the queries about time
in stage read one record per stay instead of pairing every change with the next.
The same graph gives each deal its furthest open stage and its last open stage,
so the funnel and the loss analysis need not search the history either.
"""

import re
from decimal import Decimal
from datetime import date, timedelta
from urllib.parse import quote, unquote

import pyoxigraph as ox
from ..vocabulary import NUMERIC_DATATYPES, OKG, PROV, XSD, RDF_TYPE

GRAPH_BASE = "https://w3id.org/opportunity-kg/graph/"
RDFS_LABEL = ox.NamedNode("http://www.w3.org/2000/01/rdf-schema#label")
RDFS_COMMENT = ox.NamedNode("http://www.w3.org/2000/01/rdf-schema#comment")
ONTOLOGY_GRAPH = GRAPH_BASE + "ontology"
#: the opportunity fields whose changes between snapshots become history, by the name the
#: field change gives them (Salesforce's field names, as its field history has them)
TRACKED = {"StageName": OKG + "stage", "Amount": OKG + "amount", "CloseDate": OKG + "closeDate"}
#: an account's parent, whose changes between snapshots become okg:ParentChange records
PARENT = OKG + "parentAccount"

# the newest snapshot of each system is described in its own graph, the others in the system's snapshots graph
_SNAPSHOTS = f"""SELECT DISTINCT ?g ?system ?asof WHERE {{
  GRAPH ?where {{ ?g a <{OKG}Snapshot> ; <{OKG}sourceSystem> ?system ; <{OKG}asOf> ?asof }}
}}"""


#: the links okg match writes (accounts to legal entities, one customer across systems)
MATCHES_GRAPH = f"{GRAPH_BASE}matches"


def current_graph(system):
    """The graph that holds ``system``'s latest snapshot's facts (see :mod:`opportunity_kg.store.snapshots`)."""
    return f"{GRAPH_BASE}{system}/current"


def snapshots_graph_of(system):
    """The graph of ``system``'s past snapshots' descriptions, every snapshot's changes and the
    digests the next ingest compares with (see :mod:`opportunity_kg.store.snapshots`)."""
    return f"{GRAPH_BASE}{system}/snapshots"


def intervals_graph(system):
    return f"{GRAPH_BASE}{system}/intervals"


def history_graph(system):
    return f"{GRAPH_BASE}{system}/history"


def snapshots(store):
    """Every snapshot in the store: a list of (graph IRI, system, as-of date text)."""
    return [(g.value, s.value, a.value) for g, s, a in store.query(_SNAPSHOTS)]


#: stores whose current graphs are known: id -> (store, graphs, whether they are all of its graphs);
#: a read-only store never changes, a writable one is forgotten (:func:`forget`) when it is written
_CURRENT = {}
#: stores remembered at most (a server reopens its store after each ingest)
_REMEMBERED = 4


def forget(store):
    _CURRENT.pop(id(store), None)


def current_graphs(store, remember=False):
    """The graphs of the default dataset: the latest snapshot per system, history, ontology.
    None when the store holds no snapshot (then the union of all graphs is as good).
    With ``remember`` (a read-only store) the answer is kept for the store's next queries."""
    return current_dataset(store, remember)[0]


def current_dataset(store, remember=False):
    """(:func:`current_graphs`, whether those are every graph of the store and its default graph
    is empty, in an embedded store). When they are, "now" is the union of all graphs, which
    Oxigraph reads faster than a list of graphs (a store with one snapshot per system and no
    older one)."""
    known = _CURRENT.get(id(store))
    if known is not None and known[0] is store:
        return known[1:]
    graphs = _current_graphs(store)
    whole = graphs is None or isinstance(store, ox.Store) and not [  # a SPARQL server is always told the graphs
        g for g in store.named_graphs() if g.value not in set(graphs)
        and next(iter(store.quads_for_pattern(None, None, None, g)), None) is not None  # (an empty one is none)
    ] and next(iter(store.quads_for_pattern(None, None, None, ox.DefaultGraph())), None) is None
    if remember:
        if len(_CURRENT) >= _REMEMBERED:
            _CURRENT.clear()
        _CURRENT[id(store)] = (store, graphs, whole)
    return graphs, whole


def _current_graphs(store):
    latest = {}
    for graph, system, as_of in snapshots(store):
        if system not in latest or as_of > latest[system][1]:
            latest[system] = (graph, as_of)
    if not latest:
        return None
    names = {g.value for g in store.named_graphs()}
    graphs = [graph for graph, _ in latest.values()]  # each system's latest snapshot's description
    graphs += [current_graph(system) for system in latest if current_graph(system) in names]
    graphs += [snapshots_graph_of(system) for system in latest if snapshots_graph_of(system) in names]
    graphs += [history_graph(system) for system in latest if history_graph(system) in names]
    graphs += [intervals_graph(system) for system in latest if intervals_graph(system) in names]
    graphs += [ONTOLOGY_GRAPH] if ONTOLOGY_GRAPH in names else []
    graphs += [MATCHES_GRAPH] if MATCHES_GRAPH in names else []
    return sorted(graphs)


def _facts_graph(store, system, snapshot):
    """Where ``system``'s latest snapshot's facts are: its current graph, or in a store made
    before snapshots were kept as changes (read as it is until the next ingest upgrades it),
    the snapshot's own graph."""
    current = current_graph(system)
    return current if ox.NamedNode(current) in set(store.named_graphs()) else snapshot


def _values(triples):
    """opportunity -> {field name: term} for the tracked fields, and account -> {"ParentId": its
    parent} (an empty dict for an account without one), from (s, p, o) triples."""
    opportunities = {s for s, p, o in triples if p == RDF_TYPE and o.value == OKG + "Opportunity"}
    accounts = {s for s, p, o in triples if p == RDF_TYPE and o.value == OKG + "Account"}
    by_predicate = {iri: name for name, iri in TRACKED.items()}
    out = {account: {} for account in accounts}
    for s, p, o in triples:
        name = by_predicate.get(p.value)
        if name and s in opportunities:
            out.setdefault(s, {})[name] = o
        elif p.value == PARENT and s in accounts:
            out[s]["ParentId"] = o
    return out


def tracked_values(store, graph, subjects=None):
    """opportunity -> {field name: term} for the tracked fields, and account -> its parent, in one
    graph of a store (None: its default graph); only of ``subjects`` (terms) when given, whose facts
    are then read subject by subject, not the whole graph's."""
    named = ox.NamedNode(graph) if graph else ox.DefaultGraph()
    wanted = [(RDF_TYPE, ox.NamedNode(OKG + "Opportunity")), (RDF_TYPE, ox.NamedNode(OKG + "Account")),
              (ox.NamedNode(PARENT), None)] + [(ox.NamedNode(p), None) for p in TRACKED.values()]
    if subjects is not None:
        predicates = {p for p, _ in wanted}
        return _values([(q.subject, q.predicate, q.object) for s in subjects
                        for q in store.quads_for_pattern(s, None, None, named) if q.predicate in predicates])
    return _values([(q.subject, q.predicate, q.object) for q in _quads(store, named, wanted)])


def _quads(store, graph, patterns):
    """The quads of one graph matching any of ``patterns`` ((predicate, object or None) pairs); a
    SPARQL server, which answers no such pattern, gives its whole graph, filtered here."""
    return [q for _, q in _matches(store, graph, patterns)]


def _matches(store, graph, patterns):
    """(the index in ``patterns`` of the pattern it matches, quad) for each quad :func:`_quads`
    gives: the caller tells the facts apart by that number, without reading each quad's predicate
    as text (which, at a million quads, takes seconds)."""
    try:
        return [(i, q) for i, (p, o) in enumerate(patterns) for q in store.quads_for_pattern(None, p, o, graph)]
    except NotImplementedError:
        return [(i, q) for q in store.quads_for_pattern(None, None, None, graph)
                for i, (p, o) in enumerate(patterns) if q.predicate == p and (o is None or q.object == o)]


def changes_since(before, after, system, as_of, sources):
    """History triples for what changed between two snapshots of ``system``, whose tracked values
    (:func:`tracked_values`) are ``before`` and ``after``; the new one is dated ``as_of``, and the
    events are derived from ``sources`` (the two snapshots' IRIs)."""
    moment = ox.Literal(f"{as_of}T00:00:00Z", datatype=ox.NamedNode(XSD + "dateTime"))
    sources = [ox.NamedNode(s) for s in sources]
    out = []
    for opportunity in sorted(set(before) & set(after), key=lambda n: n.value):
        for name in TRACKED:
            old, new = before[opportunity].get(name), after[opportunity].get(name)
            if old is None or new is None or old == new:
                continue
            local = quote(opportunity.value.rsplit("/", 1)[-1], safe="")
            change = ox.NamedNode(f"{history_graph(system)}/{as_of}/{local}/{name}")
            out += [
                (change, RDF_TYPE, ox.NamedNode(OKG + "FieldChange")),
                (change, ox.NamedNode(OKG + "fieldChangeOf"), opportunity),
                (change, ox.NamedNode(OKG + "fieldName"), ox.Literal(name)),
                (change, ox.NamedNode(OKG + "oldValue"), ox.Literal(old.value)),
                (change, ox.NamedNode(OKG + "newValue"), ox.Literal(new.value)),
                (change, ox.NamedNode(OKG + "changedAt"), moment),
            ] + [(change, ox.NamedNode(PROV + "wasDerivedFrom"), source) for source in sources]
            if name == "StageName":
                stage_change = ox.NamedNode(f"{history_graph(system)}/{as_of}/{local}/stage-change")
                out += [
                    (stage_change, RDF_TYPE, ox.NamedNode(OKG + "StageChange")),
                    (stage_change, ox.NamedNode(OKG + "changeOf"), opportunity),
                    (stage_change, ox.NamedNode(OKG + "stage"), new),
                    (stage_change, ox.NamedNode(OKG + "changedAt"), moment),
                ] + [(stage_change, ox.NamedNode(PROV + "wasDerivedFrom"), source) for source in sources]
                for field in ("Amount", "CloseDate"):
                    value = after[opportunity].get(field)
                    if value is not None:
                        out.append((stage_change, ox.NamedNode(TRACKED[field]), value))
    out += _parent_changes(before, after, system, as_of, moment, sources)
    return out


def _parent_changes(before, after, system, as_of, moment, sources):
    """An okg:ParentChange for each account in both snapshots whose parent is not the same (one
    gained, lost or replaced)."""
    out = []
    for account in sorted(set(before) & set(after), key=lambda n: n.value):
        if any(name in before[account] or name in after[account] for name in TRACKED):
            continue  # an opportunity
        old, new = before[account].get("ParentId"), after[account].get("ParentId")
        if old == new:
            continue
        local = quote(account.value.rsplit("/", 1)[-1], safe="")
        change = ox.NamedNode(f"{history_graph(system)}/{as_of}/account/{local}/parent-change")
        out += [(change, RDF_TYPE, ox.NamedNode(OKG + "ParentChange")),
                (change, ox.NamedNode(OKG + "parentChangeOf"), account),
                (change, ox.NamedNode(OKG + "changedAt"), moment)]
        out += [(change, ox.NamedNode(OKG + "previousParent"), old)] if old is not None else []
        out += [(change, ox.NamedNode(OKG + "newParent"), new)] if new is not None else []
        out += [(change, ox.NamedNode(PROV + "wasDerivedFrom"), source) for source in sources]
    return out


def _latest_facts(store, system, facts):
    """(store, graph) holding ``system``'s latest facts: ``facts`` when given (an ingest's in-memory
    copy of them, read several times faster than the disk), else its place in ``store``; None when
    the store has no snapshot of ``system``."""
    if facts is not None:
        return facts[0], ox.NamedNode(facts[1]) if isinstance(facts[1], str) else facts[1]
    latest = [(a, g) for g, s, a in snapshots(store) if s == system]
    if not latest:
        return None
    return store, ox.NamedNode(_facts_graph(store, system, max(latest)[1]))


def stage_intervals(store, system, facts=None, scope=None):
    """The stage-interval triples of ``system``'s deals, from the stage changes in its latest snapshot
    and its history graph: consecutive changes at the same stage make one interval, which ends when
    the next change is at another stage (the last one of a deal has no end). With them, each deal's
    ``okg:furthestOpenStage`` and ``okg:lastOpenStage`` (see :func:`_stage_summary`). A generator:
    the triples are made one deal at a time, so they need not all be in memory at once.
    ``facts``: (store, graph) where the latest facts are, if not in ``store`` (see :func:`derived_facts`);
    ``scope``: a :class:`DeriveScope`, to make the intervals and states of its deals only."""
    latest = _latest_facts(store, system, facts)
    if latest is None:
        return
    sources = [latest, (store, ox.NamedNode(history_graph(system)))]
    changes, orders, closed, deals = {}, {}, set(), set()
    won, probabilities, defined, flagged, won_told = set(), {}, set(), set(), set()
    # the facts read, in the order of their patterns: the three parts of a stage change first, then
    # a stage's facts, then the two classes
    read = ("changeOf", "stage", "changedAt", "sortOrder", "isClosed", "isWon", "probability", "Opportunity",
            "SalesStage")
    patterns = ([(ox.NamedNode(OKG + name), None) for name in read[:7]]
                + [(RDF_TYPE, ox.NamedNode(OKG + name)) for name in read[7:]])
    for where, graph in sources:
        for i, q in _matches(where, graph, patterns):
            kind = read[i]
            if i < 3:
                changes.setdefault(q.subject, [None, None, None])[i] = q.object
            elif kind == "sortOrder":
                if re.fullmatch(r"-?\d+", q.object.value):
                    orders[q.subject] = int(q.object.value)
            elif kind == "isClosed":
                flagged.add(q.subject)
                if q.object.value == "true":
                    closed.add(q.subject)
            elif kind == "isWon":
                won_told.add(q.subject)
                if q.object.value == "true":
                    won.add(q.subject)
            elif kind == "probability":
                probabilities[q.subject] = q.object.value
            elif kind == "SalesStage":
                defined.add(q.subject)
            else:
                deals.add(q.subject)
    by_deal = {}
    for deal, stage, at in changes.values():
        if deal is not None and stage is not None and at is not None:
            by_deal.setdefault(deal, set()).add((at.value, stage))
    base = intervals_graph(system)
    xsd_datetime, xsd_integer = ox.NamedNode(XSD + "dateTime"), ox.NamedNode(XSD + "integer")
    stage_interval, interval_of, interval_stage, started_at, ended_at, duration_days = (
        ox.NamedNode(OKG + name) for name in ("StageInterval", "intervalOf", "intervalStage", "startedAt", "endedAt",
                                              "durationDays"))
    inferred = list(infer_stages(deals, changes, by_deal, orders, closed, won, probabilities, defined, flagged))
    if scope is not None:
        scope.start(base, changes, everything=bool(inferred))  # an inferred stage depends on every deal
    yield from inferred
    del inferred
    flags = list(_flags_from_stage(deals, changes, closed, won, defined | set(orders), flagged, won_told))
    yield from flags
    won_now = {s for s, p, o in flags if p.value == OKG + "isWon" and o.value == "true"} | won
    yield from deal_patterns(sources, deals, won_now)
    del probabilities, won, won_now
    yield from _stage_summary(deals, changes, by_deal, orders, closed)
    del deals
    wanted_deal = scope.wanted if scope is not None else (lambda deal: True)
    yield from state_spans({c: v for c, v in changes.items() if wanted_deal(v[0])} if scope is not None else changes,
                           closed)
    stays = {}  # (closed deal, open stage) -> days of its finished stays there (of every deal: for the medians)
    for deal in sorted(by_deal, key=lambda n: n.value):
        runs = []
        for at, stage in sorted(by_deal[deal], key=lambda item: (item[0], item[1].value)):
            if not runs or runs[-1][1] != stage:
                runs.append((at, stage))
        local = quote(deal.value.rsplit("/", 1)[-1], safe="")
        made = wanted_deal(deal)
        for n, (start, stage) in enumerate(runs):
            interval = ox.NamedNode(f"{base}/{local}/{n + 1}")
            if made:
                yield from [(interval, RDF_TYPE, stage_interval), (interval, interval_of, deal),
                            (interval, interval_stage, stage),
                            (interval, started_at, ox.Literal(start, datatype=xsd_datetime))]
            if n + 1 < len(runs):
                end = runs[n + 1][0]
                days = (date.fromisoformat(end[:10]) - date.fromisoformat(start[:10])).days
                if made:
                    yield from [(interval, ended_at, ox.Literal(end, datatype=xsd_datetime)),
                                (interval, duration_days, ox.Literal(str(days), datatype=xsd_integer))]
                if deal in closed and stage not in closed:  # as win-patterns counted it: any stage not closed
                    stays[(deal, stage)] = stays.get((deal, stage), 0) + days
    yield from _slow_deals(stays)


class DeriveScope:
    """Which deals a re-ingest makes the bulky derived facts of: their stage intervals and the
    states of their stage changes (:func:`state_spans`), which are most of the derived graph. The
    facts of each deal itself (its flags, patterns, furthest and last stage, slower than median),
    of inferred stages and of hierarchy spells depend on other deals or accounts too, and are made
    for all of them each time (they are few). ``deals``: the deals whose stage changes were added,
    changed or removed (the others' intervals and states are as before), or None for every deal.
    After the facts are made, :meth:`untouched` tells which derived subjects were left as they are."""

    def __init__(self, deals):
        self.deals = deals
        self.locals, self.base, self.left = set(), None, set()

    def start(self, base, changes, everything=False):
        """Called by :func:`stage_intervals` once it has read the stage changes (``changes``: subject
        -> [deal, stage, time]): ``everything`` when a fact every deal depends on changed."""
        if everything:
            self.deals = None
        self.base = base
        if self.deals is None:
            return
        self.locals = {quote(deal.value.rsplit("/", 1)[-1], safe="") for deal in self.deals}
        self.left = {change for change, (deal, _, _) in changes.items() if deal is not None and deal not in self.deals}

    @property
    def remade(self):
        """How many deals' intervals and states were made, when the facts were made in this scope
        (None: they were made for every deal)."""
        return len(self.deals) if self.deals is not None and self.base is not None else None

    def wanted(self, deal):
        return self.deals is None or deal in self.deals

    def untouched(self, subject):
        """Whether a derived subject the facts did not name was left as it is (an interval or a stage
        change of a deal out of scope), rather than gone."""
        if self.deals is None or self.base is None:
            return False
        if subject in self.left:
            return True
        text = subject.value
        prefix = self.base + "/"
        return text.startswith(prefix) and text[len(prefix):].rsplit("/", 1)[0] not in self.locals


def _day(at):
    """The calendar day (YYYY-MM-DD) a time literal's text starts with, or None."""
    try:
        return date.fromisoformat(at.value[:10]).isoformat()
    except ValueError:
        return None


def state_spans(changes, closed):
    """When each stage change was its deal's latest, for the queries that ask what the pipeline was
    on a past day (``pipeline-as-of``, ``pipeline-movement``): they take a deal's state at the end of
    a day from its latest change by then, and at 100,000 deals reading every change for that takes
    seconds. ``okg:stateFrom`` is the day a change took effect, ``okg:stateUntil`` the day the
    deal's next change did (the changes in the order those queries pick the latest: by time, then
    IRI); a change replaced on its own day gets neither. The states at a stage not known to be
    closed also say where to find them: ``okg:stateMonth`` for each month they held at the end of
    some day, ``okg:stateOngoing`` for the latest, which holds still; those at a closed stage say
    ``okg:closedStateFrom`` (their ``okg:stateFrom`` again), which ``pipeline-movement`` scans for
    the deals that closed between its two days. ``changes``: subject -> [deal, stage, time] as
    :func:`stage_intervals` reads them; ``closed``: the closed stages."""
    by_deal = {}
    for change, (deal, stage, at) in changes.items():
        if deal is not None and stage is not None and at is not None and _day(at):
            by_deal.setdefault(deal, []).append((f"{at.value} {change.value}", change, stage))
    xsd_date, month = ox.NamedNode(XSD + "date"), ox.NamedNode(XSD + "gYearMonth")
    held_from, held_until = ox.NamedNode(OKG + "stateFrom"), ox.NamedNode(OKG + "stateUntil")
    in_month, ongoing = ox.NamedNode(OKG + "stateMonth"), ox.NamedNode(OKG + "stateOngoing")
    closed_from = ox.NamedNode(OKG + "closedStateFrom")
    still = ox.Literal("true", datatype=ox.NamedNode(XSD + "boolean"))
    for deal in sorted(by_deal, key=lambda n: n.value):
        states = sorted(by_deal[deal], key=lambda item: item[0])
        for n, (key, change, stage) in enumerate(states):
            start = key[:10]
            end = states[n + 1][0][:10] if n + 1 < len(states) else None
            if end is not None and end <= start:
                continue  # replaced the same day: never a day's latest
            yield change, held_from, ox.Literal(start, datatype=xsd_date)
            if end is not None:
                yield change, held_until, ox.Literal(end, datatype=xsd_date)
            if stage in closed:
                yield change, closed_from, ox.Literal(start, datatype=xsd_date)
                continue
            if end is None:
                yield change, ongoing, still
                continue
            last = date.fromisoformat(end) - timedelta(days=1)
            at, until = int(start[:4]) * 12 + int(start[5:7]) - 1, last.year * 12 + last.month - 1  # months counted
            for index in range(at, until + 1):
                yield change, in_month, ox.Literal(f"{index // 12:04d}-{index % 12 + 1:02d}", datatype=month)


def _later(new, old):
    """Whether literal ``new`` is greater than ``old`` as SPARQL's ``>`` says: numbers by value,
    other literals of one datatype (ISO dates and plain text) by their text; False where SPARQL's
    comparison is an error (two datatypes it cannot compare)."""
    if not isinstance(new, ox.Literal) or not isinstance(old, ox.Literal):
        return False
    kinds = new.datatype.value, old.datatype.value
    if kinds[0] in NUMERIC_DATATYPES and kinds[1] in NUMERIC_DATATYPES:
        try:
            return Decimal(new.value) > Decimal(old.value)
        except ArithmeticError:
            return False
    return kinds[0] == kinds[1] and new.value > old.value


def deal_patterns(sources, deals, won):
    """For each deal of a system, two facts win-patterns asks of every closed deal, kept at ingest
    because a query that joins them for each deal takes seconds at 100,000 deals:
    ``okg:closeDatePushed`` (a field change moved its close date later at least once) and
    ``okg:relatedAccountWonBefore`` (a parent or sibling of its account had won a deal that closed
    before this one was created). ``sources``: the (store, graph) pairs of the latest facts and the
    history; ``won``: the deals won (as exported or as :func:`_flags_from_stage` says)."""
    wanted = ("account", "createdAt", "parentAccount")
    facts = {name: {} for name in wanted}
    for where, graph in sources:
        for i, q in _matches(where, graph, [(ox.NamedNode(OKG + name), None) for name in wanted]):
            facts[wanted[i]].setdefault(q.subject, q.object)
    pushed = _close_date_pushed(sources)
    parent_of = facts["parentAccount"]
    children = {}
    for account, parent in parent_of.items():
        children.setdefault(parent, set()).add(account)
    first_win = {}  # account -> the earliest close date (text) of a deal won there
    close_dates = _first_objects(sources, won, ox.NamedNode(OKG + "closeDate"))
    for deal in won:
        account, close = facts["account"].get(deal), close_dates.get(deal)
        if account is not None and isinstance(close, ox.Literal) and close.datatype.value == XSD + "date":
            first_win[account] = min(first_win.get(account, close.value), close.value)
    boolean = ox.NamedNode(XSD + "boolean")
    for deal in sorted(deals, key=lambda n: n.value):
        account, created = facts["account"].get(deal), facts["createdAt"].get(deal)
        related = False
        if account in parent_of and isinstance(created, ox.Literal):
            parent = parent_of[account]
            day = created.value[:10]
            related = any(first_win.get(r, day) < day for r in (children.get(parent, set()) | {parent}) - {account})
        yield (deal, ox.NamedNode(OKG + "closeDatePushed"), ox.Literal(str(deal in pushed).lower(), datatype=boolean))
        yield (deal, ox.NamedNode(OKG + "relatedAccountWonBefore"),
               ox.Literal(str(related).lower(), datatype=boolean))


def _close_date_pushed(sources):
    """The deals a field change moved the close date of to a later one, in ``sources`` ((store,
    graph) pairs). The changes of the CloseDate field are found by their name and read one by one
    (a SPARQL server, which answers no such pattern, gives its whole graph, filtered here)."""
    field_name, change_of = ox.NamedNode(OKG + "fieldName"), ox.NamedNode(OKG + "fieldChangeOf")
    old_value, new_value = ox.NamedNode(OKG + "oldValue"), ox.NamedNode(OKG + "newValue")
    close_date = ox.Literal("CloseDate")
    pushed = set()
    for where, graph in sources:
        changes = {}
        try:
            for named in where.quads_for_pattern(None, field_name, close_date, graph):
                for q in where.quads_for_pattern(named.subject, None, None, graph):
                    changes.setdefault(q.subject, {}).setdefault(q.predicate, q.object)
        except NotImplementedError:
            for q in _quads(where, graph, [(p, None) for p in (field_name, change_of, old_value, new_value)]):
                changes.setdefault(q.subject, {}).setdefault(q.predicate, q.object)
        for facts in changes.values():
            if facts.get(field_name) == close_date and change_of in facts \
                    and _later(facts.get(new_value), facts.get(old_value)):
                pushed.add(facts[change_of])
    return pushed


def _first_objects(sources, subjects, predicate):
    """subject -> its first ``predicate`` value in ``sources``, for ``subjects``: read subject by
    subject, or from a SPARQL server by the predicate over its whole graph."""
    out = {}
    for where, graph in sources:
        try:
            for subject in subjects:
                for q in where.quads_for_pattern(subject, predicate, None, graph):
                    out.setdefault(subject, q.object)
        except NotImplementedError:
            for q in _quads(where, graph, [(predicate, None)]):
                if q.subject in subjects:
                    out.setdefault(q.subject, q.object)
    return out


#: stage names that say a stage is closed, and won, where no deal at the stage says so
CLOSED_NAME = re.compile(r"closed|won|lost|dead|cancel", re.I)
WON_NAME = re.compile(r"won|signed", re.I)


def _flags_from_stage(deals, changes, closed, won, known, flagged, won_told):
    """``okg:isClosed`` and ``okg:isWon`` for each deal whose export does not say (a report without
    the Closed and Won columns; Salesforce's "" for a false checkbox): as its stage is, where the
    stage is known; a deal the export says is open is not won."""
    boolean = ox.NamedNode(XSD + "boolean")

    def flag(value):
        return ox.Literal(str(value).lower(), datatype=boolean)

    for deal in deals - (flagged & won_told):
        stage = changes.get(deal, (None, None))[1]
        stage_known = stage is not None and stage in known
        if deal in flagged:
            is_closed = deal in closed
        elif stage_known:
            is_closed = stage in closed
            yield (deal, ox.NamedNode(OKG + "isClosed"), flag(is_closed))
        else:
            continue
        if deal not in won_told and (not is_closed or stage_known):
            yield (deal, ox.NamedNode(OKG + "isWon"), flag(is_closed and stage in won))


def infer_stages(deals, changes, by_deal, orders, closed, won, probabilities, defined, flagged=None):
    """The sales stages an export uses but does not define (it has no stage table): for each, its
    label (the stage's name in the IRI), open or closed and won (as most deals at it now are; by its
    name where none is), its default probability (the median of its deals' probabilities) and a
    sort order (by where it comes in the deals' histories, open stages before closed ones, then by
    probability). Each stage says it was inferred. ``orders`` and ``closed`` gain the inferred
    stages, so the intervals and the deals' furthest stages use them."""
    used = {c[1] for c in changes.values() if c[1] is not None}
    unknown = sorted(used - defined, key=lambda n: n.value)
    if not unknown:
        return
    at = {stage: [] for stage in unknown}  # the deals at each stage now
    for deal in deals:
        stage = changes.get(deal, (None, None))[1]
        if stage in at:
            at[stage].append(deal)
    position = {stage: [] for stage in unknown}  # the stage's places in each deal's path, 0 to 1
    for history in by_deal.values():
        path = []
        for _, stage in sorted(history, key=lambda item: (item[0], item[1].value)):
            if stage not in path:
                path.append(stage)
        for n, stage in enumerate(path):
            if stage in position and len(path) > 1:
                position[stage].append(n / (len(path) - 1))
    facts, chance = {}, {}
    for stage in unknown:
        name = unquote(stage.value.rsplit("/", 1)[-1])
        deals_here = at[stage]
        told = [d for d in deals_here if flagged is None or d in flagged]  # deals whose export says open or closed
        if told:
            is_closed = sum(d in closed for d in told) * 2 > len(told)
            is_won = is_closed and sum(d in won for d in told) * 2 > len(told)
        else:
            is_closed = bool(CLOSED_NAME.search(name))
            is_won = is_closed and bool(WON_NAME.search(name)) and not re.search(r"lost", name, re.I)
        values = sorted(float(probabilities[d]) for d in deals_here
                        if re.fullmatch(r"\d+(\.\d+)?", probabilities.get(d, "")))
        chance[stage] = values[len(values) // 2] if values else (100.0 if is_won else 0.0 if is_closed else None)
        facts[stage] = (name, is_closed, is_won)
    start = max(orders.values(), default=0)
    def hint(stage):
        words = facts[stage][0].casefold()
        return next((n for n, word in enumerate(STAGE_WORDS) if word in words), len(STAGE_WORDS))

    ranked = sorted(unknown, key=lambda s: (facts[s][1], sum(position[s]) / len(position[s]) if position[s] else 0.5,
                                            hint(s), chance[s] if chance[s] is not None else 0, s.value))
    boolean, decimal, integer = (ox.NamedNode(XSD + k) for k in ("boolean", "decimal", "integer"))
    for n, stage in enumerate(ranked, start=1):
        name, is_closed, is_won = facts[stage]
        orders[stage] = start + n
        if is_closed:
            closed.add(stage)
        if is_won:
            won.add(stage)
        yield from [(stage, RDF_TYPE, ox.NamedNode(OKG + "SalesStage")),
                    (stage, RDFS_LABEL, ox.Literal(name)),
                    (stage, ox.NamedNode(OKG + "isClosed"), ox.Literal(str(is_closed).lower(), datatype=boolean)),
                    (stage, ox.NamedNode(OKG + "isWon"), ox.Literal(str(is_won).lower(), datatype=boolean)),
                    (stage, ox.NamedNode(OKG + "sortOrder"), ox.Literal(str(start + n), datatype=integer)),
                    (stage, RDFS_COMMENT, ox.Literal(INFERRED_STAGE))]
        if chance[stage] is not None:
            yield stage, ox.NamedNode(OKG + "defaultProbability"), ox.Literal(f"{chance[stage]:g}", datatype=decimal)


#: words of common stage names in the order deals usually pass them (Salesforce's default sales process,
#: HubSpot's and Dynamics' default pipelines): the order of inferred stages where the history does not tell
STAGE_WORDS = ("lead", "prospect", "qualif", "discover", "needs analysis", "develop", "value proposition",
               "decision maker", "perception", "demo", "propos", "quote", "negotiat", "review", "contract",
               "commit", "close")
INFERRED_STAGE = ("inferred from the opportunities and their history: the export defines no sales stages "
                  "(no stage table)")


def _slow_deals(stays):
    """``okg:slowerThanMedian`` for each closed deal with finished stays at open stages: whether most
    of them lasted longer than the median stay at the same stage among closed deals."""
    by_stage = {}
    for (_, stage), days in stays.items():
        by_stage.setdefault(stage, []).append(days)
    twice_median = {}
    for stage, values in by_stage.items():
        values.sort()
        n = len(values)
        twice_median[stage] = values[(n + 1) // 2 - 1] + values[n // 2]
    longer, counted = {}, {}
    for (deal, stage), days in stays.items():
        counted[deal] = counted.get(deal, 0) + 1
        longer[deal] = longer.get(deal, 0) + (2 * days > twice_median[stage])
    xsd_boolean = ox.NamedNode(XSD + "boolean")
    return [(deal, ox.NamedNode(OKG + "slowerThanMedian"),
             ox.Literal("true" if 2 * longer[deal] > counted[deal] else "false", datatype=xsd_boolean))
            for deal in sorted(counted, key=lambda n: n.value)]


def _stage_summary(deals, changes, by_deal, orders, closed):
    """Each deal's furthest open stage (by sort order, in its history or now) and its last open
    stage (the latest stage change at an open stage): what the funnel and the loss analysis ask."""
    def is_open(stage):
        return stage in orders and stage not in closed

    out = []
    for deal in sorted(deals, key=lambda n: n.value):
        now = changes.get(deal, [None, None, None])[1]  # the deal's own okg:stage
        history = by_deal.get(deal, set())
        reached = {stage for _, stage in history} | ({now} if now is not None else set())
        furthest = max((s for s in reached if is_open(s)), key=lambda s: (orders[s], s.value), default=None)
        if furthest is not None:
            out.append((deal, ox.NamedNode(OKG + "furthestOpenStage"), furthest))
        last = max(((at, orders[s], s.value, s) for at, s in history if is_open(s)), default=None)
        if last is not None:
            out.append((deal, ox.NamedNode(OKG + "lastOpenStage"), last[3]))
    return out


def derived_facts(store, system, facts=None, scope=None, as_of=None):
    """Everything the system's intervals graph holds: its stage intervals (:func:`stage_intervals`)
    and its accounts' hierarchy spells (:func:`hierarchy_spells`). ``facts`` is (store, graph) where
    the system's latest facts are when not in ``store``: an ingest's in-memory copy of them;
    ``scope`` (a :class:`DeriveScope`): the deals whose intervals and states are made, the others'
    are left out; ``as_of``: the date of a snapshot not described in ``store`` yet."""
    yield from stage_intervals(store, system, facts, scope)
    yield from hierarchy_spells(store, system, facts, as_of)


def hierarchy_spells(store, system, facts=None, as_of=None):
    """An ``okg:HierarchySpell`` for each stretch of time over which an account of ``system`` kept
    the same direct and ultimate parent: from its current parent and the ``okg:ParentChange`` s
    of its history, which tell the parent before each change. The first spell starts at the
    system's first snapshot; each ends where a parent change on its path (its own or an
    ancestor's) begins the next. So "the hierarchy on a day" is one spell per account, without
    keeping each snapshot whole. ``as_of``: the date of a snapshot not described in ``store`` yet
    (the first ingest derives before it describes)."""
    dates = sorted({a for _, s, a in snapshots(store) if s == system} | ({str(as_of)} if as_of else set()))
    if not dates:
        return
    where, graph = _latest_facts(store, system, facts)
    parent_of = {}
    patterns = [(RDF_TYPE, ox.NamedNode(OKG + "Account")), (ox.NamedNode(PARENT), None)]
    found = _matches(where, graph, patterns)  # 0: an account, 1: a parent link
    for i, q in found:
        if i == 0:
            parent_of.setdefault(q.subject, None)
    for i, q in found:
        if i == 1 and q.subject in parent_of:
            parent_of[q.subject] = q.object
    events = {}  # event -> {"account", "date", "previous"}
    parts = {"parentChangeOf": "account", "changedAt": "date", "previousParent": "previous"}
    names = list(parts.values())
    for i, q in _matches(store, ox.NamedNode(history_graph(system)), [(ox.NamedNode(OKG + p), None) for p in parts]):
        events.setdefault(q.subject, {})[names[i]] = q.object
    undo = {}  # day -> [(account, parent before that day)]
    for event in events.values():
        if "account" in event and "date" in event and event["account"] in parent_of:
            day = event["date"].value[:10]
            if day > dates[0]:
                undo.setdefault(day, []).append((event["account"], event.get("previous")))
    days = [dates[0]] + sorted(undo)
    states = [dict(parent_of)]  # the parents from each day on, newest first
    for day in reversed(days[1:]):
        state = dict(states[-1])
        for account, previous in undo[day]:
            state[account] = previous
        states.append(state)
    states.reverse()
    spells = {}  # account -> (start day, direct, ultimate) of its open spell
    accounts = sorted(parent_of, key=lambda n: n.value)
    for day, state in zip(days, states):
        for account in accounts:
            now = (state.get(account), _top(account, state))
            open_spell = spells.get(account)
            if open_spell is not None and open_spell[1:] == now:
                continue
            if open_spell is not None:
                yield from _spell(account, *open_spell, day, system)
            spells[account] = (day,) + now
    for account, open_spell in spells.items():
        yield from _spell(account, *open_spell, None, system)


def _top(account, parents):
    """The ultimate parent of ``account`` under ``parents`` (None when it has no parent); a cycle
    ends at the last account before it closes."""
    seen, node = {account}, parents.get(account)
    top = None
    while node is not None and node not in seen:
        top = node
        seen.add(node)
        node = parents.get(node)
    return top


def _spell(account, start, direct, top, end, system):
    spell = ox.NamedNode(f"{account.value}/hierarchy/{start}")

    def moment(day):
        return ox.Literal(f"{day}T00:00:00Z", datatype=ox.NamedNode(XSD + "dateTime"))

    yield spell, RDF_TYPE, ox.NamedNode(OKG + "HierarchySpell")
    yield spell, ox.NamedNode(OKG + "spellOf"), account
    yield spell, ox.NamedNode(OKG + "recordedIn"), ox.Literal(system)
    yield spell, ox.NamedNode(OKG + "startedAt"), moment(start)
    if end is not None:
        yield spell, ox.NamedNode(OKG + "endedAt"), moment(end)
    if direct is not None:
        yield spell, ox.NamedNode(OKG + "spellParent"), direct
    if top is not None:
        yield spell, ox.NamedNode(OKG + "spellUltimateParent"), top
