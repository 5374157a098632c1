"""The one ranking of runs and the one answer to `best` and `latest`, for every command.

`rank_key` orders runs: holdout-val accuracy, then macro-F1, then a refit before its source, then
the older id. The leaderboard, `ensemble --top` and `best` all sort by it. `select_run` turns a
run argument into a run: `best` is the top-ranked run with test probabilities, `latest` the newest
completed run, both among the runs on the current prepared split only; anything else is a run id
(or a unique part of one, or a folder). submit, report, predict, serve and export all resolve
their run argument here; predict, serve and export then refuse a chosen run that has no saved
model (`ferkaggle.photos.predictor.select_predict_run`) instead of choosing another.
The refit helpers say which runs a refit on all labelled rows stands in for (ensembles)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ferkaggle.core.errors import FerkaggleError
from ferkaggle.data.prepared import DEFAULT_ROOT as PREPARED_ROOT
from ferkaggle.data.prepared import current_split_fingerprint
from ferkaggle.runs.registry import SELECTORS, Run, list_runs, load_run, runs_root


def rank_key(val_accuracy: float | None, val_macro_f1: float | None, run_id: str, refit: bool = False) -> tuple:
    """THE ranking of runs, as a sort key (ascending = better first): higher holdout accuracy,
    then higher macro-F1, then a refit before the run it refits (they carry the same figures; the
    refit trained on more rows), then the older run id (ids sort by time). Runs without an
    accuracy last. The leaderboard, `best` and `ensemble --top` (there on each fitting half) all
    sort by it."""
    return (val_accuracy is None, -(val_accuracy or 0.0), -(val_macro_f1 or 0.0), not refit, run_id)


def run_rank_key(run: Run) -> tuple:
    """`rank_key` of a run, from its metrics.json and run.json."""
    return rank_key(run.val_accuracy, run.metrics.get("val_macro_f1"), run.run_id, is_refit(run))


def is_refit(run: Run) -> bool:
    """Whether the run is a `ferkaggle refit` of another run."""
    return bool(run.info.get("refit_of"))


def refit_on_holdout(run: Run) -> bool:
    """Whether the run is a refit on all labelled rows: it trained on the holdout, and its holdout
    probabilities and figures are its source's."""
    return is_refit(run) and run.info.get("refit_rows") == "all"


def superseded_by_refit(runs: Iterable[Run]) -> set[str]:
    """Ids of the runs that have a refit on all labelled rows among `runs`: the refit carries the
    same holdout probabilities and a model trained on more rows, so it takes their place in
    ensembles (one of the two, not both)."""
    return {str(r.info["refit_of"]) for r in runs if refit_on_holdout(r)}


def rank_runs(runs: Iterable[Run]) -> list[Run]:
    """Runs best first by `rank_key`."""
    return sorted(runs, key=run_rank_key)


def best_candidates(runs: Iterable[Run], split_fingerprint: str | None = None) -> list[Run]:
    """The runs `best` chooses among: a holdout accuracy and test probabilities (on the split)."""
    return [r for r in runs if r.val_accuracy is not None and r.has_proba("test")
            and (split_fingerprint is None or r.split_fingerprint == split_fingerprint)]


def best_run(runs: Iterable[Run], split_fingerprint: str | None = None) -> Run | None:
    """The top-ranked of `best_candidates`, or None when there is none."""
    ranked = rank_runs(best_candidates(runs, split_fingerprint))
    return ranked[0] if ranked else None


def current_split(prepared_root: str | Path | None = None) -> str:
    """The split fingerprint of the latest prepared data; a one-line error when there is none."""
    where = Path(prepared_root) if prepared_root is not None else PREPARED_ROOT
    split = current_split_fingerprint(where)
    if split is None:
        raise FerkaggleError(f"`best` and `latest` choose among runs on the current prepared data, and there is "
                             f"none in {where}/ (no LATEST or its folder is gone): run `ferkaggle prepare`, "
                             "or name a run id")
    return split


def select_run(ref: str, root: str | Path | None = None, *, prepared_root: str | Path | None = None,
               split_fingerprint: str | None = None) -> Run:
    """A run by reference: `best` (top of `rank_runs` with test probabilities) or `latest` (newest
    completed) among the runs on the current prepared split only (`split_fingerprint`, default: the
    latest prepared data's); anything else as `load_run` (id, unique part of an id, folder path)."""
    if ref not in SELECTORS:
        return load_run(ref, root)
    root = runs_root(root)
    split = split_fingerprint or current_split(prepared_root)
    here = [r for r in list_runs(root) if r.split_fingerprint == split]
    chosen = best_run(here) if ref == "best" else (here[-1] if here else None)
    if chosen is None:
        what = "completed run with test probabilities" if ref == "best" else "completed run"
        raise FerkaggleError(f"no {what} in {root}/ on the current prepared data (split {split[:8]}): "
                             "run `ferkaggle baseline` or `ferkaggle train` first")
    return chosen
