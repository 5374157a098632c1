"""`precision = "auto"`: float16 on a GPU, bfloat16 on a CPU with bf16 instructions, else float32;
and the mixed_float16 path (loss scaling, LR schedule, checkpoints, resume) works end to end."""

import json
import platform
import warnings

import numpy as np
import pytest

from ferkaggle.cnn.config import load_train_config, override
from ferkaggle.cnn.fit import build_compiled, fit_trial
from ferkaggle.cnn.record import record_run
from ferkaggle.cnn.runtime import cpu_flags, cpu_model, resolve_precision
from ferkaggle.core.errors import FerkaggleError


@pytest.mark.parametrize("gpu, bf16, expected", [
    (True, True, "mixed_float16"), (True, False, "mixed_float16"),
    (False, True, "mixed_bfloat16"), (False, False, "float32"),
])
def test_auto_chooses_by_the_machine(gpu, bf16, expected):
    assert resolve_precision("auto", gpu=gpu, cpu_bf16=bf16) == expected


def test_explicit_precision_is_kept_and_nonsense_refused_when_the_config_is_read(tmp_path):
    for name in ("float32", "mixed_bfloat16", "mixed_float16"):
        assert resolve_precision(name, gpu=True, cpu_bf16=False) == name
    bad = tmp_path / "bad.toml"
    bad.write_text('precision = "fp8"\n')
    with pytest.raises(FerkaggleError) as caught:
        load_train_config(bad)
    assert str(caught.value) == (f"{bad}: 'precision' must be one of 'float32', 'mixed_bfloat16', 'mixed_float16', "
                                 "'auto', not 'fp8'")


def test_cpu_flags_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    assert {"avx512_bf16", "avx512f", "fpu"} <= cpu_flags(info) and "sse2" not in cpu_flags(info)
    assert cpu_model(info) == "Xeon"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert not cpu_flags(info) & {"avx512_bf16", "amx_bf16"}
    assert cpu_flags(tmp_path / "absent") == frozenset()
    assert cpu_model(tmp_path / "absent") == platform.machine()


def test_mixed_float16_trains_resumes_and_records(tiny_prepared, tmp_path):
    """The GPU's policy, run on the CPU: Keras wraps the optimizer in its LossScaleOptimizer, the LR
    schedule still drives it, a checkpoint resumes, and run.json records the policy used."""
    pytest.importorskip("tensorflow")
    import keras

    cfg = override(load_train_config("tiny"), {"epochs": 2, "precision": "mixed_float16", "model": {"width": 4},
                                               "optim": {"schedule": "cosine", "warmup_epochs": 0.0}})
    model = build_compiled(cfg)
    assert type(model.optimizer).__name__ == "LossScaleOptimizer"
    assert keras.mixed_precision.global_policy().name == "float32"  # building does not leak the policy
    p = tiny_prepared
    fit, stop = p.stopping_split(0)
    args = (p.x[fit], p.y[fit], p.x[stop], p.y[stop], cfg, tmp_path / "state")
    first = fit_trial(*args, target_epochs=1)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        state = fit_trial(*args, target_epochs=2)  # resumes from epoch 1's checkpoint
    dropped = [str(w.message) for w in seen if "Skipping variable loading" in str(w.message)]
    assert not dropped, dropped  # the loss scale and Adam's moments came back with the weights
    assert [h["epoch"] for h in state["history"]] == [1, 2] and first["epochs_done"] == 1
    assert all(np.isfinite(h["loss"]) for h in state["history"])
    assert state["history"][1]["lr"] < cfg.optim.learning_rate  # the cosine schedule reached the wrapped optimizer
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run = record_run(p, cfg, tmp_path / "state", root=tmp_path / "runs")
    assert not [w for w in seen if "Skipping variable loading" in str(w.message)]  # inference needs no optimizer
    assert json.loads((run.dir / "run.json").read_text())["runtime"]["precision"] == "mixed_float16"
    np.testing.assert_allclose(run.proba("val").sum(axis=1), 1.0, atol=1e-3)
    assert "fp16" in run.info["summary"]


@pytest.mark.parametrize("user_setting, env_after, onednn", [(None, "1", True), ("0", "0", False)])
def test_onednn_is_on_unless_the_user_turned_it_off(user_setting, env_after, onednn):
    """Importing ferkaggle turns TensorFlow's oneDNN kernels on (TF leaves them off on AVX2 CPUs,
    1.1-1.6x slower there), unless the user's environment says otherwise, and runs record it."""
    import os
    import subprocess
    import sys

    pytest.importorskip("tensorflow")
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env["KERAS_BACKEND"] = "tensorflow"  # oneDNN is TensorFlow's
    if user_setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = user_setting
    code = ("import os, ferkaggle; setting = os.environ['TF_ENABLE_ONEDNN_OPTS']\n"
            "from ferkaggle.cnn.runtime import runtime_info; print(setting, runtime_info()['onednn'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == [env_after, str(onednn)]
