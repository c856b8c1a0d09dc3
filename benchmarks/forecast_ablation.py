"""Evaluation: what each group of the graph view's features adds, over several generated worlds.

Usage: python benchmarks/forecast_ablation.py [--seeds 1 2 3 4 5] [--opportunities 2000] [--step month]

For each seed it writes a Salesforce sample export (each seed draws its own hidden rules, see
``opportunity_kg.samples.sample.hidden_rules``: how much sellers, account hierarchies and stakeholder roles
matter, plus a lead-source effect and a bad quarter no forecast can see), ingests it, and backtests
the year before its as-of date with the graph view fitted on growing sets of features:

- stage and timing only (the stage, the CRM probability, days in stage, age, close date, period end),
- plus stakeholders (the roles on the deal),
- plus hierarchy (the account group's record),
- plus seller (the owner's and the team's record),
- everything (plus the deal's history of regressions and pushes and its amount).

It prints a Markdown table: per seed and in the mean, the Brier score of the CRM view, the constant
and stage baselines, and each graph configuration, with the graph's ratio to the stage baseline, and
the 80% interval's coverage of the full graph view.
"""

import argparse
import statistics
import tempfile
from datetime import timedelta
from pathlib import Path

CONFIGS = [
    ("stage and timing", ("history", "stakeholders", "accounts", "sellers", "deal")),
    ("+ stakeholders", ("history", "accounts", "sellers", "deal")),
    ("+ hierarchy", ("history", "sellers", "deal")),
    ("+ seller", ("history", "deal")),
    ("everything", ()),
]


def run_seed(seed, opportunities, step, folder):
    from opportunity_kg.analytics.forecast import backtest, load_book
    from opportunity_kg.ingest import ingest
    from opportunity_kg.samples.sample import SAMPLE_AS_OF, write_sample
    from opportunity_kg.store import open_store

    export, store = folder / f"export-{seed}", folder / f"store-{seed}"
    write_sample(export, opportunities=opportunities, seed=seed)
    ingest(export, store)
    book = load_book(open_store(store, read_only=True))
    start, end = SAMPLE_AS_OF - timedelta(days=410), SAMPLE_AS_OF - timedelta(days=50)
    row = {"seed": seed}
    for name, leave_out in CONFIGS:
        result = backtest(book, start, end, step=step, leave_out=leave_out)
        row[name] = result["methods"]["graph"]["brier"]
        if not leave_out:
            for method in ("crm", "constant", "stage"):
                row[method] = result["methods"][method]["brier"]
            row["coverage"] = result["coverage"]["actual"]
            row["forecasts"] = result["forecasts"]
    row["ratio"] = row["everything"] / row["stage"]
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--opportunities", type=int, default=2000)
    parser.add_argument("--step", default="month", choices=["week", "fortnight", "month"])
    args = parser.parse_args()
    columns = ["crm", "constant", "stage"] + [name for name, _ in CONFIGS] + ["ratio", "coverage"]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_seed(seed, args.opportunities, args.step, Path(tmp)) for seed in args.seeds]
    print(f"{args.opportunities:,} opportunities per seed, a backtest every {args.step}; Brier scores "
          "(lower is better); ratio = graph (everything) / stage baseline; coverage of the 80% interval\n")
    print("| seed | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for row in rows:
        print(f"| {row['seed']} | " + " | ".join(f"{row[c]:.4f}" if c != "coverage" else f"{row[c]:.0%}"
                                               for c in columns) + " |")
    mean = {c: statistics.mean(r[c] for r in rows) for c in columns}
    print("| mean | " + " | ".join(f"{mean[c]:.4f}" if c != "coverage" else f"{mean[c]:.0%}" for c in columns) + " |")


if __name__ == "__main__":
    main()
