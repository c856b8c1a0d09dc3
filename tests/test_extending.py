"""The worked example of docs/extending.md, run as written on a copy of the project.

The guide's blocks are applied in order (appended to or created as the files
they name) and its commands run with the real `okg` command line; then the
new query's answer is checked against the same figure computed from the CSV
files, and the new shape against its examples.
"""

import csv
import io
import os
import re
import shlex
import shutil
from collections import defaultdict
from datetime import date
from decimal import Decimal

import pytest
import rdflib

from .conftest import ROOT, okg

GUIDE = ROOT / "docs" / "extending.md"
BLOCK = re.compile(r"<!-- example: (append|create|run) ?(\S*) -->\n```\w*\n(.*?)```", re.S)
OKG = "https://w3id.org/opportunity-kg/ontology#"
OKGSH = "https://w3id.org/opportunity-kg/shapes#"


def guide_steps():
    return BLOCK.findall(GUIDE.read_text(encoding="utf-8"))


def test_the_guide_has_every_kind_of_step():
    targets = [target for action, target, _ in guide_steps() if action != "run"]
    assert [t.split("/")[0] for t in targets] == ["ontology", "shapes", "tests", "mappings", "queries"]
    assert any(action == "run" for action, _, _ in guide_steps())


@pytest.fixture(scope="module")
def extended_home(tmp_path_factory):
    """A copy of the project's model files with the guide's worked example applied and run."""
    home = tmp_path_factory.mktemp("home")
    for folder in ("ontology", "shapes", "mappings", "queries"):
        shutil.copytree(ROOT / folder, home / folder)
    shutil.copytree(ROOT / "tests" / "shape_examples", home / "tests" / "shape_examples")
    assert not (home / "queries" / "open-deals-without-next-step.rq").exists()
    env = dict(os.environ, OKG_HOME=str(home))
    outputs = []
    for action, target, body in guide_steps():
        if action == "append":
            with open(home / target, "a", encoding="utf-8") as handle:
                handle.write("\n" + body)
        elif action == "create":
            assert not (home / target).exists(), f"{target} already exists"
            (home / target).write_text(body, encoding="utf-8")
        else:
            for line in body.strip().splitlines():
                command = shlex.split(line)
                assert command[0] == "okg"
                outputs.append(okg(*command[1:], cwd=home, env=env).stdout)
    return home, outputs


def expected(export, start, end):
    users = {r["Id"]: r["Name"] for r in csv.DictReader(open(export / "User.csv", encoding="utf-8"))}
    counts, amounts = defaultdict(int), defaultdict(Decimal)
    for row in csv.DictReader(open(export / "Opportunity.csv", encoding="utf-8")):
        close = date.fromisoformat(row["CloseDate"])
        if row["IsClosed"] == "true" or row["NextStep"].strip() or not start <= close < end:
            continue
        owner = users[row["OwnerId"]]
        counts[owner] += 1
        amounts[owner] += Decimal(row["Amount"] or "0")
    return {owner: (counts[owner], amounts[owner]) for owner in counts}


def test_worked_example_answers_the_question(extended_home):
    home, outputs = extended_home
    fmt, lint, _, ingest, query = outputs
    assert lint.strip() == "ontology, shapes, mappings and canned queries: no problems"
    total = next(line for line in ingest.splitlines() if line.startswith("total")).split()
    assert total[1] == total[2] and total[3] == "0"  # every row read was loaded
    rows = list(csv.DictReader(io.StringIO(query)))
    got = {r["owner"]: (int(r["opportunities"]), Decimal(r["amount"])) for r in rows}
    want = expected(home / "data" / "sample-salesforce", date(2026, 10, 1), date(2027, 1, 1))
    assert len(want) >= 5 and got == want
    # deals with a next step exist too, so the filter did something
    opportunities = list(csv.DictReader(open(home / "data/sample-salesforce/Opportunity.csv", encoding="utf-8")))
    assert sum(1 for r in opportunities if r["NextStep"]) > 50


def test_worked_example_shape_catches_its_failing_example(extended_home):
    from opportunity_kg.validation.validate import load_graph_dir, validate_triples

    home, _ = extended_home
    shapes = load_graph_dir(home / "shapes", "*.shapes.ttl")
    ontology = load_graph_dir(home / "ontology", "*.ttl")
    data = rdflib.Graph().parse(home / "tests" / "shape_examples" / "NextStepShape.ttl")
    results = validate_triples(data, shapes, ontology, sparql_in_store=False)
    mine = {r.focus: r.message for r in results
            if r.shape and str(shapes.value(None, rdflib.SH.property, rdflib.BNode(r.shape))) == OKGSH + "NextStepShape"}
    assert mine == {"http://example.com/failTwoSteps":
                    "the next step (NextStep) must be one text of at most 255 characters"}


def test_the_project_itself_is_unchanged(extended_home):
    assert "nextStep" not in (ROOT / "ontology" / "opportunity.ttl").read_text(encoding="utf-8")
