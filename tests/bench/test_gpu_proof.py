"""bench/gpu_proof: the prepare script's compact data and size accounting, the run script's arguments
(the GPU run itself needs the lent machine: docs/benchmarks.md, "The GPU proof")."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "gpu_proof"))

import prepare  # noqa: E402
import run  # noqa: E402

from helpers.fakes import make_tiny_prepared  # noqa: E402


def test_row_deltas_round_trip_every_byte():
    x = np.random.default_rng(0).integers(0, 256, (50, 48, 48), dtype=np.uint8)
    d = prepare.row_deltas(x)
    assert d.dtype == np.uint8 and d[0, 0, 0] == x[0, 0, 0]
    assert d[0, 0, 1] == (int(x[0, 0, 1]) - int(x[0, 0, 0])) % 256
    np.testing.assert_array_equal(prepare.undo_row_deltas(d), x)


def test_compact_data_keeps_the_labelled_faces_and_cuts_the_test_set(tmp_path):
    tiny = make_tiny_prepared(tmp_path / "prepared", n=120, n_test=30)
    prepare.write_compact_data(tiny.path, tmp_path / "c.npz", test_rows=10)
    z = np.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(prepare.undo_row_deltas(z["x_deltas"]), np.load(tiny.path / "x.npy"))
    for name in ("y", "fold"):
        np.testing.assert_array_equal(z[name], np.load(tiny.path / f"{name}.npy"))
    np.testing.assert_array_equal(z["x_test"], np.load(tiny.path / "x_test.npy")[:10])
    assert json.loads(z["manifest"].tobytes().decode()) == json.loads((tiny.path / "manifest.json").read_text())


def test_size_report_adds_the_repository_and_checks_the_limit(tmp_path):
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "a.whl").write_bytes(b"x" * 1000)
    (tmp_path / "fer2013.npz").write_bytes(b"y" * 3000)
    (tmp_path / "sizes.json").write_text("{}")  # its own report is not counted
    report = prepare.size_report(tmp_path, repo_bytes=500, limit_mib=4500 / 2**20)
    assert report["files"] == {"fer2013.npz": 3000, "wheels/a.whl": 1000}
    assert (report["total_bytes"], report["limit_bytes"], report["fits"]) == (4500, 4500, True)
    assert not prepare.size_report(tmp_path, repo_bytes=501, limit_mib=4500 / 2**20)["fits"]


def test_prepare_refuses_a_folder_over_the_limit(tmp_path, capsys):
    tiny = make_tiny_prepared(tmp_path / "prepared", n=120, n_test=30)
    out = tmp_path / "carry"
    repo = Path(__file__).resolve().parents[2]
    assert prepare.main(["--prepared", str(tiny.path), "--out", str(out), "--repo", str(repo), "--no-download",
                         "--limit-mib", "0.01"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "over the 0.01 MiB a device call carries (largest: fer2013.npz" in err
    assert prepare.main(["--prepared", str(tiny.path), "--out", str(out), "--repo", str(repo), "--no-download",
                         "--limit-mib", "64"]) == 0
    report = json.loads((out / "sizes.json").read_text())
    assert report["fits"] and report["repository_bytes"] == prepare.tracked_bytes(repo) > 100_000


def test_run_arguments_and_plan(tmp_path):
    (tmp_path / "wheels").mkdir()
    for name in ("keras-3-py3-none-any.whl", "ferkaggle-0.1.0-py3-none-any.whl"):
        (tmp_path / "wheels" / name).write_bytes(b"")
    (tmp_path / "fer2013.npz").write_bytes(b"")
    args = run.parse_args(["--carry", str(tmp_path), "--out", str(tmp_path / "o"), "--backend", "torch",
                           "--budget", "90s", "--work", str(tmp_path / "w"), "--python", "py"])
    steps = run.plan(args)
    assert steps["env"]["KERAS_BACKEND"] == "torch" and steps["env"]["PYTHONPATH"] == str(tmp_path / "w" / "site")
    assert steps["install"][:4] == ["py", "-m", "pip", "install"] and "--no-index" in steps["install"]
    assert "--no-deps" in steps["install"] and steps["install"][-2:] == sorted(
        str(p) for p in (tmp_path / "wheels").glob("*.whl"))
    assert steps["search"] == ["py", "-m", "ferkaggle", "search", "--space", "gpu", "--budget", "90s", "--data",
                               str(tmp_path / "w" / "prepared" / "fer2013")]
    assert run.parse_args(["--carry", str(tmp_path)]).backend == "jax"  # the default


def test_run_refuses_a_missing_carry_folder_and_an_unknown_backend(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        run.parse_args(["--carry", str(tmp_path / "nothing")])
    assert caught.value.code == 2 and "no fer2013.npz; run bench/gpu_proof/prepare.py" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run.parse_args(["--carry", str(tmp_path), "--backend", "mxnet", "--dry-run"])


def test_summary_rows_give_images_per_second_and_the_share_of_peak(tmp_path):
    folder = tmp_path / "r1"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"name": "gpu-vgg", "status": "completed"}))
    (folder / "metrics.json").write_text(json.dumps({"val_accuracy": 0.7, "epochs": 10, "train_seconds": 100.0}))
    rows = run.summarize_runs(tmp_path, train_rows=1000, flops={"gpu-vgg": 2e9})
    assert rows[0]["images_per_second"] == 100.0 and rows[0]["minutes"] == 1.67
    assert rows[0]["share_of_bf16_peak"] == pytest.approx(100.0 * 2e9 / 989e12)
