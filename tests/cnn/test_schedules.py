"""Learning-rate schedules: values at the epochs that define each policy."""

import math
from dataclasses import replace

import pytest

from ferkaggle.cnn import schedules
from ferkaggle.cnn.config import OptimConfig


def test_constant():
    assert schedules.constant(0, 1e-3) == schedules.constant(37.5, 1e-3) == 1e-3


def test_exp_after_is_the_notebook_policy():
    lr = 1e-3
    assert schedules.exp_after(0, lr, after=10, rate=0.1) == lr
    assert schedules.exp_after(9.99, lr, after=10, rate=0.1) == lr  # whole epochs: changes once per epoch
    assert schedules.exp_after(10, lr, after=10, rate=0.1) == pytest.approx(lr * math.exp(-0.1))
    assert schedules.exp_after(14, lr, after=10, rate=0.1) == pytest.approx(lr * math.exp(-0.5))


def test_cosine_warmup():
    lr = 2e-3
    assert schedules.cosine_warmup(0, lr, total=10, warmup=2) < lr * 0.01
    assert schedules.cosine_warmup(1, lr, total=10, warmup=2) == pytest.approx(lr / 2)
    assert schedules.cosine_warmup(2, lr, total=10, warmup=2) == pytest.approx(lr)
    assert schedules.cosine_warmup(6, lr, total=10, warmup=2) == pytest.approx(lr * 0.01 + (lr - lr * 0.01) / 2)
    assert schedules.cosine_warmup(10, lr, total=10, warmup=2) == pytest.approx(lr * 0.01)
    assert schedules.cosine_warmup(15, lr, total=10, warmup=2) == pytest.approx(lr * 0.01)  # flat after the end
    assert schedules.cosine_warmup(0, lr, total=10, warmup=0) == pytest.approx(lr)


def test_cosine_with_warm_restarts():
    lr, floor = 1.0, 0.01
    # 12 epochs in 3 cycles of 4: the first warms up over 1 epoch, each ends at the floor, the next restarts at lr
    assert schedules.cosine_warmup(0.5, lr, total=12, warmup=1, cycles=3) == pytest.approx(0.5)
    assert schedules.cosine_warmup(1, lr, total=12, warmup=1, cycles=3) == pytest.approx(lr)
    assert schedules.cosine_warmup(2.5, lr, total=12, warmup=1, cycles=3) == pytest.approx(floor + (lr - floor) / 2)
    assert schedules.cosine_warmup(3.9999, lr, total=12, warmup=1, cycles=3) == pytest.approx(floor, abs=1e-6)
    assert schedules.cosine_warmup(4, lr, total=12, warmup=1, cycles=3) == pytest.approx(lr)  # restart, no warm-up
    assert schedules.cosine_warmup(6, lr, total=12, warmup=1, cycles=3) == pytest.approx(floor + (lr - floor) / 2)
    assert schedules.cosine_warmup(8, lr, total=12, warmup=1, cycles=3) == pytest.approx(lr)
    assert schedules.cosine_warmup(12, lr, total=12, warmup=1, cycles=3) == pytest.approx(floor)
    assert schedules.cosine_warmup(20, lr, total=12, warmup=1, cycles=3) == pytest.approx(floor)  # flat after the end
    # each restarted cycle is a plain cosine from lr down to the floor over its 4 epochs, no warm-up
    for start in (4, 8):
        for s in (0.0, 0.5, 1.7, 3.0, 3.9):
            want = floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * s / 4))
            assert schedules.cosine_warmup(start + s, lr, total=12, warmup=1, cycles=3) == pytest.approx(want)
    # one cycle: the warm-up, then a single cosine over the other 11 epochs
    for t in (0.3, 1, 5, 9.5, 12):
        want = lr * t if t < 1 else floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * (t - 1) / 11))
        assert schedules.cosine_warmup(t, lr, total=12, warmup=1, cycles=1) == pytest.approx(want)
    assert schedules.learning_rate_at(4, OptimConfig(schedule="cosine", learning_rate=lr, cycles=3), 12) == pytest.approx(lr)


def test_cycle_ends():
    assert schedules.cycle_ends(15, 3) == [5, 10, 15]
    assert schedules.cycle_ends(10, 3) == [3, 7, 10]  # 3.33 and 6.67 round to the nearest epoch
    assert schedules.cycle_ends(12, 1) == [12]


def test_one_cycle():
    lr = 3e-3
    assert schedules.one_cycle(0, lr, total=10, pct_start=0.3) == pytest.approx(lr / 25)
    assert schedules.one_cycle(3, lr, total=10, pct_start=0.3) == pytest.approx(lr)
    assert schedules.one_cycle(1.5, lr, total=10, pct_start=0.3) == pytest.approx((lr / 25 + lr) / 2)
    assert schedules.one_cycle(10, lr, total=10, pct_start=0.3) == pytest.approx(lr / 1e3)
    values = [schedules.one_cycle(t / 10, lr, total=10) for t in range(101)]
    peak = values.index(max(values))
    assert all(a <= b for a, b in zip(values[:peak], values[1:peak + 1]))  # rises, then falls
    assert all(a >= b for a, b in zip(values[peak:], values[peak + 1:]))


def test_learning_rate_at_dispatches_on_the_config():
    base = OptimConfig(learning_rate=1e-3)
    assert schedules.learning_rate_at(12, replace(base, schedule="exp_after"), 50) == pytest.approx(1e-3 * math.exp(-0.3))
    assert schedules.learning_rate_at(5, replace(base, schedule="plateau"), 50) == 1e-3  # the callback changes it
    assert schedules.learning_rate_at(50, replace(base, schedule="cosine"), 50) == pytest.approx(1e-5)
    assert schedules.learning_rate_at(15, replace(base, schedule="onecycle"), 50) == pytest.approx(1e-3)
