"""Every Optuna internal the search needs, in one place, each behind a small named function.

Our worker drives trials itself with `Study.ask`/`Study.tell` (to checkpoint, resume and
record every trial as a run) instead of `Study.optimize`, and a few things that path needs
have no public Optuna API. Each function below says which one is missing. No other module
of ferkaggle touches an underscore name of Optuna; tests/search/test_optuna_adapter.py
checks on a real study that these internals still do what we rely on, so an Optuna upgrade
that renames or changes one fails there, by name, rather than deep inside a search.

Optuna is imported inside the functions, as everywhere in the search, so that importing
the package stays cheap.
"""

from __future__ import annotations

from typing import Any, Callable, ContextManager


def _storage(study) -> Any:
    # Missing public API: a Study does not expose its storage. (optuna.create_study wraps an
    # RDBStorage in a caching layer, so the RDBStorage we opened is not the object the study
    # reads and writes through; claiming trials and reading frozen trials must go through
    # the study's own.)
    return study._storage


def trial_id(trial) -> int:
    """The storage's id of a live `optuna.Trial` (not its number)."""
    # Missing public API: Trial.number is public but the storage's methods take the trial id,
    # which only Trial._trial_id holds.
    return trial._trial_id


def heartbeat_interval(study) -> int | None:
    """Seconds between heartbeats of the study's storage (None: heartbeats are off)."""
    # Missing public API: RDBStorage.get_heartbeat_interval is public, but only on the storage,
    # which the study does not expose (see _storage).
    return _storage(study).get_heartbeat_interval()


def trial_heartbeat(study, trial) -> ContextManager[None]:
    """A context that records the trial's heartbeat every interval while it is open (nothing
    when the storage has heartbeats off), so that other workers do not fail it as stale."""
    # Missing public API: Optuna starts heartbeat threads only inside Study.optimize; a worker
    # that drives its trials with ask/tell can only use the private optuna.storages._heartbeat.
    from optuna.storages._heartbeat import get_heartbeat_thread

    return get_heartbeat_thread(trial_id(trial), _storage(study))


def frozen_trial(study, trial):
    """The storage's current FrozenTrial of a live `optuna.Trial`: its system attributes
    (`failed_trial` of a retry, `fixed_params` of an enqueued trial) and fixed params."""
    # Missing public API: Trial has no public system_attrs and no way to get its FrozenTrial;
    # the storage (see _storage) is asked by the private trial id (see trial_id).
    return _storage(study).get_trial(trial_id(trial))


def claim_waiting_trial(study, accept: Callable[[Any], bool]):
    """The first WAITING trial (oldest first) that `accept(frozen_trial)` takes, claimed for this
    worker as RUNNING and returned as an `optuna.Trial`; None if there is none to claim.

    Claiming is the storage's atomic WAITING -> RUNNING update, the one Study.ask uses, so two
    workers never take the same trial."""
    # Missing public API: Study.ask pops the queue in order and cannot be told which waiting
    # trial to take (its Study._pop_waiting_trial_id is private), so the claim is done here
    # with the private study id and trial ids; and the study's trial cache, which Study.ask
    # and Study.tell reset (Study._thread_local.cached_all_trials, read by the samplers), is
    # reset here too, or the sampler would still see the claimed trial as WAITING.
    import optuna
    from optuna.trial import TrialState

    storage = _storage(study)
    for t in storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.WAITING,)):
        if not accept(t):
            continue
        try:
            if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                study._thread_local.cached_all_trials = None
                return optuna.Trial(study, t._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None
