"""Learning-rate schedules: small pure functions of training time, one per policy.

Inputs: `t`, the training time in epochs as a float (epoch 3, batch 50 of 100 is t = 3.5),
the base learning rate and the policy's knobs. Output: the learning rate at `t`.
`fit.ScheduledLearningRate` calls `learning_rate_at` before every batch, so warm-up and one-cycle
ramps are smooth within an epoch and a resumed run lands on exactly the same curve. The plateau
policy depends on observed losses, not on time: fit.py hands it to Keras' ReduceLROnPlateau.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

Schedule = Literal["constant", "exp_after", "plateau", "cosine", "onecycle"]
"""A config's `optim.schedule` (checked when the config is read, by `ferkaggle.core.presets.from_dict`).
plateau is the one that is not a function of time: Keras' ReduceLROnPlateau cuts the rate when the
stop-split score stalls (fit.py), and `learning_rate_at` keeps the base rate for it."""


def constant(t: float, base_lr: float) -> float:
    """The same rate throughout."""
    return base_lr


def exp_after(t: float, base_lr: float, after: int = 10, rate: float = 0.1) -> float:
    """The notebooks' policy: constant for `after` epochs, then x exp(-rate) per epoch.

    The notebooks changed the rate once per epoch, so only whole epochs count: the rate set before
    every batch stays the same within an epoch.
    """
    epoch = math.floor(t)
    return base_lr if epoch < after else base_lr * math.exp(-rate * (epoch - after + 1))


def cosine_warmup(t: float, base_lr: float, total: float, warmup: float = 1.0, final_ratio: float = 0.01,
                  cycles: int = 1) -> float:
    """Linear warm-up from ~0 to base_lr over `warmup` epochs, then cosine down to base_lr*final_ratio at `total`.

    With cycles > 1: warm restarts (SGDR, the snapshot ensembles' schedule): `total` is cut into
    `cycles` equal cycles, each a cosine from base_lr down to the floor; only the first warms up.
    """
    if cycles > 1:
        length = total / cycles
        cycle = min(int(t // length), cycles - 1) if length > 0 else 0
        t, total, warmup = t - cycle * length, length, (warmup if cycle == 0 else 0.0)
    if warmup > 0 and t < warmup:
        return base_lr * max(t, 1e-3 * warmup) / warmup
    span = max(total - warmup, 1e-9)
    progress = min(max((t - warmup) / span, 0.0), 1.0)
    floor = base_lr * final_ratio
    return floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def one_cycle(t: float, base_lr: float, total: float, pct_start: float = 0.3,
              div_factor: float = 25.0, final_div: float = 1e3) -> float:
    """Smith's one-cycle (cosine form): base_lr/div_factor up to base_lr at pct_start*total, then down to base_lr/final_div."""
    total = max(total, 1e-9)
    peak_at = pct_start * total
    start, end = base_lr / div_factor, base_lr / final_div
    if t <= peak_at:
        p = t / max(peak_at, 1e-9)
        return start + (base_lr - start) * 0.5 * (1.0 - math.cos(math.pi * p))
    p = min((t - peak_at) / max(total - peak_at, 1e-9), 1.0)
    return end + (base_lr - end) * 0.5 * (1.0 + math.cos(math.pi * p))


def cycle_ends(total: float, cycles: int) -> list[int]:
    """The epochs (1-based) that end each of `cycles` equal cycles of a run planned for `total` epochs:
    where a restarted cosine reaches its floor (the snapshots of a snapshot ensemble)."""
    ends = [int(round(c * total / cycles)) for c in range(1, cycles + 1)]
    return sorted({e for e in ends if e >= 1})


def learning_rate_at(t: float, optim, total_epochs: float) -> float:
    """The rate an `OptimConfig` asks for at time t of a run planned for `total_epochs`."""
    name, lr = optim.schedule, optim.learning_rate
    if name in ("constant", "plateau"):
        return constant(t, lr)
    if name == "exp_after":
        return exp_after(t, lr, optim.decay_after, optim.decay_rate)
    if name == "cosine":
        return cosine_warmup(t, lr, total_epochs, optim.warmup_epochs, optim.final_lr_ratio, optim.cycles)
    if name == "onecycle":
        return one_cycle(t, lr, total_epochs, optim.pct_start)
    raise ValueError(f"unknown schedule {name!r}; allowed: {', '.join(get_args(Schedule))}")
