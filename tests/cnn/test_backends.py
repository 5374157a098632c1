"""The CNN stage on each Keras backend, one process per backend (a process has one): `train` shows
and run.json records the backend, the same seed gives the same run on it, and a run saved on one
backend predicts the same probabilities on another (model.keras travels)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ferkaggle.runs.registry import list_runs
from helpers.ci import in_ci
from helpers.fakes import make_tiny_prepared

# Subprocesses on each backend (~80 s): CI runs them in its slow step (.ci/run).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("tensorflow", "jax", "torch")
# CI installs every backend (.ci/run), so there a missing one fails instead of skipping
SKIPPED = {b for b in NAMES if importlib.util.find_spec(b) is None and not in_ci()}
BACKENDS = [pytest.param(b, marks=pytest.mark.skipif(b in SKIPPED, reason=f"{b} not installed")) for b in NAMES]


def _run(backend: str, cwd: Path, *args: str, returncode: int = 0) -> str:
    """`python <args>` with KERAS_BACKEND=backend in cwd, this checkout first on the path; its stdout
    and stderr (where the CLI writes its one-line errors)."""
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
           "TF_CPP_MIN_LOG_LEVEL": "3", "COLUMNS": "200"}
    env.pop("FERKAGGLE_RUNS_DIR", None)
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == returncode, done.stdout + done.stderr
    return done.stdout + done.stderr


PREDICT = """
import json, sys
import numpy as np
from ferkaggle.data.prepared import load_prepared
from ferkaggle.photos.predictor import Predictor
from ferkaggle.runs.registry import list_runs
p = load_prepared("data/prepared/tiny")
run = [r for r in list_runs() if r.run_id == sys.argv[1]][0]
np.save(sys.argv[2], Predictor.from_run(run).predict(p.x_val))
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """For each backend: a folder where `train --config tiny --seed 3` ran twice on it, and its stdout."""
    out = {}
    for backend in NAMES:
        if backend in SKIPPED:
            continue
        cwd = tmp_path_factory.mktemp(backend)
        make_tiny_prepared(cwd / "data" / "prepared", n=150, n_test=10)
        args = ("-m", "ferkaggle", "train", "--config", "tiny", "--seed", "3", "--data", "data/prepared/tiny")
        out[backend] = (cwd, _run(backend, cwd, *args) + _run(backend, cwd, *args))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_shows_and_records_its_backend_and_repeats_itself(trained, backend, monkeypatch):
    cwd, stdout = trained[backend]
    assert stdout.count(f"· {backend} ") == 2, stdout  # the start line names the backend
    monkeypatch.chdir(cwd)
    runs = list_runs()
    assert len(runs) == 2
    for run in runs:
        runtime = json.loads((run.dir / "run.json").read_text())["runtime"]
        assert runtime["backend"] == backend and runtime["backend_version"]
    first, again = (r.proba("val") for r in runs)
    np.testing.assert_array_equal(first, again)  # same seed, same backend, on the CPU: the same run


@pytest.mark.parametrize("saved, loaded", [(a, b) for a in NAMES for b in NAMES if a != b])
def test_a_run_saved_on_one_backend_predicts_the_same_on_another(trained, saved, loaded, monkeypatch):
    for backend in {saved, loaded} & SKIPPED:
        pytest.skip(f"{backend} not installed")
    cwd, _ = trained[saved]
    monkeypatch.chdir(cwd)
    run = list_runs()[0]
    _run(loaded, cwd, "-c", PREDICT, run.run_id, str(cwd / f"on-{loaded}.npy"))
    got = np.load(cwd / f"on-{loaded}.npy")
    assert got.shape == run.proba("val").shape
    np.testing.assert_allclose(got, run.proba("val"), atol=1e-5)  # the run's own val probabilities, from `saved`


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_tflite_export_is_refused_in_one_line_off_tensorflow(trained, backend, monkeypatch):
    if backend in SKIPPED:
        pytest.skip(f"{backend} not installed")
    cwd, _ = trained[backend]
    monkeypatch.chdir(cwd)
    run = list_runs()[0]
    out = _run(backend, cwd, "-m", "ferkaggle", "export", "-r", run.run_id, "--format", "tflite", "--out", "fer.tflite",
               returncode=1)
    assert "TFLite export needs the tensorflow backend" in out and "Traceback" not in out, out
    assert not (cwd / "fer.tflite").exists()
    _run(backend, cwd, "-m", "ferkaggle", "export", "-r", run.run_id, "--format", "keras", "--out", "fer.keras")
    assert (cwd / "fer.keras").stat().st_size > 0  # the .keras export works on any backend
