"""Many `ferkaggle search` workers on one PostgreSQL study, as separate processes.

Needs PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`; FERKAGGLE_TEST_PG overrides
the URL). Outside CI the tests skip when it is not reachable; under CI=true they fail, so a
green CI proves the PostgreSQL path. Each test uses its own study (or database) and removes it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("optuna")

from helpers.ci import in_ci  # noqa: E402
from helpers.fakes import make_tiny_prepared  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get("FERKAGGLE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

SPACE = """
name = "pg"
base = "tiny"
min_epochs = 1
max_epochs = {max_epochs}
eta = 2
pruner = "{pruner}"
n_trials = {n_trials}

[[trials]]
name = "w8"

[[trials]]
name = "w4"
model = {{ width = 4 }}

[[trials]]
name = "mlp"
model = {{ architecture = "mlp", depth = 1, dense_units = 16 }}

[params]
"optim.learning_rate" = {{ type = "log", low = 1e-3, high = 1e-2 }}
"model.width" = {{ type = "int", low = 4, high = 8, step = 4 }}
"""


def _reachable(url: str) -> str | None:
    try:
        import psycopg

        psycopg.connect(url, connect_timeout=3).close()
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return None


@pytest.fixture(scope="module")
def pg_url():
    problem = _reachable(PG_URL)
    if problem:
        message = f"PostgreSQL at {PG_URL} is not reachable ({problem})"
        if in_ci():
            pytest.fail(message + "; CI must test the PostgreSQL path")
        pytest.skip(message)
    return PG_URL


@pytest.fixture
def study_name(pg_url):
    import optuna

    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    try:
        optuna.delete_study(study_name=name, storage=pg_url)
    except KeyError:
        pass


@pytest.fixture(scope="module")
def prepared_path(tmp_path_factory):
    return make_tiny_prepared(tmp_path_factory.mktemp("pgdata") / "prepared", n=100, n_test=20).path


def worker(args: list[str], runs: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "FERKAGGLE_RUNS_DIR": str(runs), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3",
           "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "ferkaggle", "search", *args], cwd=REPO, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)


def search_args(prepared_path, space: Path, url: str, study: str, *extra: str) -> list[str]:
    return ["--data", str(prepared_path), "--space", str(space), "--storage", url, "--study", study, *extra]


def load(url, study):
    import optuna

    return optuna.load_study(study_name=study, storage=url)


def runs_by_key(runs: Path):
    from ferkaggle.runs.registry import list_runs

    out: dict[str, list] = {}
    for run in list_runs(runs):
        out.setdefault(run.info["search"]["key"], []).append(run)
    return out


def test_workers_creating_one_study_at_once_in_a_fresh_database(pg_url, prepared_path, tmp_path):
    """Three processes create Optuna's tables and the study at the same moment: all succeed,
    exactly one creates it, and the named trials are queued once."""
    import psycopg

    db = f"ferkaggle_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db}")
    url = re.sub(r"/[^/]*$", f"/{db}", pg_url)
    space = tmp_path / "pg.toml"
    space.write_text(SPACE.format(max_epochs=2, pruner="asha", n_trials=6))
    go = time.time() + 8  # after the imports, so the three really race
    script = (
        "import sys, time; from ferkaggle.data.prepared import load_prepared; "
        "from ferkaggle.search.study import open_storage, open_study; p = load_prepared(sys.argv[1]); "
        f"time.sleep(max(0, {go} - time.time())); "
        "s, _, created = open_study(open_storage(sys.argv[2]), p, sys.argv[3], 'race'); "
        "print('CREATED' if created else 'JOINED')"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        procs = [subprocess.Popen([sys.executable, "-c", script, str(prepared_path), url, str(space)], cwd=REPO, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(3)]
        outs = [p.communicate(timeout=120)[0] for p in procs]
        assert all(p.returncode == 0 for p in procs), outs
        assert sorted(o.strip().splitlines()[-1] for o in outs) == ["CREATED", "JOINED", "JOINED"], outs
        trials = load(url, "race").get_trials()
        assert [t.user_attrs.get("named") for t in trials] == ["w8", "w4", "mlp"]  # queued once, in order
    finally:
        import optuna  # noqa: F401 - engines of this process are gone with it; drop the database
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def test_a_worker_at_the_connection_limit_waits_for_a_slot(pg_url):
    """The server refuses a connection ("too many connections"): the worker retries with backoff
    until a slot frees instead of dying."""
    import threading

    import psycopg

    from ferkaggle.search.study import open_storage

    role = f"ferk_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 3")
        admin.execute(f"GRANT ALL ON SCHEMA public TO {role}")
        admin.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        admin.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    url = re.sub(r"//[^@/]*@", f"//{role}@", pg_url)
    try:
        blockers = [psycopg.connect(url) for _ in range(3)]  # take every slot the role has
        threading.Timer(3.0, lambda: [b.close() for b in blockers]).start()
        t0 = time.time()
        storage = open_storage(url, heartbeat_s=5)
        assert time.time() - t0 >= 2.5  # it waited for the slot rather than failing at once
        storage.get_all_studies()
        storage.engine.dispose()
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
            admin.execute(f"DROP OWNED BY {role}")  # revokes its grants
            admin.execute(f"DROP ROLE {role}")


def test_connections_the_server_dropped_are_replaced_and_few_are_held(pg_url):
    """An idle pooled connection killed by the server (timeouts, restarts, proxies) is replaced by
    pool_pre_ping instead of failing the worker; a worker holds at most 3 connections."""
    import psycopg

    from ferkaggle.search.study import open_storage

    storage = open_storage(pg_url, heartbeat_s=5)
    storage.get_all_studies()
    me = f"ferkaggle-search:{os.getpid()}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        killed = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                               (me,)).fetchall()
        assert killed  # the pooled connection existed and is now dead
        time.sleep(0.5)
        storage.get_all_studies()  # would raise OperationalError without pool_pre_ping
        held = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (me,)).fetchone()[0]
    assert 1 <= held <= 3
    pool = storage.engine.pool
    assert pool.size() + pool._max_overflow <= 3
    storage.engine.dispose()


@pytest.mark.slow  # ~75 s on 2 shared cores (three TensorFlow processes); .ci/run runs it explicitly
def test_three_workers_share_one_study(pg_url, study_name, prepared_path, tmp_path):
    from optuna.trial import TrialState

    from ferkaggle.runs.leaderboard import leaderboard

    runs = tmp_path / "runs"
    space = tmp_path / "pg.toml"
    space.write_text(SPACE.format(max_epochs=2, pruner="asha", n_trials=6))
    args = search_args(prepared_path, space, pg_url, study_name, "--budget", "4m", "--heartbeat", "5")
    procs = [worker(args, runs, tmp_path / f"w{i}.log") for i in range(3)]
    for p in procs:
        p.wait(timeout=400)
    logs = [(tmp_path / f"w{i}.log").read_text() for i in range(3)]
    assert all(p.returncode == 0 for p in procs), logs
    trials = load(pg_url, study_name).get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) >= 6 and not [t for t in trials if t.state not in (TrialState.COMPLETE, TrialState.PRUNED)]
    # no trial trained twice: one run per trial, and every finished trial has its run
    by_key = runs_by_key(runs)
    assert all(len(v) == 1 for v in by_key.values()), {k: [r.run_id for r in v] for k, v in by_key.items()}
    assert sorted(by_key) == sorted(f"t{t.number:05d}" for t in finished)
    board = {row.run_id for section in leaderboard(runs) for row in section.rows}
    for t in finished:
        run = by_key[f"t{t.number:05d}"][0]
        assert run.run_id in board and run.run_id == t.user_attrs["run_id"]
        assert run.info["search"]["state"] == ("pruned" if t.state == TrialState.PRUNED else "complete")
        assert ("pruned at epoch" in run.info["summary"]) == (t.state == TrialState.PRUNED)
    # the work was shared, and each worker says which trials it ran
    pids = {str(p.pid) for p in procs}
    workers = {t.user_attrs["worker"].rsplit(":", 1)[1] for t in finished}
    assert workers <= pids and len(workers) >= 2, (workers, pids)
    for p, log in zip(procs, logs):
        ran = re.search(r"worker \S+:(\d+) ran trials: ([\d, ]+|none)", log)
        assert ran and ran.group(1) == str(p.pid), log
        mine = {t.number for t in finished if t.user_attrs["worker"].endswith(f":{p.pid}")}
        assert mine == ({int(n) for n in ran.group(2).split(",")} if ran.group(2) != "none" else set())


def test_sigkilled_worker_trial_is_failed_as_stale_and_continued_by_another(pg_url, study_name, prepared_path, tmp_path):
    from optuna.trial import TrialState

    from ferkaggle.runs.studies import trial_state_dir

    runs = tmp_path / "runs"
    space = tmp_path / "pg.toml"
    space.write_text(SPACE.format(max_epochs=8, pruner="none", n_trials=3))
    args = search_args(prepared_path, space, pg_url, study_name, "--budget", "5m", "--heartbeat", "1")
    victim = worker(args, runs, tmp_path / "victim.log")
    state = trial_state_dir(study_name, "t00000", runs) / "state.json"
    deadline = time.time() + 180
    import json

    while time.time() < deadline:
        if state.is_file() and json.loads(state.read_text())["epochs_done"] >= 2:
            break
        assert victim.poll() is None, (tmp_path / "victim.log").read_text()
        time.sleep(0.2)
    else:
        pytest.fail("the first worker never reached epoch 2")
    os.kill(victim.pid, signal.SIGKILL)  # mid-trial: no chance to clean up or say goodbye
    victim.wait()
    done_at_kill = json.loads(state.read_text())["epochs_done"]

    rescuer = worker(args, runs, tmp_path / "rescuer.log")
    rescuer.wait(timeout=400)
    log = (tmp_path / "rescuer.log").read_text()
    assert rescuer.returncode == 0, log
    trials = load(pg_url, study_name).get_trials()
    first = trials[0]
    assert first.state == TrialState.FAIL and first.user_attrs["worker"].endswith(f":{victim.pid}")
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].user_attrs["worker"].endswith(f":{rescuer.pid}")
    assert f"continues trial 0 from epoch {done_at_kill}" in log  # at most the epoch in progress was lost
    by_key = runs_by_key(runs)
    assert sorted(by_key) == ["t00000", "t00001", "t00002"] and all(len(v) == 1 for v in by_key.values())
    history = by_key["t00000"][0].metrics["history"]
    assert [e["epoch"] for e in history] == list(range(1, 9))  # one unbroken history across the two workers
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
