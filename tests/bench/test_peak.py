"""bench/peak.py: the FLOP counts of its cases, against hand counts and bench/flops.py's own count of a
Keras layer of the same shape, and a tiny run of every case in both dtypes."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import peak  # noqa: E402
from flops import model_flops  # noqa: E402


def test_flop_counts_match_hand_counts_and_the_layer_counter():
    import keras

    assert peak.matmul_flops(3) == 54  # 3x3 outputs, 3 multiply-adds each, 2 FLOPs per multiply-add
    # batch 2 of 4x4 positions x 5 output channels = 160 outputs, each 3x3x3 = 27 multiply-adds
    assert peak.conv_flops(2, 4, 3, 5) == 2 * 160 * 27 == 8640
    x_in = keras.Input((4, 4, 3))
    one_image = model_flops(keras.Model(x_in, keras.layers.Conv2D(5, 3, padding="same")(x_in)))
    assert peak.conv_flops(1, 4, 3, 5) == one_image


def test_every_case_runs_in_both_dtypes_and_gives_a_rate(tmp_path, capsys):
    out = tmp_path / "peak.json"
    assert peak.main(["--seconds", "0.02", "--sizes", "64", "--batch", "2", "--json", str(out)]) == 0
    import json

    report = json.loads(out.read_text())
    cases = {(r["case"], r["dtype"]) for r in report["rows"]}
    assert cases == {(c, d) for c in ["matmul 64", *(label for label, *_ in peak.CONVS)] for d in ("float32", "bfloat16")}
    assert all(r["flops_per_s"] > 0 for r in report["rows"])
    assert report["machine"]["cores"] >= 1 and "matmul 64" in capsys.readouterr().out
