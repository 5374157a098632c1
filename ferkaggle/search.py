"""Search CNN configurations within a time budget; pick the best by holdout-val accuracy.

Inputs: prepared data, a search space (TOML under configs/spaces/: a base preset, named
trials and/or a grid of dotted keys, sampled fully or at random), a budget in seconds.
Outputs: one completed `cnn` run per trial (so the leaderboard shows them all) and
`runs/searches/<search_id>/search.json`: every trial with its score, epochs and seconds,
the rungs, the budget spent and the winner.

Strategy `halving` (default) is successive halving: every trial trains `min_epochs`,
the best 1/eta go on to min_epochs*eta, and so on up to `max_epochs`; a trial continues
from its checkpoint (no retraining). When a rung would not fit in what is left of the
budget, promotion happens early; the last survivor gets the remaining time, with its LR
schedule planned to end exactly there (so cosine/one-cycle anneal rather than being cut
off). Epoch cost is estimated from observed epochs; a trial stops cleanly when its next
epoch would overrun. `full` trains every trial to max_epochs in turn.

Resumable: trial checkpoints are written after every epoch and search.json after every
change, so Ctrl-C or a crash loses at most the epoch in progress; `resume=True`
continues the same search, never retraining finished trials.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import random
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from ferkaggle.config import from_dict, read_toml, resolve_preset, to_dict
from ferkaggle.data.prepared import Prepared
from ferkaggle.errors import FerkaggleError
from ferkaggle.fsutil import atomic_write_json


@dataclass(frozen=True)
class SpaceConfig:
    name: str = "search"                         # label of the search (search id suffix)
    base: str = "simple"                         # preset (configs/<base>.toml) every trial starts from
    strategy: Literal["halving", "full"] = "halving"  # successive halving, or every trial to max_epochs
    eta: int = 3                                 # halving: keep the best 1/eta at each rung (>= 2)
    min_epochs: int = 2                          # halving: epochs of the first rung
    max_epochs: int = 30                         # epochs of the last rung; also every trial's `epochs` (LR horizon)
    sampler: Literal["grid", "random"] = "grid"  # grid: every combination of `grid`; random: `samples` draws
    samples: int = 0                             # random sampler: number of configurations to draw
    trials: list = field(default_factory=list)   # [[trials]] named configs: name, optional preset, overrides
    grid: dict = field(default_factory=dict)     # "dotted.key" = [values...] combined over the base preset


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


def load_space(name_or_path: str | Path) -> tuple[SpaceConfig, Path]:
    path = resolve_preset(name_or_path, "spaces")
    space = from_dict(SpaceConfig, read_toml(path), str(path))
    if space.eta < 2 or space.min_epochs < 1 or space.max_epochs < space.min_epochs:
        raise FerkaggleError(f"{path}: need eta >= 2 and 1 <= min_epochs <= max_epochs")
    return space, path


def expand_trials(space: SpaceConfig, where: str, seed: int = 0) -> list[tuple[str, Any]]:
    """The (name, TrainConfig) of every trial: named trials first, then grid combinations."""
    from ferkaggle.train import TrainConfig, load_train_config, override

    base = load_train_config(space.base)
    out: list[tuple[str, TrainConfig]] = []
    for i, entry in enumerate(space.trials):
        if not isinstance(entry, dict) or "name" not in entry:
            raise FerkaggleError(f"{where}: trials[{i}] needs a name")
        entry = dict(entry)
        name = str(entry.pop("name"))
        preset = entry.pop("preset", None)
        cfg = load_train_config(preset) if preset else base
        out.append((name, override(cfg, {**entry, "name": name}, f"{where}: trial {name!r}")))
    if space.grid:
        keys = list(space.grid)
        for k in keys:
            if not isinstance(space.grid[k], list) or not space.grid[k]:
                raise FerkaggleError(f"{where}: grid.{k} must be a non-empty list of values")
        combos = list(itertools.product(*(space.grid[k] for k in keys)))
        if space.sampler == "random" and space.samples and space.samples < len(combos):
            combos = random.Random(seed).sample(combos, space.samples)
        for j, combo in enumerate(combos):
            name = f"{space.name}-{j + 1:02d}"
            out.append((name, override(base, {**dict(zip(keys, combo)), "name": name}, f"{where}: grid")))
    if not out:
        raise FerkaggleError(f"{where}: the space has no trials (add [[trials]] or a [grid])")
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise FerkaggleError(f"{where}: trial names must be unique")
    out = [(n, override(c, {"epochs": space.max_epochs})) for n, c in out]
    return out


def rungs(space: SpaceConfig) -> list[int]:
    if space.strategy == "full":
        return [space.max_epochs]
    out, r = [], space.min_epochs
    while r < space.max_epochs:
        out.append(r)
        r *= space.eta
    return out + [space.max_epochs]


def searches_root(root: str | Path | None = None) -> Path:
    from ferkaggle.runs import searches_root as registry_searches_root

    return registry_searches_root(root)


def find_resumable(root: str | Path | None = None, space_name: str | None = None) -> Path | None:
    """The newest search folder that did not complete (optionally for one space)."""
    folder = searches_root(root)
    if not folder.is_dir():
        return None
    for d in sorted(folder.iterdir(), reverse=True):
        try:
            doc = json.loads((d / "search.json").read_text())
        except (OSError, ValueError):
            continue
        if doc.get("status") != "completed" and (space_name is None or doc["space"]["name"] == space_name):
            return d
    return None


class _Search:
    """The mutable search state behind search.json."""

    def __init__(self, folder: Path, doc: dict[str, Any]):
        self.folder, self.doc = folder, doc

    def save(self) -> None:
        atomic_write_json(self.folder / "search.json", self.doc)

    def trial(self, name: str) -> dict[str, Any]:
        return next(t for t in self.doc["trials"] if t["name"] == name)

    def state_dir(self, name: str) -> Path:
        return self.folder / "trials" / name


def run_search(prepared: Prepared, space_ref: str | Path | None = None, *, budget_s: float | None = None,
               seed: int = 0, resume: bool = False, root: str | Path | None = None, tracker=None,
               on_epoch: Callable[[str, dict], None] | None = None) -> dict[str, Any]:
    """The `ferkaggle search` stage; returns the search summary (the content of search.json)."""
    from ferkaggle.console import track

    if tracker is None:
        with track() as t:
            return run_search(prepared, space_ref, budget_s=budget_s, seed=seed, resume=resume, root=root,
                              tracker=t, on_epoch=on_epoch)
    search = _open_search(prepared, space_ref, budget_s, seed, resume, root)
    doc = search.doc
    try:
        _drive(search, prepared, root, tracker, on_epoch)
    except KeyboardInterrupt:
        doc["status"] = "interrupted"
        search.save()
        raise
    except Exception as exc:
        doc["status"], doc["error"] = "failed", f"{type(exc).__name__}: {exc}"
        search.save()
        raise
    done = [t for t in doc["trials"] if t.get("val_accuracy") is not None]
    best = max(done, key=lambda t: (t["val_accuracy"], t.get("val_macro_f1", 0.0)), default=None)
    doc["winner"] = None if best is None else {k: best[k] for k in ("name", "run_id", "val_accuracy", "summary")}
    doc["status"], doc["ended"] = "completed", dt.datetime.now().astimezone().isoformat(timespec="seconds")
    search.save()
    return doc


def _open_search(prepared, space_ref, budget_s, seed, resume, root) -> _Search:
    if resume:
        space_name = None
        if space_ref is not None:
            space_name = load_space(space_ref)[0].name
        folder = find_resumable(root, space_name)
        if folder is None:
            raise FerkaggleError(f"no unfinished search to resume in {searches_root(root)}/")
        search = _Search(folder, json.loads((folder / "search.json").read_text()))
        if search.doc["data"]["split_fingerprint"] != prepared.split_fingerprint:
            raise FerkaggleError(f"search {folder.name} ran on other prepared data ({search.doc['data']['prepared']}); "
                                 "pass the same --data to resume it")
        if budget_s is not None:
            search.doc["budget_s"] = budget_s  # a new --budget replaces the old total
        search.doc["status"] = "running"
        search.doc.setdefault("resumed", []).append(dt.datetime.now().astimezone().isoformat(timespec="seconds"))
        search.save()
        return search
    if space_ref is None:
        raise FerkaggleError("give a search space (--space NAME|PATH), or --resume")
    space, path = load_space(space_ref)
    trials = expand_trials(space, str(path), seed)
    from ferkaggle.train import summarize

    folder_root = searches_root(root)
    folder_root.mkdir(parents=True, exist_ok=True)
    base_id = f"{dt.datetime.now():%Y-%m-%d_%H%M%S}_{space.name}"
    search_id, n = base_id, 2
    while (folder_root / search_id).exists():
        search_id, n = f"{base_id}-{n}", n + 1
    folder = folder_root / search_id
    folder.mkdir()
    doc = {
        "search_id": search_id, "status": "running", "seed": seed, "budget_s": budget_s, "spent_s": 0.0,
        "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "space": {"name": space.name, "path": str(path), **to_dict(space)},
        "rungs": rungs(space),
        "data": {"prepared": str(prepared.path), "split_fingerprint": prepared.split_fingerprint},
        "trials": [{"name": name, "summary": summarize(cfg), "config": to_dict(cfg), "status": "active",
                    "epochs": 0, "seconds": 0.0, "best_val_no_tta": None, "stopped": None,
                    "run_id": None, "val_accuracy": None, "rung": 0} for name, cfg in trials],
        "winner": None,
    }
    search = _Search(folder, doc)
    search.save()
    return search


def _drive(search: _Search, prepared: Prepared, root, tracker, on_epoch) -> None:
    from ferkaggle.train import TrainConfig, fit_trial, read_state

    doc = search.doc
    budget = doc["budget_s"]
    t_start, spent0 = time.time(), float(doc["spent_s"])
    deadline = None if budget is None else t_start + budget - spent0
    margin = 0.0 if budget is None else min(60.0, 0.03 * budget)  # for recording runs at the end
    fit_idx, stop_idx = prepared.stopping_split(doc["seed"])  # selection never looks at the holdout
    x_tr, y_tr, x_val, y_val = prepared.x[fit_idx], prepared.y[fit_idx], prepared.x[stop_idx], prepared.y[stop_idx]
    cfgs = {t["name"]: from_dict(TrainConfig, t["config"], f"search {doc['search_id']}") for t in doc["trials"]}
    all_rungs = doc["rungs"]
    trial_task = tracker.add("trials", total=len(doc["trials"]))
    tracker.advance(trial_task, sum(t["status"] == "done" for t in doc["trials"]), "")

    def remaining() -> float:
        return math.inf if deadline is None else deadline - margin - time.time()

    def epoch_cost(name: str) -> float | None:
        hist = read_state(search.state_dir(name))["history"]
        if hist:
            return hist[-1]["seconds"]
        seen = [read_state(search.state_dir(t["name"]))["history"] for t in doc["trials"]]
        seen = [h[-1]["seconds"] for h in seen if h]
        return max(seen) if seen else None

    def sync(name: str) -> None:
        state = read_state(search.state_dir(name))
        t = search.trial(name)
        t["epochs"], t["seconds"], t["stopped"] = state["epochs_done"], state["train_seconds"], state["stopped"]
        accs = [h.get("stop_accuracy") for h in state["history"] if h.get("stop_accuracy") is not None]
        t["best_val_no_tta"] = max(accs) if accs else None
        doc["spent_s"] = round(spent0 + time.time() - t_start, 1)
        search.save()

    def finalize(name: str) -> None:
        from ferkaggle.runs import drop_checkpoint_models
        from ferkaggle.train import record_run

        t = search.trial(name)
        if t["status"] == "done":
            return
        sync(name)
        if t["epochs"] == 0:
            t["status"] = "skipped"
        else:
            run = record_run(prepared, cfgs[name], search.state_dir(name), seed=doc["seed"], root=root,
                             extra={"search": {"id": doc["search_id"], "trial": name}})
            t.update(status="done", run_id=run.run_id, val_accuracy=run.metrics["val_accuracy"],
                     val_macro_f1=run.metrics["val_macro_f1"])
            drop_checkpoint_models(search.state_dir(name))  # the run folder holds model.keras now
        search.save()
        tracker.advance(trial_task, 1, f"{name} {t['val_accuracy'] or 0:.3f}")

    def train(name: str, target: int, horizon, until: float | None = None) -> None:
        t = search.trial(name)
        cfg = cfgs[name]
        task = tracker.add(f"{name} → {target} ep", total=target)
        tracker.advance(task, t["epochs"], "")

        def report(entry, state):
            from ferkaggle.train import epoch_reporter

            epoch_reporter(tracker, task)(entry, state)
            sync(name)
            if on_epoch is not None:
                on_epoch(name, entry)

        fit_trial(x_tr, y_tr, x_val, y_val, cfg, search.state_dir(name), seed=doc["seed"],
                  target_epochs=target, horizon=horizon,
                  deadline=until if until is not None else (None if deadline is None else deadline - margin),
                  on_epoch=report)
        sync(name)

    def alive() -> list[str]:
        return [t["name"] for t in doc["trials"] if t["status"] == "active"]

    def rank(names: list[str]) -> list[str]:
        return sorted(names, key=lambda n: -(search.trial(n)["best_val_no_tta"] or 0.0))

    for r, target in enumerate(all_rungs):
        last_rung = r == len(all_rungs) - 1
        names = alive()
        if not names or remaining() <= 0:
            break
        # Promote early while this rung cannot fit in what is left of the budget.
        while len(names) > 1 and deadline is not None:
            costs = [epoch_cost(n) for n in names]
            if any(c is None for c in costs):
                break
            need = sum(max(target - search.trial(n)["epochs"], 0) * c for n, c in zip(names, costs))
            if need <= remaining():
                break
            keep = rank(names)[: max(1, math.ceil(len(names) / doc["space"]["eta"]))]
            if len(keep) == len(names):
                keep = keep[:-1]
            for n in names:
                if n not in keep:
                    finalize(n)
            names = keep
            last_rung = last_rung or len(names) == 1
        if len(names) == 1 and deadline is not None:
            last_rung = True
        doc["rung_now"] = r
        for i, name in enumerate(names):
            t = search.trial(name)
            if t["stopped"] == "early" or remaining() <= 0:
                continue
            goal, horizon = target, float(doc["space"]["max_epochs"])
            if last_rung:
                goal = doc["space"]["max_epochs"]
                if deadline is not None:
                    # Share what is left among the trials still to train in this rung; plan the LR to end there.
                    until = time.time() + remaining() / (len(names) - i)
                    horizon = _budget_horizon(until, goal, epoch_cost(name))
            t["rung"] = r
            train(name, goal, horizon, until if last_rung and deadline is not None else None)
            if last_rung or doc["space"]["strategy"] == "full":
                finalize(name)
        if last_rung:
            break
        names = [n for n in alive()]
        keep = rank(names)[: max(1, math.ceil(len(names) / doc["space"]["eta"]))]
        for n in names:
            if n not in keep:
                finalize(n)
    for n in alive():
        finalize(n)


def _budget_horizon(until: float, max_epochs: int, first_cost: float | None):
    """LR horizon for a last-rung trial: the epochs it can still reach by `until`, re-planned at
    every epoch from its recent pace (mean of the last 3 epochs), so cosine/one-cycle end with the
    budget whether the machine speeds up or slows down (a fixed plan ends early or gets cut off)."""

    def horizon(state: dict) -> float:
        recent = [h["seconds"] for h in state["history"][-3:]]
        cost = (sum(recent) / len(recent)) if recent else (first_cost or 0.0)
        if not cost:
            return float(max_epochs)
        return float(min(max_epochs, state["epochs_done"] + max(int((until - time.time()) // cost), 1)))

    return horizon


def search_table(doc: dict[str, Any]):
    """A rich table of the trials, best first."""
    from rich.table import Table

    table = Table(title=f"search {doc['search_id']} · spent {doc['spent_s']:.0f}s"
                        + (f" of {doc['budget_s']:.0f}s" if doc.get("budget_s") else ""))
    for col in ("trial", "val acc", "val (no TTA)", "epochs", "seconds", "stopped", "config"):
        table.add_column(col, justify="right" if col not in ("trial", "config", "stopped") else "left")
    winner = (doc.get("winner") or {}).get("name")
    order = sorted(doc["trials"], key=lambda t: -(t.get("val_accuracy") or t.get("best_val_no_tta") or 0.0))
    for t in order:
        mark = "★ " if t["name"] == winner else ""
        fmt = lambda v: "–" if v is None else f"{v:.4f}"  # noqa: E731
        table.add_row(mark + t["name"], fmt(t.get("val_accuracy")), fmt(t.get("best_val_no_tta")), str(t["epochs"]),
                      f"{t['seconds']:.0f}", t.get("stopped") or ("skipped" if t["status"] == "skipped" else ""),
                      t["summary"])
    return table
