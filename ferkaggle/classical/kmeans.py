"""k-means clusters as a classifier: each cluster predicts the labels of the training rows it holds.

Why: two of the notebooks this package replaces cluster the faces with k-means, one using the
clusters directly as a classifier (6 clusters, 0.17), one feeding the distances to the centroids
to a logistic regression (35 clusters, 0.20). The second is a plain scikit-learn pipeline
(KMeans is a transformer; see baseline.build_pipeline); the first needs this small estimator.

What `KMeansClassifier.fit(x, y)` does: k-means on x (k-means++ start, seeded), then for every
cluster the share of each class among the training rows assigned to it. `predict_proba` returns
the shares of the cluster a row falls in, so `predict` (the argmax) is the cluster's majority
label. The mapping is learned from the rows given to `fit` only: in a baseline run that is one
fold's training rows, never its held-out fold, the holdout-val or the test rows.

Inputs: x float [N, F], y int [N] (labels 0..6). Outputs: probabilities [M, C] over `classes_`.

It follows scikit-learn's estimator protocol (constructor parameters, get_params / set_params,
the tags, fit, predict_proba, predict, classes_) without subclassing its base classes, so
importing this module, which the CLI does at start-up, does not import scikit-learn (seconds).
"""

from __future__ import annotations

import numpy as np

PARAMS = ("n_clusters", "n_init", "max_iter", "random_state")


class KMeansClassifier:
    """k-means, then each cluster -> the class shares of its training rows (majority label = argmax)."""

    def __init__(self, n_clusters: int = 6, n_init: int = 1, max_iter: int = 300, random_state: int | None = None):
        self.n_clusters = n_clusters  # clusters (the notebook: 6)
        self.n_init = n_init  # k-means++ restarts; the one with the lowest inertia is kept
        self.max_iter = max_iter  # Lloyd iterations per restart
        self.random_state = random_state  # seeds the k-means++ start

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in PARAMS}

    def set_params(self, **params) -> KMeansClassifier:
        for name, value in params.items():
            if name not in PARAMS:
                raise ValueError(f"KMeansClassifier has no parameter {name!r}")
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self):
        """What BaseEstimator + ClassifierMixin would declare: a Pipeline asks its last step for them."""
        from sklearn.utils import ClassifierTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True), classifier_tags=ClassifierTags())

    def fit(self, x, y) -> KMeansClassifier:
        from sklearn.cluster import KMeans

        x = np.asarray(x)
        y = np.asarray(y)
        self.classes_, labels = np.unique(y, return_inverse=True)
        self.kmeans_ = KMeans(n_clusters=self.n_clusters, n_init=self.n_init, max_iter=self.max_iter,
                              random_state=self.random_state).fit(x)
        counts = np.zeros((self.n_clusters, len(self.classes_)), np.float64)
        np.add.at(counts, (self.kmeans_.labels_, labels.reshape(-1)), 1.0)
        totals = counts.sum(axis=1, keepdims=True)
        # A cluster no training row ended in (k-means relocates empty ones, so this is a guard)
        # predicts the class shares of all training rows.
        prior = counts.sum(axis=0) / max(counts.sum(), 1.0)
        self.cluster_proba_ = np.where(totals > 0, counts / np.maximum(totals, 1.0), prior)
        return self

    def predict_proba(self, x) -> np.ndarray:
        return self.cluster_proba_[self.kmeans_.predict(np.asarray(x))]

    def predict(self, x) -> np.ndarray:
        return self.classes_[self.predict_proba(x).argmax(axis=1)]
