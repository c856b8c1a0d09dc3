"""The sample export: Salesforce's columns, deterministic, and realistic enough to analyse."""

import csv
import filecmp
from collections import Counter, defaultdict

from opportunity_kg.samples.sample import TABLES, write_sample


def read(folder, name):
    with open(folder / name, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    write_sample(tmp_path / "a", opportunities=120, seed=3)
    write_sample(tmp_path / "b", opportunities=120, seed=3)
    write_sample(tmp_path / "c", opportunities=120, seed=4)
    names = sorted(TABLES)
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", names, shallow=False)
    assert match == names and not mismatch and not errors
    assert (tmp_path / "a" / "Opportunity.csv").read_bytes() != (tmp_path / "c" / "Opportunity.csv").read_bytes()


def test_files_and_columns(sample_export):
    for name, columns in TABLES.items():
        with open(sample_export / name, encoding="utf-8", newline="") as handle:
            assert next(csv.reader(handle)) == columns
    assert len(read(sample_export, "Opportunity.csv")) == 300


def test_realistic(sample_export):
    opps = read(sample_export, "Opportunity.csv")
    outcome = Counter((o["IsClosed"], o["IsWon"]) for o in opps)
    assert outcome[("true", "true")] > 30 and outcome[("true", "false")] > 30 and outcome[("false", "false")] > 30
    quarters = {(o["CloseDate"][:4], (int(o["CloseDate"][5:7]) - 1) // 3) for o in opps}
    assert len(quarters) >= 6  # several quarters of history
    per_account = Counter(o["AccountId"] for o in opps)
    assert sum(1 for n in per_account.values() if n > 1) > 20  # accounts with several opportunities
    # account hierarchies three and more levels deep
    parent = {a["Id"]: a["ParentId"] for a in read(sample_export, "Account.csv")}

    def depth(aid):
        return 1 + depth(parent[aid]) if parent[aid] else 1

    assert max(depth(a) for a in parent) >= 3
    # deals that slip: the close date moves later in the history
    closes = defaultdict(list)
    for h in read(sample_export, "OpportunityHistory.csv"):
        closes[h["OpportunityId"]].append(h["CloseDate"])
    assert sum(1 for c in closes.values() if any(b > a for a, b in zip(c, c[1:]))) > 10
    roles = read(sample_export, "OpportunityContactRole.csv")
    assert {r["Role"] for r in roles} >= {"Decision Maker", "Economic Buyer", "Champion"}
    primaries = Counter(r["OpportunityId"] for r in roles if r["IsPrimary"] == "true")
    assert set(primaries.values()) == {1}
    users = read(sample_export, "User.csv")
    assert sum(1 for u in users if u["ManagerId"]) == len(users) - 1
