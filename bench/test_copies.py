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

With `--run RUN` (repeatable; `--no-forest` skips the part above) it asks the same of a run's own
test labels, typically the ensemble `make submit` submits, whose CNNs trained on the copies: no
split can show who is right on the real test faces, so it bounds it. On the k test faces where
--copies changes the run's label, the run can be right only where the copies' label is wrong, so
--copies gains at least k - 2 W rows, W the copies' wrong labels among all the test faces it
labels. W is estimated from the labelled rows alone: leave each labelled row out of its group of
exact copies, and the others' majority (ties: no label) is its label that often, by how many
copies there are. Seconds, no fitting.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np

from ferkaggle.classical.baseline import BaselineConfig, build_estimator
from ferkaggle.classical.features import pixel_features
from ferkaggle.cnn.runtime import cpu_flags, cpu_model
from ferkaggle.core.constants import DEFAULT_SEED, NUM_CLASSES
from ferkaggle.data.dedupe import copy_labels, exact_hashes, majority_labels
from ferkaggle.data.prepared import load_prepared
from ferkaggle.results.submission import apply_copies
from ferkaggle.runs.select import select_run


def _acc(pred: np.ndarray, truth: np.ndarray) -> str:
    return f"{np.mean(pred == truth):.4f}" if len(truth) else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="prepared folder or key (default: latest)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seeds the pseudo-holdout and the forest")
    parser.add_argument("--fraction", type=float, default=0.1, help="share of labelled rows in the pseudo-holdout")
    parser.add_argument("--run", action="append", default=[], help="a run whose test labels to bound (repeatable)")
    parser.add_argument("--runs", default=None, help="the runs folder of --run (default: runs)")
    parser.add_argument("--no-forest", action="store_true", help="only the --run part: no forest, no pseudo-holdout")
    args = parser.parse_args()

    prepared = load_prepared(args.data, mmap=True)
    x, y = np.asarray(prepared.x), np.asarray(prepared.y).astype(np.int64)
    if not args.no_forest:
        forest_section(prepared, x, y, args)
    if args.run:
        run_section(prepared, x, y, args.run, args.runs)
    print(f"\n{dt.date.today()}, {_cpu()}, numpy {np.__version__}")


def forest_section(prepared, x: np.ndarray, y: np.ndarray, args) -> None:
    """The pseudo-holdout comparison of the lookup and a forest (the module docstring's first part)."""
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


def leave_one_out(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each labelled row: how many other labelled rows are exact copies of it, the majority label of
    those others (-1: none, or a tie) and whether that label is its own. The lookup's accuracy on a face
    whose copies are labelled, measured on the labelled rows themselves."""
    inverse = np.unique(exact_hashes(x), return_inverse=True)[1].reshape(-1)
    votes = np.zeros((inverse.max(initial=-1) + 1, NUM_CLASSES), np.int64)
    np.add.at(votes, (inverse, y), 1)
    others = votes[inverse]  # the votes of each row's group, less its own
    others[np.arange(len(y)), y] -= 1
    label = majority_labels(others)
    return others.sum(axis=1), label, label == y


def _bucket(copies: np.ndarray) -> np.ndarray:
    """1, 2 or 3 (3 or more) copies."""
    return np.minimum(copies, 3)


def run_section(prepared, x: np.ndarray, y: np.ndarray, refs: list[str], runs_root) -> None:
    """The --run part: the lower bound on what --copies gains on each run's own test labels."""
    others, loo_label, loo_right = leave_one_out(x, y)
    rate = np.full(4, np.nan)  # by _bucket
    print("\nthe lookup's accuracy on labelled rows, each left out of its group of exact copies "
          "(the others' majority; ties give no label):\n")
    print("| other copies | rows | ties | majority right |")
    print("|---|---|---|---|")
    for b in (1, 2, 3):
        rows = _bucket(others) == b
        clear = rows & (loo_label >= 0)
        if clear.any():
            rate[b] = loo_right[clear].mean()
        print(f"| {b if b < 3 else '3+'} | {rows.sum()} | {(rows & (loo_label < 0)).sum()} | {rate[b]:.4f} |")
    found = copy_labels(x, y, np.asarray(prepared.x_test))
    clear = found.label >= 0
    p_wrong = np.where(clear, 1 - rate[_bucket(found.copies)], 0.0)
    wrong = float(p_wrong.sum())
    wrong_hi = wrong + 2 * float(np.sqrt((p_wrong * (1 - p_wrong)).sum()))
    n_test = len(found.label)
    print(f"\nreal test set: {(found.copies > 0).sum()} of {n_test} faces have labelled copies, {clear.sum()} with a "
          f"clear majority; the copies' label is expected wrong on W = {wrong:.1f} of them (+2 s.d.: {wrong_hi:.1f})\n")
    print("| run | test labels changed by --copies (k) | of which the run's top probability >= 0.5 | "
          "gain at least k - 2 W rows (+2 s.d. of W) | in points of test accuracy |")
    print("|---|---|---|---|---|")
    for ref in refs:
        run = select_run(ref, runs_root)
        proba = np.asarray(run.proba("test"))
        labels = proba.argmax(axis=1)
        written, applied = apply_copies(labels, found)
        changed = written != labels
        sure = int((changed & (proba.max(axis=1) >= 0.5)).sum())
        bound = applied.changed - 2 * wrong_hi
        print(f"| {run.run_id} | {applied.changed} | {sure} | {applied.changed - 2 * wrong:.0f} "
              f"({bound:.0f}) | {100 * bound / n_test:+.2f} |")


def _cpu() -> str:
    """The CPU model and whether it has the bfloat16 / AMX flags."""
    flags = cpu_flags()
    return (f"{cpu_model()} (avx512_bf16: {'yes' if 'avx512_bf16' in flags else 'no'}, amx: "
            f"{'yes' if any(f.startswith('amx') for f in flags) else 'no'})")


if __name__ == "__main__":
    main()
