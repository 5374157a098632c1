"""Reports for one run: where it is right, where it is wrong, how it learned.

Writes under `reports/<run_id>/`:
  confusion_counts.png, confusion_normalized.png   holdout-val confusion matrices
  learning_curves.png                              loss / accuracy per epoch (runs with history)
  misclassified.png                                a grid of holdout faces it got wrong
  feature_importance.png                           forest runs with a saved model: where on the
                                                   48x48 face the trees look (mean over folds)
  per_class.csv                                    precision / recall / F1 / support per class
  report.md                                        a summary linking all of the above
Everything is computed from the run's saved `val_proba.npy` and the prepared holdout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferkaggle.core.constants import EMOTIONS, IMAGE_SIZE, NUM_CLASSES
from ferkaggle.core.fsutil import atomic_dir, atomic_write_text
from ferkaggle.core.metrics import scores
from ferkaggle.runs.registry import Run, prepared_for_run

DEFAULT_DIR = Path("reports")


@dataclass
class ReportResult:
    folder: Path
    files: list[str]
    accuracy: float
    macro_f1: float
    per_class: list[dict]


def per_class_table(y_true: np.ndarray, y_pred: np.ndarray) -> list[dict]:
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=range(NUM_CLASSES), zero_division=0)
    return [{"class": EMOTIONS[k], "precision": float(precision[k]), "recall": float(recall[k]),
             "f1": float(f1[k]), "support": int(support[k])} for k in range(NUM_CLASSES)]


def _plot_confusion(matrix: np.ndarray, title: str, path: Path, fmt: str) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=110)
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_xticks(range(NUM_CLASSES), EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(NUM_CLASSES), EMOTIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(NUM_CLASSES):
        for j in range(NUM_CLASSES):
            ax.text(j, i, format(matrix[i, j], fmt), ha="center", va="center", fontsize=8,
                    color="white" if matrix[i, j] > threshold else "black")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_history(history: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for key, axis in (("loss", left), ("accuracy", right)):
        # stop_*: the stop split early stopping watched; val_*: the same, as runs before it was renamed recorded it.
        for prefix, style in (("", "-"), ("stop_", "--"), ("val_", "--")):
            values = [h.get(prefix + key) for h in history]
            if any(v is not None for v in values):
                axis.plot(epochs, [np.nan if v is None else v for v in values], style, label=prefix + key)
        axis.set_xlabel("epoch")
        axis.set_title(key)
        axis.legend()
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_misclassified(x: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, confidence: np.ndarray,
                        path: Path, count: int = 36) -> int:
    import matplotlib.pyplot as plt

    wrong = np.flatnonzero(y_true != y_pred)
    # The most confident mistakes first: they show label noise and systematic confusions.
    wrong = wrong[np.argsort(-confidence[wrong])][:count]
    if len(wrong) == 0:
        return 0
    cols = 6
    rows = int(np.ceil(len(wrong) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.8), dpi=110, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), wrong):
        ax.imshow(x[i], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{EMOTIONS[y_true[i]]}→{EMOTIONS[y_pred[i]]}\n{confidence[i]:.2f}", fontsize=7)
    fig.suptitle("holdout faces it got wrong (true→predicted, confidence)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return len(wrong)


def feature_importance_grid(model) -> np.ndarray | None:
    """A forest's impurity importances over the 48x48 face (mean over the fold models), or None.

    `model` is a baseline run's model.joblib (`FoldEnsemble`). Pixel features map one to one
    onto the grid; a HOG feature's importance is spread over the 8x8-pixel cells of its
    block. Models without `feature_importances_` (logreg, knn, ...) or with PCA give None.
    """
    grids = []
    for pipeline in getattr(model, "models", []):
        steps = dict(getattr(pipeline, "named_steps", {}))
        estimator = steps.get("model")
        if estimator is None or "pca" in steps or not hasattr(estimator, "feature_importances_"):
            return None
        importances = np.asarray(estimator.feature_importances_, np.float64)
        if model.features == "pixels" and importances.size == IMAGE_SIZE * IMAGE_SIZE:
            grids.append(importances.reshape(IMAGE_SIZE, IMAGE_SIZE))
        elif model.features == "hog":
            cell, per_block, orientations = model.hog.pixels_per_cell, model.hog.cells_per_block, model.hog.orientations
            cells = IMAGE_SIZE // cell
            blocks = cells - per_block + 1
            shaped = importances.reshape(blocks, blocks, per_block, per_block, orientations).sum(axis=-1)
            grid = np.zeros((cells, cells))
            for by in range(blocks):
                for bx in range(blocks):
                    grid[by:by + per_block, bx:bx + per_block] += shaped[by, bx]
            full = np.zeros((IMAGE_SIZE, IMAGE_SIZE))
            full[:cells * cell, :cells * cell] = np.kron(grid, np.ones((cell, cell))) / (cell * cell)
            grids.append(full)
        else:
            return None
    return np.mean(grids, axis=0) if grids else None


def _plot_importance(grid: np.ndarray, mean_face: np.ndarray, title: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4.2), dpi=100)
    image = left.imshow(grid, cmap="hot")
    fig.colorbar(image, ax=left, fraction=0.046)
    left.set_title("feature importance (mean over folds)", fontsize=9)
    right.imshow(mean_face, cmap="gray", vmin=0, vmax=255)
    right.imshow(grid, cmap="hot", alpha=0.55)
    right.set_title("over the mean holdout face", fontsize=9)
    for axis in (left, right):
        axis.set_xticks([])
        axis.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _importance_for(run: Run) -> np.ndarray | None:
    model_file = run.model_file()
    if run.kind != "baseline" or model_file is None or model_file.suffix != ".joblib":
        return None
    import joblib

    try:
        return feature_importance_grid(joblib.load(model_file))
    except Exception:  # a damaged or foreign model file only costs this one figure
        return None


def write_report(run: Run, out_dir: str | Path = DEFAULT_DIR) -> ReportResult:
    import matplotlib

    matplotlib.use("Agg")
    from sklearn.metrics import confusion_matrix

    prepared = prepared_for_run(run)
    proba = run.proba("val")
    y_true = np.asarray(prepared.y_val, dtype=np.int64)
    y_pred = proba.argmax(axis=1)
    counts = confusion_matrix(y_true, y_pred, labels=range(NUM_CLASSES))
    with np.errstate(invalid="ignore", divide="ignore"):
        normalized = np.nan_to_num(counts / counts.sum(axis=1, keepdims=True))
    table = per_class_table(y_true, y_pred)
    overall = scores(y_true, proba)
    accuracy, macro_f1 = overall["accuracy"], overall["macro_f1"]
    final = Path(out_dir) / run.run_id
    with atomic_dir(final) as tmp:
        files = _write_figures(run, prepared, proba, y_true, y_pred, counts, normalized, tmp)
        atomic_write_text(tmp / "per_class.csv", _per_class_csv(table))
        files.append("per_class.csv")
        atomic_write_text(tmp / "report.md", _markdown(run, table, accuracy, macro_f1, len(y_true), files))
        files.append("report.md")
    return ReportResult(final, files, accuracy, macro_f1, table)


def _write_figures(run: Run, prepared, proba: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray,
                   counts: np.ndarray, normalized: np.ndarray, folder: Path) -> list[str]:
    """The report's PNG files, written into `folder`; returns their names (the figures a run has data for)."""
    _plot_confusion(counts, f"{run.run_id}\nholdout confusion (counts)", folder / "confusion_counts.png", "d")
    _plot_confusion(normalized, f"{run.run_id}\nholdout confusion (row-normalised)", folder / "confusion_normalized.png", ".2f")
    files = ["confusion_counts.png", "confusion_normalized.png"]
    history = run.metrics.get("history") or []
    if history:
        _plot_history(history, folder / "learning_curves.png")
        files.append("learning_curves.png")
    shown = _plot_misclassified(np.asarray(prepared.x_val), y_true, y_pred, proba.max(axis=1), folder / "misclassified.png")
    if shown:
        files.append("misclassified.png")
    importance = _importance_for(run)
    if importance is not None:
        _plot_importance(importance, np.asarray(prepared.x_val, np.float64).mean(axis=0),
                         f"{run.run_id}: where the forest looks", folder / "feature_importance.png")
        files.append("feature_importance.png")
    return files


def _per_class_csv(table: list[dict]) -> str:
    lines = ["class,precision,recall,f1,support"] + [
        f"{r['class']},{r['precision']:.4f},{r['recall']:.4f},{r['f1']:.4f},{r['support']}" for r in table]
    return "\n".join(lines) + "\n"


def _markdown(run: Run, table: list[dict], accuracy: float, macro_f1: float, faces: int, files: list[str]) -> str:
    """report.md: the run, its holdout figures, the per-class table and links to the figures in `files`."""
    md = [f"# Report: {run.run_id}", "",
          f"- kind: {run.kind}; model: {run.info.get('model', '')}; {run.info.get('summary', '')}",
          f"- holdout-val accuracy: **{accuracy:.4f}**, macro-F1: {macro_f1:.4f} ({faces} faces)"]
    if "cv_mean" in run.metrics:
        md.append(f"- CV accuracy: {run.metrics['cv_mean']:.4f} ± {run.metrics.get('cv_std', 0):.4f}")
    if "test_accuracy" in run.metrics:
        md.append(f"- local test accuracy: {run.metrics['test_accuracy']:.4f}")
    md += ["", "| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    md += [f"| {r['class']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['support']} |" for r in table]
    md += ["", "![confusion (counts)](confusion_counts.png)", "![confusion (normalised)](confusion_normalized.png)"]
    if "learning_curves.png" in files:
        md.append("![learning curves](learning_curves.png)")
    if "misclassified.png" in files:
        md.append("![misclassified](misclassified.png)")
    if "feature_importance.png" in files:
        md.append("![feature importance](feature_importance.png)")
    return "\n".join(md) + "\n"
