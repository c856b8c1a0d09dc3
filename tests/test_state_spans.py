"""When each stage change was its deal's latest (okg:stateFrom, okg:stateUntil, okg:stateMonth,
okg:stateOngoing, okg:closedStateFrom, kept at ingest), and the two queries about a past day that find their deals by
them: each must answer exactly what the same query reading every change answers
(tests/reference_queries), on the sample, on a hand-written Data Loader export and on history made
by comparing snapshots of another system."""

import random
from datetime import date, timedelta
from pathlib import Path

import pyoxigraph as ox
import pytest

from opportunity_kg.analytics.queries import get_query, parse_query_file
from opportunity_kg.ingest import ingest
from opportunity_kg.store import open_store, select_records
from opportunity_kg.store.history import state_spans
from opportunity_kg.vocabulary import OKG, XSD

from .conftest import hubspot_weeks

CORPUS = Path(__file__).parent / "corpus"
REFERENCE = Path(__file__).parent / "reference_queries"


def node(name):
    return ox.NamedNode(f"https://example.org/{name}")


def at(text):
    return ox.Literal(text, datatype=ox.NamedNode(XSD + "dateTime"))


def spans(changes, closed=()):
    """change name -> {property local name: [values]} of what :func:`state_spans` says."""
    out = {}
    for s, p, o in state_spans({node(c): [node(d), node(st), at(t) if t else None] for c, (d, st, t) in changes.items()},
                               {node(c) for c in closed}):
        out.setdefault(s.value.rsplit("/", 1)[-1], {}).setdefault(p.value[len(OKG):], []).append(o.value)
    return out


def test_each_change_holds_from_its_day_to_the_next_changes_day():
    got = spans({
        "a1": ("deal-a", "open1", "2025-01-10T09:00:00Z"),
        "a2": ("deal-a", "open2", "2025-01-10T15:00:00Z"),  # the same day: a1 is never a day's latest
        "a3": ("deal-a", "open3", "2025-03-05T00:00:00Z"),
        "a4": ("deal-a", "won", "2025-04-01T10:00:00Z"),
        "b1": ("deal-b", "open1", "2025-12-20T00:00:00Z"),
        "b2": ("deal-b", "open2", "2026-02-01T00:00:00Z"),
        "c2": ("deal-c", "open1", "2025-05-01T00:00:00Z"),
        "c1": ("deal-c", "open2", "2025-05-01T00:00:00Z"),  # the same moment: ordered by IRI, c2 is the latest
        "d1": ("deal-d", "open1", "not a time"),
        "e1": ("deal-e", "open1", None),
    }, closed={"won"})
    assert "a1" not in got and "c1" not in got and "d1" not in got and "e1" not in got
    assert got["a2"] == {"stateFrom": ["2025-01-10"], "stateUntil": ["2025-03-05"],
                         "stateMonth": ["2025-01", "2025-02", "2025-03"]}
    # it ended on April 1st: the last day it held was March 31st
    assert got["a3"] == {"stateFrom": ["2025-03-05"], "stateUntil": ["2025-04-01"], "stateMonth": ["2025-03"]}
    # closed: no month, not ongoing; found among the closed by the day it took effect
    assert got["a4"] == {"stateFrom": ["2025-04-01"], "closedStateFrom": ["2025-04-01"]}
    assert got["b1"]["stateMonth"] == ["2025-12", "2026-01"]
    assert got["b2"] == {"stateFrom": ["2026-02-01"], "stateOngoing": ["true"]}
    assert got["c2"] == {"stateFrom": ["2025-05-01"], "stateOngoing": ["true"]}


def rows(store, query, args):
    return sorted(tuple(sorted(r.items())) for r in select_records(store, query.bind(args)))


def days_to_ask(store, count=8, seed=3):
    """Days around the history's changes: some change days, the day before each, and month starts."""
    found = sorted({r["day"] for r in select_records(store, f"""
        SELECT DISTINCT (SUBSTR(STR(?at), 1, 10) AS ?day) WHERE {{ ?c <{OKG}changeOf> ?o ; <{OKG}changedAt> ?at }}""")})
    assert found, "the store has no stage history"
    picked = sorted(random.Random(seed).sample(found, min(count, len(found))))
    out = []
    for text in picked:
        day = date.fromisoformat(text)
        out += [day - timedelta(days=1), day, day.replace(day=1)]
    return out + [date.fromisoformat(found[-1]) + timedelta(days=400)]


def same_answers(store):
    """Ask both queries and their references on days around the history; return how many answers had rows."""
    new = {name: get_query(name) for name in ("pipeline-as-of", "pipeline-movement")}
    old = {name: parse_query_file(REFERENCE / f"{name}.rq") for name in new}
    days, answered = days_to_ask(store), 0
    for n, day in enumerate(days):
        args = {"on": str(day)}
        if n % 2:
            args["period"] = f"{day.year}-Q{(day.month - 1) // 3 + 1}"
        want = rows(store, old["pipeline-as-of"], args)
        assert rows(store, new["pipeline-as-of"], args) == want, args
        answered += bool(want)
        later = days[(n + 1) % len(days)] if n % 3 else day + timedelta(days=1 + 30 * (n % 4))
        args = {"from": str(day), "to": str(later)}
        want = rows(store, old["pipeline-movement"], args)
        assert rows(store, new["pipeline-movement"], args) == want, args
        answered += bool(want)
    return answered


def test_the_past_day_queries_answer_as_reading_every_change_on_the_sample(open_sample_store):
    assert same_answers(open_sample_store) > 20


def test_the_same_on_a_hand_written_data_loader_export(tmp_path):
    ingest(CORPUS / "dataloader", tmp_path / "store")
    assert same_answers(open_store(tmp_path / "store", read_only=True)) > 5


def test_the_same_on_history_made_by_comparing_hubspot_snapshots(tmp_path):
    """A HubSpot export has no stage history: the history is what changed between weekly exports."""
    dates = ["2026-11-16", "2026-11-23", "2026-12-07", "2027-01-04"]
    for folder, as_of in zip(hubspot_weeks(tmp_path, dates), dates):
        ingest(folder, tmp_path / "store", as_of=as_of)
    assert same_answers(open_store(tmp_path / "store", read_only=True)) > 5


@pytest.mark.parametrize("name,args", [("pipeline-as-of", {"on": "2026-07-01"}),
                                       ("pipeline-movement", {"from": "2026-07-01", "to": "2026-10-01"})])
def test_the_day_and_its_month_are_bound_as_typed_terms(name, args):
    text = get_query(name).bind(args)
    assert '"2026-07"^^<http://www.w3.org/2001/XMLSchema#gYearMonth>' in text
    assert '"2026-07-01"^^<http://www.w3.org/2001/XMLSchema#date>' in text


def test_a_store_without_them_says_to_ingest_again(tmp_path):
    """A store ingested before these facts existed: the two queries would answer empty, and say why."""
    from opportunity_kg.analytics.support import support

    ingest(CORPUS / "dataloader", tmp_path / "store")
    store = open_store(tmp_path / "store")
    assert support(store, cache=False)["pipeline-as-of"]["level"] != "none"
    store.update(f"DELETE WHERE {{ GRAPH ?g {{ ?c <{OKG}stateFrom> ?day }} }}")
    result = support(store, cache=False)
    for name in ("pipeline-as-of", "pipeline-movement"):
        assert result[name]["level"] == "none"
        assert any("ingest the export again" in note for note in result[name]["notes"]), result[name]
    assert result["days-in-stage"]["level"] != "none"
    # with no stage history at all, that alone is said: ingesting again would not help
    store.update(f"DELETE WHERE {{ GRAPH ?g {{ ?c <{OKG}changeOf> ?deal }} }}")
    notes = support(store, cache=False)["pipeline-as-of"]["notes"]
    assert any("no stage history" in note for note in notes) and not any("again" in note for note in notes), notes


def test_a_store_without_the_closed_days_says_so_for_movement(tmp_path):
    """A store ingested before okg:closedStateFrom: pipeline-movement would miss the deals won and lost
    between its days, so it says to ingest again; pipeline-as-of does not need it."""
    from opportunity_kg.analytics.support import support

    ingest(CORPUS / "dataloader", tmp_path / "store")
    store = open_store(tmp_path / "store")
    assert support(store, cache=False)["pipeline-movement"]["level"] != "none"
    store.update(f"DELETE WHERE {{ GRAPH ?g {{ ?c <{OKG}closedStateFrom> ?day }} }}")
    result = support(store, cache=False)
    assert result["pipeline-movement"]["level"] == "none"
    assert "okg:closedStateFrom" in result["pipeline-movement"]["notes"][0]
    assert result["pipeline-as-of"]["level"] != "none"
