"""Forecasts for a period, three ways, and a backtest that replays the history.

:func:`load_book` reads what a forecast needs from a store, once, with a few
SPARQL queries: each opportunity with its owner, team, territory, account (and
the account's top parent), products and stakeholder roles, and its stage
history (stage changes with the amount, close date and probability they
recorded, and later field changes of the amount and close date). Everything
after that is done in Python on that "book", as of any past day: a deal's
state on a day is its last history row up to that day, and every feature
reads only rows, roles and outcomes recorded up to it. So a forecast as of a
past day cannot see what happened later.

:func:`forecast` gives, for a period and a grouping, three views side by side:

- ``crm``: the CRM's own view, closed won so far and the open amounts by
  forecast category, cumulative as Salesforce rolls them up (commit forecast =
  closed + commit; best case forecast = that + best case; pipeline forecast =
  that + pipeline), and the stage-probability weighted amount;
- ``historical``: each open deal's chance of closing won in the period, from
  how often deals at the same stage, and as long in it, did so in the past
  (the conversion and slip rates the history shows);
- ``graph``: each open deal's chance from a logistic regression
  (scikit-learn) over features the graph holds (see :data:`FEATURES`), with the
  features that moved each deal's chance most.

plus worst, likely and best totals (the 10th, 50th and 90th percentiles of the
graph view's total, simulating each deal as won or not).

:func:`backtest` forecasts, at each date of a range, the periods then open
(the quarter of the date and the next), using only what was known on that
date, and compares with what closed: absolute percentage error and bias of
the period totals, Brier score and log loss of the deal chances, and a
calibration table, for each method.

Nothing here knows how the sample generator makes its data: the methods learn
from the history of whatever store they are given.
"""

import bisect
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from urllib.parse import unquote

from .errors import OkgError
from .queries import period_range

OKG = "https://w3id.org/opportunity-kg/ontology#"
PREFIXES = f"""PREFIX okg: <{OKG}>
PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
PREFIX skos: <http://www.w3.org/2004/02/skos/core#>
"""
#: how far back the models look for past deal states to learn from, and how often
TRAINING_DAYS = 540
TRAINING_STEP_DAYS = 14
#: the fewest past deal states, and won ones among them, a model is fitted on
MIN_TRAINING_STATES = 60
MIN_TRAINING_WINS = 10
#: age-in-stage buckets (days) of the historical view
AGE_BUCKETS = (14, 30, 60)
#: strength of the historical view's pull toward the stage's (and the overall) rate
SMOOTHING = 10
#: inverse strength of the logistic regression's L2 penalty (scikit-learn's C) on standardised features
REGULARISATION = 0.1
#: simulated totals behind the worst, likely and best scenarios
SIMULATIONS = 2000
DIMENSIONS = ("total", "owner", "team", "territory", "account", "product")
STEPS = {"week": 7, "fortnight": 14, "month": 30}

#: the graph view's features, each with the group it belongs to (a group can be left out)
FEATURES = {
    "historical_chance": "stage", "stage_order": "stage", "crm_probability": "stage",
    "log_days_in_stage": "timing", "log_age_days": "timing", "log_days_to_period_end": "timing",
    "days_past_close_date": "timing", "log_days_to_close_date": "timing",
    "stage_x_days_to_period_end": "timing", "stage_x_days_to_close_date": "timing",
    "regressions": "history", "close_date_pushes": "history",
    "economic_buyer": "stakeholders", "decision_maker": "stakeholders", "champion": "stakeholders",
    "stakeholders": "stakeholders",
    "hierarchy_win_rate": "accounts", "hierarchy_closed": "accounts", "log_size_vs_hierarchy": "accounts",
    "owner_win_rate": "sellers", "owner_closed": "sellers", "team_win_rate": "sellers",
    "log_amount": "deal",
}


@dataclass
class Stage:
    iri: str
    label: str
    order: float
    closed: bool
    won: bool
    probability: float | None
    category: str | None


@dataclass
class Deal:
    iri: str
    id: str
    name: str
    created: date | None
    owner: str = "(no owner)"
    team: str = "(no team)"
    territory: str = "(no territory)"
    account: str = "(no account)"
    top: str | None = None
    products: list = field(default_factory=list)  # (product, amount)
    roles: list = field(default_factory=list)  # (day added, contact, kind or None)
    rows: list = field(default_factory=list)  # (moment, stage IRI, amount, close date, probability, category)
    edits: list = field(default_factory=list)  # (moment, "Amount" | "CloseDate", value)
    times: list = field(default_factory=list)  # the rows' moments, for bisecting


@dataclass
class State:
    """A deal as it stood at the end of a day."""
    stage: Stage
    amount: float
    close: date | None
    probability: float
    category: str
    entered: datetime  # when it came to its current stage
    regressions: int
    pushes: int


@dataclass
class Book:
    """What the forecasts read from a store."""
    deals: dict
    stages: dict
    as_of: date | None
    history_rows: int = 0


def parse_day(text, field):
    """A YYYY-MM-DD parameter as a date (None when empty); an :class:`OkgError` naming the field otherwise."""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise OkgError(f"{field} must be a date (YYYY-MM-DD), not {text!r}", field=field, value=text) from None


def _day(moment):
    return date.fromisoformat(moment[:10]) if moment else None


def _moment(text):
    return datetime.fromisoformat(text[:19])


def _rows(store, timeout, query):
    from .store import select_records

    return select_records(store, PREFIXES + query, timeout)


def _tail(iri):
    """The last part of an IRI, decoded: what a record is called where nothing else names it."""
    return unquote(iri.rsplit("/", 1)[-1].rsplit("#", 1)[-1]) if iri else iri


def shown(row, dimension):
    """A dimension as every answer shows it: its name, else its Id in the source, else the end of its
    IRI, else "(no owner)" and the like (the canned queries' fallback)."""
    iri = row.get("account" if dimension == "account" else dimension + "Iri")
    name = row.get("accountName" if dimension == "account" else dimension)
    return name or row.get(dimension + "Id") or _tail(iri) or f"(no {dimension})"


def load_book(store, timeout=600):
    """Read the opportunities, stages, roles and stage history the forecasts need from ``store``
    (each of its queries under ``timeout`` seconds)."""
    stages = {}
    for r in _rows(store, timeout, """SELECT ?stage ?label ?order ?closed ?won ?probability ?category WHERE {
        ?stage a okg:SalesStage .
        OPTIONAL { ?stage rdfs:label ?label } OPTIONAL { ?stage okg:sortOrder ?order }
        OPTIONAL { ?stage okg:isClosed ?closed } OPTIONAL { ?stage okg:isWon ?won }
        OPTIONAL { ?stage okg:defaultProbability ?probability } OPTIONAL { ?stage okg:forecastCategory ?category } }"""):
        stages[r["stage"]] = Stage(r["stage"], r["label"] or _tail(r["stage"]), float(r["order"] or 0),
                                   r["closed"] == "true", r["won"] == "true",
                                   float(r["probability"]) if r["probability"] else None, r["category"])
    tops = {r["account"]: r["top"] for r in _rows(store, timeout, """SELECT ?account ?top WHERE {
        ?account a okg:Account ; okg:parentAccount* ?top . FILTER NOT EXISTS { ?top okg:parentAccount ?above } }""")}
    deals = {}
    for r in _rows(store, timeout, """SELECT ?deal ?id ?name ?created ?ownerIri ?owner ?ownerId ?teamIri ?team ?teamId
                                             ?territoryIri ?territory ?territoryId ?account ?accountName ?accountId WHERE {
        ?deal a okg:Opportunity .
        OPTIONAL { ?deal okg:sourceId ?id } OPTIONAL { ?deal rdfs:label ?name } OPTIONAL { ?deal okg:createdAt ?created }
        OPTIONAL { ?deal okg:owner ?ownerIri . OPTIONAL { ?ownerIri rdfs:label ?owner } OPTIONAL { ?ownerIri okg:sourceId ?ownerId }
                   OPTIONAL { ?ownerIri okg:team ?teamIri OPTIONAL { ?teamIri rdfs:label ?team }
                              OPTIONAL { ?teamIri okg:sourceId ?teamId } } }
        OPTIONAL { ?deal okg:territory ?territoryIri OPTIONAL { ?territoryIri rdfs:label ?territory }
                   OPTIONAL { ?territoryIri okg:sourceId ?territoryId } }
        OPTIONAL { ?deal okg:account ?account . OPTIONAL { ?account rdfs:label ?accountName }
                   OPTIONAL { ?account okg:sourceId ?accountId } } }"""):
        deals[r["deal"]] = Deal(r["deal"], r["id"] or _tail(r["deal"]), r["name"] or r["id"] or _tail(r["deal"]),
                                _day(r["created"]), shown(r, "owner"), shown(r, "team"), shown(r, "territory"),
                                shown(r, "account"), tops.get(r["account"], r["account"]))
    count = 0
    for r in _rows(store, timeout, """SELECT ?deal ?at ?stage ?amount ?close ?probability ?category WHERE {
        ?change okg:changeOf ?deal ; okg:changedAt ?at ; okg:stage ?stage .
        OPTIONAL { ?change okg:amount ?amount } OPTIONAL { ?change okg:closeDate ?close }
        OPTIONAL { ?change okg:probability ?probability } OPTIONAL { ?change okg:forecastCategory ?category } }"""):
        if r["deal"] in deals and r["stage"] in stages:
            count += 1
            deals[r["deal"]].rows.append((_moment(r["at"]), r["stage"], float(r["amount"]) if r["amount"] else None,
                                          _day(r["close"]), float(r["probability"]) if r["probability"] else None,
                                          r["category"]))
    for r in _rows(store, timeout, """SELECT ?deal ?at ?name ?value WHERE {
        ?change okg:fieldChangeOf ?deal ; okg:changedAt ?at ; okg:fieldName ?name ; okg:newValue ?value .
        FILTER (?name IN ("Amount", "CloseDate")) }"""):
        if r["deal"] in deals:
            deals[r["deal"]].edits.append((_moment(r["at"]), r["name"], r["value"]))
    for r in _rows(store, timeout, """SELECT ?deal ?contact ?created ?kind WHERE {
        ?role okg:roleOn ?deal ; okg:roleOf ?contact .
        OPTIONAL { ?role okg:createdAt ?created }
        OPTIONAL { ?role okg:roleType ?roleType }
        OPTIONAL { ?role okg:roleName ?roleName }
        BIND (LCASE(STR(COALESCE(?roleName, ""))) AS ?nameText)
        OPTIONAL { ?named a okg:StakeholderRole ; skos:notation|rdfs:label ?text FILTER (LCASE(STR(?text)) = ?nameText) }
        BIND (COALESCE(?roleType, ?named) AS ?kind) }"""):
        if r["deal"] in deals:
            deal = deals[r["deal"]]
            deal.roles.append((_day(r["created"]) or deal.created, r["contact"], (r["kind"] or "").replace(OKG, "")))
    for r in _rows(store, timeout, """SELECT ?deal ?product ?amount WHERE {
        ?item okg:lineItemOf ?deal . OPTIONAL { ?item okg:amount ?amount }
        OPTIONAL { ?item okg:product ?productIri . OPTIONAL { ?productIri rdfs:label ?product } } }"""):
        if r["deal"] in deals:
            deals[r["deal"]].products.append((r["product"] or "(no product)", float(r["amount"] or 0)))
    as_of = max((_day(r["asOf"]) for r in _rows(store, timeout, "SELECT ?asOf WHERE { ?s a okg:Snapshot ; okg:asOf ?asOf }")),
                default=None)
    if as_of:
        # the deal as the export shows it is its state at the end of the as-of day (a seller may have
        # changed the probability without a history row)
        moment = datetime.combine(as_of, datetime.max.time().replace(microsecond=0))
        for r in _rows(store, timeout, """SELECT ?deal ?stage ?label ?closed ?won ?amount ?close ?probability ?category WHERE {
            ?deal a okg:Opportunity ; okg:stage ?stage .
            OPTIONAL { ?stage rdfs:label ?label } OPTIONAL { ?deal okg:isClosed ?closed } OPTIONAL { ?deal okg:isWon ?won }
            OPTIONAL { ?deal okg:amount ?amount } OPTIONAL { ?deal okg:closeDate ?close }
            OPTIONAL { ?deal okg:probability ?probability } OPTIONAL { ?deal okg:forecastCategory ?category } }"""):
            if r["stage"] not in stages:  # an export without its stage table: the deal says whether it is closed
                stages[r["stage"]] = Stage(r["stage"], r["label"] or _tail(r["stage"]), 0.0,
                                           r["closed"] == "true", r["won"] == "true", None, None)
            if r["deal"] in deals:
                deals[r["deal"]].rows.append((moment, r["stage"], float(r["amount"]) if r["amount"] else None,
                                              _day(r["close"]), float(r["probability"]) if r["probability"] else None,
                                              r["category"]))
    for deal in deals.values():
        deal.rows.sort(key=lambda row: row[0])
        deal.edits.sort()
        deal.times = [row[0] for row in deal.rows]
    return Book(deals, stages, as_of, count)


def state_on(book, deal, day):
    """The deal as it stood at the end of ``day``, from its history rows up to then (None before its first)."""
    end = datetime.combine(day, datetime.max.time())
    upto = bisect.bisect_right(deal.times, end)
    if not upto:
        return None
    rows = deal.rows[:upto]
    moment, stage_iri, amount, close, probability, category = rows[-1]
    stage = book.stages[stage_iri]
    # when the deal came to its current stage, how often it moved back, how often the close date was pushed
    entered, regressions, pushes = rows[0][0], 0, 0
    for before, after in zip(rows, rows[1:]):
        if after[1] != before[1]:
            entered = after[0]
            regressions += book.stages[after[1]].order < book.stages[before[1]].order
        if before[3] and after[3] and after[3] > before[3]:
            pushes += 1
    for at, name, value in deal.edits:  # amount and close-date edits recorded after the last row
        if moment < at <= end:
            try:
                if name == "Amount":
                    amount = float(value)
                else:
                    new = date.fromisoformat(value[:10])
                    pushes += bool(close and new > close)
                    close = new
            except ValueError:
                continue
    chance = probability if probability is not None else stage.probability
    if chance is None:
        chance = 100.0 if stage.won else 0.0
    kind = (category or stage.category or "").replace(OKG, "")
    return State(stage, amount or 0.0, close, chance, kind, entered, regressions, pushes)


def _logit(p):
    p = min(max(p, 0.01), 0.99)
    return math.log(p / (1 - p))


def quarter_of(day):
    start = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    end = date(start.year + (start.month == 10), (start.month + 2) % 12 + 1, 1)
    return start, end


class _Records:
    """Closed deals' outcomes in time order, per key, to count wins and losses before a day."""

    def __init__(self):
        self.days = defaultdict(list)
        self.wins = defaultdict(list)

    def add(self, key, day, won):
        self.days[key].append((day, won))

    def freeze(self):
        for key, items in self.days.items():
            items.sort()
            self.wins[key] = [0]
            for _, won in items:
                self.wins[key].append(self.wins[key][-1] + won)
            self.days[key] = [d for d, _ in items]

    def before(self, key, day):
        """(won, closed) among the key's deals that closed before ``day``."""
        days = self.days.get(key)
        if not days:
            return 0, 0
        n = bisect.bisect_left(days, day)
        return self.wins[key][n], n


class Learner:
    """Both models, fitted on the deal states of the past as known on one day."""

    def __init__(self, book, day, leave_out=()):
        self.book, self.day, self.leave_out = book, day, set(leave_out)
        # outcomes known on the day: deals whose state then was closed, with their close date
        self.closed = {}
        owners, teams, hierarchies = _Records(), _Records(), _Records()
        self.won_sizes = defaultdict(list)
        for deal in book.deals.values():
            state = state_on(book, deal, day)
            if state and state.stage.closed:
                closed_on = state.close or deal.rows[-1][0].date()
                self.closed[deal.iri] = (state.stage.won, closed_on, state.amount)
                owners.add(deal.owner, closed_on, state.stage.won)
                teams.add(deal.team, closed_on, state.stage.won)
                hierarchies.add(deal.top, closed_on, state.stage.won)
                if state.stage.won:
                    self.won_sizes[deal.top].append((closed_on, state.amount))
        for records in (owners, teams, hierarchies):
            records.freeze()
        self.owners, self.teams, self.hierarchies = owners, teams, hierarchies
        for sizes in self.won_sizes.values():
            sizes.sort()
        self._fit()

    # --- what the models learn from -------------------------------------------------------

    def examples(self):
        """(deal, day, state, period end, won in that period) for deal states of the past whose
        period (the quarter of their close date then) was over by the learner's day."""
        out = []
        first = self.day - timedelta(days=TRAINING_DAYS)
        for deal in self.book.deals.values():
            if not deal.rows or deal.rows[0][0].date() > self.day:
                continue
            known = self.closed.get(deal.iri)
            t = max(first, deal.rows[0][0].date())
            while t < self.day:
                state = state_on(self.book, deal, t)
                if state and not state.stage.closed and state.close:
                    start, end = quarter_of(state.close)
                    # only periods over by the day: for one still running, the deals that have already
                    # closed are mostly the early losses, and learning from them alone would bias the rates low
                    if t < end <= self.day:
                        won = bool(known and known[0] and start <= known[1] < end)
                        out.append((deal, t, state, end, won))
                t += timedelta(days=TRAINING_STEP_DAYS)
        return out

    def features(self, deal, day, state, period_end):
        won, closed = self.hierarchies.before(deal.top, day)
        owner_won, owner_closed = self.owners.before(deal.owner, day)
        team_won, team_closed = self.teams.before(deal.team, day)
        kinds = {kind for added, _, kind in deal.roles if added is None or added <= day}
        people = {contact for added, contact, _ in deal.roles if added is None or added <= day}
        sizes = [a for d, a in self.won_sizes.get(deal.top, []) if d < day]
        typical = sorted(sizes)[len(sizes) // 2] if sizes else None
        progress = state.stage.order / self.last_order
        to_end = math.log1p(max(0, (period_end - day).days))
        to_close = math.log1p(max(0, (state.close - day).days)) if state.close else 0.0
        values = {
            "log_days_to_close_date": to_close,
            "stage_x_days_to_period_end": progress * to_end,
            "stage_x_days_to_close_date": progress * to_close,
            "historical_chance": _logit(self.historical(state, day)),
            "stage_order": state.stage.order,
            "crm_probability": _logit(state.probability / 100),
            "log_days_in_stage": math.log1p(max(0, (day - state.entered.date()).days)),
            "log_age_days": math.log1p(max(0, (day - (deal.created or deal.rows[0][0].date())).days)),
            "log_days_to_period_end": to_end,
            "days_past_close_date": max(0, (day - state.close).days) / 30 if state.close else 0,
            "regressions": state.regressions,
            "close_date_pushes": state.pushes,
            "economic_buyer": float("EconomicBuyer" in kinds),
            "decision_maker": float("DecisionMaker" in kinds),
            "champion": float("Champion" in kinds),
            "stakeholders": len(people),
            "hierarchy_win_rate": (won + 1) / (closed + 2),
            "hierarchy_closed": math.log1p(closed),
            "log_size_vs_hierarchy": math.log((state.amount + 1) / (typical + 1)) if typical else 0.0,
            "owner_win_rate": (owner_won + 1) / (owner_closed + 2),
            "owner_closed": math.log1p(owner_closed),
            "team_win_rate": (team_won + 1) / (team_closed + 2),
            "log_amount": math.log1p(state.amount),
        }
        # which stage, and whether the period is the one the day falls in or a later one: cells the
        # model weighs separately (deals late in the process close sooner than their close date says)
        later = period_end - day > timedelta(days=92)
        for name, cell in self.cells.items():
            values[name] = float(cell == (state.stage.iri, later))
        return [values[name] for name in self.names]

    @staticmethod
    def age_bucket(days):
        return sum(days > edge for edge in AGE_BUCKETS)

    def _fit(self):
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        examples = self.examples()
        wins = sum(e[4] for e in examples)
        if len(examples) < MIN_TRAINING_STATES or wins < MIN_TRAINING_WINS or wins == len(examples):
            raise OkgError(
                f"the history before {self.day} is too short to learn from: {len(examples)} past deal states with a "
                f"known outcome, {wins} of them won; at least {MIN_TRAINING_STATES} and {MIN_TRAINING_WINS} won are "
                f"needed (the store needs a stage history: Salesforce OpportunityHistory, or several snapshots)")
        self.training_states, self.training_wins = len(examples), wins
        # the historical view: won rate by stage and age in stage, pulled toward the stage's and the overall rate
        overall = wins / len(examples)
        by_stage, by_key = defaultdict(lambda: [0, 0]), defaultdict(lambda: [0, 0])
        for deal, t, state, _, won in examples:
            key = (state.stage.iri, self.age_bucket((t - state.entered.date()).days))
            for table, k in ((by_stage, state.stage.iri), (by_key, key)):
                table[k][0] += won
                table[k][1] += 1
        self.stage_rate = {k: (w + SMOOTHING * overall) / (n + SMOOTHING) for k, (w, n) in by_stage.items()}
        self.key_rate = {k: (w + SMOOTHING * self.stage_rate[k[0]]) / (n + SMOOTHING) for k, (w, n) in by_key.items()}
        self.overall = overall
        self.last_order = max((st.order for st in self.book.stages.values() if not st.closed), default=1) or 1
        # the graph view
        self.names = [n for n, group in FEATURES.items() if group not in self.leave_out]
        self.cells = {}
        if "stage" not in self.leave_out:
            for iri, st in sorted(self.book.stages.items(), key=lambda item: (item[1].order, item[0])):
                if not st.closed:
                    for later in (False, True):
                        name = f"at {st.label}, closing {'in a later quarter' if later else 'this quarter'}"
                        self.cells[name if name not in self.cells else f"{name} <{iri}>"] = (iri, later)
        self.names += list(self.cells)
        x = np.array([self.features(d, t, s, end) for d, t, s, end, _ in examples], dtype=float)
        y = np.array([won for *_, won in examples], dtype=int)
        self.scaler = StandardScaler().fit(x)
        self.model = LogisticRegression(C=REGULARISATION, max_iter=2000).fit(self.scaler.transform(x), y)

    # --- the three views of one open deal -------------------------------------------------

    def historical(self, state, day):
        key = (state.stage.iri, self.age_bucket((day - state.entered.date()).days))
        return self.key_rate.get(key, self.stage_rate.get(state.stage.iri, self.overall))

    def graph(self, deals):
        """[(chance, [(feature, contribution to the log-odds)...])] for [(deal, day, state, period end)]."""
        import numpy as np

        if not deals:
            return []
        x = self.scaler.transform(np.array([self.features(*d) for d in deals], dtype=float))
        chances = self.model.predict_proba(x)[:, 1]
        contributions = x * self.model.coef_[0]
        out = []
        for chance, row in zip(chances, contributions):
            top = sorted(zip(self.names, row), key=lambda item: -abs(item[1]))[:3]
            out.append((float(chance), [(name, float(value)) for name, value in top]))
        return out


def _groups(deal, by, amount):
    """(group, share of the amount) pairs of a deal for a dimension."""
    if by == "product":
        total = sum(a for _, a in deal.products)
        if not deal.products or total <= 0:
            return [("(no line items)", amount)]
        return [(name, amount * a / total) for name, a in deal.products]
    return [({"total": "total", "owner": deal.owner, "team": deal.team, "territory": deal.territory,
              "account": deal.account}[by], amount)]


def _open_in_period(book, day, start, end):
    """The deals open at the end of ``day`` with their close date in [start, end), and the amount won so far
    there, as (open [(deal, state)], won [(deal, state)])."""
    open_deals, won = [], []
    for deal in book.deals.values():
        state = state_on(book, deal, day)
        if state is None or state.close is None or not start <= state.close < end:
            continue
        if state.stage.won:
            won.append((deal, state))
        elif not state.stage.closed:
            open_deals.append((deal, state))
    return open_deals, won


def forecast(book, period, by="total", as_of=None, leave_out=(), deals=False):
    """The forecast of ``period`` as known at the end of ``as_of`` (default: the store's as-of date),
    grouped ``by`` one of :data:`DIMENSIONS`. Returns a dict with ``rows`` (one per group; with
    ``deals``, ``deals`` too: each open deal's three chances and the features that moved the graph view's)."""
    import numpy as np

    if by not in DIMENSIONS:
        raise OkgError(f"cannot group a forecast by {by!r}; use one of {', '.join(DIMENSIONS)}", field="by")
    day = as_of or book.as_of
    if day is None:
        raise OkgError("the store has no snapshot, so it has no as-of date; give one", field="as_of")
    try:
        start, end = period_range(period or "")
    except ValueError:
        raise OkgError(f"the period must be 2026, 2026-H2, 2026-Q4 or 2026-11, not {period!r}", field="period",
                       value=period) from None
    if end <= day:
        raise OkgError(f"the period {period} ended before {day}: there is nothing left to forecast; "
                       f"use okg backtest to compare past forecasts with what closed", field="period")
    try:
        learner, note = Learner(book, day, leave_out), None
    except OkgError as exc:  # without history the CRM's own view still stands
        learner, note = None, f"{exc.message}; only the CRM view is given"
    open_deals, won = _open_in_period(book, day, start, end)
    graph = learner.graph([(d, day, s, end) for d, s in open_deals]) if learner else [(None, [])] * len(open_deals)
    rows = defaultdict(lambda: defaultdict(float))
    simulated = defaultdict(list)
    listed = []
    for deal, state in won:
        for group, share in _groups(deal, by, state.amount):
            rows[group]["closed_won"] += share
    for (deal, state), (chance, reasons) in zip(open_deals, graph):
        history = learner.historical(state, day) if learner else None
        for group, share in _groups(deal, by, state.amount):
            row = rows[group]
            row["open_deals"] += 1
            category = {"Commit": "commit", "BestCase": "best_case", "Pipeline": "pipeline"}.get(state.category,
                                                                                                 "omitted")
            row[category] += share
            row["crm_weighted"] += share * state.probability / 100
            if learner:
                row["historical"] += share * history
                row["graph"] += share * chance
                simulated[group].append((share, chance))
        if deals:
            listed.append({"opportunity_id": deal.id, "opportunity_name": deal.name, "owner": deal.owner,
                           "stage": state.stage.label, "amount": round(state.amount, 2),
                           "close_date": state.close.isoformat(), "crm_probability": round(state.probability / 100, 3),
                           "historical_probability": round(history, 3) if learner else None,
                           "graph_probability": round(chance, 3) if learner else None,
                           "moved_by": "; ".join(f"{name} {value:+.2f}" for name, value in reasons)})
    generator = np.random.default_rng(0)
    out = []
    for group in sorted(rows):
        row = rows[group]
        base = row["closed_won"]
        totals = np.full(SIMULATIONS, base)
        for share, chance in simulated[group]:
            totals += share * (generator.random(SIMULATIONS) < chance)
        worst, likely, best = (float(v) for v in np.percentile(totals, [10, 50, 90])) if learner else (None,) * 3
        commit = base + row["commit"]
        out.append({
            "group": group, "open_deals": int(row["open_deals"]), "closed_won": base, "commit": row["commit"],
            "best_case": row["best_case"], "pipeline": row["pipeline"], "commit_forecast": commit,
            "best_case_forecast": commit + row["best_case"],
            "pipeline_forecast": commit + row["best_case"] + row["pipeline"],
            "crm_weighted": base + row["crm_weighted"], "historical": base + row["historical"] if learner else None,
            "graph": base + row["graph"] if learner else None, "worst": worst, "likely": likely, "best": best})
    for row in out:
        for key, value in row.items():
            if isinstance(value, float):
                row[key] = round(value, 2)
    result = {"period": period, "as_of": day.isoformat(), "by": by, "rows": out,
              "training_states": learner.training_states if learner else 0}
    if note:
        result["note"] = note
    if deals:
        result["deals"] = sorted(listed, key=lambda d: -d["amount"])
    return result


# --- the backtest ----------------------------------------------------------------------------------

METHODS = ("crm", "historical", "graph")


def _calibration(pairs, bins=10):
    table = []
    for i in range(bins):
        low, high = i / bins, (i + 1) / bins
        inside = [(p, y) for p, y in pairs if low <= p < high or (i == bins - 1 and p == 1.0)]
        if inside:
            table.append({"from": low, "to": high, "deals": len(inside),
                          "mean_chance": round(sum(p for p, _ in inside) / len(inside), 3),
                          "won_rate": round(sum(y for _, y in inside) / len(inside), 3)})
    return table


def backtest(book, start, end, step="week", periods=1, leave_out=()):
    """Forecast, at each date from ``start`` to ``end`` every ``step``, the quarter the date falls in
    (and, with ``periods`` 2 or more, the quarters after it) with what was known on that date, and
    compare with what closed. Quarters not over by the store's as-of date are left out (what closed
    in them is not known yet). Returns a dict: ``methods`` (per method ``brier``, ``log_loss``,
    ``ape``, ``bias``, ``calibration``), ``points`` (date, period, actual and each method's total) and
    ``skipped``.

    The actual a forecast is compared with is what closed won in the quarter of the deals the
    forecast could see: those won in it by the date and those open then with their close date in it.
    What was won from deals created later, or moved into the quarter later, no deal-by-deal forecast
    can see; ``all_won_in_period`` shows it beside each point."""
    if step not in STEPS:
        raise OkgError(f"unknown step {step!r}; use one of {', '.join(STEPS)}", field="step")
    if book.as_of is None or not book.history_rows:
        raise OkgError("the store has no stage history, so there is nothing to replay (it needs Salesforce "
                       "OpportunityHistory or several snapshots of the same export)")
    if start > end:
        raise OkgError(f"the backtest starts ({start}) after it ends ({end})", field="from")
    final = {}
    for deal in book.deals.values():
        state = state_on(book, deal, book.as_of)
        if state and state.stage.closed:
            final[deal.iri] = (state.stage.won, state.close, state.amount)
    points, pairs, skipped = [], {m: [] for m in METHODS}, []
    day = start
    while day <= end:
        quarters = [quarter_of(day)]
        while len(quarters) < periods:
            quarters.append(quarter_of(quarters[-1][1]))
        wanted = [(s, e) for s, e in quarters if e <= book.as_of]
        skipped += [f"{day} {_label(s)}" for s, e in quarters if e > book.as_of]
        if wanted:
            learner = Learner(book, day, leave_out)
            for s, e in wanted:
                everything = sum(a for won, close, a in final.values() if won and close and s <= close < e)
                open_deals, won_so_far = _open_in_period(book, day, s, e)
                base = sum(state.amount for _, state in won_so_far)
                graph = learner.graph([(d, day, st, e) for d, st in open_deals])
                totals = dict.fromkeys(METHODS, base)
                actual = base
                for (deal, state), (chance, _) in zip(open_deals, graph):
                    outcome = final.get(deal.iri)
                    y = int(bool(outcome and outcome[0] and outcome[1] and s <= outcome[1] < e))
                    actual += y * outcome[2] if y else 0
                    chances = {"crm": state.probability / 100, "historical": learner.historical(state, day),
                               "graph": chance}
                    for method, p in chances.items():
                        totals[method] += p * state.amount
                        pairs[method].append((p, y))
                points.append({"date": day.isoformat(), "period": _label(s), "actual": round(actual, 2),
                               **{m: round(v, 2) for m, v in totals.items()},
                               "all_won_in_period": round(everything, 2)})
        day += timedelta(days=STEPS[step])
    if not points:
        raise OkgError(f"no quarter forecast between {start} and {end} has ended by the store's as-of date "
                       f"{book.as_of}, so none can be compared with what closed; start earlier", field="from")
    methods = {}
    for method in METHODS:
        scored = [p for p in points if p["actual"] > 0]
        errors = [(p[method] - p["actual"]) / p["actual"] for p in scored]
        chances = pairs[method]
        clipped = [(min(max(p, 1e-6), 1 - 1e-6), y) for p, y in chances]
        methods[method] = {
            "brier": round(sum((p - y) ** 2 for p, y in chances) / len(chances), 4) if chances else None,
            "log_loss": round(-sum(y * math.log(p) + (1 - y) * math.log(1 - p) for p, y in clipped) / len(clipped), 4)
            if clipped else None,
            "ape": round(sum(abs(e) for e in errors) / len(errors), 4) if errors else None,
            "bias": round(sum(errors) / len(errors), 4) if errors else None,
            "calibration": _calibration(chances)}
    return {"from": start.isoformat(), "to": end.isoformat(), "step": step, "periods": periods,
            "as_of": book.as_of.isoformat(),
            "forecasts": len(points), "deal_chances": len(pairs["graph"]), "methods": methods,
            "points": points, "skipped": skipped}


def _label(start):
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}"


def chart_svg(result, width=760, height=320):
    """An SVG line chart of a backtest: each method's forecast total and the actual, over the dates."""
    points = result["points"]
    series = {"actual": "#000000", "crm": "#d62728", "historical": "#ff7f0e", "graph": "#1f77b4"}
    top = max(max(p[k] for k in series) for p in points) or 1
    left, bottom, right, upper = 70, height - 40, width - 130, 20

    def xy(i, value):
        x = left + (right - left) * (i / max(1, len(points) - 1))
        return x, bottom - (bottom - upper) * value / top

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#888"/>',
             f'<line x1="{left}" y1="{upper}" x2="{left}" y2="{bottom}" stroke="#888"/>',
             f'<text x="{left - 6}" y="{upper + 4}" text-anchor="end">{top:,.0f}</text>',
             f'<text x="{left - 6}" y="{bottom}" text-anchor="end">0</text>']
    for i in (0, len(points) - 1):
        x, _ = xy(i, 0)
        parts.append(f'<text x="{x}" y="{bottom + 16}" text-anchor="middle">{points[i]["date"]} '
                     f'{points[i]["period"]}</text>')
    for n, (name, colour) in enumerate(series.items()):
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, p[name]) for i, p in enumerate(points)))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
        parts.append(f'<text x="{right + 12}" y="{upper + 14 * n + 4}" fill="{colour}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
