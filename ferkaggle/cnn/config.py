"""The CNN training configuration: `TrainConfig` (with `OptimConfig`), read from the TOML presets
under ferkaggle/configs/ (each lists only what it changes), plus `override` for dotted changes (the search's
trials) and `summarize`, the one-line description shown in run.json and tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ferkaggle.cnn.augment import AugmentConfig
from ferkaggle.cnn.augment import describe as describe_augment
from ferkaggle.cnn.models import ModelConfig
from ferkaggle.cnn.models import describe as describe_model
from ferkaggle.cnn.runtime import Precision
from ferkaggle.cnn.schedules import Schedule
from ferkaggle.cnn.tta import TtaMode
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.presets import from_dict, load_preset


@dataclass(frozen=True)
class OptimConfig:
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"  # sgd = SGD with Nesterov momentum
    learning_rate: float = 1e-3   # base (peak) learning rate
    weight_decay: float = 1e-4    # decoupled weight decay (adamw only)
    momentum: float = 0.9         # sgd momentum
    schedule: Schedule = "exp_after"
    #                             ^ exp_after = notebooks: constant `decay_after` epochs then x exp(-decay_rate)/epoch
    decay_after: int = 10         # exp_after: epochs at the base rate
    decay_rate: float = 0.1       # exp_after: per-epoch decay exponent
    warmup_epochs: float = 1.0    # cosine: linear warm-up length in epochs
    final_lr_ratio: float = 0.01  # cosine: final rate as a fraction of the base rate
    cycles: int = 1               # cosine: equal cycles with warm restarts (SGDR); 1 = one cosine over the run
    pct_start: float = 0.3        # onecycle: share of the run spent rising to the peak
    plateau_factor: float = 0.5   # plateau: multiply the rate by this when the monitor stalls
    plateau_patience: int = 2     # plateau: epochs without improvement before cutting


@dataclass(frozen=True)
class TrainConfig:
    name: str = "simple"                 # run name on the leaderboard
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    batch_size: int = 64                 # images per step
    epochs: int = 50                     # max epochs; also the horizon of cosine/onecycle schedules
    patience: int = 5                    # early stopping: epochs without improvement of `monitor`; 0 = off
    monitor: Literal["stop_accuracy", "stop_loss", "val_accuracy", "val_loss"] = "stop_accuracy"
    #                                    ^ early stopping + best checkpoint, scored on the stop split (never the
    #                                      holdout); val_accuracy / val_loss are the old names of the same thing
    label_smoothing: float = 0.0         # 0..0.3; 0.1 is a common choice
    class_weights: Literal["none", "balanced", "sqrt"] = "none"  # sqrt = square root of balanced (milder)
    tta: TtaMode = "hflip"               # test-time augmentation for val/test probabilities
    #                                    ^ the mean over views of each face (see tta.TtaMode): 1, 2, 10, 10 views
    precision: Precision = "float32"     # compute dtype; auto: fp16 on a GPU, bf16 on a CPU with AVX512_BF16/AMX,
    #                                      else f32 (runtime.resolve_precision)
    swa_epochs: int = 0                  # weight averaging (SWA) over the schedule's last N epochs; 0 = off
    #                                    ^ the averaged model replaces the best checkpoint when it scores at least
    #                                      as well on the stop split (never the holdout); see docs/benchmarks.md
    swa_bn: Literal["recompute", "average"] = "recompute"  # SWA's BatchNorm statistics: re-estimated on the
    #                                    fit rows (one pass, no augmentation) or the average of the epochs' as is
    snapshots: int = 0                   # snapshot ensemble: the mean of the models at the ends of the last N cosine
    #                                    cycles (optim.cycles); it replaces the best checkpoint when it scores at
    #                                    least as well on the stop split (never the holdout); 0 = off


def load_train_config(name_or_path: str | Path | None) -> TrainConfig:
    cfg = load_preset(TrainConfig, name_or_path)
    for what, value in (("batch_size", cfg.batch_size), ("epochs", cfg.epochs)):
        if value < 1:
            raise FerkaggleError(f"{name_or_path}: {what} must be >= 1, not {value}")
    if not 0 <= cfg.swa_epochs <= cfg.epochs:
        raise FerkaggleError(f"{name_or_path}: swa_epochs must be between 0 and epochs ({cfg.epochs}), not {cfg.swa_epochs}")
    check_snapshots(cfg, name_or_path)
    return cfg


def check_snapshots(cfg: TrainConfig, where: Any = "config") -> None:
    """A snapshot ensemble needs a cosine schedule with at least as many cycles as snapshots, and no SWA."""
    if cfg.optim.cycles < 1:
        raise FerkaggleError(f"{where}: optim.cycles must be >= 1, not {cfg.optim.cycles}")
    if cfg.optim.cycles > 1 and cfg.optim.schedule != "cosine":
        raise FerkaggleError(f"{where}: optim.cycles = {cfg.optim.cycles} needs schedule = \"cosine\", "
                             f"not {cfg.optim.schedule!r}")
    if cfg.snapshots == 0:
        return
    if not 2 <= cfg.snapshots <= cfg.optim.cycles:
        raise FerkaggleError(f"{where}: snapshots must be 0 (off) or between 2 and optim.cycles "
                             f"({cfg.optim.cycles}), not {cfg.snapshots}")
    if cfg.optim.cycles > cfg.epochs:
        raise FerkaggleError(f"{where}: optim.cycles ({cfg.optim.cycles}) cannot exceed epochs ({cfg.epochs})")
    if cfg.swa_epochs:
        raise FerkaggleError(f"{where}: snapshots and swa_epochs are two ways to end a run; choose one")


def override(cfg: TrainConfig, changes: dict[str, Any], where: str = "override") -> TrainConfig:
    """cfg with nested changes ({"optim": {"learning_rate": 3e-3}} or dotted {"optim.learning_rate": ...})."""
    nested: dict[str, Any] = {}
    for key, value in changes.items():
        parts = key.split(".")
        node = nested
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
            node[parts[-1]].update(value)
        else:
            node[parts[-1]] = value
    return from_dict(TrainConfig, nested, where, cfg)


def summarize(cfg: TrainConfig) -> str:
    """One readable line for run.json and tables."""
    o = cfg.optim
    sched = {"exp_after": f"const{o.decay_after}+exp", "cosine": "cosine" + (f" x{o.cycles}" if o.cycles > 1 else ""), "onecycle": "1cycle",
             "plateau": "plateau", "constant": "const"}[o.schedule]
    extras = []
    if cfg.label_smoothing:
        extras.append(f"ls{cfg.label_smoothing:g}")
    if cfg.class_weights != "none":
        extras.append(f"cw-{cfg.class_weights}")
    if cfg.precision != "float32":
        extras.append({"mixed_bfloat16": "bf16", "mixed_float16": "fp16", "auto": "amp"}[cfg.precision])
    if cfg.snapshots:
        extras.append(f"snap{cfg.snapshots}")
    if cfg.swa_epochs:
        extras.append(f"swa{cfg.swa_epochs}" + ("" if cfg.swa_bn == "recompute" else "-bnavg"))
    return (f"{describe_model(cfg.model)}, {o.optimizer} {o.learning_rate:g} {sched}, bs {cfg.batch_size}, "
            f"<= {cfg.epochs} ep, {describe_augment(cfg.augment)}, tta {cfg.tta}" + (", " + " ".join(extras) if extras else ""))
