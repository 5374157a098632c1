"""Pseudo-labels on the test faces, paired: a teacher, then the same recipe and seed with its pseudo-labels.

    python bench/pseudo_labels.py --data <prepared FER2013> --config bench/configs/pl-simple30.toml \
        --threshold 0.7 --seeds 42 43 [--runs runs-pl]

For each seed: the config trains alone (`train_config`), and is the teacher; then the same config with
the same seed trains again plus the test faces the teacher gives one class at least `threshold` probability,
labelled with that class (`ferkaggle train --teacher T --pseudo-labels 0.7`; labelled rows keep their
labels). Both are scored on the same holdout rows, which neither saw; the student's own holdout copies
are left out of its pseudo-labelled rows. Prints a Markdown table: holdout accuracy of each, the paired
difference with its bootstrap standard error (bench/free_accuracy.py `paired`), the pseudo-labelled
rows and the minutes each trained. Runs go to --runs (a registry of their own).

With `--teacher RUN` (repeat: their mean) those runs are the teachers of every seed's student instead,
e.g. the runs of earlier seeds, for a teacher stronger than one run: the comparison stays the config
alone against the config with the pseudo-labels, on the same seed. A second table then gives what each
adds to an ensemble with the teachers (the equal mean of the members' holdout probabilities).

`--report ALONE STUDENT` (repeat) prints both tables for runs trained before, without training.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from free_accuracy import paired  # noqa: E402

from ferkaggle.cnn.config import load_train_config  # noqa: E402
from ferkaggle.cnn.train import train_config  # noqa: E402
from ferkaggle.core.metrics import accuracy  # noqa: E402
from ferkaggle.data.prepared import load_prepared  # noqa: E402
from ferkaggle.runs.select import select_run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--config", default="bench/configs/pl-simple30.toml")
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42])
    ap.add_argument("--runs", default="runs-pl")
    ap.add_argument("--teacher", action="append", default=[], help="run id (in --runs) of a teacher for every seed")
    ap.add_argument("--report", nargs=2, action="append", default=[], metavar=("ALONE", "STUDENT"),
                    help="instead of training: the rows of these runs (in --runs)")
    args = ap.parse_args()
    prepared = load_prepared(args.data, mmap=True)
    cfg = load_train_config(args.config)
    fixed = [select_run(ref, args.runs) for ref in args.teacher]
    pairs = [(select_run(a, args.runs), select_run(b, args.runs)) for a, b in args.report]
    for seed in ([] if pairs else args.seeds):
        alone = train_config(prepared, cfg, seed=seed, root=args.runs)
        student = train_config(prepared, cfg, seed=seed, root=args.runs, teachers=fixed or [alone], teacher_weight=0.0,
                               pseudo_threshold=args.threshold)
        pairs.append((alone, student))
        print_tables(prepared, pairs, args.runs)
    if args.report:
        print_tables(prepared, pairs, args.runs)


def print_tables(prepared, pairs: list, runs_root: str) -> None:
    y = prepared.y_val
    lines = ["| seed | teachers | alone: holdout | with pseudo-labels | difference (± s.e.) | pseudo-labelled test faces "
             "| minutes alone | minutes with |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    ensembles = ["| ensemble: the teachers + | with the run alone | with the student | difference (± s.e.) |",
                 "|---|---:|---:|---:|"]
    for alone, student in pairs:
        diff, se = paired(y, student.proba("val"), alone.proba("val"))
        p = student.info["pseudo_labels"]
        teachers = [select_run(t, runs_root) for t in student.info["teachers"]]
        own = [t.run_id for t in teachers] == [alone.run_id]
        who = "the run alone" if own else ", ".join(t.run_id for t in teachers)
        lines.append(f"| {alone.info['seed']} | {who} | {alone.metrics['val_accuracy']:.4f} "
                     f"| {student.metrics['val_accuracy']:.4f} | {diff * 100:+.2f} ± {se * 100:.2f} pt "
                     f"| {p['rows']:,} of {p['confident']:,} confident ({p['left_out_near_holdout']} holdout copies "
                     f"left out) | {alone.metrics['train_seconds'] / 60:.1f} | {student.metrics['train_seconds'] / 60:.1f} |")
        if not own:
            base = sum(t.proba("val") for t in teachers)
            with_alone, with_student = base + alone.proba("val"), base + student.proba("val")
            diff, se = paired(y, with_student, with_alone)
            ensembles.append(f"| {who} | {accuracy(y, with_alone):.4f} | {accuracy(y, with_student):.4f} "
                             f"| {diff * 100:+.2f} ± {se * 100:.2f} pt |")
    print("\n".join(lines + [""] + (ensembles if len(ensembles) > 2 else [])), flush=True)


if __name__ == "__main__":
    main()
