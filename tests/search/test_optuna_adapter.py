"""The Optuna internals behind ferkaggle/search/optuna_adapter.py, on real Optuna studies.

Each test checks what the search relies on, against values set up here by hand, so that an
Optuna upgrade that renames or changes one of those internals fails here with a message
naming it (rather than deep inside a search). The last test keeps every other module off
Optuna internals."""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from optuna.distributions import FloatDistribution  # noqa: E402
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from ferkaggle.search.optuna_adapter import (  # noqa: E402
    claim_waiting_trial,
    frozen_trial,
    heartbeat_interval,
    trial_heartbeat,
    trial_id,
)

PACKAGE = Path(__file__).resolve().parents[2] / "ferkaggle"


def rdb(tmp_path, name="study", **heartbeat) -> RDBStorage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heartbeat_interval is experimental
        return RDBStorage(f"sqlite:///{tmp_path / name}.db", **heartbeat)


def ask(study):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "heartbeat is meant for Study.optimize"
        return study.ask()


def states(study) -> list[str]:
    return [t.state.name for t in study.get_trials(deepcopy=False)]


def test_trial_id_is_the_storage_id_not_the_number(tmp_path):
    storage = rdb(tmp_path)
    first = optuna.create_study(storage=storage, study_name="first")
    for _ in range(2):
        first.tell(ask(first), 0.0)
    second = optuna.create_study(storage=storage, study_name="second")
    trial = ask(second)  # number 0 of its study, the third trial of the storage
    trial.set_user_attr("tag", "second-0")
    frozen = storage.get_trial(trial_id(trial))  # the public storage API, asked by that id
    assert (frozen.number, frozen.user_attrs.get("tag")) == (0, "second-0"), (
        "optuna.Trial._trial_id no longer names the trial in its storage (the heartbeat and the "
        "frozen trial are looked up by it)")


def test_heartbeat_interval_is_the_storage_setting(tmp_path):
    with_beat = optuna.create_study(storage=rdb(tmp_path, heartbeat_interval=7))
    assert heartbeat_interval(with_beat) == 7, (
        "Study._storage.get_heartbeat_interval() no longer gives the RDBStorage's heartbeat_interval")
    assert heartbeat_interval(optuna.create_study(storage=rdb(tmp_path, "plain"))) is None, (
        "Study._storage.get_heartbeat_interval() is no longer None for a storage without heartbeats")


def test_frozen_trial_has_the_system_attrs_the_worker_reads(tmp_path):
    study = optuna.create_study(storage=rdb(tmp_path), study_name="s")
    study.enqueue_trial({"x": 0.25}, user_attrs={"named": "w8"})
    named = ask(study)
    frozen = frozen_trial(study, named)
    assert frozen.number == named.number == 0
    assert frozen.system_attrs.get("fixed_params") == {"x": 0.25}, (
        "an enqueued trial's parameters are no longer in the system attribute 'fixed_params' of "
        "Study._storage.get_trial(Trial._trial_id) (the worker re-suggests them from there)")
    study.tell(named, state=TrialState.FAIL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental
        RetryHeartbeatStaleTrialCallback()(study, frozen_trial(study, named))
    retry = ask(study)  # the queue's head: the retry
    assert frozen_trial(study, retry).system_attrs.get("failed_trial") == 0, (
        "RetryHeartbeatStaleTrialCallback's retry no longer carries the system attribute 'failed_trial' "
        "(the worker names and resumes a retry by it)")


def test_claim_waiting_trial_takes_only_an_accepted_trial_once(tmp_path):
    storage = rdb(tmp_path)
    study = optuna.create_study(storage=storage, study_name="s")
    dist = {"x": FloatDistribution(0.0, 1.0)}
    study.add_trial(optuna.create_trial(state=TrialState.WAITING, params={"x": 0.2}, distributions=dist))  # 0
    study.add_trial(optuna.create_trial(state=TrialState.FAIL, params={"x": 0.7}, distributions=dist))     # 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        RetryHeartbeatStaleTrialCallback()(study, study.trials[1])                                          # 2
    cached = study._get_trials(deepcopy=False, use_cache=True)  # what the samplers read, now cached
    assert [t.state.name for t in cached] == ["WAITING", "FAIL", "WAITING"]

    def is_retry(t):
        return "failed_trial" in t.system_attrs

    claimed = claim_waiting_trial(study, is_retry)
    assert isinstance(claimed, optuna.Trial) and claimed.number == 2, (
        "claiming through Study._storage.get_all_trials(Study._study_id) and set_trial_state_values"
        "(FrozenTrial._trial_id) no longer gives the waiting retry as an optuna.Trial")
    assert states(study) == ["WAITING", "FAIL", "RUNNING"]  # only the accepted one, now this worker's
    assert [t.state.name for t in study._get_trials(deepcopy=False, use_cache=True)][2] == "RUNNING", (
        "resetting Study._thread_local.cached_all_trials no longer refreshes the trials the samplers see")
    other_worker = optuna.load_study(study_name="s", storage=storage)
    assert claim_waiting_trial(other_worker, is_retry) is None  # claimed once: nobody takes it again
    assert claimed.suggest_float("x", 0.0, 1.0) == 0.7  # the retry carries the failed trial's parameters
    study.tell(claimed, 1.0)
    assert states(study) == ["WAITING", "FAIL", "COMPLETE"]


def test_trial_heartbeat_keeps_a_trial_alive_and_stops_with_the_context(tmp_path):
    study = optuna.create_study(storage=rdb(tmp_path, heartbeat_interval=1, grace_period=2))
    trial = ask(study)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fail_stale_trials is experimental
        with trial_heartbeat(study, trial):
            time.sleep(3.0)  # longer than the grace period: only the heartbeats keep it fresh
            optuna.storages.fail_stale_trials(study)
            assert states(study) == ["RUNNING"], (
                "the thread of optuna.storages._heartbeat.get_heartbeat_thread(Trial._trial_id, Study._storage) "
                "did not keep the trial's heartbeat fresh")
        time.sleep(3.0)  # the context closed: no more heartbeats, so the trial goes stale
        optuna.storages.fail_stale_trials(study)
    assert states(study) == ["FAIL"], (
        "after optuna.storages._heartbeat.get_heartbeat_thread's context closed the trial never went "
        "stale: it recorded no heartbeat, or kept recording one")
    plain = optuna.create_study()  # in memory: no heartbeats, the context does nothing
    with trial_heartbeat(plain, ask(plain)):
        pass


def test_no_module_but_the_adapter_touches_an_optuna_internal():
    private = re.compile(r"optuna[\w.]*\._|\._(storage|study_id|trial_id|thread_local|trial|cached_\w+)\b"
                         r"|\b_get_trials\b")
    found = [f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}"
             for path in sorted(PACKAGE.rglob("*.py")) if path.name != "optuna_adapter.py"
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if private.search(line.split("#")[0])]
    assert not found, "Optuna internals outside ferkaggle/search/optuna_adapter.py:\n" + "\n".join(found)
