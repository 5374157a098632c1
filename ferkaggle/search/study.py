"""Optuna storage and studies for `ferkaggle search`: the embedded SQLite file by default,
any SQLAlchemy URL (PostgreSQL for many workers) on request.

`open_storage` handles what many workers hit in production: simultaneous creation of the
schema, idle connections dropped by the server (pool_pre_ping), the server's connection
limit (wait for a slot), dead workers (heartbeats; stale trials failed and retried).
`open_study` creates or joins the study of a space on one prepared split, refusing another
space or other data for an existing study; the creator enqueues the space's named trials.
The worker that runs the trials is in search/worker.py.
"""

import datetime as dt
import gc
import os
import random
import re
import socket
import time
import warnings
from pathlib import Path
from typing import Any

from ferkaggle.core.constants import DEFAULT_SEED
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.presets import read_toml, to_dict
from ferkaggle.data.prepared import Prepared
from ferkaggle.runs.studies import embedded_study_url
from ferkaggle.search.spaces import (
    CheckedSpace,
    SpaceConfig,
    check_space,
    fits,
    get_dotted,
    load_space,
    space_from_dict,
    values_fingerprint,
)

STUDY_NAME_RE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"


def worker_id() -> str:
    """host:pid, shown for every trial a worker runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def safe_url(url: str) -> str:
    try:
        import sqlalchemy

        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for messages
        return "<storage>"


def open_storage(url: str | None = None, *, root: str | Path | None = None, heartbeat_s: int = 60,
                 connect_timeout_s: float = 10.0):
    """An Optuna RDBStorage with heartbeats and stale-trial retries.

    None = the embedded SQLite file under runs/searches/. Handles what many workers hit:
    simultaneous table creation (retried), idle connections dropped by the server
    (`pool_pre_ping`), a server at its connection limit (small pool per worker; connecting
    is retried with backoff for up to a minute), an unreachable server (one clear error).
    """
    import sqlalchemy
    import sqlalchemy.exc as sa_exc

    url = url or embedded_study_url(root)
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sa_exc.ArgumentError:
        raise FerkaggleError(f"--storage {url!r} is not a database URL (e.g. postgresql://user@host:5432/db "
                             "or sqlite:///path/study.db)") from None
    engine_kwargs = engine_options(parsed.get_backend_name(), connect_timeout_s)
    if heartbeat_s < 1:
        raise FerkaggleError("--heartbeat must be at least 1 second")
    return connect_with_retries(url, engine_kwargs, heartbeat_s)


def engine_options(backend: str, connect_timeout_s: float) -> dict[str, Any]:
    """SQLAlchemy engine arguments for a worker's storage on `backend` (sqlite, postgresql, ...)."""
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "sqlite":
        # Several local workers may share the file: wait for its lock instead of failing.
        engine_kwargs["connect_args"] = {"timeout": 120}
    else:
        # Two connections per worker at most (the main thread + the heartbeat thread), recycled
        # before typical server idle timeouts; waits for a free slot rather than failing.
        engine_kwargs.update(pool_size=2, max_overflow=1, pool_recycle=300, pool_timeout=120)
        if backend == "postgresql":
            # application_name: pg_stat_activity shows which worker holds which connection.
            engine_kwargs["connect_args"] = {"connect_timeout": int(connect_timeout_s),
                                             "application_name": f"ferkaggle-search:{os.getpid()}"}
    return engine_kwargs


def connect_with_retries(url: str, engine_kwargs: dict[str, Any], heartbeat_s: int):
    """The RDBStorage, retrying what passes (a table-creation race, a server out of connection
    slots) with backoff for up to a minute; anything else is one FerkaggleError."""
    import optuna
    import sqlalchemy.exc as sa_exc
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    deadline, pause, attempt = time.time() + 60.0, 0.5, 0
    while True:
        attempt += 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeat_interval is marked experimental
                return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=int(heartbeat_s),
                                  grace_period=int(2 * heartbeat_s + 1),
                                  heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3))
        except (ImportError, sa_exc.NoSuchModuleError) as exc:
            raise FerkaggleError(f"--storage {safe_url(url)}: no database driver for it ({exc})") from None
        except (sa_exc.IntegrityError, sa_exc.ProgrammingError, sa_exc.InternalError) as exc:
            # Two workers creating Optuna's tables at the same moment (PostgreSQL pg_type race).
            if attempt >= 8:
                raise FerkaggleError(f"--storage {safe_url(url)}: cannot create the study tables: "
                                     f"{str(exc).splitlines()[0]}") from None
        except (optuna.exceptions.StorageInternalError, sa_exc.OperationalError) as exc:
            # Optuna wraps errors raised inside its sessions; look at what the server said.
            cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) and exc.__cause__ else exc
            message = str(cause).splitlines()[0]
            if not isinstance(cause, sa_exc.OperationalError):
                raise FerkaggleError(f"--storage {safe_url(url)}: {message}") from None
            busy = "too many" in message.lower() or "remaining connection slots" in message.lower()
            if not busy and attempt >= 3 or time.time() > deadline:
                raise FerkaggleError(f"cannot reach the study storage {safe_url(url)}: {message}") from None
        # A failed attempt may hold a pooled connection in its engine (kept alive by the traceback's
        # reference cycles): collect it now, or it keeps taking the very slot we are waiting for.
        gc.collect()
        time.sleep(pause * (1 + random.random()))
        pause = min(pause * 2, 8.0)


def sampler_for(space: SpaceConfig, seed: int | None):
    import optuna

    if space.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # constant_liar: running trials count as bad, so parallel workers do not propose the same point.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def pruner_for(space: SpaceConfig):
    import optuna

    if space.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=space.min_epochs, max_resource=space.max_epochs,
                                              reduction_factor=space.eta)
    if space.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=space.min_epochs, reduction_factor=space.eta)


def _study_space(study) -> tuple[SpaceConfig, dict[str, Any]]:
    attrs = study.user_attrs
    return space_from_dict(attrs["space"], f"study {study.study_name}"), attrs


def find_study(storage, prepared: Prepared) -> str | None:
    """The newest study in the storage made on this prepared split (for --resume without --space)."""
    import optuna

    # Study ids grow with creation: the newest study has the largest.
    made_here = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
                 if s.user_attrs.get("split_fingerprint") == prepared.split_fingerprint]
    return max(made_here, key=storage.get_study_id_from_name, default=None)


def open_study(storage, prepared: Prepared, space_ref: str | Path | None, study_name: str | None, *,
               seed: int = DEFAULT_SEED, resume: bool = False):
    """Create the study (enqueueing the named trials) or join it; returns (study, its checked space, created).

    The space is --space's when this worker creates the study, else the one stored in the study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = raw = path = space_fp = checked = None
    if space_ref is not None:
        space, path = load_space(space_ref)
        raw = read_toml(path)
        checked = check_space(space, str(path))
        space_fp = values_fingerprint(to_dict(space))
    study_name = choose_study_name(storage, prepared, space, space_fp, study_name, resume)
    if checked is not None:
        try:
            # The creator seeds the sampler with --seed; joiners mix in their pid (different proposals).
            study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize",
                                        sampler=sampler_for(space, seed), pruner=pruner_for(space))
        except optuna.exceptions.DuplicatedStudyError:
            pass
        else:
            set_up_study(study, checked, raw, path, space_fp, prepared, seed)
            return study, checked, True
    study, stored = join_study(storage, study_name, prepared, space_fp, seed)
    return study, check_space(stored, f"study {study_name}"), False


def choose_study_name(storage, prepared: Prepared, space: SpaceConfig | None, space_fp: str | None,
                      study_name: str | None, resume: bool) -> str:
    """--study if given; else, with a space, its own name (space name, split and space fingerprints);
    else, with --resume, the newest study of this prepared split. Checked against STUDY_NAME_RE."""
    if study_name is None:
        if space is None:
            study_name = find_study(storage, prepared) if resume else None
            if study_name is None:
                raise FerkaggleError("no search to resume in this study storage for the current prepared data; "
                                     "give --space (and --study)" if resume else "give a search space (--space NAME|PATH)")
        else:
            # The space's fingerprint is in the name: a changed space (an upgrade's default.toml, an edited
            # file) starts a study of its own instead of failing against the old one; --study names one.
            study_name = f"{space.name}-{prepared.split_fingerprint[:8]}-{space_fp[:6]}"
    if not re.fullmatch(STUDY_NAME_RE, study_name):
        raise FerkaggleError(f"--study {study_name!r}: use letters, digits, '.', '_' and '-' (up to 100)")
    return study_name


def set_up_study(study, checked: CheckedSpace, raw: dict[str, Any], path: Path, space_fp: str, prepared: Prepared,
                 seed: int) -> None:
    """The new study's attributes (its space, data and seed) and its named trials in the queue, then
    `ready`, which joiners wait for."""
    study.set_user_attr("space", raw)
    study.set_user_attr("space_path", str(path))
    study.set_user_attr("space_fingerprint", space_fp)
    study.set_user_attr("split_fingerprint", prepared.split_fingerprint)
    study.set_user_attr("prepared", str(prepared.path))
    study.set_user_attr("seed", seed)
    study.set_user_attr("created", dt.datetime.now().astimezone().isoformat(timespec="seconds"))
    for name, cfg in checked.named:
        fixed = {k: get_dotted(cfg, k) for k, d in checked.dists.items() if fits(d, get_dotted(cfg, k))}
        study.enqueue_trial(fixed, user_attrs={"named": name})
    study.set_user_attr("ready", True)  # joiners wait for this: the named trials are queued


def join_study(storage, study_name: str, prepared: Prepared, space_fp: str | None, seed: int):
    """An existing study, once its creator has set it up, with a sampler seeded for this worker;
    refuses another space (`space_fp` None: any) or other prepared data. Returns (study, its space)."""
    import optuna

    try:
        probe = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise FerkaggleError(f"no study named {study_name!r} in {safe_url(storage.url)}; give --space to create it") from None
    for _ in range(600):  # the creator may still be writing its attributes
        if probe.user_attrs.get("ready"):
            break
        time.sleep(0.1)
        probe = optuna.load_study(study_name=study_name, storage=storage)
    else:
        raise FerkaggleError(f"study {study_name!r} exists but was never set up by ferkaggle")
    stored, attrs = _study_space(probe)
    if space_fp is not None and space_fp != attrs["space_fingerprint"]:
        raise FerkaggleError(f"study {study_name!r} searches another space ({attrs.get('space_path')}); "
                             "give the same --space, or another --study")
    if attrs["split_fingerprint"] != prepared.split_fingerprint:
        raise FerkaggleError(f"study {study_name!r} runs on other prepared data ({attrs.get('prepared')}, split "
                             f"{attrs['split_fingerprint'][:8]}); pass the same --data")
    joiner_seed = (int(attrs.get("seed", seed)) * 1_000_003 + os.getpid() + len(probe.trials)) % 2**31
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler_for(stored, joiner_seed),
                              pruner=pruner_for(stored))
    return study, stored
