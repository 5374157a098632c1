"""CNN accuracy on FER2013 under a time budget: the default search, its leaderboard and timing.

    python bench/cnn_accuracy.py --data data/prepared/<key> --budget 60m            # run the search
    python bench/cnn_accuracy.py --summarize runs/searches/<study>                  # only report one

Inputs: prepared FER2013 data (stratified holdout-val), a space (default `default`) and a
budget. Output: the search's trials as a Markdown table (holdout-val accuracy with and
without hflip TTA, macro-F1, epochs, seconds), wall time and the winner, for
docs/benchmarks.md "CNN accuracy on FER2013".
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from ferkaggle.data.prepared import load_prepared
from ferkaggle.search.spaces import parse_budget
from ferkaggle.search.stage import run_search

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def markdown(doc: dict, wall_s: float | None = None) -> str:
    lines = ["| trial | config | val acc (hflip TTA) | val acc (no TTA, best epoch) | epochs | train s |",
             "|---|---|---|---|---|---|"]
    trials = sorted(doc["trials"], key=lambda t: -(t.get("val_accuracy") or 0.0))
    for t in trials:
        va = "–" if t.get("val_accuracy") is None else f"{t['val_accuracy']:.4f}"
        nt = "–" if t.get("stop_accuracy") is None else f"{t['stop_accuracy']:.4f}"
        star = " ★" if (doc.get("winner") or {}).get("name") == t["name"] else ""
        lines.append(f"| {t['name']}{star} | {t['summary']} | {va} | {nt} | {t['epochs']} | {t['seconds']:.0f} |")
    budget = doc.get("budget_s")
    lines.append("")
    lines.append(f"Budget {budget / 60:.0f} min, spent {doc['spent_s'] / 60:.1f} min"
                 + (f", wall time {wall_s / 60:.1f} min" if wall_s else "") + f", rungs {doc['rungs']}.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--space", default="default")
    ap.add_argument("--budget", default="60m")
    ap.add_argument("--seed", type=int, default=42)  # ferkaggle.DEFAULT_SEED
    ap.add_argument("--summarize", default="", help="a runs/searches/<study> folder to report without training")
    args = ap.parse_args()
    if args.summarize:
        doc = json.loads((Path(args.summarize) / "search.json").read_text())
        print(markdown(doc))
        return
    prepared = load_prepared(args.data, mmap=True)
    t0 = time.time()
    doc = run_search(prepared, args.space, budget_s=parse_budget(args.budget), seed=args.seed)
    print(markdown(doc, time.time() - t0))


if __name__ == "__main__":
    main()
