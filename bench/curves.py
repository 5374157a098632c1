"""Accuracy against training time for the CNN runs of a registry (issue 11, item 1).

    python bench/curves.py --runs runs [--points 6]

For every completed `cnn` run: the stop-split accuracy (the rows early stopping and the
search look at) at evenly spaced epochs of its schedule, with the training minutes spent by
then (wall time on this machine: on 2 busy cores a wall minute is about 2 CPU-minutes), and
the final holdout accuracy recorded by the run. Each run is one cosine schedule planned to
its own length, so a row is that schedule's trajectory, not "what a shorter run would reach".
Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def curve(history: list[dict], points: int) -> list[tuple[int, float, float]]:
    """(epoch, minutes so far, stop accuracy) at `points` evenly spaced epochs, the last included."""
    n = len(history)
    picks = sorted({max(1, round(n * k / points)) for k in range(1, points + 1)})
    out, spent = [], 0.0
    for i, h in enumerate(history, start=1):
        spent += h["seconds"]
        if i in picks:
            out.append((i, spent / 60.0, h["stop_accuracy"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=Path("runs"))
    ap.add_argument("--points", type=int, default=6)
    args = ap.parse_args()
    rows = []
    for info_path in sorted(args.runs.glob("*/run.json")):
        info = json.loads(info_path.read_text())
        metrics_path = info_path.parent / "metrics.json"
        if info.get("kind") != "cnn" or info.get("status") != "completed" or not metrics_path.is_file():
            continue
        m = json.loads(metrics_path.read_text())
        hist = [h for h in m.get("history", []) if h.get("stop_accuracy") is not None]
        if not hist:
            continue
        pts = curve(hist, args.points)
        cells = " · ".join(f"{e}: {acc:.3f} ({mins:.0f}m)" for e, mins, acc in pts)
        precision = info.get("runtime", {}).get("precision", info.get("config", {}).get("precision", "?"))
        rows.append(f"| {info.get('name')} | {precision} | {len(hist)} | {sum(h['seconds'] for h in hist) / 60:.1f} "
                    f"| {sum(h['seconds'] for h in hist) / len(hist):.0f} | {cells} | {m.get('val_accuracy', float('nan')):.4f} |")
    print("| run | precision | epochs | train min | s/epoch | stop accuracy at epoch (minutes so far) | holdout |")
    print("|---|---|---:|---:|---:|---|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
