"""Classical baselines with k-fold CV: random forest (default), extra-trees, logistic
regression, KNN, RBF SVM, Gaussian naive Bayes, k-means clusters as a classifier (each cluster
predicts its training rows' majority label) and k-means distances feeding a logistic
regression, on pixel or HOG features.

Input: a `Prepared` set (its training rows carry a fold 0..k-1; the holdout-val rows and
the test rows are never trained on) and a `BaselineConfig`.

What `run_baseline` does, for each fold k of `prepared.train_folds` (never re-split):
fit a fresh pipeline [scaler] -> [PCA] -> [k-means distances -> scaler] -> model on the
training rows of the other folds (everything learned, the k-means clusters and their labels
included, comes from those rows only),
predict fold k (its out-of-fold probabilities), the holdout-val rows and the test rows.

Output, through the run registry (`runs/<run_id>/`, kind "baseline"):
- ``oof_proba.npy``: one row per training row, from the one fold model that never saw it;
- ``val_proba.npy`` / ``test_proba.npy``: the MEAN of the k fold models' probabilities.
  We average the fold models rather than refit on all training rows: it costs no extra
  fit (a refit would be the most expensive fit of the run), the k-model average is itself
  a small bagged ensemble that scores as well as a single refit in practice, and the
  val/test probabilities then come from exactly the models whose OOF scores are reported;
- ``model.joblib``: those k fold pipelines as one `FoldEnsemble` (zlib-compressed;
  `predict_proba(uint8 faces)` reproduces test_proba), unless `save_model = false`.
  Full-depth RF on FER2013 pixels is about 20 MB per fold compressed;
- ``metrics.json``: val_accuracy, val_macro_f1, cv_mean, cv_std (over fold accuracies,
  population std), cv_macro_f1_mean, oof_accuracy, folds [{fold, accuracy, macro_f1,
  seconds, n_train, n_predicted}], train_seconds, feature_seconds, model_bytes and, when
  the prepared test set has labels, test_accuracy and test_macro_f1.

The same seed gives identical folds scores: every random choice (trees, PCA, subsample)
is seeded from `cfg.seed` and the fold index.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ferkaggle.classical.features import FeatureKind, HogSettings, compute_features, prepared_features
from ferkaggle.classical.kmeans import KMeansClassifier
from ferkaggle.core.console import track
from ferkaggle.core.constants import DEFAULT_SEED, NUM_CLASSES
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.metrics import accuracy, labelled_test_scores, scores
from ferkaggle.core.presets import to_dict
from ferkaggle.data.prepared import Prepared
from ferkaggle.runs.registry import RunWriter, read_run

ModelName = Literal["rf", "extra-trees", "logreg", "knn", "svm", "nb", "kmeans", "kmeans-logreg"]
ClassWeight = Literal["none", "balanced"]

# What `None` resolves to for each model (the settings of the notebooks this package replaces).
DEFAULT_PCA = {"knn": 100, "svm": 50}  # PCA components; other models: no PCA
DEFAULT_MAX_TRAIN_ROWS = {"svm": 8000}  # SVC with Platt scaling is ~O(n^2): cap it to finish in minutes
DEFAULT_CLUSTERS = {"kmeans": 6, "kmeans-logreg": 35}  # k-means clusters (the two notebooks' settings)
KMEANS_MODELS = tuple(DEFAULT_CLUSTERS)
MODEL_LABELS = {"rf": "random forest", "extra-trees": "extra-trees", "logreg": "logistic regression",
                "knn": "k-nearest neighbours", "svm": "RBF SVM", "nb": "Gaussian naive Bayes",
                "kmeans": "k-means clusters", "kmeans-logreg": "k-means distances + logistic regression"}


@dataclass(frozen=True)
class BaselineConfig:
    """One classical baseline. A preset (ferkaggle/configs/baseline/<name>.toml) lists only what it changes."""

    model: ModelName = "rf"  # rf | extra-trees | logreg | knn | svm | nb | kmeans | kmeans-logreg
    features: FeatureKind = "pixels"  # pixels: grey levels / 255; hog: scikit-image HOG
    pca: int | None = None  # PCA components fitted per fold; 0 = off; None = model default (knn 100, svm 50, else off)
    max_train_rows: int | None = None  # stratified cap on each fold's training rows; 0 = all; None = model default (svm 8000, else all)
    seed: int = DEFAULT_SEED  # seeds every random choice; same seed + data = same CV scores
    n_jobs: int = -1  # worker processes/threads for fitting and HOG; -1 = all cores

    # random forest / extra-trees
    n_estimators: int = 100  # trees
    max_depth: int = 0  # maximum tree depth; 0 = grow until leaves are pure (notebook default)
    min_samples_leaf: int = 1  # minimum training rows in a leaf
    max_features: str = "sqrt"  # features tried per split: sqrt | log2 | a fraction such as "0.1"
    class_weight: ClassWeight = "none"  # trees, logreg, kmeans-logreg: balanced reweights rare classes (disgust)

    # logistic regression (on standardised features; kmeans-logreg: on standardised centroid distances)
    logreg_c: float = 1.0  # inverse L2 regularisation strength
    logreg_solver: Literal["lbfgs", "saga"] = "lbfgs"  # the notebooks used both
    max_iter: int = 200  # logreg solver iterations (a convergence warning is normal at 200 on pixels)

    # k-nearest neighbours
    knn_k: int = 5  # neighbours
    knn_weights: Literal["uniform", "distance"] = "uniform"  # vote weighting

    # RBF SVM (Platt-scaled probabilities)
    svm_c: float = 1.0  # margin penalty
    svm_gamma: str = "scale"  # RBF width: scale | auto | a number such as "0.01"

    # k-means (kmeans: clusters -> majority label; kmeans-logreg: distances to the centroids -> logreg)
    n_clusters: int | None = None  # clusters fitted per fold; None = model default (kmeans 6, kmeans-logreg 35)
    kmeans_n_init: int = 1  # k-means++ restarts per fold, the lowest-inertia one kept

    # HOG (features = "hog")
    hog: HogSettings = HogSettings()

    save_model: bool = True  # write the k fold pipelines to model.joblib (compressed)


def resolve(cfg: BaselineConfig) -> BaselineConfig:
    """Fill the model-dependent defaults (pca, max_train_rows) and check the numbers; this is what
    run.json records. The Literal fields (model, features, ...) are checked where a config is read
    from flags or a preset (presets.from_dict)."""
    pca = DEFAULT_PCA.get(cfg.model, 0) if cfg.pca is None else cfg.pca
    cap = DEFAULT_MAX_TRAIN_ROWS.get(cfg.model, 0) if cfg.max_train_rows is None else cfg.max_train_rows
    clusters = DEFAULT_CLUSTERS.get(cfg.model, 0) if cfg.n_clusters is None else cfg.n_clusters
    if cfg.model in KMEANS_MODELS and clusters < 1:
        raise FerkaggleError(f"n_clusters must be at least 1 for {cfg.model}, not {clusters}")
    for name, value in (("pca", pca), ("max_train_rows", cap), ("max_depth", cfg.max_depth), ("max_iter", cfg.max_iter)):
        if value < 0:
            raise FerkaggleError(f"{name} must be 0 or more, not {value}")
    for name, value in (("n_estimators", cfg.n_estimators), ("knn_k", cfg.knn_k), ("min_samples_leaf", cfg.min_samples_leaf),
                        ("kmeans_n_init", cfg.kmeans_n_init)):
        if value < 1:
            raise FerkaggleError(f"{name} must be at least 1, not {value}")
    max_features = _max_features(cfg.max_features)
    if isinstance(max_features, float) and not 0.0 < max_features <= 1.0:
        raise FerkaggleError(f"max_features must be sqrt, log2 or a fraction in (0, 1], not {cfg.max_features!r}")
    gamma = _gamma(cfg.svm_gamma)
    if isinstance(gamma, float) and gamma <= 0:
        raise FerkaggleError(f"svm_gamma must be scale, auto or a positive number, not {cfg.svm_gamma!r}")
    return replace(cfg, pca=pca, max_train_rows=cap, n_clusters=clusters)


def _name_or_number(value: str, names: tuple[str, ...]) -> str | float:
    """`value` as scikit-learn takes it: one of `names`, else the number it spells (-1.0 if it spells none)."""
    if value in names:
        return value
    try:
        return float(value)
    except ValueError:
        return -1.0


def _max_features(value: str) -> str | float:
    return _name_or_number(value, ("sqrt", "log2"))


def _gamma(value: str) -> str | float:
    return _name_or_number(value, ("scale", "auto"))


def summarize(cfg: BaselineConfig) -> str:
    """A short human summary of a resolved config, for run.json and the leaderboard."""
    parts = [cfg.model]
    if cfg.model in ("rf", "extra-trees"):
        parts.append(f"{cfg.n_estimators} trees")
        if cfg.max_depth:
            parts.append(f"depth {cfg.max_depth}")
    elif cfg.model == "logreg":
        parts.append(f"C={cfg.logreg_c:g} {cfg.logreg_solver}")
    elif cfg.model == "knn":
        parts.append(f"k={cfg.knn_k}")
    elif cfg.model == "svm":
        parts.append(f"C={cfg.svm_c:g}")
    elif cfg.model == "kmeans":
        parts.append(f"{cfg.n_clusters} clusters")
    elif cfg.model == "kmeans-logreg":
        parts.append(f"{cfg.n_clusters} clusters, C={cfg.logreg_c:g} {cfg.logreg_solver}")
    summary = " ".join(parts) + f", {cfg.features}"
    if cfg.pca:
        summary += f", PCA {cfg.pca}"
    if cfg.max_train_rows:
        summary += f", ≤{cfg.max_train_rows} rows/fold"
    return summary


def run_name(cfg: BaselineConfig) -> str:
    return f"{cfg.model}-{cfg.features}" + (f"-pca{cfg.pca}" if cfg.pca else "")


def build_estimator(cfg: BaselineConfig, seed: int):
    """The bare scikit-learn classifier for a resolved config (tests replace this to spy on fits)."""
    class_weight = None if cfg.class_weight == "none" else "balanced"
    if cfg.model in ("rf", "extra-trees"):
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

        cls = RandomForestClassifier if cfg.model == "rf" else ExtraTreesClassifier
        return cls(n_estimators=cfg.n_estimators, max_depth=cfg.max_depth or None,
                   min_samples_leaf=cfg.min_samples_leaf, max_features=_max_features(cfg.max_features),
                   class_weight=class_weight, n_jobs=cfg.n_jobs, random_state=seed)
    if cfg.model in ("logreg", "kmeans-logreg"):  # kmeans-logreg: build_pipeline puts k-means before it
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=cfg.logreg_c, solver=cfg.logreg_solver, max_iter=cfg.max_iter,
                                  class_weight=class_weight, random_state=seed)
    if cfg.model == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(n_neighbors=cfg.knn_k, weights=cfg.knn_weights, n_jobs=cfg.n_jobs)
    if cfg.model == "svm":
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC

        # Platt scaling on 3 internal folds, then one SVC refit on all the fold's rows
        # (what SVC(probability=True), deprecated in scikit-learn 1.9, did with 5).
        svc = SVC(C=cfg.svm_c, kernel="rbf", gamma=_gamma(cfg.svm_gamma), cache_size=500, random_state=seed)
        return CalibratedClassifierCV(svc, method="sigmoid", cv=3, ensemble=False)
    if cfg.model == "kmeans":
        return KMeansClassifier(n_clusters=cfg.n_clusters, n_init=cfg.kmeans_n_init, random_state=seed)
    from sklearn.naive_bayes import GaussianNB  # "nb", the last ModelName

    return GaussianNB()


def build_pipeline(cfg: BaselineConfig, seed: int, n_features: int, n_rows: int):
    """[StandardScaler (logreg)] -> [PCA (cfg.pca > 0)] -> [KMeans distances -> StandardScaler
    (kmeans-logreg)] -> classifier, fitted per fold."""
    from sklearn.pipeline import Pipeline

    if cfg.model in KMEANS_MODELS and cfg.n_clusters > n_rows:
        raise FerkaggleError(f"{cfg.n_clusters} k-means clusters need at least as many training rows per fold, "
                             f"a fold has {n_rows}: lower --clusters")
    steps: list[tuple[str, Any]] = []
    if cfg.model == "logreg":
        from sklearn.preprocessing import StandardScaler

        steps.append(("scale", StandardScaler()))
    if cfg.pca:
        from sklearn.decomposition import PCA

        components = min(cfg.pca, n_features, n_rows)
        steps.append(("pca", PCA(n_components=components, svd_solver="randomized", random_state=seed)))
    if cfg.model == "kmeans-logreg":
        from sklearn.cluster import KMeans
        from sklearn.preprocessing import StandardScaler

        # KMeans.transform gives each row's distance to every centroid: the logreg's features.
        steps.append(("kmeans", KMeans(n_clusters=cfg.n_clusters, n_init=cfg.kmeans_n_init, random_state=seed)))
        steps.append(("scale_distances", StandardScaler()))
    steps.append(("model", build_estimator(cfg, seed)))
    return Pipeline(steps)


def full_proba(model, x: np.ndarray) -> np.ndarray:
    """predict_proba as [N, 7]: classes a fold never saw get probability 0."""
    out = np.zeros((len(x), NUM_CLASSES), np.float32)
    if len(x):
        out[:, np.asarray(model.classes_, dtype=int)] = model.predict_proba(x)
    return out


class FoldEnsemble:
    """The k fold pipelines of a baseline run: what model.joblib holds.

    `predict_proba(faces)` takes uint8 faces [N,48,48], computes the run's features and
    averages the fold pipelines, exactly as the run made val_proba/test_proba.
    """

    def __init__(self, cfg: BaselineConfig, models: list):
        self.config = to_dict(cfg)
        self.features = cfg.features
        self.hog = cfg.hog
        self.models = models

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        x = compute_features(np.asarray(faces, np.uint8), self.features, self.hog)
        return np.mean([full_proba(m, x) for m in self.models], axis=0)


def _cap_rows(rows: np.ndarray, y: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """A stratified random subset of `rows` of size `cap` (all of them if cap is 0 or larger)."""
    if not cap or len(rows) <= cap:
        return rows
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y[rows])
    stratify = y[rows] if counts[counts > 0].min() >= 2 else None
    keep, _ = train_test_split(rows, train_size=cap, stratify=stratify, random_state=seed)
    return np.sort(keep)


def _min_per_class(rows: np.ndarray, y: np.ndarray, minimum: int) -> np.ndarray:
    """Repeat the rows of classes with fewer than `minimum` examples until they have that many.

    The SVM's Platt calibration splits each fold's rows 3 ways and needs every present
    class in every part; this only ever fires on tiny data (FER2013 folds hold hundreds
    of disgust rows).
    """
    extra = []
    for label in np.unique(y[rows]):
        members = rows[y[rows] == label]
        if len(members) < minimum:
            extra.append(np.resize(members, minimum - len(members)))
    return np.concatenate([rows, *extra]) if extra else rows


def _fit_fold(cfg: BaselineConfig, x: np.ndarray, y: np.ndarray, folds: np.ndarray, k: int):
    """The pipeline of fold k, fitted on the rows of the other folds (capped, and padded for the SVM's
    calibration); returns it and the rows it was fitted on."""
    from sklearn.exceptions import ConvergenceWarning

    seed = cfg.seed + k
    train_rows = _cap_rows(np.flatnonzero(folds != k), y, cfg.max_train_rows or 0, seed)
    if cfg.model == "svm":
        train_rows = _min_per_class(train_rows, y, 3)
    model = build_pipeline(cfg, seed, x.shape[1], len(train_rows))
    with warnings.catch_warnings():
        # logreg stopping at max_iter is expected on pixels; its score is what counts.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x[train_rows], y[train_rows])
    return model, train_rows


def cross_validate(cfg: BaselineConfig, x: np.ndarray, y: np.ndarray, folds: np.ndarray,
                   extra: dict[str, np.ndarray] | None = None, show_progress: bool = True) -> dict[str, Any]:
    """k-fold CV over the given fold assignment (0..k-1 per row); cfg must be resolved.

    Returns {"oof": [N,7] probabilities (row i from the model of fold folds[i], which never
    saw row i), "<name>": [M,7] mean over the fold models for each array in `extra`,
    "folds": per-fold scores, "models": the fitted fold pipelines, "train_seconds"}.
    """
    fold_ids = np.unique(folds)
    if len(fold_ids) < 2 or fold_ids.min() < 0:
        raise FerkaggleError(f"the prepared data has {len(fold_ids)} CV fold(s); a baseline needs at least 2 "
                             "(run `ferkaggle prepare` with --folds 2 or more)")
    extra = extra or {}
    oof = np.full((len(x), NUM_CLASSES), np.nan, np.float32)
    sums = {name: np.zeros((len(arr), NUM_CLASSES), np.float64) for name, arr in extra.items()}
    fold_rows, models = [], []
    train_seconds = 0.0
    label = MODEL_LABELS[cfg.model]
    with track() as tracker:
        task = tracker.add(f"{label} · {len(fold_ids)}-fold CV", total=len(fold_ids)) if show_progress else None
        for k in fold_ids:
            t0 = time.perf_counter()
            model, train_rows = _fit_fold(cfg, x, y, folds, int(k))
            held_out = np.flatnonzero(folds == k)
            fit_seconds = time.perf_counter() - t0
            oof[held_out] = full_proba(model, x[held_out])
            for name, arr in extra.items():
                sums[name] += full_proba(model, arr)
            seconds = time.perf_counter() - t0
            train_seconds += fit_seconds
            s = scores(y[held_out], oof[held_out])
            fold_rows.append({"fold": int(k), "accuracy": s["accuracy"], "macro_f1": s["macro_f1"],
                              "seconds": round(seconds, 2), "n_train": int(len(train_rows)),
                              "n_predicted": int(len(held_out))})
            models.append(model)
            if task is not None:
                tracker.advance(task, note=f"fold {k}: accuracy {s['accuracy']:.4f}")
    # Every training row belongs to exactly one fold, so every OOF row is filled exactly once.
    assert not np.isnan(oof).any(), "some training rows got no out-of-fold prediction"
    result: dict[str, Any] = {name: (total / len(fold_ids)).astype(np.float32) for name, total in sums.items()}
    result.update(oof=oof, folds=fold_rows, models=models, train_seconds=train_seconds)
    return result


def run_baseline(prepared: Prepared, cfg: BaselineConfig = BaselineConfig(), runs_root: str | Path | None = None,
                 show_progress: bool = True):
    """Cross-validate one classical model on the prepared folds and record it as a run.

    Returns the finished `runs.registry.Run` (its `.metrics` is metrics.json, `.run_id` the id).
    """
    import joblib

    cfg = resolve(cfg)
    if prepared.num_folds < 2:
        raise FerkaggleError(f"{prepared.path}: the prepared data has no CV folds; "
                             "run `ferkaggle prepare` with --folds 2 or more")
    if len(prepared.val_idx) == 0:
        raise FerkaggleError(f"{prepared.path}: the prepared data has no holdout-val rows to score on")
    summary = summarize(cfg)
    with RunWriter("baseline", run_name(cfg), to_dict(cfg), prepared, seed=cfg.seed, summary=summary,
                   model=cfg.model, root=runs_root) as writer:
        t0 = time.perf_counter()
        features, test_features = prepared_features(prepared, cfg.features, cfg.hog, n_jobs=cfg.n_jobs)
        feature_seconds = time.perf_counter() - t0
        y_train = np.asarray(prepared.y_train, dtype=np.int64)
        cv = cross_validate(cfg, features[prepared.train_idx], y_train, np.asarray(prepared.train_folds),
                            extra={"val": features[prepared.val_idx], "test": test_features},
                            show_progress=show_progress)
        writer.save_probas(val=cv["val"], test=cv["test"], oof=cv["oof"])

        model_bytes = 0
        if cfg.save_model:
            path = writer.model_path(".joblib")
            joblib.dump(FoldEnsemble(cfg, cv["models"]), path, compress=3)
            model_bytes = path.stat().st_size
        writer.save_metrics(_baseline_metrics(prepared, y_train, cv, feature_seconds, model_bytes))
    return read_run(writer.dir)


def _baseline_metrics(prepared: Prepared, y_train: np.ndarray, cv: dict[str, Any], feature_seconds: float,
                      model_bytes: int) -> dict[str, Any]:
    """metrics.json of a baseline run (listed in the module docstring)."""
    accuracies = np.array([f["accuracy"] for f in cv["folds"]])
    val = scores(prepared.y_val, cv["val"])
    metrics: dict[str, Any] = {
        "val_accuracy": val["accuracy"],
        "val_macro_f1": val["macro_f1"],
        "scored_on": "holdout", "selected_on_score": False,  # a fixed config: nothing chosen on any rows
        "cv_mean": float(accuracies.mean()),
        "cv_std": float(accuracies.std()),
        "cv_macro_f1_mean": float(np.mean([f["macro_f1"] for f in cv["folds"]])),
        "oof_accuracy": accuracy(y_train, cv["oof"]),
        "folds": cv["folds"],
        "train_seconds": round(cv["train_seconds"], 2),
        "feature_seconds": round(feature_seconds, 2),
        "model_bytes": model_bytes,
        "val_probabilities": "mean of the fold models",
    }
    metrics.update(labelled_test_scores(prepared.y_test, cv["test"]))
    return metrics
