"""Core plumbing: config loading, atomic writes, the run registry, the CLI error boundary."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from ferkaggle.config import from_dict, load_preset
from ferkaggle.errors import DataError, FerkaggleError
from ferkaggle.fsutil import atomic_dir, atomic_write_text


@dataclasses.dataclass(frozen=True)
class Inner:
    rate: float = 0.1  # a rate
    names: tuple[str, ...] = ("a",)


@dataclasses.dataclass(frozen=True)
class Outer:
    epochs: int = 3
    optimizer: str = "adam"
    flag: bool = False
    limit: int | None = None
    inner: Inner = Inner()


def test_from_dict_overrides_and_nests():
    cfg = from_dict(Outer, {"epochs": 5, "inner": {"rate": 1, "names": ["x", "y"]}, "limit": 3})
    assert cfg == Outer(epochs=5, limit=3, inner=Inner(rate=1.0, names=("x", "y")))


@pytest.mark.parametrize(
    ("values", "needle"),
    [({"epoch": 5}, "unknown key 'epoch'"), ({"inner": {"rte": 1}}, "unknown key 'rte'"),
     ({"epochs": "5"}, "must be an integer"), ({"flag": 1}, "true or false"), ({"inner": 3}, "must be a table")],
)
def test_from_dict_fails_loudly(values, needle):
    with pytest.raises(FerkaggleError, match=needle):
        from_dict(Outer, values, "my.toml")


def test_load_preset_from_path_names_the_file(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("epochs = 7\n[inner]\nrate = 0.5\n")
    assert load_preset(Outer, str(path)) == Outer(epochs=7, inner=Inner(rate=0.5))
    path.write_text("epochs = [\n")
    with pytest.raises(FerkaggleError, match="not valid TOML"):
        load_preset(Outer, str(path))
    with pytest.raises(FerkaggleError, match="no preset named"):
        load_preset(Outer, "definitely-not-a-preset")


def test_data_error_message_names_file_and_line():
    err = DataError("train.csv", "expected 2304 pixels, found 2303", line=17)
    assert str(err) == "train.csv, line 17: expected 2304 pixels, found 2303"


def test_atomic_write_never_clobbers_when_asked(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "one")
    with pytest.raises(FileExistsError):
        atomic_write_text(path, "two", overwrite=False)
    assert path.read_text() == "one"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temp files left


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "half.npy").write_bytes(b"x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_run_registry_statuses_and_lookup(tiny_prepared, in_tmp):
    from ferkaggle.runs import RunWriter, list_runs, load_run

    with RunWriter("baseline", "rf pixels", {"a": 1}, tiny_prepared, seed=1) as ok:
        ok.save_metrics({"val_accuracy": 0.5})
    with pytest.raises(KeyboardInterrupt):
        with RunWriter("cnn", "simple", {}, tiny_prepared, seed=1):
            raise KeyboardInterrupt
    with pytest.raises(ValueError):
        with RunWriter("cnn", "simple", {}, tiny_prepared, seed=1) as bad:
            bad.save_probas(val=np.zeros((3, 7)))  # wrong number of rows
    everything = list_runs(include_incomplete=True)
    assert [r.status for r in everything] == ["completed", "interrupted", "failed"]
    assert [r.run_id for r in list_runs()] == [ok.run_id]
    assert ok.run_id.endswith("_rf-pixels")
    assert sorted(r.run_id for r in everything) == [r.run_id for r in everything]  # ids sort by time
    assert load_run("rf-pixels").run_id == ok.run_id
    with pytest.raises(FerkaggleError, match="matches 2 runs"):
        load_run("simple")
    info = json.loads((ok.dir / "run.json").read_text())
    assert info["data"]["split_fingerprint"] == tiny_prepared.split_fingerprint
    assert info["duration_s"] is not None and "numpy" in info["versions"]


def test_cli_turns_user_errors_into_one_line(in_tmp):
    from typer.testing import CliRunner

    from ferkaggle.cli import app

    result = CliRunner().invoke(app, ["validate", "x.csv"])
    assert result.exit_code == 1
    assert "no prepared data" in result.output and "Traceback" not in result.output


def test_version_and_help_read_well():
    from typer.testing import CliRunner

    from ferkaggle import __version__
    from ferkaggle.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).output.strip() == f"ferkaggle {__version__}"
    listing = runner.invoke(app, ["--help"]).output
    for command in ("prepare", "demo-data", "baseline", "train", "search", "leaderboard",
                    "ensemble", "submit", "validate", "report", "download"):
        assert command in listing, command
        assert "Example" in runner.invoke(app, [command, "--help"]).output, command


def test_atomic_writes_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    import os
    import stat

    from ferkaggle.fsutil import atomic_write_text

    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "out.csv", "id,emotion\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
