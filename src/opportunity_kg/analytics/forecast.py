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

from ..errors import OkgError
from ..periods import months_later, period_of, period_range, quarter_label, quarter_of
from ..vocabulary import OKG

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
#: the percentiles of the simulated total that are the worst and best scenarios (an 80% interval)
INTERVAL = (10, 90)
#: the spread (standard deviation, in log-odds) of the shift all deals' chances take together in one
#: simulated run: chances err together (a strong or weak quarter), which widens the interval of a total
CHANCE_SHIFT_SD = 0.45
#: the spread (standard deviation of the log) of new business around a past period's amount in one run
NEW_BUSINESS_SPREAD = 0.6
#: the past reference days (the same day of past quarters) whose new business (deals created after the day,
#: won within the window the period is from the day) makes the forecast of what deals not yet created bring in
NEW_BUSINESS_PERIODS = 4
#: the most new business is scaled by the growth (or shrinking) of what is created, either way
MAX_GROWTH = 3.0
#: horizon buckets (days to the period's end): up to a month, a quarter, a half, beyond
HORIZON_BUCKETS = (31, 92, 183)
HORIZON_WORDS = ("closing within a month", "within a quarter", "within a half", "beyond a half")
#: deal states this many days older weigh half as much in training (recent quarters count more)
RECENCY_HALF_LIFE_DAYS = 365
#: days at the start of the data left out of training: the deals seen there are the ones that lasted
START_GUARD_DAYS = 60
#: the most recent days of outcomes held back to calibrate the graph view and check it beats the stage view
HOLDBACK_DAYS = 91
#: the fewest held-back deal states to calibrate on (fewer: no calibration, no check)
MIN_HELD_BACK = 200
#: a deal whose close date is outside the period is listed (``--deals``) when its graph chance is at least this
LISTED_CHANCE = 0.05
DIMENSIONS = ("total", "owner", "team", "territory", "account", "product")
#: the time between backtest dates; a month is a calendar month
STEPS = {"week": 7, "fortnight": 14, "month": 30}

#: the graph view's features, each with the group it belongs to (a group can be left out)
FEATURES = {
    "historical_chance": "stage", "stage_order": "stage", "crm_probability": "stage",
    "log_days_in_stage": "timing", "log_age_days": "timing", "log_days_to_period_end": "timing",
    "days_past_close_date": "timing", "log_days_to_close_date": "timing", "close_date_inside_period": "timing",
    "stage_x_days_to_period_end": "timing", "stage_x_days_to_close_date": "timing",
    "stage_x_close_date_inside": "timing",
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
    from ..store import select_records

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


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def period_ends(day):
    """The ends (first day after) of the periods a forecast made on ``day`` is asked about: the month,
    quarter, half and year the day falls in, and the next quarter. The chances are learned for these
    horizons, and made nested over them (:meth:`Learner.chances`)."""
    ends = {period_of(day, months)[1] for months in (1, 3, 6, 12)}
    ends.add(months_later(quarter_of(day)[1], 3))
    return sorted(ends)


def horizon_bucket(days):
    """0 for a horizon of up to a month, 1 up to a quarter, 2 up to a half, 3 beyond."""
    return sum(days > edge for edge in HORIZON_BUCKETS)


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


class _Rates:
    """Won rates over nested keys, each pulled toward the rate of the key above it (a key with few
    deal states says little of its own): (horizon) -> (stage, horizon, close date inside) -> ... """

    def __init__(self, examples, levels, weights):
        self.levels = levels
        self.counts = [defaultdict(lambda: [0.0, 0.0]) for _ in levels]
        for example, weight in zip(examples, weights):
            for n, level in enumerate(levels):
                cell = self.counts[n][level(example)]
                cell[0] += weight * example.won
                cell[1] += weight
        total = sum(weights)
        self.overall = sum(w * e.won for e, w in zip(examples, weights)) / total if total else 0.0

    def rate(self, example):
        rate = self.overall
        for n, level in enumerate(self.levels):
            won, seen = self.counts[n].get(level(example), (0.0, 0.0))
            rate = (won + SMOOTHING * rate) / (seen + SMOOTHING)
        return rate


@dataclass
class Example:
    """A deal's state on a past day, a period end after it, and whether it was won before that end."""
    deal: "Deal"
    day: date
    state: State
    end: date
    won: bool = False

    @property
    def horizon(self):
        return horizon_bucket((self.end - self.day).days)

    @property
    def close_inside(self):
        return bool(self.state.close and self.state.close < self.end)

    @property
    def age(self):
        return sum((self.day - self.state.entered.date()).days > edge for edge in AGE_BUCKETS)


class Learner:
    """The views of a deal's chance, fitted on the deal states of the past as known on one day:
    ``constant`` (the won rate for the horizon), ``stage`` (by stage, horizon and whether the close
    date falls before the period ends), ``historical`` (that, by how long the deal has been at its
    stage) and ``graph`` (a logistic regression over what the graph holds, calibrated on a held-back
    window, and used only where it beats the stage view there)."""

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
        self._base = {}
        self.note = None
        self._fit()

    # --- what the models learn from -------------------------------------------------------

    def examples(self):
        """An :class:`Example` for each deal state of the past (every :data:`TRAINING_STEP_DAYS`) and each
        period end of :func:`period_ends` that was over by the learner's day, with whether the deal was won
        before that end. The first :data:`START_GUARD_DAYS` of the data are left out: deals seen there
        are the ones that lasted, which would bias the rates."""
        out = []
        starts = [deal.rows[0][0].date() for deal in self.book.deals.values() if deal.rows]
        data_start = min(starts, default=self.day) + timedelta(days=START_GUARD_DAYS)
        first = max(self.day - timedelta(days=TRAINING_DAYS), data_start)
        for deal in self.book.deals.values():
            if not deal.rows or deal.rows[0][0].date() > self.day:
                continue
            known = self.closed.get(deal.iri)
            t = max(first, deal.rows[0][0].date())
            while t < self.day:
                state = state_on(self.book, deal, t)
                if state and not state.stage.closed:
                    for end in period_ends(t):
                        if end > self.day:
                            break  # only periods over by the day: for one still running, the deals closed so
                            # far are mostly early losses, and learning from them alone would bias the rates low
                        won = bool(known and known[0] and t < known[1] < end)
                        out.append(Example(deal, t, state, end, won))
                t += timedelta(days=TRAINING_STEP_DAYS)
        return out

    def weight(self, example):
        """Recent quarters weigh more: a deal state :data:`RECENCY_HALF_LIFE_DAYS` older weighs half."""
        return 0.5 ** ((self.day - example.day).days / RECENCY_HALF_LIFE_DAYS)

    def base_features(self, deal, day, state):
        """The features of a deal on a day that do not depend on the period asked (kept per deal and day)."""
        key = (deal.iri, day)
        if key in self._base:
            return self._base[key]
        won, closed = self.hierarchies.before(deal.top, day)
        owner_won, owner_closed = self.owners.before(deal.owner, day)
        team_won, team_closed = self.teams.before(deal.team, day)
        kinds = {kind for added, _, kind in deal.roles if added is None or added <= day}
        people = {contact for added, contact, _ in deal.roles if added is None or added <= day}
        sizes = [a for d, a in self.won_sizes.get(deal.top, []) if d < day]
        typical = sorted(sizes)[len(sizes) // 2] if sizes else None
        values = {
            "stage_order": state.stage.order,
            "crm_probability": _logit(state.probability / 100),
            "log_days_in_stage": math.log1p(max(0, (day - state.entered.date()).days)),
            "log_age_days": math.log1p(max(0, (day - (deal.created or deal.rows[0][0].date())).days)),
            "log_days_to_close_date": math.log1p(max(0, (state.close - day).days)) if state.close else 0.0,
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
        facts = {"won": won, "closed": closed, "owner_won": owner_won, "owner_closed": owner_closed,
                 "team_won": team_won, "team_closed": team_closed, "people": len(people)}
        self._base[key] = (values, facts)
        return values, facts

    def features(self, example):
        values, _ = self.base_features(example.deal, example.day, example.state)
        values = dict(values)
        progress = example.state.stage.order / self.last_order
        to_end = math.log1p(max(0, (example.end - example.day).days))
        inside = float(example.close_inside)
        values.update({
            "historical_chance": _logit(self.rates["historical"].rate(example)),
            "log_days_to_period_end": to_end,
            "close_date_inside_period": inside,
            "stage_x_days_to_period_end": progress * to_end,
            "stage_x_close_date_inside": progress * inside,
            "stage_x_days_to_close_date": progress * values["log_days_to_close_date"],
        })
        # which stage, and how far off the period ends: cells the model weighs separately (deals late in
        # the process close sooner than their close date says)
        for name, cell in self.cells.items():
            values[name] = float(cell == (example.state.stage.iri, example.horizon))
        return [values[name] for name in self.names]

    def _matrix(self, examples):
        import numpy as np

        return np.array([self.features(e) for e in examples], dtype=float)

    def _fit(self):
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        examples = self.examples()
        wins = sum(e.won for e in examples)
        if len(examples) < MIN_TRAINING_STATES or wins < MIN_TRAINING_WINS or wins == len(examples):
            raise OkgError(
                f"the history before {self.day} is too short to learn from: {len(examples)} past deal states with a "
                f"known outcome, {wins} of them won; at least {MIN_TRAINING_STATES} and {MIN_TRAINING_WINS} won are "
                f"needed (the store needs a stage history: Salesforce OpportunityHistory, or several snapshots)")
        self.training_states, self.training_wins = len(examples), wins
        self.last_order = max((st.order for st in self.book.stages.values() if not st.closed), default=1) or 1
        self.names = [n for n, group in FEATURES.items() if group not in self.leave_out]
        self.cells = {}
        if "stage" not in self.leave_out:
            for iri, st in sorted(self.book.stages.items(), key=lambda item: (item[1].order, item[0])):
                if not st.closed:
                    for bucket, words in enumerate(HORIZON_WORDS):
                        name = f"at {st.label}, {words}"
                        self.cells[name if name not in self.cells else f"{name} <{iri}>"] = (iri, bucket)
        self.names += list(self.cells)
        # held back: the most recent deal states, to calibrate the graph view on and to check that it
        # beats the stage view before it is used
        cut = self.day - timedelta(days=HOLDBACK_DAYS)
        train = [e for e in examples if e.end <= cut]
        held = [e for e in examples if e.end > cut]
        usable = len(held) >= MIN_HELD_BACK and 0 < sum(e.won for e in held) < len(held) and \
            len(train) >= MIN_TRAINING_STATES and 0 < sum(e.won for e in train) < len(train)
        self.calibration = (1.0, 0.0)
        self.graph_beats_stage = True
        self.beats_stage = {"graph": True, "historical": True}
        if usable:
            self._fit_on(train)
            raw = self._raw_graph(held)
            y = np.array([e.won for e in held], dtype=int)
            logits = np.array([[_logit(p)] for p in raw])
            platt = LogisticRegression(C=100.0).fit(logits, y)
            self.calibration = (float(platt.coef_[0][0]), float(platt.intercept_[0]))
            calibrated = [self._calibrate(p) for p in raw]
            stage = [self.rates["stage"].rate(e) for e in held]
            historical = [self.rates["historical"].rate(e) for e in held]
            brier_graph = float(np.mean((np.array(calibrated) - y) ** 2))
            brier_stage = float(np.mean((np.array(stage) - y) ** 2))
            brier_historical = float(np.mean((np.array(historical) - y) ** 2))
            self.held_back = {"states": len(held), "graph_brier": round(brier_graph, 4),
                              "historical_brier": round(brier_historical, 4), "stage_brier": round(brier_stage, 4)}
            notes = []
            for view, brier in (("graph", brier_graph), ("historical", brier_historical)):
                if brier >= brier_stage:  # a learned view is used only where it beats the stage baseline
                    self.beats_stage[view] = False
                    notes.append(f"the {view} view did not beat the stage view on the {len(held):,} most recent "
                                 f"deal states held back (Brier {brier:.4f} against {brier_stage:.4f}), so it gives "
                                 f"the stage view's chances")
            self.note = "; ".join(notes) or None
            self.graph_beats_stage = self.beats_stage["graph"]
        else:
            self.held_back = None
        self._fit_on(examples)

    def _fit_on(self, examples):
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        weights = [self.weight(e) for e in examples]
        self.rates = {
            "constant": _Rates(examples, [lambda e: e.horizon], weights),
            "stage": _Rates(examples, [lambda e: e.horizon, lambda e: (e.state.stage.iri, e.horizon, e.close_inside)],
                            weights)}
        self.rates["historical"] = _Rates(
            examples, [lambda e: e.horizon, lambda e: (e.state.stage.iri, e.horizon, e.close_inside),
                       lambda e: (e.state.stage.iri, e.horizon, e.close_inside, e.age)], weights)
        x = self._matrix(examples)
        y = np.array([e.won for e in examples], dtype=int)
        self.scaler = StandardScaler().fit(x)
        self.model = LogisticRegression(C=REGULARISATION, max_iter=2000).fit(
            self.scaler.transform(x), y, sample_weight=np.array(weights))

    def _raw_graph(self, examples):
        if not examples:
            return []
        return [float(p) for p in self.model.predict_proba(self.scaler.transform(self._matrix(examples)))[:, 1]]

    def _calibrate(self, p):
        a, b = self.calibration
        return _sigmoid(a * _logit(p) + b)

    # --- the views of one open deal -------------------------------------------------------

    def chances(self, deals, start, end, reasons=False):
        """Each view's chance that each deal of ``deals`` ([(deal, state)] open on the learner's day) is won
        in [start, end): {view: [chance]}; with ``reasons``, the graph view's too, ``{"reasons": [[(words,
        effect)]]}`` (a regression's contributions per deal: only where deals are listed).

        Chances are nested: a view's chance of being won by a period end is the highest it gives for
        that end or any earlier one of :func:`period_ends`, so a period's chance is never below a
        sub-period's; a period that starts later subtracts the chance of being won before it starts."""
        day = self.day
        grid = sorted({e for e in period_ends(day) if e <= end} | {end} | ({start} if start > day else set()))
        cumulative = {}
        for view in ("constant", "stage", "historical"):
            rates = self.rates[view]
            cumulative[view] = [[rates.rate(Example(d, day, s, g)) for g in grid] for d, s in deals]
        raw = self._raw_graph([Example(d, day, s, g) for d, s in deals for g in grid])
        graph = [[self._calibrate(raw[i * len(grid) + j]) for j in range(len(grid))] for i in range(len(deals))]
        cumulative["graph"] = graph if self.graph_beats_stage else cumulative["stage"]
        if not self.beats_stage["historical"]:
            cumulative["historical"] = cumulative["stage"]
        out = {}
        for view, table in cumulative.items():
            chances = []
            for row in table:
                running, by_end = 0.0, {}
                for g, p in zip(grid, row):
                    running = max(running, p)
                    by_end[g] = running
                before = by_end[start] if start > day else 0.0
                chances.append(max(0.0, by_end[end] - before))
            out[view] = chances
        if reasons:
            out["reasons"] = [self.reasons(d, s, Example(d, day, s, end)) if self.graph_beats_stage else []
                              for d, s in deals]
        return out

    def reasons(self, deal, state, example):
        """What moved a deal's graph chance most, in words, from facts about the deal only (not the period
        asked), each fact once: [(words, effect on the log-odds)], at most three."""
        import numpy as np

        x = self.scaler.transform(np.array([self.features(example)], dtype=float))[0]
        contributions = x * self.model.coef_[0]
        by_fact = defaultdict(float)
        for name, value in zip(self.names, contributions):
            fact = REASON_OF.get(name, "stage" if name in self.cells else None)
            if fact:
                by_fact[fact] += float(value)
        values, facts = self.base_features(deal, example.day, state)
        top = sorted(by_fact.items(), key=lambda item: -abs(item[1]))[:3]
        return [(_reason_words(fact, deal, state, example.day, values, facts), effect) for fact, effect in top]


#: the facts about a deal that the graph view's features stand for: the reasons it gives
REASON_OF = {
    "stage_order": "stage", "historical_chance": "stage", "crm_probability": "probability",
    "log_days_in_stage": "days in stage", "log_age_days": "age", "log_days_to_close_date": "close date",
    "days_past_close_date": "close date", "stage_x_days_to_close_date": "close date",
    "regressions": "regressions", "close_date_pushes": "pushes", "economic_buyer": "economic buyer",
    "decision_maker": "decision maker", "champion": "champion", "stakeholders": "stakeholders",
    "hierarchy_win_rate": "account group", "hierarchy_closed": "account group", "log_size_vs_hierarchy": "size",
    "owner_win_rate": "owner", "owner_closed": "owner", "team_win_rate": "team", "log_amount": "amount",
}


def _reason_words(fact, deal, state, day, values, facts):
    """A fact about a deal in words, as an analyst would say it."""
    def plural(n, word):
        return f"{n} {word}{'' if n == 1 else 's'}"

    if fact == "stage":
        return f"at {state.stage.label}"
    if fact == "probability":
        return f"CRM probability {state.probability:g}%"
    if fact == "days in stage":
        return f"{plural((day - state.entered.date()).days, 'day')} at its stage"
    if fact == "age":
        return f"open {plural((day - (deal.created or deal.rows[0][0].date())).days, 'day')}"
    if fact == "close date":
        if not state.close:
            return "no close date"
        days = (state.close - day).days
        return f"close date in {plural(days, 'day')}" if days >= 0 else f"close date passed {plural(-days, 'day')} ago"
    if fact == "regressions":
        return f"moved back {plural(state.regressions, 'time')}" if state.regressions else "never moved back a stage"
    if fact == "pushes":
        return f"close date pushed {plural(state.pushes, 'time')}" if state.pushes else "close date never pushed"
    if fact in ("economic buyer", "decision maker", "champion"):
        return f"{'a' if values[fact.replace(' ', '_')] else 'no'} {fact} among its contacts"
    if fact == "stakeholders":
        return plural(facts["people"], "stakeholder")
    if fact == "account group":
        return f"its account group won {facts['won']} of {plural(facts['closed'], 'closed deal')}"
    if fact == "size":
        return ("larger" if values["log_size_vs_hierarchy"] > 0 else "smaller") + " than its account group's usual win"
    if fact == "owner":
        return f"{deal.owner} won {facts['owner_won']} of {plural(facts['owner_closed'], 'closed deal')}"
    if fact == "team":
        return f"{deal.team} won {facts['team_won']} of {plural(facts['team_closed'], 'closed deal')}"
    return f"amount {state.amount:,.0f}"


def _groups(deal, by, amount):
    """(group, share of the amount) pairs of a deal for a dimension."""
    if by == "product":
        total = sum(a for _, a in deal.products)
        if not deal.products or total <= 0:
            return [("(no line items)", amount)]
        return [(name, amount * a / total) for name, a in deal.products]
    return [({"total": "total", "owner": deal.owner, "team": deal.team, "territory": deal.territory,
              "account": deal.account}[by], amount)]


def _deals_on(book, day, start, end):
    """On the end of ``day``: every open deal, and the deals won so far with their close date in
    [start, end), as (open [(deal, state)], won [(deal, state)])."""
    open_deals, won = [], []
    for deal in book.deals.values():
        state = state_on(book, deal, day)
        if state is None:
            continue
        if state.stage.won:
            if state.close and start <= state.close < end:
                won.append((deal, state))
        elif not state.stage.closed:
            open_deals.append((deal, state))
    return open_deals, won


def new_business(learner, by, start, end):
    """What deals not yet created on the learner's day will bring in won within [start, end), per group:
    ({group: [amount after each reference day]}, how many reference days). The reference days are the
    same point of past quarters (the day 91, 182, ... days back, at most :data:`NEW_BUSINESS_PERIODS` of
    them) whose window of the same offset and length was over by the day and lies within the data; the
    amount for one is what deals created after it brought in, won in that window."""
    day = learner.day
    first_data = min((d.rows[0][0].date() for d in learner.book.deals.values() if d.rows), default=day)
    opens, closes = (max(start, day + timedelta(days=1)) - day).days, (end - day).days
    references = []
    k = 1
    while len(references) < NEW_BUSINESS_PERIODS and k <= 4 * NEW_BUSINESS_PERIODS:
        then = day - timedelta(days=91 * k)
        if then < first_data + timedelta(days=START_GUARD_DAYS):
            break
        if then + timedelta(days=closes) <= day:
            references.append(then)
        k += 1
    created_on = {}
    for deal in learner.book.deals.values():
        created = deal.created or (deal.rows[0][0].date() if deal.rows else None)
        if created and deal.rows:
            created_on[deal.iri] = (created, deal.rows[0][2] or 0.0)

    def created_before(moment):  # the amount of the deals created in the quarter before ``moment``
        since = moment - timedelta(days=91)
        return sum(a for c, a in created_on.values() if since < c <= moment)

    values = defaultdict(lambda: [0.0] * len(references))
    now = created_before(day)
    for n, then in enumerate(references):
        low, high = then + timedelta(days=opens), then + timedelta(days=closes)
        # business grows or shrinks: scaled by how much was created in the quarter before the day
        # against the quarter before the reference day
        before = created_before(then)
        growth = min(max(now / before, 1 / MAX_GROWTH), MAX_GROWTH) if before and now else 1.0
        for deal in learner.book.deals.values():
            known = learner.closed.get(deal.iri)
            created = created_on.get(deal.iri, (None,))[0]
            if known and known[0] and created and created > then and low <= known[1] < high:
                for group, share in _groups(deal, by, known[2]):
                    values[group][n] += share * growth
    return dict(values), len(references)


def _simulate(base, deals, new, generator, quantiles=(10, 50, 90)):
    """Worst, likely and best totals (:data:`INTERVAL` percentiles) of a group: closed so far, plus each open
    deal won or not at its chance, with a shift of all chances together drawn per run (chances err
    together: the market, the quarter's push), plus new business drawn from the past periods' amounts."""
    import numpy as np

    totals = np.full(SIMULATIONS, float(base))
    if deals:
        shares = np.array([share for share, _ in deals])
        logits = np.array([_logit(min(max(p, 1e-4), 1 - 1e-4)) for _, p in deals])
        shift = generator.normal(0.0, CHANCE_SHIFT_SD, size=(SIMULATIONS, 1))
        chances = 1 / (1 + np.exp(-(logits + shift)))
        totals += (generator.random((SIMULATIONS, len(deals))) < chances) @ shares
    if new:
        draws = np.array(new)[generator.integers(0, len(new), size=SIMULATIONS)]
        totals += draws * np.exp(generator.normal(0.0, NEW_BUSINESS_SPREAD, size=SIMULATIONS))
    return [float(v) for v in np.percentile(totals, quantiles)]


def forecast(book, period, by="total", as_of=None, leave_out=(), deals=False):
    """The forecast of ``period`` as known at the end of ``as_of`` (default: the store's as-of date),
    grouped ``by`` one of :data:`DIMENSIONS`. Returns a dict with ``rows`` (one per group; with
    ``deals``, ``deals`` too: each open deal's chances and, in words, what moved the graph view's).

    The CRM columns are the CRM's own view of the deals whose close date falls in the period. The
    learned views (``historical``, ``graph``) are the whole period: won so far, each open deal's chance
    of being won within the period whatever its close date says, and ``new_business``, what deals not
    yet created will bring in (from the same point of past periods)."""
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
    notes = []
    try:
        learner = Learner(book, day, leave_out)
        if learner.note:
            notes.append(learner.note)
    except OkgError as exc:  # without history the CRM's own view still stands
        learner = None
        notes.append(f"{exc.message}; only the CRM view is given")
    open_deals, won = _deals_on(book, day, start, end)
    views = learner.chances(open_deals, start, end, reasons=deals) if learner else None
    new, past_periods = new_business(learner, by, start, end) if learner else ({}, 0)
    if learner and not past_periods:
        notes.append("the history is too short to see how much business deals created later bring in over a "
                     "window this long, so new business (deals not yet created) is taken as 0")
    rows = defaultdict(lambda: defaultdict(float))
    simulated = defaultdict(list)
    listed = []
    for deal, state in won:
        for group, share in _groups(deal, by, state.amount):
            rows[group]["closed_won"] += share
    for n, (deal, state) in enumerate(open_deals):
        inside = state.close is not None and start <= state.close < end
        for group, share in _groups(deal, by, state.amount):
            row = rows[group]
            if inside:
                row["open_deals"] += 1
                category = {"Commit": "commit", "BestCase": "best_case", "Pipeline": "pipeline"}.get(
                    state.category, "omitted")
                row[category] += share
                row["crm_weighted"] += share * state.probability / 100
            if learner:
                row["historical"] += share * views["historical"][n]
                row["graph"] += share * views["graph"][n]
                simulated[group].append((share, views["graph"][n]))
        if deals and (inside or learner and views["graph"][n] >= LISTED_CHANCE):
            listed.append({"opportunity_id": deal.id, "opportunity_name": deal.name, "owner": deal.owner,
                           "stage": state.stage.label, "amount": round(state.amount, 2),
                           "close_date": state.close.isoformat() if state.close else None,
                           "crm_probability": round(state.probability / 100, 3) if inside else 0.0,
                           "historical_probability": round(views["historical"][n], 3) if learner else None,
                           "graph_probability": round(views["graph"][n], 3) if learner else None,
                           "moved_by": "; ".join(f"{words} ({effect:+.2f})" for words, effect in views["reasons"][n])
                           if learner else ""})
    for group, amounts in new.items():
        rows[group]["new_business"] += sum(amounts) / len(amounts)
    generator = np.random.default_rng(0)
    out = []
    for group in sorted(rows):
        row = rows[group]
        base = row["closed_won"]
        if learner:
            worst, likely, best = _simulate(base, simulated[group], new.get(group, [0.0] * past_periods), generator)
        else:
            worst = likely = best = None
        commit = base + row["commit"]
        out.append({
            "group": group, "open_deals": int(row["open_deals"]), "closed_won": base, "commit": row["commit"],
            "best_case": row["best_case"], "pipeline": row["pipeline"], "commit_forecast": commit,
            "best_case_forecast": commit + row["best_case"],
            "pipeline_forecast": commit + row["best_case"] + row["pipeline"],
            "crm_weighted": base + row["crm_weighted"],
            "new_business": row["new_business"] if learner else None,
            "historical": base + row["historical"] + row["new_business"] if learner else None,
            "graph": base + row["graph"] + row["new_business"] if learner else None,
            "worst": worst, "likely": likely, "best": best})
    for row in out:
        for key, value in row.items():
            if isinstance(value, float):
                row[key] = round(value, 2)
    result = {"period": period, "as_of": day.isoformat(), "by": by, "rows": out,
              "training_states": learner.training_states if learner else 0,
              "interval": f"worst and best are the {INTERVAL[0]}th and {INTERVAL[1]}th percentiles"}
    if notes:
        result["note"] = "; ".join(notes)
    if deals:
        result["deals"] = sorted(listed, key=lambda d: -d["amount"])
    return result


# --- the backtest ----------------------------------------------------------------------------------

#: the views a backtest scores: the CRM's, the two baselines a learned view must beat, and the learned ones
METHODS = ("crm", "constant", "stage", "historical", "graph")


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


def _next_date(day, step):
    return months_later(day, 1) if step == "month" else day + timedelta(days=STEPS[step])


def _scores(points, pairs, method):
    scored = [p for p in points if p["actual"] > 0]
    errors = [(p[method] - p["actual"]) / p["actual"] for p in scored]
    clipped = [(min(max(p, 1e-6), 1 - 1e-6), y) for p, y in pairs]
    actual = sum(p["actual"] for p in scored)
    return {
        "brier": round(sum((p - y) ** 2 for p, y in pairs) / len(pairs), 4) if pairs else None,
        "log_loss": round(-sum(y * math.log(p) + (1 - y) * math.log(1 - p) for p, y in clipped) / len(clipped), 4)
        if clipped else None,
        "ape": round(sum(abs(e) for e in errors) / len(errors), 4) if errors else None,
        "wape": round(sum(abs(p[method] - p["actual"]) for p in scored) / actual, 4) if actual else None,
        "bias": round(sum(errors) / len(errors), 4) if errors else None}


def backtest(book, start, end, step="week", periods=1, leave_out=()):
    """Forecast, at each date from ``start`` to ``end`` every ``step`` (a week, a fortnight or a calendar
    month), the quarter the date falls in (horizon 0) and, with ``periods`` 2 or more, the quarters after it
    (horizon 1, ...), with what was known on that date, and compare with what closed.

    A quarter counts once it is over by the store's as-of date (its last day included). A date too early
    to learn from is skipped and listed, as is each quarter not over yet. The actual is everything won in
    the quarter, from deals open on the date, won before it, or created after it; each learned view's
    total adds its new-business forecast. Returns a dict: ``methods`` (per method ``brier``,
    ``log_loss``, ``ape``, ``wape``, ``bias``, ``calibration``), ``horizons`` (the same per horizon),
    ``coverage`` (how often the worst-best interval held the actual), ``points`` and ``skipped``."""
    import numpy as np

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
    points, skipped = [], []
    pairs = defaultdict(lambda: {m: [] for m in METHODS})  # horizon -> method -> [(chance, won)]
    generator = np.random.default_rng(0)
    day = start
    while day <= end:
        quarters = [quarter_of(day)]
        while len(quarters) < periods:
            quarters.append(quarter_of(quarters[-1][1]))
        over = book.as_of + timedelta(days=1)
        wanted = [(h, s, e) for h, (s, e) in enumerate(quarters) if e <= over]
        skipped += [{"date": day.isoformat(), "period": _label(s), "reason": f"not over by {book.as_of}"}
                    for s, e in quarters if e > over]
        learner = None
        if wanted:
            try:
                learner = Learner(book, day, leave_out)
            except OkgError as exc:
                skipped += [{"date": day.isoformat(), "period": _label(s), "reason": exc.message}
                            for _, s, _ in wanted]
        for h, s, e in wanted if learner else ():
            everything = sum(a for won, close, a in final.values() if won and close and s <= close < e)
            open_deals, won_so_far = _deals_on(book, day, s, e)
            base = sum(state.amount for _, state in won_so_far)
            views = learner.chances(open_deals, s, e)
            new, _ = new_business(learner, "total", s, e)
            new_amounts = new.get("total", [])
            new_expected = sum(new_amounts) / len(new_amounts) if new_amounts else 0.0
            totals = dict.fromkeys(METHODS, base)
            from_open = base
            simulated = []
            for n, (deal, state) in enumerate(open_deals):
                outcome = final.get(deal.iri)
                y = int(bool(outcome and outcome[0] and outcome[1] and s <= outcome[1] < e))
                from_open += y * outcome[2] if y else 0.0  # as won, at its final amount
                inside = state.close is not None and s <= state.close < e
                chances = {"crm": state.probability / 100 if inside else 0.0,
                           **{m: views[m][n] for m in METHODS if m != "crm"}}
                for method, p in chances.items():
                    totals[method] += p * state.amount
                    pairs[h][method].append((p, y))
                simulated.append((state.amount, views["graph"][n]))
            for method in METHODS:
                if method != "crm":
                    totals[method] += new_expected
            worst, best = _simulate(base, simulated, new_amounts, generator, quantiles=INTERVAL)
            points.append({"date": day.isoformat(), "period": _label(s), "horizon": h, "actual": round(everything, 2),
                           **{m: round(v, 2) for m, v in totals.items()}, "new_business": round(new_expected, 2),
                           "worst": round(worst, 2), "best": round(best, 2), "won_from_open_deals": round(from_open, 2),
                           "covered": worst <= everything <= best})
        day = _next_date(day, step)
    if not points:
        reasons = sorted({s["reason"] for s in skipped})
        raise OkgError(f"no quarter between {start} and {end} could be backtested: {'; '.join(reasons) or 'none'}",
                       field="from")
    every = {m: [pair for h in pairs for pair in pairs[h][m]] for m in METHODS}
    methods = {m: {**_scores(points, every[m], m), "calibration": _calibration(every[m])} for m in METHODS}
    horizons = {h: {m: _scores([p for p in points if p["horizon"] == h], pairs[h][m], m) for m in METHODS}
                for h in sorted(pairs)}
    covered = [p["covered"] for p in points]
    return {"from": start.isoformat(), "to": end.isoformat(), "step": step, "periods": periods,
            "as_of": book.as_of.isoformat(), "forecasts": len(points), "deal_chances": len(every["graph"]),
            "methods": methods, "horizons": horizons,
            "coverage": {"nominal": (INTERVAL[1] - INTERVAL[0]) / 100, "actual": round(sum(covered) / len(covered), 3),
                         "forecasts": len(covered)},
            "points": points, "skipped": skipped}


def _label(start):
    return quarter_label(start)


def chart_svg(result, width=860, height=380):
    """An SVG line chart of a backtest: the actual and the graph view's total for each horizon (horizon 0
    solid, later ones dashed), and the CRM view for horizon 0, over the forecast dates, with labelled axes."""
    points = result["points"]
    horizons = sorted({p["horizon"] for p in points})
    series = [("actual", h, "#000000") for h in horizons] + [("graph", h, "#1f77b4") for h in horizons] + \
        [("crm", 0, "#d62728")]
    highest = max(max(p[name] for p in points) for name, _, _ in series) or 1
    unit = 10 ** math.floor(math.log10(highest / 4))
    top = 4 * unit * math.ceil(highest / 4 / unit)  # four gridlines at round values
    days = [date.fromisoformat(p["date"]) for p in points]
    first, last = min(days), max(days)
    span = max(1, (last - first).days)
    left, bottom, right, upper = 90, height - 50, width - 170, 20

    def xy(day, value):
        return left + (right - left) * (day - first).days / span, bottom - (bottom - upper) * value / top

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#888"/>',
             f'<line x1="{left}" y1="{upper}" x2="{left}" y2="{bottom}" stroke="#888"/>',
             f'<text x="{(left + right) / 2}" y="{height - 8}" text-anchor="middle">forecast date</text>',
             f'<text x="14" y="{(upper + bottom) / 2}" text-anchor="middle" '
             f'transform="rotate(-90 14 {(upper + bottom) / 2})">period total won</text>']
    for i in range(5):
        value = top * i / 4
        _, y = xy(first, value)
        parts.append(f'<line x1="{left - 4}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:,.0f}</text>')
    ticks = sorted({days[round(i * (len(days) - 1) / 5)] for i in range(6)}) if len(days) > 1 else days
    for day in ticks:
        x, _ = xy(day, 0)
        parts.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#888"/>')
        parts.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{day.isoformat()}</text>')
    for n, (name, h, colour) in enumerate(series):
        chosen = [(date.fromisoformat(p["date"]), p[name]) for p in points if p["horizon"] == h]
        if not chosen:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(d, v) for d, v in chosen))
        dash = ' stroke-dasharray="5,3"' if h else ""
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5"{dash} points="{path}"/>')
        words = f"{name}, {['this quarter', 'next quarter'][h] if h < 2 else f'{h} quarters ahead'}"
        parts.append(f'<text x="{right + 12}" y="{upper + 14 * n + 4}" fill="{colour}">{words}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
