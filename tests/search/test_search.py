"""Search on Optuna with the embedded study file: spaces, every trial a run, selection on the
stopping set (never the holdout), the budget, Ctrl-C under pruning and resume, artifacts and pull."""

import json
import re

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("optuna")

from ferkaggle.core.errors import FerkaggleError  # noqa: E402
from ferkaggle.search.spaces import base_config, check_space, load_space, parse_budget, rungs
from ferkaggle.search.stage import run_search

SPACE = """
name = "{name}"
base = "tiny"
min_epochs = 1
max_epochs = {max_epochs}
eta = 2
pruner = "{pruner}"
n_trials = {n_trials}

[fixed]
label_smoothing = 0.05

[[trials]]
name = "w8"

[[trials]]
name = "w4-lr-high"
model = {{ width = 4 }}
optim = {{ learning_rate = 1e-2 }}

[[trials]]
name = "mlp"
model = {{ architecture = "mlp", depth = 1, dense_units = 16 }}

[params]
"optim.learning_rate" = {{ type = "log", low = 1e-3, high = 1e-2 }}
"model.width" = {{ type = "int", low = 4, high = 8, step = 4 }}
"""


def write_space(folder, name="t3", max_epochs=3, pruner="asha", n_trials=3):
    path = folder / f"{name}.toml"
    path.write_text(SPACE.format(name=name, max_epochs=max_epochs, pruner=pruner, n_trials=n_trials))
    return path


def study_trials(root, study_name):
    import optuna

    from ferkaggle.runs.studies import embedded_study_url

    return optuna.load_study(study_name=study_name, storage=embedded_study_url(root)).get_trials()


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("60m", 3600), ("2h", 7200), ("1h30m", 5400), ("45", 45)])
def test_parse_budget(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["soon", "10x", "-5m", "0s"])
def test_parse_budget_rejects_nonsense(text):
    with pytest.raises(FerkaggleError):
        parse_budget(text)


def test_spaces_load_with_their_distributions(tmp_path):
    import optuna.distributions as od

    for name in ("quick", "default"):
        space, path = load_space(name)
        trials = check_space(space, str(path)).named
        assert len(trials) >= 3 and all(cfg.epochs == space.max_epochs for _, cfg in trials)
        assert space.params and space.sampler == "tpe"
    assert load_space("quick")[0].pruner == "asha" and rungs(load_space("quick")[0]) == [3, 9]
    default = load_space("default")[0]  # three whole schedules in equal shares, no pruning (docs/benchmarks.md)
    assert (default.pruner, default.budget_share, default.n_trials, rungs(default)) == ("none", "equal", 3, [120])
    assert default.fill_budget is True  # time left after the three goes to more models for the ensemble
    assert default.least_epochs == 30   # the plan leaves a trial out only where its share is under 30 epochs
    # No early stopping there: patience 8 cut a 120-epoch cosine schedule at epoch 49 (docs/benchmarks.md).
    assert [cfg.patience for _, cfg in check_space(default, "default").named] == [0, 0, 0]
    assert base_config(default, "default").patience == 0  # and the sampled trials' ([fixed])
    space, path = load_space(write_space(tmp_path))
    dists = check_space(space, str(path)).dists
    assert dists["optim.learning_rate"] == od.FloatDistribution(1e-3, 1e-2, log=True)
    assert dists["model.width"] == od.IntDistribution(4, 8, step=4)
    short = tmp_path / "short.toml"
    short.write_text('base = "tiny"\n[params]\n"label_smoothing" = [0.0, 0.1]\n')
    assert check_space(load_space(short)[0], "x").dists["label_smoothing"] == od.CategoricalDistribution([0.0, 0.1])


def test_fixed_applies_to_every_trial_under_its_own_settings(tmp_path):
    """[fixed] lies over the preset of every trial; a named trial's own settings lie over [fixed]."""
    from ferkaggle.search.spaces import sampled_config

    path = tmp_path / "fixed.toml"
    path.write_text('base = "tiny"\nmax_epochs = 7\n[fixed]\nlabel_smoothing = 0.05\nmodel = { width = 4, dense_units = 8 }\n'
                    '[[trials]]\nname = "a"\n[[trials]]\nname = "b"\nmodel = { width = 12 }\n'
                    '[[trials]]\nname = "c"\npreset = "simple"\n'
                    '[params]\n"optim.learning_rate" = [1e-3, 2e-3]\n')
    space, _ = load_space(path)
    named = dict(check_space(space, "x").named)
    assert [named[n].label_smoothing for n in "abc"] == [0.05, 0.05, 0.05]  # tiny and simple say 0.0
    assert [named[n].model.width for n in "abc"] == [4, 12, 4]  # tiny says 8, simple 32
    assert named["b"].model.dense_units == 8 and named["c"].model.architecture == "simple"
    sampled = sampled_config(space, base_config(space, "x"), {"optim.learning_rate": 2e-3}, "s-1", "x")
    assert (sampled.label_smoothing, sampled.model.width, sampled.optim.learning_rate, sampled.epochs) == (0.05, 4, 2e-3, 7)


@pytest.mark.parametrize("space, message", [
    ('[fixed]\nlabel_smoothing = 0.1\n[params]\n"label_smoothing" = [0.0, 0.1]\n', "both in [fixed] and in [params]"),
    ('[fixed]\nmodel = { width = 4 }\n[params]\n"model.width" = [4, 8]\n', "'model.width' is both"),
    ('[fixed]\nmodel = { widht = 4 }\n[params]\n"model.width" = [4, 8]\n', "widht"),
])
def test_bad_fixed_fails_loudly(tmp_path, space, message):
    bad = tmp_path / "bad.toml"
    bad.write_text('base = "tiny"\n' + space)
    with pytest.raises(FerkaggleError) as err:
        check_space(load_space(bad)[0], str(bad))
    assert message in str(err.value) and "bad.toml" in str(err.value)


@pytest.mark.parametrize("params, message", [
    ('"model.depht" = [2, 3]', "depht"),                               # unknown dotted key
    ('"optim.learning_rate" = { type = "log", low = 1e-3 }', "low and high"),
    ('"model.width" = { type = "int", low = 4.5, high = 8 }', "integer"),
    ('"optim.optimizer" = ["adam", "lion"]', "lion"),                 # a choice the config refuses
    ('"model.width" = { type = "uniform", low = 1, high = 2 }', "type must be"),
    ('"model.width" = { type = "int", low = 4, high = 8, lgo = true }', "lgo"),
])
def test_bad_space_params_fail_loudly(tmp_path, params, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(f'base = "tiny"\n[params]\n{params}\n')
    with pytest.raises(FerkaggleError, match=message):
        check_space(load_space(bad)[0], str(bad))


def test_every_trial_is_a_run_and_selection_ignores_the_holdout(small_prepared, tmp_path):
    from ferkaggle.core.metrics import scores
    from ferkaggle.runs.registry import list_runs

    root = tmp_path / "runs"
    doc = run_search(small_prepared, write_space(tmp_path, max_epochs=4, n_trials=5), budget_s=600, root=root)
    assert doc["status"] == "completed"
    trials = study_trials(root, doc["study"])
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 5 and len(trials) == 5
    # the three named trials ran first, in order, then two sampled ones
    assert [t.user_attrs.get("named") for t in trials[:3]] == ["w8", "w4-lr-high", "mlp"]
    assert all("optim.learning_rate" in t.params for t in trials[3:])
    runs = {r.run_id: r for r in list_runs(root)}
    assert sorted(runs) == sorted(t.user_attrs["run_id"] for t in finished)  # one run per trial, no more
    for t in finished:
        run = runs[t.user_attrs["run_id"]]
        assert run.info["config"]["label_smoothing"] == 0.05  # the space's [fixed], named and sampled trials alike
        pruned = t.state.name == "PRUNED"
        assert run.info["search"]["state"] == ("pruned" if pruned else "complete")
        assert ("pruned at epoch" in run.info["summary"]) == pruned
        # the objective (and every value the pruner saw) is the stop-split accuracy of the history
        history = run.metrics["history"]
        assert {e["epoch"]: e["stop_accuracy"] for e in history} == pytest.approx(t.intermediate_values)
        if not pruned:
            assert t.value == pytest.approx(max(e["stop_accuracy"] for e in history))
        # the holdout score is recorded from the run's own holdout probabilities
        assert run.metrics["val_accuracy"] == pytest.approx(
            scores(small_prepared.y_val, run.proba("val"))["accuracy"])
    assert all("completed_rung_0" in t.system_attrs for t in finished)  # ASHA saw every trial at its first rung
    done = [t for t in finished if t.state.name == "COMPLETE"]
    best = max(done, key=lambda t: (t.value, -t.number))
    assert doc["winner"]["number"] == best.number
    on_disk = json.loads((root / "searches" / doc["study"] / "search.json").read_text())
    assert on_disk["winner"] == doc["winner"] and on_disk["study"] == doc["study"]


@pytest.mark.slow  # CI runs it (.ci/run); ~15-45 s each, kept out of the fast suite
@pytest.mark.parametrize("pruner", ["hyperband", "none"])
def test_other_pruners(small_prepared, tmp_path, pruner):
    root = tmp_path / "runs"
    doc = run_search(small_prepared, write_space(tmp_path, name=f"p-{pruner}", max_epochs=2, pruner=pruner, n_trials=3),
                     root=root)
    trials = study_trials(root, doc["study"])
    assert [t.state.name for t in trials].count("FAIL") == 0 and len(trials) == 3
    if pruner == "none":  # no pruner: nothing reported to one, nothing pruned, every trial to max_epochs
        assert all(t.state.name == "COMPLETE" and not t.intermediate_values for t in trials)
        assert all(t["epochs"] == 2 for t in doc["trials"])
    else:
        assert all(sorted(t.intermediate_values) == list(range(1, 1 + t.user_attrs["epochs"])) for t in trials)


@pytest.mark.slow  # CI runs it (.ci/run); ~15-45 s each, kept out of the fast suite
def test_ctrl_c_in_a_later_rung_under_pruning_then_rerun_loses_nothing(small_prepared, tmp_path):
    root = tmp_path / "runs"
    space = write_space(tmp_path, name="ctrlc", max_epochs=4, n_trials=3)  # rungs at 1, 2, then 4
    seen = []

    def ctrl_c_after_epoch_3(name, entry):
        seen.append((name, entry["epoch"]))
        if name == "w8" and entry["epoch"] == 3:
            raise KeyboardInterrupt  # a real interrupt, raised inside model.fit, past rungs 1 and 2

    with pytest.raises(KeyboardInterrupt):
        run_search(small_prepared, space, budget_s=600, root=root, on_epoch=ctrl_c_after_epoch_3)
    study = json.loads(next((root / "searches").glob("*/search.json")).read_text())
    assert study["status"] == "interrupted"
    assert [t["status"] for t in study["trials"]] == ["interrupted", "waiting", "waiting", "waiting"]
    assert study["trials"][3]["retry_of"] == 0  # the continuation is queued first

    resumed = []  # --resume finds the study of this prepared data without being told the space
    doc = run_search(small_prepared, None, resume=True, budget_s=600, root=root,
                     on_epoch=lambda n, e: resumed.append((n, e["epoch"])))
    assert doc["status"] == "completed"
    assert resumed[0] == ("w8", 4)  # continued from its epoch-3 checkpoint: no finished epoch lost
    assert not set(seen) & set(resumed)  # nothing trained twice
    trials = {t["number"]: t for t in doc["trials"]}
    continuation = next(t for t in doc["trials"] if t["retry_of"] == 0)
    assert continuation["status"] == "done" and continuation["epochs"] == 4
    from ferkaggle.runs.registry import read_run

    run = read_run(root / continuation["run_id"])
    assert [e["epoch"] for e in run.metrics["history"]] == [1, 2, 3, 4]  # one history across both processes
    # the pruner sees the continuation's whole past, replayed from the checkpoint's history
    retried = next(t for t in study_trials(root, doc["study"]) if t.system_attrs.get("failed_trial") == 0)
    assert retried.intermediate_values == pytest.approx({e["epoch"]: e["stop_accuracy"] for e in run.metrics["history"]})
    assert trials[0]["status"] == "interrupted"
    # a third run of the first command trains nothing: the study is complete
    again = []
    doc2 = run_search(small_prepared, space, budget_s=600, root=root, on_epoch=lambda n, e: again.append(n))
    assert again == [] and len(doc2["trials"]) == len(doc["trials"])
    assert not any((root / "searches" / doc["study"] / "trials").iterdir())  # checkpoints of recorded trials gone


def test_budget_stops_trials_cleanly(small_prepared, tmp_path):
    import time

    t0 = time.time()
    doc = run_search(small_prepared, write_space(tmp_path, name="bud", max_epochs=200, pruner="none", n_trials=3),
                     budget_s=10, root=tmp_path / "runs")
    wall = time.time() - t0
    assert doc["status"] == "completed" and wall <= 10 + 25  # TF start-up and recording the run add a little
    assert max(t["epochs"] for t in doc["trials"]) < 200
    stopped = [t for t in doc["trials"] if t["stopped"] == "budget"]
    assert stopped and all(t["status"] == "done" for t in stopped)  # a budget-stopped trial is a finished run


@pytest.mark.slow  # a 60 s wall-clock budget: run by `make test-slow` and by CI (.ci/run)
def test_equal_budget_share_gives_every_trial_its_part(small_prepared, tmp_path):
    """budget_share = "equal": three trials, none capped by max_epochs; the first trains about a third
    of the budget (its schedule ending there) instead of taking all of it, and the next ones run."""
    space = write_space(tmp_path, name="share", max_epochs=100000, pruner="none", n_trials=3)
    space.write_text(space.read_text().replace('n_trials = 3', 'n_trials = 3\nbudget_share = "equal"'))
    budget = 60.0  # shares of 20 s: room for a first epoch slowed by TF start-up on a loaded 2-core box
    doc = run_search(small_prepared, space, budget_s=budget, root=tmp_path / "runs")
    done = [t for t in doc["trials"] if t["status"] == "done"]
    # On a quiet machine all three run; under heavy load the third may no longer fit its first epochs.
    assert [t["name"] for t in done][:2] == ["w8", "w4-lr-high"], doc["trials"]
    brief = [(t["name"], t["stopped"], t["epochs"], t["seconds"]) for t in doc["trials"]]
    # Each ended by its share (the first epoch of the first trial, with TF's start-up, took 11 s of a
    # 20 s share on a loaded AVX2 box: how many epochs fit is the machine's business, not this test's).
    assert all(t["stopped"] == "budget" for t in done), brief
    assert done[0]["seconds"] <= budget / 3 * 1.3, done[0]  # "rest" would give it the whole budget


@pytest.mark.parametrize("fill", [False, pytest.param(True, marks=pytest.mark.slow)])  # True: a 30 s budget, slow
def test_fill_budget_runs_more_sampled_trials_while_time_is_left(small_prepared, tmp_path, fill):
    """n_trials = 1, a 2-epoch trial that ends long before a 30 s budget: without fill_budget the search
    ends after it; with it, sampled trials follow (each taking the time left) until the budget is spent."""
    import time

    space = tmp_path / "fill.toml"
    top = 'n_trials = 1\nbudget_share = "equal"\n' + ("fill_budget = true\n" if fill else "")  # before [fixed]
    space.write_text(SPACE.split("[[trials]]")[0].format(name="fill", max_epochs=2, pruner="none", n_trials=1)
                     .replace("n_trials = 1\n", top)
                     + '\n[[trials]]\nname = "w8"\n\n[params]' + SPACE.split("[params]")[1].replace("{{", "{").replace("}}", "}"))
    budget = 30.0
    t0 = time.time()
    doc = run_search(small_prepared, space, budget_s=budget, root=tmp_path / "runs")
    wall = time.time() - t0
    done = [t for t in doc["trials"] if t["status"] == "done"]
    assert done[0]["name"] == "w8" and done[0]["epochs"] == 2
    if not fill:
        assert len(doc["trials"]) == 1
    else:
        assert len(done) >= 2, doc["trials"]  # a 2-epoch trial of the tiny net takes seconds
        assert all(t["name"].startswith("fill-") for t in done[1:])  # sampled from [params], not the named ones
    assert wall <= budget + 30  # never past the budget (plus TF start-up and recording)


def test_fill_needs_time_for_a_quarter_schedule_params_and_a_budget():
    import time
    from types import SimpleNamespace

    from ferkaggle.search.spaces import SpaceConfig
    from ferkaggle.search.worker import Worker

    def worker(fill=True, params=True, left_s=300.0, cost=10.0, min_epochs=3, deadline=True, asked=False):
        w = Worker.__new__(Worker)
        w.space = SpaceConfig(fill_budget=fill, min_epochs=min_epochs, params={"x": [1, 2]} if params else {})
        w.deadline, w.margin = (time.time() + left_s if deadline else None), 0.0
        w.epoch_costs, w.total, w.worker, w.left_out, w.asked_trials = [cost], 3, "me", set(), asked
        w.tracker = SimpleNamespace(print=lambda *a, **k: None)
        return w

    w = worker()
    assert w.fill(3) is True and w.total == 4            # 300 s left >= 8 epochs (30 / 4, rounded up) of 10 s
    assert worker(left_s=75.0).fill(3) is False           # 75 s < 8 x 10 s
    assert worker(left_s=85.0).fill(3) is True
    assert worker(left_s=85.0, min_epochs=9).fill(3) is False  # min_epochs above a quarter of max_epochs wins
    assert worker(fill=False).fill(3) is False
    assert worker(asked=True).fill(3) is False            # --trials: the user's count, never raised
    assert worker(params=False).fill(3) is False          # nothing to sample
    assert worker(deadline=False).fill(3) is False        # no budget: the study's n_trials is the end
    w = worker(left_s=25.0)
    assert w.fill(3) is False and w.total == 3


def test_equal_share_divides_the_time_left_among_the_trials_left():
    """The share itself, on a stub study: (deadline - margin - now) / (n_trials - trials taken by others)."""
    import time
    from types import SimpleNamespace

    from optuna.trial import TrialState

    from ferkaggle.search.spaces import SpaceConfig
    from ferkaggle.search.worker import Worker

    def stub(states, share="equal", total=4, left_s=1200.0):
        w = Worker.__new__(Worker)
        trials = [SimpleNamespace(state=s, number=i) for i, s in enumerate(states)]
        w.study = SimpleNamespace(get_trials=lambda deepcopy=False: trials)
        w.space, w.total, w.margin = SpaceConfig(budget_share=share), total, 30.0
        w.deadline = time.time() + left_s + 30.0
        return w, trials

    def share(w, me):
        return w.trial_until(me) - time.time()

    w, t = stub([TrialState.RUNNING, TrialState.WAITING, TrialState.WAITING, TrialState.WAITING])
    assert share(w, t[0]) == pytest.approx(1200 / 4, abs=1)            # the first of four
    w, t = stub([TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING])
    assert share(w, t[2]) == pytest.approx(1200 / 2, abs=1)            # two taken before it: half of what is left
    w, t = stub([TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING])
    assert share(w, t[2]) == pytest.approx(1200 / 3, abs=1)            # a failed attempt takes no share
    w, t = stub([TrialState.COMPLETE] * 5 + [TrialState.RUNNING])
    assert share(w, t[5]) == pytest.approx(1200, abs=1)                # past n_trials (--trials): all that is left
    w, t = stub([TrialState.RUNNING, TrialState.WAITING], share="rest")
    assert share(w, t[0]) == pytest.approx(1200, abs=1)                # "rest": the whole remaining budget
    w.deadline = None
    assert w.trial_until(t[0]) is None                                 # no budget, no deadline


@pytest.mark.slow  # CI runs it (.ci/run); ~15-45 s each, kept out of the fast suite
def test_two_workers_two_run_folders_pulled_into_one(small_prepared, tmp_path):
    from ferkaggle.runs.registry import list_runs
    from ferkaggle.search.stage import pull_runs

    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    artifacts = tmp_path / "artifacts"
    space = write_space(tmp_path, name="pull", max_epochs=1, pruner="none", n_trials=2)
    a = run_search(small_prepared, space, storage=storage, study_name="pull-s", artifacts=str(artifacts),
                   root=tmp_path / "runs-a")
    b = run_search(small_prepared, space, storage=storage, study_name="pull-s", artifacts=str(artifacts),
                   root=tmp_path / "runs-b", n_trials=5)
    assert len(a["ran_here"]) == 3 and len(b["ran_here"]) == 2  # the named trials always run: all 3 on a
    ids_a = {r.run_id for r in list_runs(tmp_path / "runs-a")}
    ids_b = {r.run_id for r in list_runs(tmp_path / "runs-b")}
    assert len(ids_a) == 3 and len(ids_b) == 2 and not ids_a & ids_b
    counts = pull_runs(storage, "pull-s", str(artifacts), root=tmp_path / "hub")
    assert counts == {"pulled": 5, "present": 0, "missing": 0}
    hub = {r.run_id: r for r in list_runs(tmp_path / "hub")}
    assert set(hub) == ids_a | ids_b
    for run in hub.values():  # the probabilities travelled intact
        src = tmp_path / ("runs-a" if run.run_id in ids_a else "runs-b") / run.run_id
        assert np.array_equal(run.proba("test"), np.load(src / "test_proba.npy"))
    assert pull_runs(storage, "pull-s", str(artifacts), root=tmp_path / "hub")["present"] == 5


def test_cli_search_and_bad_input(tiny_prepared, tmp_path):
    from typer.testing import CliRunner

    from ferkaggle.cli.app import app

    space = write_space(tmp_path, name="cli3", max_epochs=1, n_trials=2)
    result = CliRunner().invoke(app, ["search", "--space", str(space), "--budget", "5m"])
    assert result.exit_code == 0, result.output
    assert "best trial" in result.output and "search.json" in result.output and "ran trials: 0, 1" in result.output
    first = re.search(r"searches/(cli3-[0-9a-f]{8}-[0-9a-f]{6})/search\.json", result.output.replace("\n", ""))
    assert first, result.output
    other = write_space(tmp_path / "other", name="cli3", max_epochs=2) if (tmp_path / "other").mkdir() is None else None
    # the same space name with other contents, no --study: a study of its own, not a clash with the first
    result = CliRunner().invoke(app, ["search", "--space", str(other), "--budget", "5m", "--trials", "1"])
    assert result.exit_code == 0, result.output
    second = re.search(r"searches/(cli3-[0-9a-f]{8}-[0-9a-f]{6})/search\.json", result.output.replace("\n", ""))
    assert second and second.group(1) != first.group(1), result.output
    for args, message in [
        (["--space", str(space), "--budget", "soon"], "not a duration"),
        (["--space", str(space), "--storage", "not a url"], "not a database URL"),
        (["--space", str(space), "--storage", "postgresql://nobody@127.0.0.1:1/none"], "cannot reach the study storage"),
        (["--space", str(space), "--study", "bad name!"], "--study"),
        (["--space", str(other), "--study", first.group(1)], "another space"),  # a named study, a different space
        (["--study", "nosuch"], "no study named"),
    ]:
        result = CliRunner().invoke(app, ["search", *args])
        assert result.exit_code == 1 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_last_trial_horizon_is_replanned_from_its_pace():
    import time

    from ferkaggle.search.worker import budget_horizon

    horizon = budget_horizon(time.time() + 100.5, max_epochs=40, first_cost=50.0)
    assert horizon({"epochs_done": 6, "history": []}) == 8  # 100 s left at 50 s/epoch
    fast = {"epochs_done": 6, "history": [{"seconds": 10.0}] * 3}
    assert horizon(fast) == 16  # the machine sped up: a longer schedule, still ending with the budget
    assert horizon({"epochs_done": 6, "history": [{"seconds": 1.0}]}) == 40  # capped at max_epochs
    assert budget_horizon(time.time() - 1, 40, 50.0)({"epochs_done": 3, "history": []}) == 4  # at least one epoch


@pytest.mark.parametrize("demo, gpu, expected", [(True, True, "quick"), (True, False, "quick"),
                                                 (False, True, "gpu"), (False, False, "default")])
def test_default_space_by_data_and_machine(demo, gpu, expected):
    from ferkaggle.search.stage import default_space

    assert default_space(demo, gpu=gpu)[0] == expected


def test_gpu_space_trains_the_published_bodies():
    """The gpu space's networks are the anchors' bodies: VGG 64/128/256/512 x 2 convs and ResNet-18
    (a stem conv, 4 stages x 2 basic blocks of two 3x3 convs, a 1x1 shortcut where the shape changes)."""
    import keras

    from ferkaggle.cnn.models import build_model

    space, path = load_space("gpu")
    named = dict(check_space(space, str(path)).named)
    assert list(named) == ["gpu-vgg-w64-d4x2", "gpu-resnet18", "gpu-vgg-w64-d4x2-sgd"]
    assert (space.pruner, space.budget_share, space.fill_budget, space.max_epochs) == ("none", "equal", True, 300)
    assert {(c.precision, c.patience, c.epochs) for c in named.values()} == {("auto", 0, 300)}
    assert base_config(space, "gpu").model.max_width == 512  # sampled wide VGGs are not capped at 256

    def convs(cfg):
        model = build_model(cfg.model)
        return [(layer.kernel_size[0], layer.filters) for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]

    assert convs(named["gpu-vgg-w64-d4x2"]) == [(3, 64)] * 2 + [(3, 128)] * 2 + [(3, 256)] * 2 + [(3, 512)] * 2
    resnet = convs(named["gpu-resnet18"])
    assert [f for k, f in resnet if k == 3] == [64] + [64] * 4 + [128] * 4 + [256] * 4 + [512] * 4  # 17 3x3 convs
    assert [f for k, f in resnet if k == 1] == [128, 256, 512]
    assert named["gpu-vgg-w64-d4x2-sgd"].optim.optimizer == "sgd"


def test_cli_search_takes_the_gpu_space_where_tensorflow_sees_a_gpu(tiny_prepared, monkeypatch):
    from typer.testing import CliRunner

    import ferkaggle.search.stage
    from ferkaggle.cli.app import app

    asked = []

    def no_search(prepared, space, **kwargs):
        asked.append(space)
        raise FerkaggleError("stopped before training")

    monkeypatch.setattr(ferkaggle.search.stage, "run_search", no_search)
    for gpu, expected in [(True, "gpu"), (False, "default")]:
        monkeypatch.setattr(ferkaggle.search.stage, "gpu_visible", lambda gpu=gpu: gpu)
        result = CliRunner().invoke(app, ["search", "--budget", "5m"])
        assert result.exit_code == 1 and "stopped before training" in result.output, result.output
        assert f"search space: {expected} (competition data" in result.output, result.output
    assert asked == ["gpu", "default"]


def test_resume_finds_the_newest_study_of_this_split(tmp_path):
    """--resume without --space: the study created last on this prepared split, whatever the names say."""
    from types import SimpleNamespace

    import optuna

    from ferkaggle.search.study import find_study

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'studies.db'}")
    for name, split in [("zeta", "aaaa"), ("alpha", "aaaa"), ("mid", "aaaa"), ("other", "bbbb")]:  # in this order
        optuna.create_study(storage=storage, study_name=name).set_user_attr("split_fingerprint", split)
    assert find_study(storage, SimpleNamespace(split_fingerprint="aaaa")) == "mid"
    assert find_study(storage, SimpleNamespace(split_fingerprint="bbbb")) == "other"
    assert find_study(storage, SimpleNamespace(split_fingerprint="cccc")) is None


def test_each_allowed_pruner_and_sampler_is_built_and_nothing_else_loads():
    """The Literals in spaces.py are the one list of allowed values: each builds its Optuna object,
    and a space naming another fails when it loads, listing them."""
    from typing import get_args

    import optuna

    from ferkaggle.search.spaces import Pruner, Sampler, SpaceConfig, space_from_dict
    from ferkaggle.search.study import pruner_for, sampler_for

    pruners = {"asha": optuna.pruners.SuccessiveHalvingPruner, "hyperband": optuna.pruners.HyperbandPruner,
               "none": optuna.pruners.NopPruner}
    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
    assert set(get_args(Pruner)) == set(pruners) and set(get_args(Sampler)) == set(samplers)
    for name, cls in pruners.items():
        assert type(pruner_for(SpaceConfig(pruner=name))) is cls, name
    for name, cls in samplers.items():
        assert type(sampler_for(SpaceConfig(sampler=name), seed=1)) is cls, name
    for key, value in [("pruner", "median"), ("sampler", "cmaes"), ("budget_share", "half")]:
        with pytest.raises(FerkaggleError, match=f"{key}' must be one of .*not '{value}'"):
            space_from_dict({key: value}, "s.toml")


def test_trials_below_the_named_count_run_that_many_and_a_later_search_runs_the_rest(tiny_prepared, tmp_path):
    root = tmp_path / "runs"
    space = write_space(tmp_path, name="few", max_epochs=1, pruner="none", n_trials=3)  # 3 named trials queued
    doc = run_search(tiny_prepared, space, budget_s=600.0, n_trials=1, root=root)  # --trials 1, time to spare
    done = [t for t in study_trials(root, doc["study"]) if t.state.name == "COMPLETE"]
    assert [t.user_attrs["named"] for t in done] == ["w8"]  # the first named trial only, nothing sampled
    doc = run_search(tiny_prepared, space, root=root)  # the same study, the space's own count
    done = [t for t in study_trials(root, doc["study"]) if t.state.name == "COMPLETE"]
    assert sorted(t.user_attrs["named"] for t in done) == ["mlp", "w4-lr-high", "w8"]
