"""The `ferkaggle search` stage: one worker's search of a study, its summary and its table.

`run_search` opens the study storage and the study (search/study.py), runs one `Worker`
(search/worker.py) within the budget, and writes `runs/searches/<study>/search.json`, the
study as this worker last saw it (`study_summary`), however the worker ends: completed,
interrupted or failed. `search_table` renders that summary; `pull_runs` copies the runs
other workers uploaded to an artifact store into this registry (`ferkaggle pull`);
`default_space` picks the space when none is named.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from ferkaggle.cnn.runtime import gpu_visible
from ferkaggle.core.console import track
from ferkaggle.core.constants import DEFAULT_SEED
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.fsutil import atomic_write_json
from ferkaggle.core.presets import to_dict
from ferkaggle.data.prepared import Prepared
from ferkaggle.runs.registry import import_run_archive
from ferkaggle.runs.studies import search_dir
from ferkaggle.search.spaces import SpaceConfig, rungs
from ferkaggle.search.study import open_storage, open_study, safe_url, worker_id
from ferkaggle.search.worker import Worker


def default_space(demo: bool, gpu: bool | None = None) -> tuple[str, str]:
    """The space `ferkaggle search` takes when none is named, and why: `quick` on the demo data (the
    real-data spaces would spend minutes per epoch on it), `gpu` on competition data when TensorFlow
    sees a GPU (`gpu` None: ask it), else `default`, the space measured on 2-core CPUs."""
    if demo:
        return "quick", "demo data"
    if gpu is None:
        gpu = gpu_visible()
    return ("gpu", "competition data, TensorFlow sees a GPU") if gpu else ("default", "competition data, no GPU")


def run_search(prepared: Prepared, space_ref: str | Path | None = None, *, budget_s: float | None = None,
               seed: int = DEFAULT_SEED, resume: bool = False, root: str | Path | None = None,
               storage: str | None = None, study_name: str | None = None, n_trials: int | None = None,
               heartbeat_s: int = 60, artifacts: str | None = None, tracker=None,
               on_epoch: Callable[[str, dict], None] | None = None) -> dict[str, Any]:
    """The `ferkaggle search` stage (one worker); returns the study summary (also search.json)."""
    if tracker is None:
        with track() as t:
            return run_search(prepared, space_ref, budget_s=budget_s, seed=seed, resume=resume, root=root,
                              storage=storage, study_name=study_name, n_trials=n_trials, heartbeat_s=heartbeat_s,
                              artifacts=artifacts, tracker=t, on_epoch=on_epoch)
    if len(prepared.val_idx) == 0:
        raise FerkaggleError(f"{prepared.path}: no holdout-val rows; the search records holdout scores for the leaderboard")
    store = open_storage(storage, root=root, heartbeat_s=heartbeat_s)
    study, checked, created = open_study(store, prepared, space_ref, study_name, seed=seed, resume=resume)
    space = checked.space
    tracker.print(f"study {study.study_name} ({'created' if created else 'joined'}) in {safe_url(store.url)} "
                  f"· worker {worker_id()} · sampler {space.sampler}, pruner {space.pruner}, rungs {rungs(space)}")
    worker = Worker(study, checked, prepared, budget_s=budget_s, n_trials=n_trials, root=root, artifacts=artifacts,
                    tracker=tracker, on_epoch=on_epoch)
    return run_worker(worker, budget_s=budget_s, root=root)


def run_worker(worker: Worker, *, budget_s: float | None, root: str | Path | None) -> dict[str, Any]:
    """The worker's loop; search.json is written however it ends (completed, interrupted, failed)."""
    status = "completed"
    try:
        worker.loop()
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except BaseException:
        status = "failed"
        raise
    finally:
        doc = study_summary(worker.study, worker.space, budget_s=budget_s, spent_s=time.time() - worker.t_start,
                            status=status, worker=worker.worker, ran=worker.ran, total=worker.total,
                            plan=worker.plan)
        folder = search_dir(worker.study.study_name, root)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "search.json", doc)
    return doc


def study_summary(study, space: SpaceConfig, *, budget_s=None, spent_s=0.0, status="completed", worker="",
                  ran=(), total=None, plan=()) -> dict[str, Any]:
    """Every trial of the study (all workers) in the shape of search.json; the winner is the best
    finished trial by its objective, the stop-split accuracy (never the holdout). `plan`: this
    worker's plan of the named trials at the measured pace (search/plan.py), if it made one."""
    from optuna.trial import TrialState

    states = {TrialState.COMPLETE: "done", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
              TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}
    trials = []
    for t in study.get_trials(deepcopy=False):
        state = states[t.state]
        if state == "failed" and t.user_attrs.get("interrupted"):
            state = "interrupted"
        trials.append({
            "number": t.number, "name": t.user_attrs.get("name", t.user_attrs.get("named", f"t{t.number}")),
            "status": state, "worker": t.user_attrs.get("worker"), "retry_of": t.system_attrs.get("failed_trial"),
            "run_id": t.user_attrs.get("run_id"), "val_accuracy": t.user_attrs.get("val_accuracy"),
            "stop_accuracy": t.value if t.state == TrialState.COMPLETE else (
                max(t.intermediate_values.values()) if t.intermediate_values else None),
            "epochs": t.user_attrs.get("epochs", max(t.intermediate_values, default=0)),
            "seconds": t.user_attrs.get("seconds", 0.0), "stopped": t.user_attrs.get("stopped"),
            "summary": t.user_attrs.get("summary", ""), "params": dict(t.params),
        })
    done = [t for t in trials if t["status"] == "done" and t["run_id"]]
    best = max(done, key=lambda t: (t["stop_accuracy"], -t["number"]), default=None)
    return {
        "search_id": study.study_name, "study": study.study_name, "status": status, "worker": worker,
        "ran_here": list(ran), "plan": [dataclasses.asdict(row) | {"kept": row.kept} for row in plan],
        "budget_s": budget_s, "spent_s": round(spent_s, 1), "n_trials": total,
        "space": {"name": space.name, **to_dict(space)}, "rungs": rungs(space),
        "data": {"prepared": study.user_attrs.get("prepared"), "split_fingerprint": study.user_attrs.get("split_fingerprint")},
        "trials": trials,
        "winner": None if best is None else {k: best[k] for k in ("name", "number", "run_id", "val_accuracy",
                                                                    "stop_accuracy", "summary")},
        "ended": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def pull_runs(storage: str | None, study_name: str, artifacts: str, *, root: str | Path | None = None) -> dict[str, int]:
    """Copy every recorded trial's run of a study from the artifact store into this registry."""
    import optuna
    from optuna.artifacts import FileSystemArtifactStore, download_artifact


    if not Path(artifacts).is_dir():
        raise FerkaggleError(f"--artifacts {artifacts}: no such folder")
    store = open_storage(storage, root=root)
    try:
        study = optuna.load_study(study_name=study_name, storage=store)
    except KeyError:
        raise FerkaggleError(f"no study named {study_name!r} in {safe_url(store.url)}") from None
    artifact_store = FileSystemArtifactStore(artifacts)
    counts = {"pulled": 0, "present": 0, "missing": 0}
    for t in study.get_trials(deepcopy=False):
        run_id, artifact_id = t.user_attrs.get("run_id"), t.user_attrs.get("artifact_id")
        if not run_id:
            continue
        if not artifact_id:
            counts["missing"] += 1
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "run.zip"
            download_artifact(artifact_store=artifact_store, file_path=str(path), artifact_id=artifact_id)
            counts["pulled" if import_run_archive(path, run_id, root) is not None else "present"] += 1
    return counts


def search_table(doc: dict[str, Any]):
    """A rich table of the study's trials, best first (by the stop-split objective)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"study {doc['search_id']} · this worker spent {doc['spent_s']:.0f}s"
                        + (f" of {doc['budget_s']:.0f}s" if doc.get("budget_s") else ""))
    for col in ("#", "trial", "state", "worker", "stop acc", "holdout acc", "epochs", "seconds", "config"):
        table.add_column(col, justify="right" if col in ("#", "stop acc", "holdout acc", "epochs", "seconds") else "left")
    winner = (doc.get("winner") or {}).get("number")
    order = sorted(doc["trials"], key=lambda t: (-(t.get("stop_accuracy") or 0.0), t["number"]))
    fmt = lambda v: "–" if v is None else f"{v:.4f}"  # noqa: E731
    for t in order:
        mark = "★ " if t["number"] == winner else ""
        state = t["status"] + (f" (retry of {t['retry_of']})" if t.get("retry_of") is not None else "")
        table.add_row(str(t["number"]), mark + escape(t["name"]), state, escape(t.get("worker") or "–"),
                      fmt(t.get("stop_accuracy")), fmt(t.get("val_accuracy")), str(t["epochs"]),
                      f"{t['seconds']:.0f}", escape(t["summary"]))
    return table
