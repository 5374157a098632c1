"""A plan that fits the box: which of a space's named trials this budget can train well, at the pace
measured on this machine before the first one starts.

With `budget_share = "equal"` every trial still to run gets an equal share of the time left, and time
a trial leaves unused goes to the next ones (search/worker.py). On a slow box those shares can be
too short for any trial to reach the low-learning-rate tail of its schedule, where its last points
come from: the fifth 2-hour run trained each lean VGG about 120 epochs on a fast 2-core box, and
another box of the same kind gave them 48. `plan_trials` simulates the equal shares at each
trial's measured seconds per epoch (cnn/pace.py) and keeps the longest prefix of the queue in
which every trial reaches `least_epochs` (or its own max_epochs, if lower); the trials after it
are left in the queue, not run, and their time goes to the ones kept. The queue's order is the
space's [[trials]] order, so a space lists its trials in the order it would give them up last.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlannedTrial:
    name: str
    epoch_s: float        # measured seconds per epoch
    max_epochs: int       # the trial's own epoch limit
    epochs: int           # epochs its share gives it at that pace (0: left out)
    seconds: float        # epochs * epoch_s

    @property
    def kept(self) -> bool:
        return self.epochs > 0


def simulate(trials: list[tuple[str, float, int]], seconds: float, n: int) -> list[PlannedTrial]:
    """The first n of `trials` ((name, seconds per epoch, max epochs), in run order) under equal
    shares of `seconds`: trial i gets (time left) / (trials left) and uses what its epochs need;
    the rest are left out (epochs 0)."""
    rows: list[PlannedTrial] = []
    left = seconds
    for i, (name, pace, cap) in enumerate(trials):
        if i >= n:
            rows.append(PlannedTrial(name, pace, cap, 0, 0.0))
            continue
        share = max(0.0, left) / (n - i)
        epochs = min(cap, int(share // pace)) if pace > 0 else cap
        rows.append(PlannedTrial(name, pace, cap, epochs, epochs * pace))
        left -= epochs * pace
    return rows


def plan_trials(trials: list[tuple[str, float, int]], seconds: float, least_epochs: int) -> list[PlannedTrial]:
    """The longest prefix of `trials` whose equal shares of `seconds` give every trial in it at least
    min(least_epochs, its max_epochs) epochs (`simulate`); the first trial alone when none does."""
    for n in range(len(trials), 1, -1):
        rows = simulate(trials, seconds, n)
        if all(r.epochs >= min(least_epochs, r.max_epochs) for r in rows[:n]):
            return rows
    return simulate(trials, seconds, min(1, len(trials)))


def plan_table(rows: list[PlannedTrial], seconds: float, least_epochs: int):
    """A rich table of the plan."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"plan for {seconds / 60:.0f} min at this box's pace (each trial at least "
                        f"{least_epochs} epochs, or its max)")
    for col in ("trial", "s/epoch (measured)", "epochs planned", "minutes", ""):
        table.add_column(col, justify="left" if col in ("trial", "") else "right")
    every = simulate([(r.name, r.epoch_s, r.max_epochs) for r in rows], seconds, len(rows))  # all kept
    for r, all_kept in zip(rows, every):
        note = "" if r.kept else f"left out: with every trial kept it would get {all_kept.epochs} epochs"
        table.add_row(escape(r.name), f"{r.epoch_s:.1f}", str(r.epochs) if r.kept else "–",
                      f"{r.seconds / 60:.1f}" if r.kept else "–", note)
    return table

