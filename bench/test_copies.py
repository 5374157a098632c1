"""Benchmark: is a face's exact labelled copy a better label than a model's prediction? (`submit --copies`)

The holdout cannot tell: `ferkaggle prepare` keeps every copy of an image on one side of the split.
So this script draws its own row-level split of the labelled rows, on which copies DO cross: a
random 10 % of rows (seeded) is a pseudo-holdout, the other rows are "labelled". On the
pseudo-holdout rows that have at least one exact copy among the labelled rows it compares

  (a) the lookup `submit --copies` uses (`dedupe.copy_labels`: the majority label of the copies;
      a tie gives no label, and --copies then keeps the model's: that rule is shown too),
  (b) the project's random forest on raw pixels (`ferkaggle baseline`'s settings, 100 trees,
      one job) trained on the labelled rows,

and (c) gives the forest's accuracy on the pseudo-holdout rows WITHOUT a copy, which shows how
much of (b) is the forest remembering copies. Last, on the real test set: how many test rows have
labelled copies (all labelled rows, as submit uses them) and how many of this forest's test
predictions --copies would change.

    nice -n 10 .venv/bin/python bench/test_copies.py [--data PREPARED] [--seed 42] [--fraction 0.1]

Cost on FER2013 (28,709 labelled rows): one forest fit on ~25,800 rows, about 2-3 CPU-minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np

from ferkaggle.classical.baseline import BaselineConfig, build_estimator
from ferkaggle.classical.features import pixel_features
from ferkaggle.cnn.runtime import cpu_flags, cpu_model
from ferkaggle.core.constants import DEFAULT_SEED
from ferkaggle.data.dedupe import copy_labels
from ferkaggle.data.prepared import load_prepared
from ferkaggle.results.submission import apply_copies


def _acc(pred: np.ndarray, truth: np.ndarray) -> str:
    return f"{np.mean(pred == truth):.4f}" if len(truth) else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="prepared folder or key (default: latest)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seeds the pseudo-holdout and the forest")
    parser.add_argument("--fraction", type=float, default=0.1, help="share of labelled rows in the pseudo-holdout")
    args = parser.parse_args()

    prepared = load_prepared(args.data, mmap=True)
    x, y = np.asarray(prepared.x), np.asarray(prepared.y).astype(np.int64)
    rng = np.random.default_rng(args.seed)
    pseudo = np.zeros(len(y), bool)
    pseudo[rng.choice(len(y), size=round(args.fraction * len(y)), replace=False)] = True
    rest = ~pseudo

    found = copy_labels(x[rest], y[rest], x[pseudo])
    y_pseudo = y[pseudo]
    has = found.copies > 0
    clear = found.label >= 0

    cfg = BaselineConfig(n_jobs=1)
    forest = build_estimator(cfg, args.seed)
    t0 = time.perf_counter()
    forest.fit(pixel_features(x[rest]), y[rest])
    fit_s = time.perf_counter() - t0
    rf_pseudo = forest.predict(pixel_features(x[pseudo]))
    rf_test = forest.predict(pixel_features(np.asarray(prepared.x_test)))
    with_rule, _ = apply_copies(rf_pseudo, found)  # --copies on the pseudo-holdout: copies' label, ties -> forest

    n_copies = np.bincount(found.copies[has])
    print(f"prepared data {prepared.key}: {len(y)} labelled rows; pseudo-holdout {pseudo.sum()} rows "
          f"(random {args.fraction:.0%}, seed {args.seed}), {rest.sum()} labelled rows left")
    print(f"pseudo-holdout rows with >= 1 exact copy among the labelled rows: {has.sum()} "
          f"(with 1, 2, 3+ copies: {n_copies[1] if len(n_copies) > 1 else 0}, "
          f"{n_copies[2] if len(n_copies) > 2 else 0}, {n_copies[3:].sum()}); ties: {found.tied.sum()}")
    print(f"forest ({cfg.n_estimators} trees, max_features {cfg.max_features}, one job): fit {fit_s:.0f} s\n")
    print("| pseudo-holdout rows | rows | copies' majority (a) | forest (b) | --copies rule (a, ties -> b) |")
    print("|---|---|---|---|---|")
    print(f"| with an exact copy | {has.sum()} | {_acc(found.label[has & clear], y_pseudo[has & clear])} "
          f"(on the {(has & clear).sum()} without a tie) | {_acc(rf_pseudo[has], y_pseudo[has])} | "
          f"{_acc(with_rule[has], y_pseudo[has])} |")
    print(f"| without a copy (c) | {(~has).sum()} | - | {_acc(rf_pseudo[~has], y_pseudo[~has])} | "
          f"{_acc(with_rule[~has], y_pseudo[~has])} |")
    print(f"| all | {len(y_pseudo)} | - | {_acc(rf_pseudo, y_pseudo)} | {_acc(with_rule, y_pseudo)} |")
    differ = with_rule != rf_pseudo
    print(f"\nrows where --copies changes the forest's label: {differ.sum()}; the copies' label is right on "
          f"{(with_rule[differ] == y_pseudo[differ]).sum()}, the forest's on {(rf_pseudo[differ] == y_pseudo[differ]).sum()}")

    _, applied = apply_copies(rf_test, copy_labels(x, y, np.asarray(prepared.x_test)))
    print(f"\nreal test set ({len(rf_test)} rows), lookup on all {len(y)} labelled rows as `submit --copies` does, "
          f"this forest's test predictions: {applied.with_copies} test rows have copies, --copies changes "
          f"{applied.changed} labels, {applied.tied} ties keep the forest's")
    print(f"\n{dt.date.today()}, {_cpu()}, numpy {np.__version__}")


def _cpu() -> str:
    """The CPU model and whether it has the bfloat16 / AMX flags."""
    flags = cpu_flags()
    return (f"{cpu_model()} (avx512_bf16: {'yes' if 'avx512_bf16' in flags else 'no'}, amx: "
            f"{'yes' if any(f.startswith('amx') for f in flags) else 'no'})")


if __name__ == "__main__":
    main()
