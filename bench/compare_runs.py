"""Runs of one split side by side: holdout accuracy, paired difference to the first, and their cost.

    PYTHONPATH=. python bench/compare_runs.py <run_id> <run_id> [...] [--runs runs]

For accuracy per CPU-minute (issue 11, item 1): each run's holdout accuracy (its recorded
probabilities, with the run's own test-time views), the paired difference to the first run on
the same holdout rows with its bootstrap standard error (bench/free_accuracy.py `paired`), the
epochs it trained, its training minutes (the sum of its epochs' wall seconds) and the median
seconds of an epoch (robust to the minutes a shared box spent on something else). Prints a
Markdown table for docs/benchmarks.md. All runs must share one split fingerprint.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from free_accuracy import paired  # noqa: E402

from ferkaggle.core.metrics import accuracy  # noqa: E402
from ferkaggle.data.prepared import load_prepared  # noqa: E402
from ferkaggle.runs.select import select_run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="+", help="run ids; the first is the reference")
    ap.add_argument("--runs", default="runs")
    args = ap.parse_args()
    runs = [select_run(ref, args.runs) for ref in args.run]
    splits = {r.split_fingerprint for r in runs}
    if len(splits) != 1:
        sys.exit(f"the runs are on different splits ({', '.join(sorted(splits))}): no paired comparison")
    prepared = load_prepared(runs[0].info["data"]["prepared"], mmap=True)
    if prepared.split_fingerprint != splits.pop():
        sys.exit(f"{runs[0].info['data']['prepared']} is no longer the runs' split: prepare it again")
    y = prepared.y_val
    reference = runs[0].proba("val")
    print("| run | model | epochs | training min | median s/epoch | holdout | vs first (paired ± s.e.) |")
    print("|---|---|---:|---:|---:|---:|---|")
    for run in runs:
        history = run.metrics.get("history", [])
        seconds = [h["seconds"] for h in history]
        proba = run.proba("val")
        d, se = paired(y, proba, reference)
        versus = "—" if run is runs[0] else f"{100 * d:+.2f} ± {100 * se:.2f} pt"
        median = f"{statistics.median(seconds):.0f}" if seconds else "—"
        print(f"| {run.run_id} | {run.info.get('summary', '').split(',')[0]} | {len(history)} | {sum(seconds) / 60:.1f} "
              f"| {median} | {accuracy(y, proba):.4f} | {versus} |")


if __name__ == "__main__":
    main()
