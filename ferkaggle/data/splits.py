"""The split of the labelled rows: holdout-validation and k folds, drawn by duplicate group.

What: `make_folds` is the one split function (prepare calls it, tests call it). Every labelled
row gets a fold number (the `fold` array of prepared.py): HOLDOUT (-1) for the holdout-val set
shared by every run, 0..k-1 for the CV fold of a training row. Rows of one duplicate group
(`groups`: equal ids = the same image, see dedupe.py) always get the same number, so no image
is on two sides of any split. Both steps are stratified by label over groups (a group counts
with its first row's label) and deterministic in the seed; without duplicates (every row its
own group) the split is the plain row-stratified one.

Inputs: labels y (int [N]), groups (int [N], optional), val_size (a fraction in (0,1) or a row
count), folds (>= 2), seed, optionally a predefined validation mask (the PublicTest rows of
fer2013.csv) and a `drop` mask of rows to leave out (--dedupe).
Outputs: int8 [N] fold array; dropped rows come back as UNASSIGNED (-2), never written to disk.
`stopping_mask` carves the CNN early-stopping rows out of the training rows the same way.
"""

from __future__ import annotations

import numpy as np

from ferkaggle.core.constants import DEFAULT_SEED, EMOTIONS, NUM_CLASSES
from ferkaggle.core.errors import FerkaggleError

HOLDOUT = -1
UNASSIGNED = -2  # a row dropped before fold assignment (--dedupe); never written to disk


def _class_name(k: int) -> str:
    return f"{k} {EMOTIONS[k]}" if 0 <= k < NUM_CLASSES else str(k)


def _collapse(y: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(label of each group, group index of each row); groups ordered by their first row."""
    n = len(y)
    if groups is None:
        return np.asarray(y, np.int64), np.arange(n)
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups has shape {groups.shape}, expected ({n},)")
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # number groups by their first row, so no-duplicate data keeps row order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return np.asarray(y, np.int64)[first[order]], rank[inverse.reshape(-1)]


def holdout_mask(y: np.ndarray, val_size: float = 0.1, seed: int = DEFAULT_SEED,
                 predefined_val: np.ndarray | None = None, val_from_usage: bool = False,
                 groups: np.ndarray | None = None) -> np.ndarray:
    """Boolean [N] mask of the holdout-validation rows, stratified by label over groups.

    With val_from_usage and a predefined mask (fer2013's PublicTest rows), that mask is the
    holdout, grown by every row whose group has a row in it (the same image in Training).
    """
    y = np.asarray(y)
    n = len(y)
    g_label, g_of_row = _collapse(y, groups)
    if val_from_usage:
        if predefined_val is None:
            raise FerkaggleError("--val-from-usage needs a source with a Usage column (fer2013.csv / icml_face_data.csv); "
                                 "this source has none: drop the option to split by --val-size")
        mask = np.asarray(predefined_val, bool)
        if mask.shape != (n,):
            raise ValueError(f"predefined_val has shape {mask.shape}, expected ({n},)")
        if not mask.any() or mask.all():
            raise FerkaggleError("the source's Usage column marks no rows (or every row) as PublicTest: "
                                 "drop --val-from-usage to split by --val-size")
        held = np.zeros(len(g_label), bool)
        held[g_of_row[mask]] = True
        return held[g_of_row]
    # Below 1 it is a fraction of the labelled rows; a whole number >= 1 is a row count.
    if val_size <= 0 or (val_size >= 1 and val_size != int(val_size)):
        raise FerkaggleError(f"--val-size must be a fraction between 0 and 1 or a whole row count, not {val_size}")
    n_val = int(round(val_size * n)) if val_size < 1 else int(val_size)
    n_groups = len(g_label)
    n_val_groups = n_val if n_groups == n else int(round(n_val * n_groups / n))  # about n_val rows
    present = np.unique(g_label)
    if n_val_groups < len(present) or n_groups - n_val_groups < len(present):
        raise FerkaggleError(f"--val-size {val_size} gives {n_val} holdout rows out of {n}: need at least one row "
                             f"of each of the {len(present)} classes on both sides")
    counts = np.bincount(g_label, minlength=NUM_CLASSES)
    lonely = [_class_name(k) for k in np.flatnonzero(counts == 1)]
    if lonely:
        raise FerkaggleError(f"class {', '.join(lonely)} has a single labelled image: a stratified holdout needs at least 2")
    from sklearn.model_selection import StratifiedShuffleSplit

    splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_val_groups, random_state=seed)
    _, val_groups = next(splitter.split(np.zeros(n_groups), g_label))
    held = np.zeros(n_groups, bool)
    held[val_groups] = True
    return held[g_of_row]


def assign_folds(y: np.ndarray, rows: np.ndarray, folds: int = 5, seed: int = DEFAULT_SEED,
                 groups: np.ndarray | None = None) -> np.ndarray:
    """Stratified fold number 0..folds-1 for each of `rows` (indices into y), in the order given;
    rows of one group (groups[rows] equal) get the same fold."""
    if folds < 2:
        raise FerkaggleError(f"--folds must be at least 2, not {folds}")
    rows = np.asarray(rows)
    g_label, g_of_row = _collapse(np.asarray(y)[rows], None if groups is None else np.asarray(groups)[rows])
    counts = np.bincount(g_label, minlength=NUM_CLASSES)
    # StratifiedKFold only warns when a class is smaller than the fold count and then leaves some
    # folds without that class, which makes per-fold scores incomparable: say so instead.
    unit = "rows" if groups is None else "distinct images"
    small = [f"{_class_name(k)} ({counts[k]} {unit})" for k in np.flatnonzero((counts > 0) & (counts < folds))]
    if small:
        raise FerkaggleError(f"class {', '.join(small)} has fewer training rows than --folds {folds}: "
                             f"lower --folds or add data for that class")
    from sklearn.model_selection import StratifiedKFold

    per_group = np.empty(len(g_label), np.int8)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, part) in enumerate(splitter.split(np.zeros(len(g_label)), g_label)):
        per_group[part] = k
    return per_group[g_of_row]


def make_folds(y: np.ndarray, groups: np.ndarray | None = None, *, val_size: float = 0.1, folds: int = 5,
               seed: int = DEFAULT_SEED, predefined_val: np.ndarray | None = None, val_from_usage: bool = False,
               drop: np.ndarray | None = None) -> np.ndarray:
    """The int8 [N] fold array: -1 holdout, 0..folds-1 training folds, -2 for `drop`ped rows.

    The holdout is drawn over all rows first, so dropping rows (`drop`, bool [N]) never changes
    which of the kept rows are held out; the folds are then assigned over the kept training rows,
    so they stay balanced. Rows of one group never straddle the holdout or two folds.
    """
    y = np.asarray(y)
    fold = np.full(len(y), UNASSIGNED, np.int8)
    val = holdout_mask(y, val_size, seed, predefined_val, val_from_usage, groups)
    keep = np.ones(len(y), bool) if drop is None else ~np.asarray(drop, bool)
    fold[val & keep] = HOLDOUT
    rows = np.flatnonzero(keep & ~val)
    fold[rows] = assign_folds(y, rows, folds, seed, groups)
    return fold


def stopping_mask(y: np.ndarray, groups: np.ndarray | None = None, fraction: float = 0.1,
                  seed: int = DEFAULT_SEED) -> np.ndarray:
    """Boolean mask over `y`'s rows of the stop split (the early-stopping set) carved out of the training rows.

    CNNs early-stop and keep their best checkpoint on these rows, never on the holdout, so the
    holdout score the leaderboard shows is one that nothing in the run was selected on. Rows of
    one duplicate group (`groups`: equal ids = the same image) land on the same side, and the
    pick is stratified by label over groups (each group votes with its first row's label).
    """
    y = np.asarray(y)
    n = len(y)
    groups = np.arange(n) if groups is None else np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups has shape {groups.shape}, expected ({n},)")
    if not 0 < fraction < 1:
        raise FerkaggleError(f"the early-stopping fraction must be between 0 and 1, not {fraction}")
    uniq, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    g_label = y[first].astype(np.int64)
    n_stop = max(1, int(round(fraction * len(uniq))))
    rng = np.random.default_rng(seed)
    counts = np.bincount(g_label, minlength=NUM_CLASSES)
    if n_stop >= len(uniq):
        raise FerkaggleError(f"{n} training rows are too few to hold out {fraction:.0%} for early stopping")
    present = counts[counts > 0]
    if len(uniq) - n_stop >= len(present) and n_stop >= len(present) and (present >= 2).all():
        from sklearn.model_selection import StratifiedShuffleSplit

        splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_stop, random_state=int(rng.integers(2**31)))
        _, picked = next(splitter.split(np.zeros(len(uniq)), g_label))
    else:  # too few rows of some class to stratify (tiny data): a plain random pick of groups
        picked = rng.choice(len(uniq), size=n_stop, replace=False)
    chosen = np.zeros(len(uniq), bool)
    chosen[picked] = True
    return chosen[inverse.reshape(-1)]
