"""Ensembles of saved runs: mean, accuracy-weighted mean, and greedy forward selection.

Inputs are runs' saved probabilities (`val_proba`, `test_proba`, `oof_proba`), so any
model kinds combine without retraining. All members must share one split fingerprint.

Honest holdout score: weights are never scored on the rows they were fitted on. The
holdout is split in two stratified halves; weights fitted on half A predict half B and
vice versa, and those cross-fitted probabilities are the ensemble's `val_proba` (so its
leaderboard accuracy is honest). The test probabilities use weights fitted on the
whole holdout.

Greedy selection follows Caruana et al. (2004): start from nothing, repeatedly add the
member (with replacement) that most improves holdout accuracy (log-loss breaks ties),
and keep the best-scoring prefix; weights are selection counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ferkaggle.config import to_dict
from ferkaggle.errors import FerkaggleError
from ferkaggle.metrics import scores
from ferkaggle.runs import Run, RunWriter, prepared_for_run, read_run

Method = Literal["mean", "weighted", "greedy"]


@dataclass(frozen=True)
class EnsembleConfig:
    method: Method = "greedy"      # mean | weighted (by holdout accuracy) | greedy (Caruana forward selection)
    greedy_rounds: int = 40        # greedy: selection steps, with replacement
    seed: int = 42                 # seeds the split of the holdout into two halves for honest scoring


def _log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    return float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0)).mean())


def _accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    return float((proba.argmax(axis=1) == y).mean())


def fit_weights(method: Method, probas: np.ndarray, y: np.ndarray, rounds: int = 40) -> np.ndarray:
    """Member weights (summing to 1) fitted on holdout probabilities `probas` [members, n, 7]."""
    members = len(probas)
    if method == "mean":
        return np.full(members, 1.0 / members)
    if method == "weighted":
        acc = np.array([_accuracy(y, p) for p in probas])
        return acc / acc.sum() if acc.sum() > 0 else np.full(members, 1.0 / members)
    if method == "greedy":
        counts = np.zeros(members)
        total = np.zeros_like(probas[0], dtype=np.float64)
        best_key, best_counts = None, None
        for step in range(1, rounds + 1):
            keys = []
            for m in range(members):
                candidate = (total + probas[m]) / step
                keys.append((_accuracy(y, candidate), -_log_loss(y, candidate)))
            pick = max(range(members), key=lambda m: keys[m])
            counts[pick] += 1
            total += probas[pick]
            if best_key is None or keys[pick] > best_key:
                best_key, best_counts = keys[pick], counts.copy()
        return best_counts / best_counts.sum()
    raise FerkaggleError(f"unknown ensemble method {method!r}; choose mean, weighted or greedy")


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


@dataclass
class EnsembleResult:
    weights: np.ndarray            # fitted on the whole holdout, used for test
    val_proba: np.ndarray          # cross-fitted: each half predicted with weights from the other
    test_proba: np.ndarray
    oof_proba: np.ndarray | None
    half_weights: tuple[np.ndarray, np.ndarray]
    metrics: dict


def check_compatible(runs: list[Run]) -> None:
    if len(runs) < 2:
        raise FerkaggleError("an ensemble needs at least two runs")
    splits = {r.split_fingerprint for r in runs}
    if len(splits) > 1:
        detail = "; ".join(f"{r.run_id} (split {r.split_fingerprint})" for r in runs)
        raise FerkaggleError(f"these runs were made on different splits and cannot be combined honestly: {detail}")
    for r in runs:
        for which in ("val", "test"):
            if not r.has_proba(which):
                raise FerkaggleError(f"run {r.run_id} has no {which} probabilities; it cannot join an ensemble")


def build_ensemble(runs: list[Run], y_val: np.ndarray, cfg: EnsembleConfig) -> EnsembleResult:
    check_compatible(runs)
    y_val = np.asarray(y_val, dtype=np.int64)
    val = np.stack([r.proba("val").astype(np.float64) for r in runs])
    test = np.stack([r.proba("test").astype(np.float64) for r in runs])
    half_a, half_b = halves(y_val, cfg.seed)
    w_a = fit_weights(cfg.method, val[:, half_a], y_val[half_a], cfg.greedy_rounds)
    w_b = fit_weights(cfg.method, val[:, half_b], y_val[half_b], cfg.greedy_rounds)
    honest = np.empty_like(val[0], dtype=np.float32)
    honest[half_b] = combine(val[:, half_b], w_a)
    honest[half_a] = combine(val[:, half_a], w_b)
    weights = fit_weights(cfg.method, val, y_val, cfg.greedy_rounds)
    oof = None
    if all(r.has_proba("oof") for r in runs):
        oof = combine(np.stack([r.proba("oof").astype(np.float64) for r in runs]), weights)
    in_sample = scores(y_val, combine(val, weights))
    honest_scores = scores(y_val, honest)
    member_acc = {r.run_id: r.val_accuracy for r in runs}
    metrics = {
        "val_accuracy": honest_scores["accuracy"],
        "val_macro_f1": honest_scores["macro_f1"],
        "val_accuracy_half_a": _accuracy(y_val[half_a], honest[half_a]),
        "val_accuracy_half_b": _accuracy(y_val[half_b], honest[half_b]),
        "val_accuracy_in_sample": in_sample["accuracy"],
        "best_member_val_accuracy": max(v for v in member_acc.values() if v is not None),
        "members": member_acc,
        "weights": {r.run_id: round(float(w), 6) for r, w in zip(runs, weights)},
    }
    return EnsembleResult(weights, honest, combine(test, weights), oof, (w_a, w_b), metrics)


def run_ensemble(runs: list[Run], cfg: EnsembleConfig, runs_root=None) -> tuple[Run, EnsembleResult]:
    """Build the ensemble and record it as a run of kind `ensemble`."""
    check_compatible(runs)
    prepared = prepared_for_run(runs[0])
    result = build_ensemble(runs, prepared.y_val, cfg)
    if prepared.y_test is not None:
        result.metrics["test_accuracy"] = _accuracy(np.asarray(prepared.y_test, dtype=np.int64), result.test_proba)
    used = [r.run_id for r, w in zip(runs, result.weights) if w > 0]
    config = {**to_dict(cfg), "members": [r.run_id for r in runs]}
    summary = f"{cfg.method} of {len(runs)} runs ({len(used)} used)"
    with RunWriter("ensemble", f"ensemble-{cfg.method}", config, prepared, seed=cfg.seed,
                   summary=summary, model=f"ensemble-{cfg.method}", root=runs_root) as writer:
        writer.save_probas(val=result.val_proba, test=result.test_proba, oof=result.oof_proba)
        writer.save_metrics(result.metrics)
    return read_run(writer.dir), result
