"""Search: picks the best trial by holdout-val accuracy, respects a budget, resumes after a real Ctrl-C."""

import json

import pytest

pytest.importorskip("tensorflow")

from conftest import make_tiny_prepared  # noqa: E402
from ferkaggle.errors import FerkaggleError  # noqa: E402
from ferkaggle.search import expand_trials, load_space, parse_budget, rungs, run_search  # noqa: E402

SPACE = """
name = "{name}"
base = "tiny"
strategy = "{strategy}"
eta = 3
min_epochs = 1
max_epochs = {max_epochs}

[[trials]]
name = "w4"
model = {{ width = 4 }}

[[trials]]
name = "w8-lr-high"
optim = {{ learning_rate = 1e-2 }}

[[trials]]
name = "mlp"
model = {{ architecture = "mlp", depth = 1, dense_units = 16 }}
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return make_tiny_prepared(tmp_path_factory.mktemp("data") / "prepared", n=200, n_test=40)


def write_space(folder, name="t3", strategy="halving", max_epochs=3):
    path = folder / f"{name}.toml"
    path.write_text(SPACE.format(name=name, strategy=strategy, max_epochs=max_epochs))
    return path


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("60m", 3600), ("2h", 7200), ("1h30m", 5400), ("45", 45)])
def test_parse_budget(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["soon", "10x", "-5m", "0s"])
def test_parse_budget_rejects_nonsense(text):
    with pytest.raises(FerkaggleError):
        parse_budget(text)


def test_spaces_expand(tmp_path):
    for name in ("quick", "default"):
        space, path = load_space(name)
        trials = expand_trials(space, str(path))
        assert len(trials) >= 3 and all(cfg.epochs == space.max_epochs for _, cfg in trials)
    assert rungs(load_space("default")[0]) == [3, 9, 27, 60]
    grid = tmp_path / "g.toml"
    grid.write_text('base = "tiny"\nsampler = "random"\nsamples = 2\n[grid]\n"optim.learning_rate" = [1e-3, 3e-3, 1e-2]\n"model.width" = [4, 8]\n')
    space, path = load_space(grid)
    trials = expand_trials(space, str(path), seed=1)
    assert len(trials) == 2 and {c.optim.learning_rate for _, c in trials} <= {1e-3, 3e-3, 1e-2}
    bad = tmp_path / "bad.toml"
    bad.write_text('base = "tiny"\n[[trials]]\nname = "x"\nmodel = { depht = 2 }\n')
    with pytest.raises(FerkaggleError, match="depht"):
        expand_trials(*load_space(bad)[:1], str(bad))


def test_search_picks_the_best_by_val_accuracy(prepared, tmp_path):
    doc = run_search(prepared, write_space(tmp_path), budget_s=600, root=tmp_path / "runs")
    assert doc["status"] == "completed"
    done = [t for t in doc["trials"] if t["status"] == "done"]
    assert len(done) == 3  # every trial ends up as a run
    best = max(done, key=lambda t: t["val_accuracy"])
    assert doc["winner"]["name"] == best["name"] and doc["winner"]["val_accuracy"] == best["val_accuracy"]
    on_disk = json.loads((tmp_path / "runs" / "searches" / doc["search_id"] / "search.json").read_text())
    assert on_disk["winner"] == doc["winner"] and all("seconds" in t and "epochs" in t for t in on_disk["trials"])
    # successive halving: one survivor trained to max_epochs, the others stopped at rung 1
    assert sorted(t["epochs"] for t in done) == [1, 1, 3]
    from ferkaggle.runs import list_runs

    assert {r.run_id for r in list_runs(tmp_path / "runs")} == {t["run_id"] for t in done}


def test_interrupted_search_resumes_without_retraining(prepared, tmp_path):
    root = tmp_path / "runs"
    space = write_space(tmp_path, name="full3", strategy="full", max_epochs=2)
    epochs_seen = []

    def ctrl_c_in_second_trial(name, entry):
        epochs_seen.append((name, entry["epoch"]))
        if name == "w8-lr-high" and entry["epoch"] == 1:
            raise KeyboardInterrupt  # a real interrupt, raised inside model.fit

    with pytest.raises(KeyboardInterrupt):
        run_search(prepared, space, budget_s=600, root=root, on_epoch=ctrl_c_in_second_trial)
    doc = json.loads(next((root / "searches").iterdir()).joinpath("search.json").read_text())
    assert doc["status"] == "interrupted"
    first = doc["trials"][0]
    assert first["status"] == "done" and first["run_id"]
    assert doc["trials"][1]["epochs"] == 1  # the finished epoch of the interrupted trial is kept

    resumed = []
    doc = run_search(prepared, None, resume=True, root=root, on_epoch=lambda n, e: resumed.append((n, e["epoch"])))
    assert doc["status"] == "completed" and doc["search_id"] == doc["search_id"]
    assert resumed == [("w8-lr-high", 2), ("mlp", 1), ("mlp", 2)]  # nothing retrained
    assert doc["trials"][0]["run_id"] == first["run_id"]
    assert all(t["status"] == "done" and t["epochs"] == 2 for t in doc["trials"])
    with pytest.raises(FerkaggleError, match="no unfinished search"):
        run_search(prepared, None, resume=True, root=root)


def test_budget_stops_trials_cleanly(prepared, tmp_path):
    doc = run_search(prepared, write_space(tmp_path, max_epochs=50), budget_s=12, root=tmp_path / "runs")
    assert doc["status"] == "completed" and doc["spent_s"] <= 12 + 20  # recording the runs may add a little
    assert max(t["epochs"] for t in doc["trials"]) < 50


def test_cli_search(tiny_prepared, tmp_path):
    from typer.testing import CliRunner

    from ferkaggle.cli import app

    space = write_space(tmp_path, name="cli3", max_epochs=1)
    result = CliRunner().invoke(app, ["search", "--space", str(space), "--budget", "5m"])
    assert result.exit_code == 0, result.output
    assert "winner" in result.output and "search.json" in result.output
    result = CliRunner().invoke(app, ["search", "--space", "default", "--budget", "soon"])
    assert result.exit_code == 1 and "not a duration" in result.output


def test_last_trial_horizon_is_replanned_from_its_pace():
    import time

    from ferkaggle.search import _budget_horizon

    horizon = _budget_horizon(time.time() + 100.5, max_epochs=40, first_cost=50.0)
    assert horizon({"epochs_done": 6, "history": []}) == 8  # 100 s left at 50 s/epoch
    fast = {"epochs_done": 6, "history": [{"seconds": 10.0}] * 3}
    assert horizon(fast) == 16  # the machine sped up: a longer schedule, still ending with the budget
    assert horizon({"epochs_done": 6, "history": [{"seconds": 1.0}]}) == 40  # capped at max_epochs
    assert _budget_horizon(time.time() - 1, 40, 50.0)({"epochs_done": 3, "history": []}) == 4  # at least one epoch
