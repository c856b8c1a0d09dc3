"""Benchmark: matching N accounts against N legal entities (okg match's find_matches).

Usage: python benchmarks/matching.py [--sizes 10000 100000]

Invents N companies with names from a vocabulary of made-up words (two or three
words, a country, a legal form), writes them once as CRM accounts and once as
legal entities spelled as a register would (another legal form, sometimes in
capitals), drops one in ten from the register, and times find_matches (which
also compares the accounts with each other, for records of one customer in two
systems). It reports the name-matching candidate pairs that blocking lets
through against the N x N pairs a naive matcher would compare, and precision
and recall of the asserted links against the known truth.
"""

import argparse
import random
import time

from opportunity_kg.analytics import match as m

FORMS = ["Inc.", "Ltd", "GmbH", "S.A.", "AG", "B.V.", "AB", "Pty Ltd", "K.K.", "plc"]
COUNTRIES = ["US", "GB", "DE", "FR", "SE", "AU", "JP", "BR", "CA", "IN"]


def words(rng, n):
    syllables = ["ka", "lo", "mi", "ne", "tor", "vel", "sa", "ri", "don", "qua", "ber", "lin", "zo", "pha", "gen"]
    out = set()
    while len(out) < n:
        out.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))).title())
    return sorted(out)


def world(size, seed=1):
    rng = random.Random(seed)
    vocabulary = words(rng, max(2000, size // 5))
    accounts, entities, truth = [], [], set()
    names = set()
    while len(accounts) < size:
        name = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(2, 3)))
        if name in names:
            continue
        names.add(name)
        country = rng.choice(COUNTRIES)
        a = m.Party(f"https://w3id.org/opportunity-kg/id/crm/account/{len(accounts)}", "crm",
                    f"{name} {rng.choice(FORMS)}", country)
        accounts.append(a)
        if rng.random() < 0.9:
            legal = f"{name} {rng.choice(FORMS)}"
            e = m.Party(f"https://w3id.org/opportunity-kg/id/lei/{len(entities)}", "gleif",
                        legal.upper() if rng.random() < 0.4 else legal, country)
            entities.append(e)
            truth.add((a.iri, e.iri))
    return accounts, entities, truth


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    args = parser.parse_args()
    print("| accounts x entities | find_matches s | candidate pairs | naive pairs | precision | recall |")
    print("|---|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        accounts, entities, truth = world(size)
        started = time.perf_counter()
        found = m.find_matches(accounts, entities)
        seconds = time.perf_counter() - started
        candidates = len(m._by_name(accounts, entities))
        asserted = {(x.left.iri, x.right.iri) for x in found if x.confidence >= m.DEFAULT_THRESHOLD
                    and x.right.system == "gleif"}
        precision = len(asserted & truth) / len(asserted) if asserted else 0
        print(f"| {size:,} x {len(entities):,} | {seconds:.1f} | {candidates:,} | {size * len(entities):,} | "
              f"{precision:.4f} | {len(asserted & truth) / len(truth):.4f} |")


if __name__ == "__main__":
    main()
