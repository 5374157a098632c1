"""Benchmark: every classical baseline on a prepared FER2013 set, with CV, holdout and wall time.

Input: a prepared folder (default: the latest `ferkaggle prepare`, e.g. of
../shared/fer2013/train.csv.gz and test.csv.gz). Output: one run per model in the run
registry (so they show on `ferkaggle leaderboard`), a markdown table on stdout and, with
--json, the same figures as JSON.

    nice -n 10 .venv/bin/python bench/baselines.py [--data PATH] [--runs-root runs] [--only rf-pixels,nb]

Budget on the 2-core development box: about 15-20 minutes for all nine, most of it the
two random forests, logistic regression and the SVM (which is capped at 8000 training
rows per fold, see ferkaggle/configs/baseline/svm.toml).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from ferkaggle.classical.baseline import BaselineConfig, run_baseline
from ferkaggle.core.presets import load_preset
from ferkaggle.data.prepared import load_prepared

# name -> (preset under ferkaggle/configs/baseline/ or None for the defaults, command-line equivalent)
BENCHES = {
    "rf-pixels": (None, "ferkaggle baseline"),
    "rf-hog": ("rf-hog", "ferkaggle baseline --features hog"),
    "extra-trees": ("extra-trees", "ferkaggle baseline --model extra-trees"),
    "logreg": ("logreg", "ferkaggle baseline --model logreg"),
    "knn": ("knn", "ferkaggle baseline --model knn"),
    "svm": ("svm", "ferkaggle baseline --model svm"),
    "nb": ("nb", "ferkaggle baseline --model nb"),
    "kmeans": ("kmeans", "ferkaggle baseline --model kmeans"),
    "kmeans-logreg": ("kmeans-logreg", "ferkaggle baseline --model kmeans-logreg"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="prepared folder or key (default: latest)")
    parser.add_argument("--runs-root", default=None, help="run registry (default: runs/)")
    parser.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(BENCHES))
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()

    prepared = load_prepared(args.data, mmap=True)
    names = [n for n in args.only.split(",") if n] or list(BENCHES)
    results = []
    for name in names:
        preset, command = BENCHES[name]
        cfg = load_preset(BaselineConfig, preset, subdir="baseline")
        t0 = time.perf_counter()
        run = run_baseline(prepared, cfg, runs_root=args.runs_root, show_progress=False)
        wall = time.perf_counter() - t0
        m = run.metrics
        results.append({"name": name, "command": command, "summary": run.info["summary"], "run_id": run.run_id,
                        "cv_mean": m["cv_mean"], "cv_std": m["cv_std"], "cv_macro_f1_mean": m["cv_macro_f1_mean"],
                        "val_accuracy": m["val_accuracy"], "val_macro_f1": m["val_macro_f1"],
                        "wall_seconds": round(wall, 1), "train_seconds": m["train_seconds"],
                        "feature_seconds": m["feature_seconds"], "model_mb": round(m["model_bytes"] / 1e6, 1)})
        print(f"{name}: CV {m['cv_mean']:.4f} ± {m['cv_std']:.4f}, holdout {m['val_accuracy']:.4f}, "
              f"{wall:.0f}s", flush=True)

    print(f"\nprepared data {prepared.key} (split {prepared.split_fingerprint[:8]}): {len(prepared.train_idx)} "
          f"training rows in {prepared.num_folds} folds, {len(prepared.val_idx)} holdout-val; "
          f"{os.cpu_count()} CPUs, {platform.platform()}\n")
    print("| model | command | CV accuracy (mean ± std) | CV macro-F1 | holdout accuracy | holdout macro-F1 | wall time | model.joblib |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['summary']} | `{r['command']}` | {r['cv_mean']:.3f} ± {r['cv_std']:.3f} | {r['cv_macro_f1_mean']:.3f} | "
              f"{r['val_accuracy']:.3f} | {r['val_macro_f1']:.3f} | {r['wall_seconds'] / 60:.1f} min | {r['model_mb']} MB |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"prepared": prepared.key, "split": prepared.split_fingerprint, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
