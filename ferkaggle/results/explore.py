"""The data report: look at a prepared set before modelling it.

What every notebook does first, from one prepared set (data/prepared.py), written under
`reports/data/<prepared key>/`:
  class_counts.png   rows per class in the training folds, the holdout-val and the test set
                     (test only when the source labels it)
  samples.png        a seeded random choice of faces of each class
  mean_faces.png     the mean face of each class (all labelled rows of the class)
  duplicates.png     duplicate groups (exact and near copies, what the split keeps together),
                     the groups holding conflicting labels first, each face with its label and split part
  pca_variance.png   PCA cumulative explained variance on a seeded subsample of the labelled
                     rows, marking the components that reach 90 / 95 / 99 %
  eigenfaces.png     the first 16 principal components as faces
  index.md           the figures with one-line captions and the numbers behind them

Inputs: a `Prepared` set; options: the seed (samples, PCA subsample), PCA row cap.
Outputs: the folder (written atomically: a failure leaves no half report) and an
`ExploreResult` holding the numbers index.md shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferkaggle.core.constants import DEFAULT_SEED, EMOTIONS, IMAGE_SIZE, NUM_CLASSES
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.fsutil import atomic_dir, atomic_write_bytes, atomic_write_text
from ferkaggle.data.dedupe import find_duplicates
from ferkaggle.data.prepared import Prepared
from ferkaggle.data.splits import HOLDOUT

DEFAULT_DIR = Path("reports/data")
SAMPLES_PER_CLASS = 8  # faces per class in samples.png
PCA_MAX_ROWS = 5000  # PCA is fitted on at most this many labelled rows (a seeded subsample)
VARIANCE_TARGETS = (0.90, 0.95, 0.99)  # shares of variance whose component counts are marked
VARIANCE_AT = (1, 10, 25, 50, 100, 200, 500)  # component counts whose cumulative variance index.md lists
EIGENFACES = 16
GROUPS_SHOWN = 8  # duplicate groups in duplicates.png
CONFLICTING_SHOWN = 5  # of which at most this many with conflicting labels (if there are others to show)
FACES_PER_GROUP = 6
DPI = 100
# Figure sizes in inches, fixed so every report's PNGs have the same pixel size (inches x DPI).
FIGSIZE = {"class_counts": (8.0, 4.5), "samples": (7.2, 6.6), "mean_faces": (10.5, 2.0),
           "duplicates": (7.2, 10.0), "pca_variance": (7.0, 4.5), "eigenfaces": (8.0, 2.4)}
CAPTIONS = {
    "class_counts": "Rows per class in the training folds, the holdout-val and (when labelled) the test set.",
    "samples": f"{SAMPLES_PER_CLASS} randomly chosen labelled faces of each class (seeded).",
    "mean_faces": "The mean face of each class, over all its labelled rows.",
    "duplicates": f"Duplicate groups found by prepare (exact and near copies; the split keeps each group on one side), "
                  f"up to {CONFLICTING_SHOWN} groups with conflicting labels (red) first, then the largest others; "
                  "each face shows its label and split part.",
    "pca_variance": "PCA cumulative explained variance of the pixels, with the components reaching 90 / 95 / 99 %.",
    "eigenfaces": f"The first {EIGENFACES} principal components (eigenfaces), largest variance first.",
}


@dataclass
class PcaSummary:
    rows: int  # labelled rows the PCA was fitted on
    cumulative: np.ndarray  # float [K]: explained variance share of the first 1..K components
    components_for: dict[float, int]  # variance share -> components needed to reach it
    eigenfaces: np.ndarray  # float [min(16, K), 48, 48]


@dataclass
class DuplicateSummary:
    groups: int  # duplicate groups of two or more labelled rows
    rows_in_groups: int  # labelled rows in those groups
    largest: int  # rows in the largest group (1 when there are no duplicates)
    conflicting_images: int  # exact images whose copies carry more than one label
    conflicting_rows: int  # labelled rows of those images
    shown: list[np.ndarray]  # row indices (into x) of each group in duplicates.png
    shown_conflicting: list[bool]  # whether each shown group holds conflicting labels


@dataclass
class ExploreResult:
    folder: Path
    files: list[str]
    counts: dict[str, list[int] | None]  # "train" / "holdout" / "test" -> rows per class (test: None if unlabelled)
    mean_faces: np.ndarray  # float [7, 48, 48] grey levels 0..255; NaN for a class with no rows
    pca: PcaSummary
    duplicates: DuplicateSummary


def class_counts(prepared: Prepared) -> dict[str, list[int] | None]:
    """Rows per class: training folds, holdout-val and the test set (None when it has no labels)."""
    y, fold = np.asarray(prepared.y, np.int64), np.asarray(prepared.fold)

    def count(labels) -> list[int]:
        return np.bincount(np.asarray(labels, np.int64), minlength=NUM_CLASSES).tolist()

    return {"train": count(y[fold >= 0]), "holdout": count(y[fold == HOLDOUT]),
            "test": None if prepared.y_test is None else count(prepared.y_test)}


def mean_faces(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """float [7, 48, 48]: the mean grey level of each pixel over the rows of each class (NaN if none)."""
    out = np.full((NUM_CLASSES, IMAGE_SIZE, IMAGE_SIZE), np.nan)
    y = np.asarray(y)
    for k in range(NUM_CLASSES):
        rows = np.flatnonzero(y == k)
        if len(rows):
            out[k] = np.asarray(x[rows], np.float64).mean(axis=0)
    return out


def pca_summary(x: np.ndarray, seed: int = DEFAULT_SEED, max_rows: int = PCA_MAX_ROWS) -> PcaSummary:
    """PCA of the pixels (grey levels / 255) of at most `max_rows` rows drawn with `seed`."""
    from sklearn.decomposition import PCA

    if len(x) < 2:
        raise FerkaggleError(f"PCA needs at least 2 labelled rows, the prepared set has {len(x)}")
    rows = np.arange(len(x))
    if len(x) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(len(x), max_rows, replace=False))
    flat = np.asarray(x[rows], np.float64).reshape(len(rows), -1) / 255.0
    pca = PCA(svd_solver="full").fit(flat)
    cumulative = np.cumsum(pca.explained_variance_ratio_)
    components_for = {t: int(np.argmax(cumulative >= t - 1e-12)) + 1 for t in VARIANCE_TARGETS}
    eigenfaces = pca.components_[:EIGENFACES].reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    return PcaSummary(len(rows), cumulative, components_for, eigenfaces)


def duplicate_summary(prepared: Prepared) -> DuplicateSummary:
    """The prepared set's duplicate groups (the split's, groups.npy) and its conflicting-label images."""
    groups = np.asarray(prepared.groups)
    found = find_duplicates(np.asarray(prepared.x), np.asarray(prepared.y), np.asarray(prepared.x_test))
    ids, sizes = np.unique(groups, return_counts=True)
    multi = ids[sizes > 1]
    members = {g: np.flatnonzero(groups == g) for g in multi}
    conflicting = {g: bool(found.conflicting[rows].any()) for g, rows in members.items()}
    # Up to CONFLICTING_SHOWN groups with conflicting labels, then the largest others; ties in row order.
    by_size = sorted(multi.tolist(), key=lambda g: (-len(members[g]), g))
    order = [g for g in by_size if conflicting[g]][:CONFLICTING_SHOWN]
    order += [g for g in by_size if not conflicting[g]][:GROUPS_SHOWN - len(order)]
    order += [g for g in by_size if g not in order][:GROUPS_SHOWN - len(order)]
    return DuplicateSummary(
        groups=len(multi), rows_in_groups=int(sizes[sizes > 1].sum()), largest=int(sizes.max()) if len(sizes) else 0,
        conflicting_images=found.report.conflicting_images, conflicting_rows=found.report.conflicting_rows,
        shown=[members[g] for g in order], shown_conflicting=[conflicting[g] for g in order])


def write_data_report(prepared: Prepared, out_dir: str | Path = DEFAULT_DIR, seed: int = DEFAULT_SEED,
                      pca_rows: int = PCA_MAX_ROWS) -> ExploreResult:
    """Compute the numbers and write the figures and index.md under out_dir/<prepared key>/."""
    import matplotlib

    matplotlib.use("Agg")
    x, y = np.asarray(prepared.x), np.asarray(prepared.y, np.int64)
    counts = class_counts(prepared)
    means = mean_faces(x, y)
    pca = pca_summary(x, seed, pca_rows)
    duplicates = duplicate_summary(prepared)
    final = Path(out_dir) / prepared.key
    with atomic_dir(final) as tmp:
        _plot_counts(counts, tmp / "class_counts.png")
        _plot_samples(x, y, seed, tmp / "samples.png")
        _plot_mean_faces(means, np.bincount(y, minlength=NUM_CLASSES), tmp / "mean_faces.png")
        _plot_duplicates(x, y, np.asarray(prepared.fold), duplicates, tmp / "duplicates.png")
        _plot_variance(pca, tmp / "pca_variance.png")
        _plot_eigenfaces(pca.eigenfaces, tmp / "eigenfaces.png")
        files = [f"{name}.png" for name in FIGSIZE]
        atomic_write_text(tmp / "index.md", _markdown(prepared, counts, pca, duplicates))
        files.append("index.md")
    return ExploreResult(final, files, counts, means, pca, duplicates)


# ------------------------------------------------------------------------------------------
# Figures


def _figure(name: str, rows: int = 1, cols: int = 1):
    import matplotlib.pyplot as plt

    return plt.subplots(rows, cols, figsize=FIGSIZE[name], dpi=DPI, squeeze=False)


def _save(fig, path: Path) -> None:
    """PNG without the (opaque) alpha channel, and single-channel when every pixel is grey: a
    figure of faces is then a third of matplotlib's RGBA size (the README shows one)."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)  # no bbox_inches="tight": the pixel size stays FIGSIZE x DPI
    plt.close(fig)
    image = Image.open(buffer).convert("RGB")
    pixels = np.asarray(image)
    if (pixels == pixels[..., :1]).all():
        image = image.convert("L")
    out = io.BytesIO()
    image.save(out, format="png", optimize=True)
    atomic_write_bytes(path, out.getvalue())


def _face(ax, face: np.ndarray | None, title: str = "", color: str = "black", **imshow) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if face is not None:
        ax.imshow(face, cmap=imshow.pop("cmap", "gray"), interpolation="nearest", **({"vmin": 0, "vmax": 255} | imshow))
    if title:
        ax.set_title(title, fontsize=7, color=color, pad=2)


def _plot_counts(counts: dict[str, list[int] | None], path: Path) -> None:
    fig, axes = _figure("class_counts")
    ax = axes[0, 0]
    splits = [s for s in ("train", "holdout", "test") if counts[s] is not None]
    width = 0.8 / len(splits)
    for i, split in enumerate(splits):
        positions = np.arange(NUM_CLASSES) + (i - (len(splits) - 1) / 2) * width
        bars = ax.bar(positions, counts[split], width, label=f"{split} ({sum(counts[split]):,})")
        ax.bar_label(bars, labels=[f"{c:,}" for c in counts[split]], fontsize=6, padding=1)
    ax.set_xticks(range(NUM_CLASSES), EMOTIONS)
    ax.set_ylabel("rows")
    ax.set_title("class counts per split")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def _plot_samples(x: np.ndarray, y: np.ndarray, seed: int, path: Path) -> None:
    fig, axes = _figure("samples", NUM_CLASSES, SAMPLES_PER_CLASS)
    rng = np.random.default_rng(seed)
    for k in range(NUM_CLASSES):
        rows = np.flatnonzero(y == k)
        chosen = np.sort(rng.choice(rows, min(len(rows), SAMPLES_PER_CLASS), replace=False)) if len(rows) else rows
        for j in range(SAMPLES_PER_CLASS):
            _face(axes[k, j], x[chosen[j]] if j < len(chosen) else None)
        axes[k, 0].set_ylabel(f"{EMOTIONS[k]}\n{len(rows):,}", fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle("sample faces per class (label, labelled rows)", fontsize=10)
    fig.subplots_adjust(left=0.13, right=0.99, bottom=0.01, top=0.94, wspace=0.05, hspace=0.08)
    _save(fig, path)


def _plot_mean_faces(means: np.ndarray, rows: np.ndarray, path: Path) -> None:
    fig, axes = _figure("mean_faces", 1, NUM_CLASSES)
    for k in range(NUM_CLASSES):
        empty = np.isnan(means[k]).all()
        _face(axes[0, k], None if empty else means[k], f"{EMOTIONS[k]} ({rows[k]:,})")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.86, wspace=0.08)
    _save(fig, path)


def _part(fold: int) -> str:
    return "holdout" if fold == HOLDOUT else f"fold {fold}"


def _plot_duplicates(x: np.ndarray, y: np.ndarray, fold: np.ndarray, d: DuplicateSummary, path: Path) -> None:
    fig, axes = _figure("duplicates", GROUPS_SHOWN, FACES_PER_GROUP)
    for ax in axes.ravel():
        _face(ax, None)
    if not d.shown:
        # On the figure, not an axes: the empty axes to its right would paint over it.
        fig.text(0.5, 0.5, "no duplicate groups: every labelled image is distinct", fontsize=12, ha="center")
    for i, (rows, conflicting) in enumerate(zip(d.shown, d.shown_conflicting)):
        color = "firebrick" if conflicting else "black"
        for j, row in enumerate(rows[:FACES_PER_GROUP]):
            _face(axes[i, j], x[row], f"{EMOTIONS[y[row]]} · {_part(int(fold[row]))}", color)
        more = f" (+{len(rows) - FACES_PER_GROUP})" if len(rows) > FACES_PER_GROUP else ""
        axes[i, 0].set_ylabel(f"{len(rows)} rows{more}\n{'conflicting' if conflicting else 'same label'}",
                              fontsize=7, color=color, rotation=0, ha="right", va="center")
    fig.suptitle(f"duplicate groups: {d.groups:,} of 2+ rows ({d.rows_in_groups:,} rows); conflicting labels: "
                 f"{d.conflicting_images:,} images ({d.conflicting_rows:,} rows)", fontsize=9)
    fig.subplots_adjust(left=0.14, right=0.99, bottom=0.01, top=0.95, wspace=0.05, hspace=0.3)
    _save(fig, path)


def _plot_variance(pca: PcaSummary, path: Path) -> None:
    fig, axes = _figure("pca_variance")
    ax = axes[0, 0]
    k = np.arange(1, len(pca.cumulative) + 1)
    ax.plot(k, pca.cumulative * 100, color="tab:blue")
    for target, color in zip(VARIANCE_TARGETS, ("tab:green", "tab:orange", "tab:red")):
        n = pca.components_for[target]
        ax.axvline(n, color=color, linestyle="--", linewidth=1)
        ax.plot([n], [pca.cumulative[n - 1] * 100], "o", color=color, label=f"{target:.0%}: {n} components")
    ax.set_xscale("log")
    ax.set_xlabel("principal components")
    ax.set_ylabel("cumulative explained variance (%)")
    ax.set_title(f"PCA of the pixels ({pca.rows:,} labelled rows)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def _plot_eigenfaces(eigenfaces: np.ndarray, path: Path) -> None:
    cols = EIGENFACES // 2
    fig, axes = _figure("eigenfaces", 2, cols)
    for i in range(EIGENFACES):
        face = eigenfaces[i] if i < len(eigenfaces) else None
        limit = float(np.abs(face).max()) if face is not None else 1.0
        _face(axes[i // cols, i % cols], face, f"PC {i + 1}", cmap="RdBu_r", vmin=-limit, vmax=limit)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.9, wspace=0.05, hspace=0.25)
    _save(fig, path)


# ------------------------------------------------------------------------------------------
# index.md


def _markdown(prepared: Prepared, counts: dict[str, list[int] | None], pca: PcaSummary, d: DuplicateSummary) -> str:
    labelled = [a + b for a, b in zip(counts["train"], counts["holdout"])]
    total = sum(labelled)
    test = "labelled" if counts["test"] is not None else "unlabelled"
    md = [f"# Data report: {prepared.key}", "",
          f"Prepared set `{prepared.key}` ({prepared.manifest.get('layout', 'unknown layout')}): "
          f"{sum(counts['train']):,} training rows in {prepared.num_folds} folds, {sum(counts['holdout']):,} holdout-val, "
          f"{len(prepared.x_test):,} test ({test}).", "",
          "## Class counts", "", "![class counts](class_counts.png)", "", CAPTIONS["class_counts"], ""]
    splits = [s for s in ("train", "holdout", "test") if counts[s] is not None]
    md += ["| class | " + " | ".join(splits) + " | share of labelled |", "|---|" + "---:|" * (len(splits) + 1)]
    for k, name in enumerate(EMOTIONS):
        share = labelled[k] / total if total else 0.0
        md.append(f"| {k} {name} | " + " | ".join(f"{counts[s][k]:,}" for s in splits) + f" | {share:.1%} |")
    md.append("| total | " + " | ".join(f"{sum(counts[s]):,}" for s in splits) + " | 100% |")
    md += ["", "## Sample faces", "", "![sample faces](samples.png)", "", CAPTIONS["samples"], "",
           "## Mean face per class", "", "![mean faces](mean_faces.png)", "", CAPTIONS["mean_faces"], "",
           "## Duplicates and conflicting labels", "", "![duplicate groups](duplicates.png)", "", CAPTIONS["duplicates"], ""]
    if d.groups:
        md.append(f"- {d.groups:,} duplicate groups of two or more rows hold {d.rows_in_groups:,} labelled rows; "
                  f"the largest has {d.largest} rows; {len(d.shown)} are shown.")
    else:
        md.append("- No duplicate groups: every labelled image is distinct.")
    if d.conflicting_images:
        md.append(f"- Conflicting labels: {d.conflicting_images:,} images whose {d.conflicting_rows:,} copies disagree "
                  "on the label (`ferkaggle prepare --dedupe` leaves them out).")
    else:
        dropped = prepared.manifest.get("duplicates", {}).get("dropped_conflicting", 0)
        md.append("- No conflicting labels" + (f" (prepare --dedupe dropped {dropped:,} such rows)." if dropped else "."))
    md += ["", "## PCA of the pixels", "", "![PCA cumulative explained variance](pca_variance.png)", "",
           CAPTIONS["pca_variance"] + f" Fitted on {pca.rows:,} labelled rows"
           + (f" (a random subsample, seeded, of {len(prepared.x):,})." if pca.rows < len(prepared.x) else " (all of them)."),
           "", "| variance | components |", "|---:|---:|"]
    md += [f"| {t:.0%} | {pca.components_for[t]} |" for t in VARIANCE_TARGETS]
    md += ["", "| components | cumulative variance |", "|---:|---:|"]
    md += [f"| {k} | {pca.cumulative[k - 1]:.1%} |" for k in VARIANCE_AT if k <= len(pca.cumulative)]
    md += ["", "## Eigenfaces", "", "![eigenfaces](eigenfaces.png)", "", CAPTIONS["eigenfaces"], ""]
    return "\n".join(md)
