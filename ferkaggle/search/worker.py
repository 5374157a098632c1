"""One `ferkaggle search` worker: `Worker` pulls trials from the study until the budget or the
study ends, trains each toward its rungs (reporting every epoch to the pruner), resumes an
interrupted or dead worker's trial from its checkpoint, and records every finished or pruned
trial as a run. The LR horizon under a budget (`budget_horizon`) is planned here too."""

from __future__ import annotations

import json
import math
import tempfile
import time
import warnings
from pathlib import Path

from ferkaggle.cnn import pace
from ferkaggle.cnn.config import summarize
from ferkaggle.cnn.fit import fit_trial, read_state
from ferkaggle.cnn.record import record_run
from ferkaggle.cnn.runtime import release_memory
from ferkaggle.core.console import epoch_reporter
from ferkaggle.core.constants import DEFAULT_SEED
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.fsutil import atomic_write_json
from ferkaggle.data.prepared import Prepared
from ferkaggle.runs.checkpoints import remove_checkpoint
from ferkaggle.runs.registry import archive_run, read_run
from ferkaggle.runs.studies import trial_state_dir
from ferkaggle.search.optuna_adapter import (
    claim_waiting_trial,
    frozen_trial,
    heartbeat_interval,
    trial_heartbeat,
)
from ferkaggle.search.plan import PlannedTrial, plan_table, plan_trials
from ferkaggle.search.spaces import CheckedSpace, sampled_config, suggest
from ferkaggle.search.study import worker_id


def _pruning_callback(trial, max_epochs: int, monitor: str = "val_accuracy"):
    """optuna-integration's KerasPruningCallback (it subclasses keras.callbacks.Callback, which is
    Keras 3 here), reporting the step as epochs completed so that rungs are in epochs. The last
    epoch is reported but never pruned: the trial has already paid for it."""
    from optuna_integration.keras import KerasPruningCallback

    class EpochsDonePruning(KerasPruningCallback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 >= max_epochs:
                value = (logs or {}).get(monitor)
                if value is not None:
                    trial.report(float(value), step=epoch + 1)
                return
            super().on_epoch_end(epoch + 1, logs)

    return EpochsDonePruning(trial, monitor)


def _stop_value(state: dict) -> float | None:
    accs = [h["stop_accuracy"] for h in state["history"] if h.get("stop_accuracy") is not None]
    return max(accs) if accs else None


def budget_horizon(until: float, max_epochs: int, first_cost: float | None):
    """LR horizon for a trial under a budget: the epochs it can still reach by `until`, re-planned at
    every epoch from its recent pace (mean of the last 3 epochs), so cosine/one-cycle end with the
    budget whether the machine speeds up or slows down (a fixed plan ends early or gets cut off)."""

    def horizon(state: dict) -> float:
        recent = [h["seconds"] for h in state["history"][-3:]]
        cost = (sum(recent) / len(recent)) if recent else (first_cost or 0.0)
        if not cost:
            return float(max_epochs)
        return float(min(max_epochs, state["epochs_done"] + max(int((until - time.time()) // cost), 1)))

    return horizon


class Worker:
    """One `ferkaggle search` process pulling trials from a study until the budget or the study ends."""

    def __init__(self, study, checked: CheckedSpace, prepared: Prepared, *, budget_s: float | None,
                 n_trials: int | None, root, artifacts: str | None, tracker, on_epoch):
        space = checked.space
        self.study, self.space, self.prepared, self.root = study, space, prepared, root
        self.tracker, self.on_epoch = tracker, on_epoch
        self.where = f"study {study.study_name}"
        self.dists, self.named, self.base = checked.dists, dict(checked.named), checked.base
        self.seed = int(study.user_attrs.get("seed", DEFAULT_SEED))
        self.total = n_trials or space.n_trials
        self.asked_trials = n_trials is not None  # --trials: the user's count, never re-planned
        self.plan: list[PlannedTrial] = []
        self.left_out: set[int] = set()  # queued named trials the plan leaves out (numbers)
        if not space.params:
            self.total = min(self.total, len(self.named))  # nothing to sample beyond the named trials
        self.worker = worker_id()
        self.t_start = time.time()
        self.deadline = None if budget_s is None else self.t_start + budget_s
        self.margin = 0.0 if budget_s is None else min(60.0, 0.03 * budget_s)  # recording the last run
        self.epoch_costs: list[float] = []
        self.ran: list[int] = []
        self.artifacts = None
        if artifacts:
            from optuna.artifacts import FileSystemArtifactStore

            Path(artifacts).mkdir(parents=True, exist_ok=True)
            self.artifacts = FileSystemArtifactStore(artifacts)
        fit_idx, stop_idx = prepared.stopping_split(self.seed)  # selection never looks at the holdout
        self.data = (prepared.x[fit_idx], prepared.y[fit_idx], prepared.x[stop_idx], prepared.y[stop_idx])

    def remaining(self) -> float:
        return math.inf if self.deadline is None else self.deadline - self.margin - time.time()

    def epoch_cost(self) -> float | None:
        if self.epoch_costs:
            return max(self.epoch_costs[-5:])
        seen = [t.user_attrs["epoch_s"] for t in self.study.get_trials(deepcopy=False) if "epoch_s" in t.user_attrs]
        return max(seen) if seen else None

    def trial_until(self, trial) -> float | None:
        """When this trial must end: the worker's deadline, or with `budget_share = "equal"` an equal
        share of the time left among the study's trials still to run (this one included), so that
        every one of them trains a whole schedule; time a trial leaves unused goes to the next ones."""
        from optuna.trial import TrialState

        if self.deadline is None:
            return None
        end = self.deadline - self.margin
        if self.space.budget_share != "equal":
            return end
        taken = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
                    and t.number != trial.number for t in self.study.get_trials(deepcopy=False))
        left = max(1, self.total - taken)
        now = time.time()
        return now + max(0.0, end - now) / left

    def loop(self) -> None:
        import optuna
        from optuna.trial import TrialState

        heartbeat = heartbeat_interval(self.study)
        self.make_plan()
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                optuna.storages.fail_stale_trials(self.study)  # a dead worker's trial -> failed, retried
            trials = self.study.get_trials(deepcopy=False)
            waiting = sum(t.state == TrialState.WAITING and t.number not in self.left_out for t in trials)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
            # --trials N is the user's count: queued named trials beyond it wait for a later search
            if (not waiting or self.asked_trials) and finished + running >= self.total:
                if running and self.remaining() > 0:
                    # Another worker's trial may still die and need a retry: wait for it to finish or go stale.
                    time.sleep(min(float(heartbeat or 5), 5.0))
                    continue
                if not self.fill(finished):
                    return
            cost = self.epoch_cost()
            need = (cost or 0.0) * (1 if waiting else self.space.min_epochs)
            if self.remaining() <= 0 or (cost is not None and need > self.remaining()):
                self.tracker.print(f"{self.worker}: budget spent, stopping (study {self.study.study_name} goes on)")
                return
            self.run_one()

    def make_plan(self) -> None:
        """With a budget, `budget_share = "equal"` and `least_epochs`, before the first trial: measure each
        queued named trial's seconds per epoch here (cnn/pace.py) and keep as many as the budget trains
        to at least `least_epochs` each (search/plan.py); the others stay queued, not run, unless time is
        left once the kept ones are done (fill_budget). Only a worker that starts the study's named
        trials alone plans (no trial running or done), and never with --trials."""
        from optuna.trial import TrialState

        least = self.space.least_epochs
        if not least or self.deadline is None or self.space.budget_share != "equal" or self.asked_trials:
            return
        trials = sorted(self.study.get_trials(deepcopy=False), key=lambda t: t.number)
        if any(t.state in (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED) for t in trials):
            return
        queued = [t for t in trials if t.state == TrialState.WAITING and "failed_trial" not in t.system_attrs
                  and t.user_attrs.get("named") in self.named][: self.total]
        if len(queued) < 2:
            return
        self.tracker.print(f"measuring this box's pace: {len(queued)} named trials, a few training steps each")
        paces = []
        for t in queued:
            cfg = self.named[t.user_attrs["named"]]
            paces.append((cfg.name, pace.epoch_seconds(cfg, *self.data, seed=self.seed), cfg.epochs))
        seconds = self.remaining()
        self.plan = plan_trials(paces, seconds, least)
        self.tracker.print(plan_table(self.plan, seconds, least))
        self.left_out = {t.number for t, row in zip(queued, self.plan) if not row.kept}
        self.total = sum(row.kept for row in self.plan)

    def fill(self, finished: int) -> bool:
        """With `fill_budget` and no --trials, the study's trials done and time left for a quarter of `max_epochs` (at least
        `min_epochs`) at the pace measured so far: raise this worker's target by one sampled trial, which
        then gets all the time left (budget_share "equal" with one trial left). The budget is the user's:
        time a search leaves unused is a model the ensemble does not get; a schedule much shorter than
        the space's is not worth starting."""
        cost = self.epoch_cost()
        least = max(self.space.min_epochs, math.ceil(self.space.max_epochs / 4))
        if (not self.space.fill_budget or self.asked_trials or not (self.space.params or self.left_out)
                or self.deadline is None or cost is None or self.remaining() < cost * least):
            return False
        self.total = finished + 1
        which = "sampled trial"
        if self.left_out:  # the queue's next named trial, which the plan had left out, goes first
            self.left_out.discard(min(self.left_out))
            which = "trial (the next one the plan had left out)"
        self.tracker.print(f"{self.worker}: {finished} trials done and {self.remaining() / 60:.0f} min of the budget "
                           f"left: one more {which} for the ensemble (fill_budget)")
        return True

    def run_one(self) -> None:
        import optuna
        from optuna.trial import TrialState

        trial = self.ask()
        with trial_heartbeat(self.study, trial):
            try:
                value = self.objective(trial)
            except optuna.TrialPruned:
                self.study.tell(trial, state=TrialState.PRUNED)
                self.ran.append(trial.number)
                self._cleanup(trial)
                return
            except KeyboardInterrupt:
                # Queue the continuation first, then fail this attempt: the next run resumes it.
                from optuna.storages import RetryHeartbeatStaleTrialCallback

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "experimental"
                    RetryHeartbeatStaleTrialCallback()(self.study, frozen_trial(self.study, trial))
                trial.set_user_attr("interrupted", True)
                self.study.tell(trial, state=TrialState.FAIL)
                raise
            except BaseException:
                self.study.tell(trial, state=TrialState.FAIL)
                raise
        self.study.tell(trial, value)
        self.ran.append(trial.number)
        self._cleanup(trial)

    def ask(self):
        """Continuations of interrupted or dead trials first (oldest first), then the queue and the sampler.

        Two workers never take the same trial: see `claim_waiting_trial`."""
        continuation = claim_waiting_trial(self.study, lambda t: "failed_trial" in t.system_attrs)
        if continuation is not None:
            return continuation
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "heartbeat is meant for Study.optimize": we drive it
            return self.study.ask()

    def _key(self, trial) -> tuple[str, int | None]:
        origin = frozen_trial(self.study, trial).system_attrs.get("failed_trial")
        return f"t{(origin if origin is not None else trial.number):05d}", origin

    def _cleanup(self, trial) -> None:
        key, _ = self._key(trial)
        remove_checkpoint(trial_state_dir(self.study.study_name, key, self.root))

    def config(self, trial, key: str):
        frozen = frozen_trial(self.study, trial)
        named = trial.user_attrs.get("named")
        if named is not None:
            if named not in self.named:
                raise FerkaggleError(f"{self.where}: queued trial {named!r} is not in the space")
            fixed = {**frozen.system_attrs.get("fixed_params", {}), **frozen.params}
            for key in fixed:
                if key in self.dists:
                    suggest(trial, key, self.dists[key])
            return self.named[named]
        params = {key: suggest(trial, key, dist) for key, dist in self.dists.items()}
        # Named by the original trial's key, so a retry records under the same name.
        return sampled_config(self.space, self.base, params, f"{self.space.name}-{key}", self.where)

    def objective(self, trial) -> float:
        """Train the trial (or continue it from its checkpoint) and record its run; the stop-split
        accuracy is the value. Raises optuna.TrialPruned for a pruned trial (recorded too)."""
        key, origin = self._key(trial)
        cfg = self.config(trial, key)
        state_dir = trial_state_dir(self.study.study_name, key, self.root)
        trial.set_user_attr("name", cfg.name)
        trial.set_user_attr("summary", summarize(cfg))
        trial.set_user_attr("worker", self.worker)
        marker = state_dir / "recorded.json"
        if marker.is_file():  # recorded by an attempt that died before telling the study
            return self.recorded_outcome(trial, marker)
        state = read_state(state_dir)
        self.announce(trial, cfg, origin, state["epochs_done"])
        start = self.replay_checkpoint(trial, state)
        if start and state["stopped"] != "early" and start < cfg.epochs and trial.should_prune():
            return self.record(trial, cfg, state_dir, "pruned")
        return self.train(trial, cfg, state_dir, state)

    @staticmethod
    def recorded_outcome(trial, marker: Path) -> float:
        """A trial whose run an earlier attempt recorded (recorded.json): its attributes and its
        outcome again, without training."""
        import optuna

        done = json.loads(marker.read_text())
        for k, v in done["attrs"].items():
            trial.set_user_attr(k, v)
        if done["state"] == "pruned":
            raise optuna.TrialPruned(f"pruned at epoch {done['attrs']['epochs']}")
        return float(done["value"])

    def announce(self, trial, cfg, origin: int | None, start: int) -> None:
        from rich.markup import escape

        note = f" (continues trial {origin} from epoch {start})" if origin is not None else ""
        self.tracker.print(f"trial {trial.number} [bold]{escape(cfg.name)}[/bold] on {escape(self.worker)}{note}: "
                           f"{escape(summarize(cfg))}")

    @staticmethod
    def replay_checkpoint(trial, state: dict) -> int:
        """Report the checkpoint's history to the new attempt (its pruner history is the checkpoint's);
        returns the epochs already done."""
        for h in state["history"]:
            if h.get("stop_accuracy") is not None:
                trial.report(h["stop_accuracy"], h["epoch"])
        return state["epochs_done"]

    def train(self, trial, cfg, state_dir: Path, state: dict) -> float:
        """Fit the trial from its checkpoint to cfg.epochs (or its deadline, early stop, the pruner), then record it."""
        import optuna

        start = state["epochs_done"]
        task = self.tracker.add(f"t{trial.number} {cfg.name}", total=cfg.epochs)
        self.tracker.advance(task, start, "")

        def report(entry, st):
            self.epoch_costs.append(entry["seconds"])
            epoch_reporter(self.tracker, task)(entry, st)
            if self.on_epoch is not None:
                self.on_epoch(cfg.name, entry)

        callbacks = [] if self.space.pruner == "none" else [_pruning_callback(trial, cfg.epochs)]
        until = self.trial_until(trial)
        horizon = float(cfg.epochs) if until is None else budget_horizon(until, cfg.epochs, self.epoch_cost())
        x_fit, y_fit, x_stop, y_stop = self.data
        try:
            if start < cfg.epochs and state["stopped"] != "early":
                fit_trial(x_fit, y_fit, x_stop, y_stop, cfg, state_dir, seed=self.seed, target_epochs=cfg.epochs,
                          horizon=horizon, deadline=until,
                          on_epoch=report, callbacks=callbacks)
        except optuna.TrialPruned:
            release_memory()
            return self.record(trial, cfg, state_dir, "pruned")
        except BaseException:
            release_memory()
            raise
        return self.record(trial, cfg, state_dir, "complete")

    def record(self, trial, cfg, state_dir: Path, outcome: str) -> float:
        """The trial's run in the registry (holdout-val scored by record_run), then its study attributes."""
        import optuna


        state = read_state(state_dir)
        value = _stop_value(state)
        if value is None:
            raise FerkaggleError(f"trial {trial.number}: no epoch with a stop-split accuracy to record")
        summary = summarize(cfg) + (f", pruned at epoch {state['epochs_done']}" if outcome == "pruned" else "")
        run = record_run(self.prepared, cfg, state_dir, seed=self.seed, root=self.root, extra={
            "summary": summary,
            "search": {"study": self.study.study_name, "trial": trial.number, "state": outcome,
                       "worker": self.worker, "stop_accuracy": value, "key": state_dir.name}})
        run = read_run(run.dir)
        attrs = {"run_id": run.run_id, "val_accuracy": run.metrics["val_accuracy"], "epochs": state["epochs_done"],
                 "seconds": state["train_seconds"], "stopped": state["stopped"],
                 "epoch_s": round(max(h["seconds"] for h in state["history"]), 2)}
        if self.artifacts is not None:
            from optuna.artifacts import upload_artifact

            with tempfile.TemporaryDirectory() as tmp:
                attrs["artifact_id"] = upload_artifact(artifact_store=self.artifacts, study_or_trial=trial,
                                                       file_path=str(archive_run(run, Path(tmp))))
        atomic_write_json(state_dir / "recorded.json", {"state": outcome, "value": value, "attrs": attrs})
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        if outcome == "pruned":
            raise optuna.TrialPruned(f"pruned at epoch {state['epochs_done']}")
        return value
