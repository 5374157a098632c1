"""Ensembles of saved runs: mean, accuracy-weighted mean, and greedy forward selection.

Inputs are runs' saved probabilities (`val_proba`, `test_proba`, `oof_proba`), so any
model kinds combine without retraining. All candidates must share one split fingerprint.

Selection never sees the rows it is scored on. The holdout is split in two stratified
halves; on each half ("fitting half") the ensemble chooses its members (with `top` K: the K
candidates ranked best on that half by `runs.select.rank_key`) and fits their weights, then predicts
the OTHER half. Those cross-fitted probabilities are the ensemble's `val_proba`, so its
leaderboard accuracy is a score no choice was made on (`scored_on` = "holdout, cross-fitted
halves"). The test probabilities use members and weights chosen the same way on the whole
holdout (nothing is scored on the test rows locally, except a labelled demo test).

Greedy selection follows Caruana et al. (2004): start from nothing, repeatedly add the
member (with replacement) that most improves accuracy on the fitting rows (log-loss breaks
ties), and keep the best-scoring prefix; weights are selection counts.

`choose_candidates` is the `ensemble --top` pool: completed non-ensemble runs with holdout and
test probabilities on the current prepared split. Runs named by the user are taken as given
(the user may have picked them by their holdout score; the run records that they were named).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from ferkaggle.core.constants import DEFAULT_SEED
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.metrics import accuracy, labelled_test_scores, scores
from ferkaggle.core.presets import to_dict
from ferkaggle.runs.registry import Run, RunWriter, list_runs, prepared_for_run, read_run
from ferkaggle.runs.select import current_split, is_refit, rank_key, refit_on_holdout, select_run, superseded_by_refit

Method = Literal["mean", "weighted", "greedy"]


@dataclass(frozen=True)
class EnsembleConfig:
    method: Method = "greedy"      # mean | weighted (by accuracy on the fitting rows) | greedy (Caruana forward selection)
    greedy_rounds: int = 40        # greedy: selection steps, with replacement
    top: int = 0                   # members: the `top` best candidates on each fitting half; 0 = every candidate
    seed: int = DEFAULT_SEED       # seeds the split of the holdout into two halves

    def __post_init__(self) -> None:
        """The one check of --method and --top, whichever way the ensemble is built."""
        methods = get_args(Method)
        if self.method not in methods:
            raise FerkaggleError(f"--method must be one of {', '.join(methods)}, not {self.method!r}")
        if self.top < 0 or self.top == 1:
            raise FerkaggleError(f"--top must be 2 or more (or 0 for every run), not {self.top}")


def _log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    return float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0)).mean())


def fit_weights(method: Method, probas: np.ndarray, y: np.ndarray, rounds: int = 40) -> np.ndarray:
    """Member weights (summing to 1) fitted on holdout probabilities `probas` [members, n, 7]."""
    members = len(probas)
    if method == "mean":
        return np.full(members, 1.0 / members)
    if method == "weighted":
        acc = np.array([accuracy(y, p) for p in probas])
        return acc / acc.sum() if acc.sum() > 0 else np.full(members, 1.0 / members)
    # greedy (EnsembleConfig admits no other method)
    counts = np.zeros(members)
    total = np.zeros_like(probas[0], dtype=np.float64)
    best_key, best_counts = None, None
    for step in range(1, rounds + 1):
        keys = []
        for m in range(members):
            candidate = (total + probas[m]) / step
            keys.append((accuracy(y, candidate), -_log_loss(y, candidate)))
        pick = max(range(members), key=lambda m: keys[m])
        counts[pick] += 1
        total += probas[pick]
        if best_key is None or keys[pick] > best_key:
            best_key, best_counts = keys[pick], counts.copy()
    return best_counts / best_counts.sum()


def combine(probas: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return np.tensordot(weights, probas, axes=1).astype(np.float32)


def halves(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two stratified halves of the holdout rows (indices), deterministic in seed."""
    rng = np.random.default_rng(seed)
    a, b = [], []
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        a.append(rows[: (len(rows) + 1) // 2])
        b.append(rows[(len(rows) + 1) // 2:])
    return np.sort(np.concatenate(a)), np.sort(np.concatenate(b))


def best_on_halves(runs: list[Run], y_val: np.ndarray, seed: int = DEFAULT_SEED) -> dict | None:
    """`best` as a procedure, scored free of its own choice. `best` picks the top run by its holdout
    accuracy, so that accuracy is the score it was chosen on: among many runs the winner's is
    optimistic. Here the choice is made on one stratified half of the holdout (the ensembles' halves,
    `rank_key` on that half alone) and scored on the other, both ways; an ensemble's holdout
    probabilities are already cross-fitted, so it competes on the same terms. None with fewer than
    two candidates with holdout probabilities (nothing to choose)."""
    pool = [r for r in runs if r.has_proba("val")]
    if len(pool) < 2:
        return None
    y = np.asarray(y_val, dtype=np.int64)
    val = np.stack([r.proba("val") for r in pool])
    half_a, half_b = halves(y, seed)
    (on_a,) = choose_members(pool, val[:, half_a], y[half_a], top=1)  # the top run by rank_key on half A alone
    (on_b,) = choose_members(pool, val[:, half_b], y[half_b], top=1)
    picked = np.empty_like(val[0])
    picked[half_b] = val[on_a, half_b]  # each half predicted by the run picked on the other
    picked[half_a] = val[on_b, half_a]
    return {"accuracy": accuracy(y, picked), "picked_on_half_a": pool[on_a].run_id, "picked_on_half_b": pool[on_b].run_id,
            "candidates": len(pool)}


@dataclass
class EnsembleResult:
    weights: np.ndarray            # over the candidates, chosen and fitted on the whole holdout: used for test
    val_proba: np.ndarray          # cross-fitted: each half predicted by members and weights chosen on the other
    test_proba: np.ndarray
    oof_proba: np.ndarray | None
    half_weights: tuple[np.ndarray, np.ndarray]  # over the candidates, chosen and fitted on half A / half B
    metrics: dict


def check_compatible(runs: list[Run]) -> None:
    if len(runs) < 2:
        raise FerkaggleError("an ensemble needs at least two runs")
    if len({r.run_id for r in runs}) < len(runs):
        raise FerkaggleError("the same run is named twice")
    for r in runs:
        if r.status != "completed":
            raise FerkaggleError(f"run {r.run_id} is {r.status}, not completed")
    splits = {r.split_fingerprint for r in runs}
    if len(splits) > 1:
        detail = "; ".join(f"{r.run_id} (split {r.split_fingerprint})" for r in runs)
        raise FerkaggleError(f"these runs were made on different splits and cannot be combined honestly: {detail}")
    for r in runs:
        for which in ("val", "test"):
            if not r.has_proba(which):
                raise FerkaggleError(f"run {r.run_id} has no {which} probabilities; it cannot join an ensemble")


def choose_members(runs: list[Run], probas: np.ndarray, y: np.ndarray, top: int) -> np.ndarray:
    """Indices of the members chosen on these rows: all candidates, or the `top` best by `rank_key`
    computed on these rows only (accuracy, macro-F1, run id)."""
    if not top or top >= len(runs):
        return np.arange(len(runs))
    keys = []
    for i, (run, proba) in enumerate(zip(runs, probas)):
        s = scores(y, proba)
        keys.append((rank_key(s["accuracy"], s["macro_f1"], run.run_id, is_refit(run)), i))
    return np.array(sorted(i for _, i in sorted(keys)[:top]))


def _fit_on(runs: list[Run], val: np.ndarray, y: np.ndarray, rows: np.ndarray, cfg: EnsembleConfig) -> np.ndarray:
    """Weights over all candidates (0 = not a member), with members and weights chosen on `rows` alone."""
    members = choose_members(runs, val[:, rows], y[rows], cfg.top)
    weights = np.zeros(len(runs))
    weights[members] = fit_weights(cfg.method, val[members][:, rows], y[rows], cfg.greedy_rounds)
    return weights


def build_ensemble(runs: list[Run], y_val: np.ndarray, cfg: EnsembleConfig) -> EnsembleResult:
    """Cross-fit members and weights over the candidate `runs` (see the module docstring)."""
    check_compatible(runs)
    y_val = np.asarray(y_val, dtype=np.int64)
    val = np.stack([r.proba("val").astype(np.float64) for r in runs])
    test = np.stack([r.proba("test").astype(np.float64) for r in runs])
    half_a, half_b = halves(y_val, cfg.seed)
    w_a = _fit_on(runs, val, y_val, half_a, cfg)
    w_b = _fit_on(runs, val, y_val, half_b, cfg)
    honest = np.empty_like(val[0], dtype=np.float32)
    honest[half_b] = combine(val[:, half_b], w_a)
    honest[half_a] = combine(val[:, half_a], w_b)
    everything = np.arange(len(y_val))
    weights = _fit_on(runs, val, y_val, everything, cfg)
    members = choose_members(runs, val, y_val, cfg.top)
    oof = None
    if all(r.has_proba("oof") for r in runs):
        oof = combine(np.stack([r.proba("oof").astype(np.float64) for r in runs]), weights)
    metrics = _ensemble_metrics(runs, y_val, val, honest, weights, members, (half_a, half_b), (w_a, w_b))
    return EnsembleResult(weights, honest, combine(test, weights), oof, (w_a, w_b), metrics)


def _ensemble_metrics(runs: list[Run], y_val: np.ndarray, val: np.ndarray, honest: np.ndarray, weights: np.ndarray,
                      members: np.ndarray, half_rows: tuple[np.ndarray, np.ndarray],
                      half_weights: tuple[np.ndarray, np.ndarray]) -> dict:
    """metrics.json of an ensemble: the cross-fitted holdout scores, the in-sample one, who joined where."""
    (half_a, half_b), (w_a, w_b) = half_rows, half_weights
    in_sample = scores(y_val, combine(val, weights))
    honest_scores = scores(y_val, honest)
    member_acc = {r.run_id: r.val_accuracy for r in runs}

    def chosen(w):
        return [r.run_id for r, x in zip(runs, w) if x > 0]

    return {
        "val_accuracy": honest_scores["accuracy"],
        "val_macro_f1": honest_scores["macro_f1"],
        "scored_on": "holdout, cross-fitted halves",
        "selected_on_score": False,
        "selected_on": "members and weights of each holdout half: chosen on the other half",
        "val_accuracy_half_a": accuracy(y_val[half_a], honest[half_a]),
        "val_accuracy_half_b": accuracy(y_val[half_b], honest[half_b]),
        "val_accuracy_in_sample": in_sample["accuracy"],  # members and weights chosen AND scored on the whole holdout
        "best_member_val_accuracy": max(v for v in member_acc.values() if v is not None),
        "candidates": member_acc,
        "members": [runs[i].run_id for i in members],  # chosen on the whole holdout: the test ensemble
        "members_used_on_half_a": chosen(w_a),  # fitted on half A, predicting half B
        "members_used_on_half_b": chosen(w_b),
        "weights": {r.run_id: round(float(w), 6) for r, w in zip(runs, weights)},
    }


def choose_candidates(root: str | Path | None = None, *, split_fingerprint: str | None = None,
                      prepared_root: str | Path | None = None) -> list[Run]:
    """The `ensemble --top` pool: completed non-ensemble runs with holdout and test probabilities
    on the current prepared split (oldest first), a run refit on all labelled rows in place of its
    source. Which of them join is decided per fitting half."""
    split = split_fingerprint or current_split(prepared_root)
    pool = [r for r in list_runs(root) if r.kind != "ensemble" and r.split_fingerprint == split
            and r.val_accuracy is not None and r.has_proba("val") and r.has_proba("test")]
    replaced = superseded_by_refit(pool)
    return [r for r in pool if r.run_id not in replaced]


def run_ensemble(runs: list[Run], cfg: EnsembleConfig, runs_root=None, *, named: bool = False) -> tuple[Run, EnsembleResult]:
    """Build the ensemble over the candidate runs and record it as a run of kind `ensemble`."""
    check_compatible(runs)
    prepared = prepared_for_run(runs[0])
    result = build_ensemble(runs, prepared.y_val, cfg)
    result.metrics.update(labelled_test_scores(prepared.y_test, result.test_proba))
    if named:
        result.metrics["selected_on"] += "; candidates named by the user"
    used = [r.run_id for r, w in zip(runs, result.weights) if w > 0]
    refits = [r.run_id for r, w in zip(runs, result.weights) if w > 0 and refit_on_holdout(r)]
    if refits:  # their holdout probabilities are their sources': the recipe before the refit
        result.metrics["scored_on"] += ", refit members by the recipe before the refit"
        result.metrics["refit_members"] = refits
    config = {**to_dict(cfg), "candidates": [r.run_id for r in runs], "members": result.metrics["members"],
              "named_by_user": named}
    summary = f"{cfg.method} of {len(runs)} runs" + (f" (top {cfg.top} per half)" if cfg.top else "") + f", {len(used)} used"
    with RunWriter("ensemble", f"ensemble-{cfg.method}", config, prepared, seed=cfg.seed,
                   summary=summary, model=f"ensemble-{cfg.method}", root=runs_root) as writer:
        writer.save_probas(val=result.val_proba, test=result.test_proba, oof=result.oof_proba)
        writer.save_metrics(result.metrics)
    return read_run(writer.dir), result


def ensemble_stage(refs: list[str] | None, cfg: EnsembleConfig, runs_root=None) -> tuple[Run, EnsembleResult]:
    """The `ferkaggle ensemble` stage: the named runs (all of them join), or with none named the
    current split's candidates, of which the `cfg.top` best on each fitting half join."""
    if refs:
        runs = [select_run(ref, runs_root) for ref in refs]
        return run_ensemble(runs, EnsembleConfig(method=cfg.method, greedy_rounds=cfg.greedy_rounds, top=0,
                                                 seed=cfg.seed), runs_root, named=True)
    pool = choose_candidates(runs_root)
    if len(pool) < 2:
        raise FerkaggleError(f"found {len(pool)} usable run(s) on the current prepared data; an ensemble needs two")
    return run_ensemble(pool, cfg, runs_root)
