"""Tiny synthetic data for tests: a prepared set of drawn faces, and completed runs with made-up
probabilities that are correlated with the labels by a chosen skill."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_tiny_prepared(root: Path, n: int = 240, n_test: int = 60, folds: int = 3, seed: int = 0):
    """A small prepared set of synthetic faces: every 5th labelled row is holdout-val."""
    from ferkaggle.data.prepared import write_prepared
    from ferkaggle.data.synthetic import make_faces

    x, y = make_faces(n, seed=seed)
    x_test, y_test = make_faces(n_test, seed=seed + 1)
    fold = (np.arange(n) % folds).astype(np.int8)
    fold[::5] = -1
    return write_prepared(
        root, "tiny", x=x, y=y, fold=fold, x_test=x_test,
        test_ids=np.arange(n_test, dtype=np.int64), y_test=y_test,
        manifest={"layout": "synthetic", "seed": seed},
    )


def fake_proba(y: np.ndarray, skill: float, rng: np.random.Generator) -> np.ndarray:
    """Probabilities that put extra mass on the true class for a `skill` share of rows."""
    n = len(y)
    logits = rng.normal(size=(n, 7))
    knows = rng.random(n) < skill
    logits[np.arange(n)[knows], y[knows]] += 4.0
    proba = np.exp(logits)
    return (proba / proba.sum(axis=1, keepdims=True)).astype(np.float32)


def make_fake_run(prepared, name: str, skill: float, seed: int = 0, kind: str = "baseline", oof: bool = True):
    """A completed run with made-up but label-correlated probabilities, written through the registry."""
    from ferkaggle.core.metrics import scores
    from ferkaggle.runs.registry import RunWriter, read_run

    rng = np.random.default_rng(seed)
    val = fake_proba(np.asarray(prepared.y_val), skill, rng)
    y_test = prepared.y_test if prepared.y_test is not None else np.zeros(len(prepared.x_test), np.int64)
    test = fake_proba(np.asarray(y_test), skill, rng)
    with RunWriter(kind, name, {"skill": skill}, prepared, seed=seed, summary=f"fake skill {skill}") as writer:
        writer.save_probas(val=val, test=test, oof=fake_proba(np.asarray(prepared.y_train), skill, rng) if oof else None)
        s = scores(prepared.y_val, val)
        writer.save_metrics({"val_accuracy": s["accuracy"], "val_macro_f1": s["macro_f1"]})
    return read_run(writer.dir)


class GatedPredictor:
    """A stand-in for photos.predictor.Predictor whose `predict` waits until `gate` is set (or 30 s), for
    tests of a busy server: `calls` counts the predictions that started. Uniform probabilities."""

    def __init__(self):
        import threading
        from types import SimpleNamespace

        self.run = SimpleNamespace(run_id="gated-fake", kind="fake")
        self.gate = threading.Event()
        self.calls = 0

    def predict(self, faces):
        self.calls += 1
        self.gate.wait(30)
        return np.full((len(faces), 7), 1 / 7, np.float32)


class OneBoxDetector:
    """A detector that finds one face, the photo's top-left 48x48 square, in any photo."""

    name = "one-box"

    def detect(self, rgb):
        return [(0, 0, 48, 48)]


def to_numpy(outputs):
    """A model call's outputs as NumPy on any Keras backend (a torch tensor that requires grad refuses
    np.asarray; keras.ops.convert_to_numpy detaches it)."""
    import keras

    return keras.ops.convert_to_numpy(outputs)
