"""What each member buys an ensemble: every subset of two or more of the given runs, cross-fitted.

    PYTHONPATH=. python bench/ensemble_members.py <run_id> <run_id> [...] [--runs runs] [--method greedy]

For issue 11, item 3 (two or three CNNs, whichever gives more per CPU-minute): for each subset of
the runs (all on one split), the ensemble `ferkaggle ensemble` would build from exactly those runs
(`build_ensemble`: members and weights chosen on one holdout half, scored on the other), its
cross-fitted holdout accuracy, the training minutes its members cost (the sum of their epochs' wall
seconds), and the paired difference to the first run given, with its bootstrap standard error
(bench/free_accuracy.py `paired`). Nothing is recorded in the registry. Prints a Markdown table
for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import get_args

sys.path.insert(0, str(Path(__file__).resolve().parent))

from free_accuracy import paired  # noqa: E402

from ferkaggle.core.metrics import accuracy  # noqa: E402
from ferkaggle.data.prepared import load_prepared  # noqa: E402
from ferkaggle.results.ensemble import EnsembleConfig, Method, build_ensemble  # noqa: E402
from ferkaggle.runs.select import select_run  # noqa: E402


def minutes(run) -> float:
    return sum(h["seconds"] for h in run.metrics.get("history", [])) / 60


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="+", help="run ids; the first is the reference of the paired column")
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--method", default="greedy", choices=get_args(Method))
    args = ap.parse_args()
    runs = [select_run(ref, args.runs) for ref in args.run]
    if len({r.split_fingerprint for r in runs}) != 1:
        sys.exit("the runs are on different splits: no paired comparison")
    prepared = load_prepared(runs[0].info["data"]["prepared"], mmap=True)
    y = prepared.y_val
    reference = runs[0].proba("val")
    names = {r.run_id: r.info.get("name", r.run_id) for r in runs}
    print("| members | training min | holdout (cross-fitted) | weights (whole holdout) | vs first (paired ± s.e.) |")
    print("|---|---:|---:|---|---|")
    for r in runs:
        d, se = paired(y, r.proba("val"), reference)
        versus = "—" if r is runs[0] else f"{100 * d:+.2f} ± {100 * se:.2f} pt"
        print(f"| {names[r.run_id]} alone | {minutes(r):.1f} | {accuracy(y, r.proba('val')):.4f} | — | {versus} |")
    for size in range(2, len(runs) + 1):
        for subset in itertools.combinations(runs, size):
            result = build_ensemble(list(subset), y, EnsembleConfig(method=args.method, top=0))
            d, se = paired(y, result.val_proba, reference)
            weights = ", ".join(f"{names[k]} {w:.2f}" for k, w in result.metrics["weights"].items())
            print(f"| {' + '.join(names[r.run_id] for r in subset)} | {sum(minutes(r) for r in subset):.1f} "
                  f"| {accuracy(y, result.val_proba):.4f} | {weights} | {100 * d:+.2f} ± {100 * se:.2f} pt |")


if __name__ == "__main__":
    main()
