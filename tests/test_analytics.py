"""The pipeline analytics canned queries, each checked against the same figures computed
straight from the sample's CSV files with the csv module (no graph, no SPARQL)."""

import csv
from collections import defaultdict
from datetime import date
from decimal import Decimal

import pytest

from opportunity_kg.queries import period_range, run_canned

PERIOD = "2026-Q4"


def table(export, name):
    with open(export / name, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def answer(store, name, args, key):
    result = run_canned(store, name, args)
    names = [v.value for v in result.variables]
    rows = [dict(zip(names, (t.value if t is not None else None for t in row))) for row in result.rows]
    return {row[key]: row for row in rows}


def figures(row, *columns):
    return tuple(Decimal(row[c]) for c in columns)


def ancestors(item, parent_of):
    """The item and everything above it (a cycle stops the walk)."""
    seen = []
    while item and item not in seen:
        seen.append(item)
        item = parent_of.get(item)
    return seen


def open_in_period(export, period=PERIOD):
    start, end = period_range(period)
    for row in table(export, "Opportunity.csv"):
        if row["IsClosed"] != "true" and start <= date.fromisoformat(row["CloseDate"]) < end:
            amount = Decimal(row["Amount"] or 0)
            yield row, amount, amount * Decimal(row["Probability"]) / 100


def test_pipeline_by_stage(sample_export, open_sample_store):
    stages = {r["MasterLabel"]: int(r["SortOrder"]) for r in table(sample_export, "OpportunityStage.csv")}
    expected = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for row, amount, weighted in open_in_period(sample_export):
        entry = expected[row["StageName"]]
        entry[0] += 1
        entry[1] += amount
        entry[2] += weighted
    got = answer(open_sample_store, "pipeline-by-stage", {"period": PERIOD}, "stage")
    assert len(expected) >= 4
    assert {k: figures(v, "opportunities", "amount", "weighted_amount") for k, v in got.items()} == \
        {k: (Decimal(n), a, w) for k, (n, a, w) in expected.items()}
    assert [int(v["sort_order"]) for v in got.values()] == sorted(stages[k] for k in got)


@pytest.mark.parametrize("name,dimension", [("pipeline-by-team", "team"), ("pipeline-by-territory", "territory")])
def test_pipeline_rolls_up_the_hierarchy(sample_export, open_sample_store, name, dimension):
    if dimension == "team":
        units = {r["Id"]: r for r in table(sample_export, "UserRole.csv")}
        parent_of = {k: r["ParentRoleId"] for k, r in units.items()}
        team_of_user = {r["Id"]: r["UserRoleId"] for r in table(sample_export, "User.csv")}
        unit_of = lambda row: team_of_user[row["OwnerId"]]  # noqa: E731
    else:
        units = {r["Id"]: r for r in table(sample_export, "Territory2.csv")}
        parent_of = {k: r["ParentTerritory2Id"] for k, r in units.items()}
        unit_of = lambda row: row["Territory2Id"]  # noqa: E731
    expected = defaultdict(lambda: [0, Decimal(0), Decimal(0), Decimal(0)])
    for row, amount, weighted in open_in_period(sample_export):
        own = unit_of(row)
        for unit in ancestors(own, parent_of):
            entry = expected[units[unit]["Name"]]
            entry[0] += 1
            entry[1] += amount
            entry[2] += weighted
            entry[3] += amount if unit == own else 0
    got = answer(open_sample_store, name, {"period": PERIOD}, dimension)
    assert any(e[3] == 0 and e[0] for e in expected.values())  # a parent with no deals of its own
    assert {k: figures(v, "opportunities", "amount", "weighted_amount", "own_amount") for k, v in got.items()} == \
        {k: (Decimal(n), a, w, o) for k, (n, a, w, o) in expected.items()}


def test_account_hierarchy_pipeline(sample_export, open_sample_store):
    accounts = {r["Id"]: r for r in table(sample_export, "Account.csv")}
    parent_of = {k: r["ParentId"] for k, r in accounts.items()}
    expected = defaultdict(lambda: [set(), 0, Decimal(0), Decimal(0)])
    for row in table(sample_export, "Opportunity.csv"):
        if row["IsClosed"] == "true":
            continue
        top = ancestors(row["AccountId"], parent_of)[-1]
        amount = Decimal(row["Amount"] or 0)
        entry = expected[accounts[top]["Name"]]
        entry[0].add(row["AccountId"])
        entry[1] += 1
        entry[2] += amount
        entry[3] += amount * Decimal(row["Probability"]) / 100
    for least in (2, 5):
        got = answer(open_sample_store, "account-hierarchy-pipeline", {"min_opportunities": str(least)}, "top_account")
        want = {k: (Decimal(len(a)), Decimal(n), s, w) for k, (a, n, s, w) in expected.items() if n >= least}
        assert got and {k: figures(v, "accounts_with_open_deals", "opportunities", "amount", "weighted_amount")
                        for k, v in got.items()} == want


def states_on(export, day):
    """opportunity Id -> its OpportunityHistory row as it stood at the end of ``day``."""
    latest = {}
    for row in table(export, "OpportunityHistory.csv"):
        if row["CreatedDate"][:10] <= day.isoformat():
            key = (row["CreatedDate"][:19], row["Id"])
            if row["OpportunityId"] not in latest or key > latest[row["OpportunityId"]][0]:
                latest[row["OpportunityId"]] = (key, row)
    return {k: row for k, (_, row) in latest.items()}


def stage_table(export):
    return {r["MasterLabel"]: r for r in table(export, "OpportunityStage.csv")}


@pytest.mark.parametrize("on,period", [("2026-07-01", None), ("2026-03-15", "2026-Q2")])
def test_pipeline_as_of_a_past_date(sample_export, open_sample_store, on, period):
    stages = stage_table(sample_export)
    expected = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for row in states_on(sample_export, date.fromisoformat(on)).values():
        if stages[row["StageName"]]["IsClosed"] == "true":
            continue
        if period:
            start, end = period_range(period)
            if not (row["CloseDate"] and start <= date.fromisoformat(row["CloseDate"]) < end):
                continue
        amount = Decimal(row["Amount"] or 0)
        entry = expected[row["StageName"]]
        entry[0] += 1
        entry[1] += amount
        entry[2] += amount * Decimal(row["Probability"]) / 100
    args = {"on": on, **({"period": period} if period else {})}
    got = answer(open_sample_store, "pipeline-as-of", args, "stage")
    assert expected and {k: figures(v, "opportunities", "amount", "weighted_amount") for k, v in got.items()} == \
        {k: (Decimal(n), a, w) for k, (n, a, w) in expected.items()}


def test_pipeline_movement_between_two_dates(sample_export, open_sample_store):
    first, second = date(2026, 7, 1), date(2026, 10, 1)
    stages = stage_table(sample_export)
    before, after = states_on(sample_export, first), states_on(sample_export, second)

    def quarter(text):
        day = date.fromisoformat(text)
        return day.year * 4 + (day.month - 1) // 3

    expected = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for opportunity, now in after.items():
        then = before.get(opportunity)
        open_before = then is not None and stages[then["StageName"]]["IsClosed"] != "true"
        open_after = stages[now["StageName"]]["IsClosed"] != "true"
        amount = Decimal(now["Amount"] or 0)
        change = amount - Decimal(then["Amount"] or 0) if open_before else Decimal(0)
        moves = []
        if then is None and open_after:
            moves.append("new")
        if open_before and stages[now["StageName"]]["IsWon"] == "true":
            moves.append("won")
        if open_before and not open_after and stages[now["StageName"]]["IsWon"] != "true":
            moves.append("lost")
        if open_before and open_after:
            order = int(stages[now["StageName"]]["SortOrder"]) - int(stages[then["StageName"]]["SortOrder"])
            moves += ["advanced"] if order > 0 else ["moved back"] if order < 0 else []
            shift = quarter(now["CloseDate"]) - quarter(then["CloseDate"])
            moves += ["slipped"] if shift > 0 else ["pulled in"] if shift < 0 else []
            moves += ["amount up"] if change > 0 else ["amount down"] if change < 0 else []
        for move in moves:
            entry = expected[move]
            entry[0] += 1
            entry[1] += amount
            entry[2] += change
    got = answer(open_sample_store, "pipeline-movement", {"from": str(first), "to": str(second)}, "movement")
    assert {"new", "won", "lost", "advanced"} <= set(expected)
    assert {k: figures(v, "opportunities", "amount", "amount_change") for k, v in got.items()} == \
        {k: (Decimal(n), a, c) for k, (n, a, c) in expected.items()}


def open_opportunities(export):
    return {r["Id"]: r for r in table(export, "Opportunity.csv") if r["IsClosed"] != "true"}


@pytest.mark.parametrize("days", ["0", "14"])
def test_stalled_deals(sample_export, sample_store, open_sample_store, days):
    today = date.fromisoformat(sample_store[1].as_of)
    last = {k: r["CreatedDate"][:19] for k, r in open_opportunities(sample_export).items()}
    for row in table(sample_export, "OpportunityHistory.csv"):
        if row["OpportunityId"] in last:
            last[row["OpportunityId"]] = max(last[row["OpportunityId"]], row["CreatedDate"][:19])
    expected = {}
    for opportunity, at in last.items():
        waited = (today - date.fromisoformat(at[:10])).days
        if waited >= int(days):
            expected[opportunity] = waited
    got = answer(open_sample_store, "stalled-deals", {"days": days}, "opportunity_id")
    assert expected and {k: int(v["days_in_stage"]) for k, v in got.items()} == expected


def test_past_due_deals(sample_export, sample_store, open_sample_store):
    today = date.fromisoformat(sample_store[1].as_of)
    expected = {r["Id"]: (today - date.fromisoformat(r["CloseDate"])).days
                for r in open_opportunities(sample_export).values() if date.fromisoformat(r["CloseDate"]) < today}
    got = answer(open_sample_store, "past-due-deals", {}, "opportunity_id")
    assert expected and {k: int(v["days_past_due"]) for k, v in got.items()} == expected


@pytest.mark.parametrize("least", ["1", "2"])
def test_slipped_deals(sample_export, open_sample_store, least):
    opportunities = open_opportunities(sample_export)
    pushes = defaultdict(lambda: [0, 0])
    for row in table(sample_export, "OpportunityFieldHistory.csv"):
        if row["Field"] == "CloseDate" and row["OpportunityId"] in opportunities and row["NewValue"] > row["OldValue"]:
            entry = pushes[row["OpportunityId"]]
            entry[0] += 1
            entry[1] += (date.fromisoformat(row["NewValue"]) - date.fromisoformat(row["OldValue"])).days
    expected = {k: tuple(v) for k, v in pushes.items() if v[0] >= int(least)}
    got = answer(open_sample_store, "slipped-deals", {"min_pushes": least}, "opportunity_id")
    assert expected and {k: (int(v["pushes"]), int(v["days_pushed"])) for k, v in got.items()} == expected


@pytest.mark.parametrize("by", ["owner", "team", "territory", "industry", "size_band", "lead_source", "stage_reached"])
def test_win_rate(sample_export, open_sample_store, by):
    users = {r["Id"]: r for r in table(sample_export, "User.csv")}
    roles = {r["Id"]: r["Name"] for r in table(sample_export, "UserRole.csv")}
    territories = {r["Id"]: r["Name"] for r in table(sample_export, "Territory2.csv")}
    accounts = {r["Id"]: r for r in table(sample_export, "Account.csv")}
    stages = stage_table(sample_export)
    furthest = {}
    for row in table(sample_export, "OpportunityHistory.csv"):
        stage = stages[row["StageName"]]
        if stage["IsClosed"] != "true":
            order = int(stage["SortOrder"])
            if order > furthest.get(row["OpportunityId"], (0, ""))[0]:
                furthest[row["OpportunityId"]] = (order, row["StageName"])

    def size_band(account):
        employees = int(account["NumberOfEmployees"])
        return "under 100" if employees < 100 else "100-999" if employees < 1000 else \
            "1,000-9,999" if employees < 10000 else "10,000 and more"

    group_of = {
        "owner": lambda r: users[r["OwnerId"]]["Name"],
        "team": lambda r: roles[users[r["OwnerId"]]["UserRoleId"]],
        "territory": lambda r: territories[r["Territory2Id"]],
        "industry": lambda r: accounts[r["AccountId"]]["Industry"],
        "size_band": lambda r: size_band(accounts[r["AccountId"]]),
        "lead_source": lambda r: r["LeadSource"],
        "stage_reached": lambda r: furthest.get(r["Id"], (0, "(none)"))[1],
    }[by]
    expected = defaultdict(lambda: [0, 0, Decimal(0), Decimal(0)])
    for row in table(sample_export, "Opportunity.csv"):
        if row["IsClosed"] != "true":
            continue
        entry = expected[group_of(row) or "(none)"]
        won = row["IsWon"] == "true"
        amount = Decimal(row["Amount"] or 0)
        entry[0] += 1
        entry[1] += won
        entry[2] += amount
        entry[3] += amount if won else 0
    got = answer(open_sample_store, "win-rate", {"by": by}, "group")
    assert len(expected) >= 2
    assert {k: figures(v, "closed", "won", "amount_closed", "amount_won") for k, v in got.items()} == \
        {k: (Decimal(c), Decimal(w), a, aw) for k, (c, w, a, aw) in expected.items()}
    for k, (c, w, _, _) in expected.items():
        assert float(got[k]["win_rate_percent"]) == pytest.approx(round(1000 * w / c) / 10)
