"""Search spaces: the TOML under ferkaggle/configs/spaces/ that a user writes, read into a SpaceConfig.

A space names a base preset, named trials (presets known to be good, enqueued first) and
distributions over dotted TrainConfig keys (categorical lists, int, float, log), which the
Optuna sampler draws from. `load_space` reads and checks the space's own options;
`check_space` then checks every key against TrainConfig, once, before any training (a typo
fails there) and gives the base config, the distributions and the named trials' configs;
`suggest` turns a distribution into an Optuna `trial.suggest_*` call. The budget parser
lives here too: it reads the user's `--budget` text.
"""


import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ferkaggle.cnn.config import load_train_config, override
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.presets import from_dict, read_toml, resolve_preset

# The allowed values of a space's options, defined here once; `from_dict` checks a space's
# TOML against them when it loads (typing.get_args gives them at run time).
Pruner = Literal["asha", "hyperband", "none"]  # asha = SuccessiveHalvingPruner (asynchronous)
Sampler = Literal["tpe", "random"]
BudgetShare = Literal["rest", "equal"]

# The fields each kind of [params] distribution takes (its `type`), in the order messages list them.
PARAM_FIELDS: dict[str, set[str]] = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"},
                                     "log": {"low", "high"}, "categorical": {"choices"}}

@dataclass(frozen=True)
class SpaceConfig:
    name: str = "search"                         # label of the search (default study name prefix, trial names)
    base: str = "simple"                         # preset (ferkaggle/configs/<base>.toml) every sampled trial starts from
    min_epochs: int = 2                          # first rung: epochs before the pruner first compares trials
    max_epochs: int = 30                         # every trial's `epochs` (and LR horizon) when the budget allows
    eta: int = 3                                 # pruner reduction factor: keep the best 1/eta at each rung (>= 2)
    pruner: Pruner = "asha"                      # asha = SuccessiveHalvingPruner (asynchronous)
    sampler: Sampler = "tpe"                     # how configurations are proposed after the named trials
    n_trials: int = 20                           # trials (finished + pruned) the study aims for; --trials overrides
    budget_share: BudgetShare = "rest"           # a trial's time: the rest of the worker's budget, or an
                                                 # equal share of it among the trials still to run
    fill_budget: bool = False                    # with budget left once n_trials are done (enough for a quarter
                                                 # of max_epochs): one more sampled trial in all of it, again
    least_epochs: int = 0                        # with budget_share "equal" and a budget: the named trials
                                                 # the measured pace gives at least this many epochs each
                                                 # (or their max) run; the last ones are left out (0: all run)
    fixed: dict = field(default_factory=dict)    # [fixed] overrides every trial takes on top of its preset,
                                                 # named and sampled (precision, patience, ...); not sampled
    trials: list = field(default_factory=list)   # [[trials]] named configs: name, optional preset, overrides
    params: dict = field(default_factory=dict)   # "dotted.key" = {type = "float"|"int"|"log"|"categorical", ...}


def parse_budget(text: str | float | int | None) -> float | None:
    """'90s', '60m', '2h', '1h30m', or plain seconds -> seconds; None/'' -> no budget."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", s)
    if not parts or re.sub(r"\s", "", "".join(n + u for n, u in parts)) != re.sub(r"\s", "", s):
        raise FerkaggleError(f"budget {text!r} is not a duration; use e.g. 90s, 60m, 2h or 1h30m")
    seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if seconds <= 0:
        raise FerkaggleError(f"budget {text!r} must be positive")
    return seconds


def space_from_dict(values: dict[str, Any], where: str) -> SpaceConfig:
    space = from_dict(SpaceConfig, values, where)
    if space.eta < 2 or space.min_epochs < 1 or space.max_epochs < space.min_epochs:
        raise FerkaggleError(f"{where}: need eta >= 2 and 1 <= min_epochs <= max_epochs")
    if space.least_epochs < 0:
        raise FerkaggleError(f"{where}: least_epochs must be >= 0")
    if space.n_trials < 1:
        raise FerkaggleError(f"{where}: n_trials must be >= 1")
    return space


def load_space(name_or_path: str | Path) -> tuple[SpaceConfig, Path]:
    path = resolve_preset(name_or_path, "spaces")
    return space_from_dict(read_toml(path), str(path)), path


def dotted_keys(values: dict[str, Any], prefix: str = "") -> set[str]:
    """{"model": {"width": 8}, "optim.learning_rate": 1e-3} -> {"model.width", "optim.learning_rate"}."""
    out: set[str] = set()
    for key, value in values.items():
        out |= dotted_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
    return out


def with_fixed(space: SpaceConfig, cfg: Any, where: str) -> Any:
    """A preset's TrainConfig with the space's [fixed] overrides on top."""
    return override(cfg, space.fixed, f"{where}: fixed") if space.fixed else cfg


def base_config(space: SpaceConfig, where: str) -> Any:
    """The TrainConfig every sampled trial starts from: the base preset, then [fixed]."""
    return with_fixed(space, load_train_config(space.base), where)


def sampled_config(space: SpaceConfig, base: Any, params: dict[str, Any], name: str, where: str) -> Any:
    """A sampled trial's TrainConfig: `base` (base_config) with the drawn params, trained for max_epochs."""
    return override(base, {**params, "name": name, "epochs": space.max_epochs}, where)


def distributions(space: SpaceConfig, base: Any, where: str) -> dict[str, Any]:
    """The Optuna distribution of every dotted key in `params`, each checked against TrainConfig
    (`base`, the space's base_config)."""
    both = sorted(dotted_keys(space.fixed) & set(space.params))
    if both:
        raise FerkaggleError(f"{where}: {both[0]!r} is both in [fixed] and in [params]; a key is fixed or sampled, not both")
    out: dict[str, Any] = {}
    for key, spec in space.params.items():
        at = f"{where}: params.{key}"
        dist, samples = distribution(spec, at)
        for value in samples:  # the key must exist in TrainConfig and accept these values
            override(base, {key: value}, at)
        out[key] = dist
    return out


def distribution(spec: Any, at: str) -> tuple[Any, list[Any]]:
    """One [params] entry (a list of choices or a table with a type) -> (its Optuna distribution,
    the values to try on TrainConfig: the choices, or low and high)."""
    import optuna.distributions as od

    kinds = ", ".join(PARAM_FIELDS)
    if isinstance(spec, list):
        spec = {"type": "categorical", "choices": spec}
    if not isinstance(spec, dict) or "type" not in spec:
        raise FerkaggleError(f"{at} must be a list of choices or a table with a type ({kinds})")
    spec = dict(spec)
    kind = spec.pop("type")
    if kind not in PARAM_FIELDS:
        raise FerkaggleError(f"{at}: type must be one of {kinds}, not {kind!r}")
    unknown = set(spec) - PARAM_FIELDS[kind]
    if unknown:
        raise FerkaggleError(f"{at}: unknown field {sorted(unknown)[0]!r}; allowed for {kind}: {', '.join(sorted(PARAM_FIELDS[kind]))}")
    try:
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise FerkaggleError(f"{at}: choices must be a non-empty list")
            if any(not isinstance(c, (str, int, float, bool)) for c in choices):
                raise FerkaggleError(f"{at}: choices must be strings, numbers or booleans")
            return od.CategoricalDistribution(choices), choices
        if kind == "int":
            if not all(isinstance(spec.get(k), int) and not isinstance(spec.get(k), bool) for k in ("low", "high")):
                raise FerkaggleError(f"{at}: int needs integer low and high")
            return (od.IntDistribution(spec["low"], spec["high"], log=bool(spec.get("log", False)),
                                       step=int(spec.get("step", 1))), [spec["low"], spec["high"]])
        if not all(isinstance(spec.get(k), (int, float)) and not isinstance(spec.get(k), bool) for k in ("low", "high")):
            raise FerkaggleError(f"{at}: {kind} needs numeric low and high")
        step = spec.get("step")
        return (od.FloatDistribution(float(spec["low"]), float(spec["high"]),
                                     log=kind == "log" or bool(spec.get("log", False)),
                                     step=None if step is None else float(step)),
                [float(spec["low"]), float(spec["high"])])
    except ValueError as exc:
        if isinstance(exc, FerkaggleError):
            raise
        raise FerkaggleError(f"{at}: {exc}") from None


def named_trials(space: SpaceConfig, base: Any, where: str) -> list[tuple[str, Any]]:
    """The (name, TrainConfig) of every named trial, in order (`base`: the space's base_config)."""
    out: list[tuple[str, Any]] = []
    for i, entry in enumerate(space.trials):
        if not isinstance(entry, dict) or "name" not in entry:
            raise FerkaggleError(f"{where}: trials[{i}] needs a name")
        entry = dict(entry)
        name = str(entry.pop("name"))
        preset = entry.pop("preset", None)
        cfg = with_fixed(space, load_train_config(preset), where) if preset else base
        cfg = override(cfg, {**entry, "name": name}, f"{where}: trial {name!r}")
        out.append((name, override(cfg, {"epochs": space.max_epochs})))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise FerkaggleError(f"{where}: trial names must be unique")
    return out


@dataclass(frozen=True)
class CheckedSpace:
    """A space checked whole against TrainConfig (check_space), with what its trials are made of."""
    space: SpaceConfig
    base: Any                        # the TrainConfig every sampled trial starts from (base_config)
    dists: dict[str, Any]            # dotted key -> Optuna distribution (distributions)
    named: list[tuple[str, Any]]     # (name, TrainConfig) of the named trials, in order (named_trials)


def check_space(space: SpaceConfig, where: str) -> CheckedSpace:
    """Check the whole space once (base preset, [fixed], distributions, named trials); errors name `where`."""
    base = base_config(space, where)
    checked = CheckedSpace(space, base, distributions(space, base, where), named_trials(space, base, where))
    if not checked.named and not space.params:
        raise FerkaggleError(f"{where}: the space has no trials (add [[trials]] or [params])")
    return checked


def rungs(space: SpaceConfig) -> list[int]:
    """Epoch counts at which the pruner compares trials (the last is max_epochs)."""
    if space.pruner == "none":
        return [space.max_epochs]
    out, r = [], space.min_epochs
    while r < space.max_epochs:
        out.append(r)
        r *= space.eta
    return out + [space.max_epochs]


def values_fingerprint(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def get_dotted(cfg: Any, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def fits(dist: Any, value: Any) -> bool:
    import optuna.distributions as od

    if isinstance(dist, od.CategoricalDistribution):
        return any(type(value) is type(c) and value == c for c in dist.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(dist, od.IntDistribution) and not isinstance(value, int):
        return False
    return dist.low <= value <= dist.high


def suggest(trial, key: str, dist: Any) -> Any:
    import optuna.distributions as od

    if isinstance(dist, od.CategoricalDistribution):
        return trial.suggest_categorical(key, list(dist.choices))
    if isinstance(dist, od.IntDistribution):
        return trial.suggest_int(key, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(key, dist.low, dist.high, step=dist.step, log=dist.log)
