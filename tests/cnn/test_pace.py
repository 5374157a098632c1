"""The measured pace (cnn/pace.py) on every backend: a plausible figure, and no run changed by measuring."""

import numpy as np


def test_measuring_the_pace_changes_no_run(prepared, tmp_path):
    """epoch_seconds builds, fits and evaluates a model; the fit after it reseeds everything, so the run
    is the same as one trained without measuring first (same weights, same stop-split history)."""
    from ferkaggle.cnn.config import load_train_config, override
    from ferkaggle.cnn.fit import fit_trial
    from ferkaggle.cnn.pace import epoch_seconds

    cfg = override(load_train_config("tiny"), {"epochs": 2, "model": {"width": 4}})
    fit, stop = prepared.stopping_split(0)
    data = (prepared.x[fit], prepared.y[fit], prepared.x[stop], prepared.y[stop])
    plain = fit_trial(*data, cfg, tmp_path / "plain", seed=3)
    seconds = epoch_seconds(cfg, *data, seed=3)
    assert 0 < seconds < 60
    after = fit_trial(*data, cfg, tmp_path / "after", seed=3)
    assert [h["stop_accuracy"] for h in after["history"]] == [h["stop_accuracy"] for h in plain["history"]]
    assert [h["loss"] for h in after["history"]] == [h["loss"] for h in plain["history"]]
    import keras

    a, b = (keras.saving.load_model(tmp_path / d / "last.keras") for d in ("plain", "after"))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_the_pace_leaves_out_what_a_fit_call_costs_after_its_last_batch(prepared, monkeypatch):
    """A trial trains in one fit call, so a cost paid once per call (one box spent 2 s after the last batch
    of some calls) is not part of an epoch. A 2-second end of each fit call must not reach the figure; the
    whole call's time, as measured before, would add 2 s times the epoch's steps over the timed ones."""
    import time

    import keras

    from ferkaggle.cnn.config import load_train_config, override
    from ferkaggle.cnn.pace import epoch_seconds

    cfg = override(load_train_config("tiny"), {"model": {"width": 4}})
    fit, stop = prepared.stopping_split(0)
    data = (prepared.x[fit], prepared.y[fit], prepared.x[stop], prepared.y[stop])
    plain = epoch_seconds(cfg, *data, steps=4, seed=3)
    end = keras.callbacks.CallbackList.on_train_end
    monkeypatch.setattr(keras.callbacks.CallbackList, "on_train_end",
                        lambda self, logs=None: (time.sleep(2), end(self, logs))[1])
    slow_end = epoch_seconds(cfg, *data, steps=4, seed=3)
    assert slow_end < plain + 1.0, (plain, slow_end)
