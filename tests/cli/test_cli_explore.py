"""`ferkaggle explore`: the data report of the latest prepared set, listed on the console."""

from __future__ import annotations

from typer.testing import CliRunner

from ferkaggle.cli.app import app


def test_explore_writes_the_report_of_the_latest_prepared_set(tiny_prepared):
    result = CliRunner().invoke(app, ["explore"])
    assert result.exit_code == 0, result.output
    folder = tiny_prepared.path.parents[2] / "reports" / "data" / "tiny"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["class_counts.png", "samples.png", "mean_faces.png", "duplicates.png", "pca_variance.png",
                            "eigenfaces.png", "index.md"])
    for name in names:
        assert name in result.output
    assert "# Data report: tiny" in (folder / "index.md").read_text()


def test_explore_takes_data_and_out(tiny_prepared, tmp_path):
    result = CliRunner().invoke(app, ["explore", "-d", str(tiny_prepared.path), "-o", str(tmp_path / "elsewhere")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "elsewhere" / "tiny" / "index.md").is_file()


def test_explore_without_prepared_data_is_one_line(in_tmp):
    result = CliRunner().invoke(app, ["explore", "--data", "nowhere"])
    assert result.exit_code == 1
    assert "nowhere: not a prepared data folder" in result.output and "Traceback" not in result.output
    assert not (in_tmp / "reports").exists()
