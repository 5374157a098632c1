"""The plan that fits the box: equal shares simulated at measured paces (hand-counted cases), the
worker running only the trials the plan keeps (a left-out one only when time is left). The pace
measurement itself: tests/cnn/test_pace.py."""

import json

import pytest

pytest.importorskip("optuna")

from ferkaggle.search.plan import plan_trials, simulate  # noqa: E402


def epochs(rows):
    return [r.epochs for r in rows]


def test_a_slow_box_keeps_two_trials_and_a_fast_one_all_three():
    # A slow 2-core box: simple 22 s an epoch, both VGGs 38 s, 7,000 s, each at least 90 of its 120.
    # Three kept: simple's share 2333 s -> 106 epochs (2,332 s); the VGGs then get 4,668 / 2 s -> 61 each.
    # 61 < 90, so two: simple's share 3,500 s -> its 120 (2,640 s); the VGG gets 4,360 s -> 114 epochs.
    slow = [("simple", 22.0, 120), ("vgg", 38.0, 120), ("vgg-b", 38.0, 120)]
    assert epochs(simulate(slow, 7000.0, 3)) == [106, 61, 61]
    rows = plan_trials(slow, 7000.0, 90)
    assert epochs(rows) == [120, 114, 0] and [r.kept for r in rows] == [True, True, False]
    assert rows[1].seconds == pytest.approx(114 * 38.0)
    # A fast box (10 s, 22 s): simple 120 epochs in 1,200 s, then shares of 2,900 and 3,160 s: 120 each.
    fast = [("simple", 10.0, 120), ("vgg", 22.0, 120), ("vgg-b", 22.0, 120)]
    assert epochs(plan_trials(fast, 7000.0, 90)) == [120, 120, 120]


def test_the_default_threshold_keeps_the_boxes_measured_so_far_and_thins_a_much_slower_one():
    # least_epochs 30 (the default space) over 7,080 s. The AVX2 float32 box of the benchmarks (simple
    # 36 s, VGGs 75 s): shares of 2,360 s -> 65 epochs (2,340 s), then 4,740 / 2 -> 31, then 2,415 -> 32.
    avx2 = [("simple", 36.0, 120), ("vgg", 75.0, 120), ("vgg-b", 75.0, 120)]
    assert epochs(plan_trials(avx2, 7080.0, 30)) == [65, 31, 32]
    # A box twice as slow: three give the VGGs 15 (2,360 // 72 = 32, then 4,776 / 2 // 150); two give
    # the VGG 23 (3,540 // 72 = 49 epochs, 3,528 s; then 3,552 // 150); one: simple alone, 98 epochs.
    slower = [("simple", 72.0, 120), ("vgg", 150.0, 120), ("vgg-b", 150.0, 120)]
    assert epochs(simulate(slower, 7080.0, 2)) == [49, 23, 0]
    assert epochs(plan_trials(slower, 7080.0, 30)) == [98, 0, 0]


def test_edge_cases_of_the_plan():
    three = [("a", 10.0, 120), ("b", 10.0, 120), ("c", 10.0, 120)]
    assert epochs(plan_trials(three, 1200.0, 0)) == [40, 40, 40]           # least 0: every trial runs
    assert epochs(plan_trials(three, 1200.0, 40)) == [40, 40, 40]          # exactly enough
    assert epochs(plan_trials(three, 1190.0, 40)) == [59, 60, 0]           # 39 each is short: two of 59.5
    assert epochs(plan_trials(three, 300.0, 90)) == [30, 0, 0]             # none fits: the first alone
    capped = [("short", 10.0, 20), ("long", 10.0, 120)]                    # a trial's own max below least
    assert epochs(plan_trials(capped, 1100.0, 90)) == [20, 90]
    assert plan_trials([], 100.0, 10) == []


# The tiny search of test_search.py, with equal shares and a plan.
SPACE = """
name = "plan"
base = "tiny"
min_epochs = 1
max_epochs = 2
pruner = "none"
n_trials = 3
budget_share = "equal"
least_epochs = 2
{fill}
[[trials]]
name = "w8"

[[trials]]
name = "w4"
model = {{ width = 4 }}

[[trials]]
name = "w4-late"
model = {{ width = 4 }}
optim = {{ learning_rate = 1e-2 }}

[params]
"model.width" = {{ type = "int", low = 4, high = 8, step = 4 }}
"""


@pytest.mark.parametrize("fill", [False, pytest.param(True, marks=pytest.mark.slow)])  # True: spends its 30 s
def test_the_worker_runs_the_trials_the_plan_keeps(small_prepared, tmp_path, monkeypatch, fill):
    """Measured paces (faked here) at which the third named trial cannot get its 2 epochs in its share:
    the plan keeps two; without fill_budget the third stays queued, never run; with it, the time the
    fast real trials leave runs that third named trial next, before any sampled one."""
    import ferkaggle.cnn.pace as pace
    from ferkaggle.search.stage import run_search

    fake = {"w8": 1.0, "w4": 1.0, "w4-late": 1000.0}  # seconds per epoch, by trial name
    monkeypatch.setattr(pace, "epoch_seconds", lambda cfg, *a, **k: fake[cfg.name])
    space = tmp_path / "plan.toml"
    space.write_text(SPACE.format(fill="fill_budget = true" if fill else ""))
    doc = run_search(small_prepared, space, budget_s=30.0 if fill else 60.0, root=tmp_path / "runs")
    plan = {row["name"]: row for row in doc["plan"]}
    assert [plan[n]["kept"] for n in ("w8", "w4", "w4-late")] == [True, True, False]
    assert plan["w8"]["epoch_s"] == 1.0 and plan["w8"]["epochs"] == 2
    status = {t["name"]: t["status"] for t in doc["trials"]}
    assert status["w8"] == status["w4"] == "done"
    if not fill:
        assert status["w4-late"] == "waiting" and len(doc["trials"]) == 3
        assert doc["ran_here"] == [0, 1]
    else:
        assert status["w4-late"] == "done"
        names = [t["name"] for t in doc["trials"] if t["status"] == "done"]
        assert names[:3] == ["w8", "w4", "w4-late"]  # the left-out named trial before any sampled one
    saved = json.loads((tmp_path / "runs" / "searches" / doc["study"] / "search.json").read_text())
    assert saved["plan"] == doc["plan"]


def test_no_plan_with_trials_given_or_without_least_epochs(small_prepared, tmp_path, monkeypatch):
    import ferkaggle.cnn.pace as pace
    from ferkaggle.search.stage import run_search

    def refuse(*a, **k):
        raise AssertionError("measured a pace with no plan to make")

    monkeypatch.setattr(pace, "epoch_seconds", refuse)
    space = tmp_path / "plan.toml"
    space.write_text(SPACE.format(fill=""))
    doc = run_search(small_prepared, space, budget_s=60.0, n_trials=2, root=tmp_path / "runs")  # --trials 2
    assert doc["plan"] == [] and [t["status"] for t in doc["trials"]][:2] == ["done", "done"]
    space.write_text(SPACE.format(fill="").replace("least_epochs = 2", "least_epochs = 0"))
    doc = run_search(small_prepared, space, budget_s=60.0, root=tmp_path / "runs2")
    assert doc["plan"] == [] and [t["status"] for t in doc["trials"]] == ["done"] * 3

