"""Reports: files written, per-class metrics consistent with the probabilities."""

from __future__ import annotations

from typer.testing import CliRunner

from ferkaggle.cli.app import app
from ferkaggle.results.report import write_report
from ferkaggle.runs.registry import read_run
from helpers.fakes import make_fake_run

runner = CliRunner()


def test_report_files_and_numbers(tiny_prepared, in_tmp):
    run = make_fake_run(tiny_prepared, "rf", skill=0.6)
    result = write_report(run, in_tmp / "reports")
    for name in ("confusion_counts.png", "confusion_normalized.png", "misclassified.png", "per_class.csv", "report.md"):
        assert (result.folder / name).stat().st_size > 0, name
    assert result.accuracy == (run.proba("val").argmax(1) == tiny_prepared.y_val).mean()
    assert sum(row["support"] for row in result.per_class) == len(tiny_prepared.y_val)
    assert (result.folder / "report.md").read_text().startswith(f"# Report: {run.run_id}")


def test_report_learning_curves_from_history(tiny_prepared, in_tmp):
    run = make_fake_run(tiny_prepared, "cnn", skill=0.6, kind="cnn")
    metrics = dict(run.metrics, history=[{"epoch": e, "loss": 2 / e, "accuracy": 0.2 * e, "val_loss": 2.1 / e,
                                           "val_accuracy": 0.18 * e} for e in (1, 2, 3)])
    (run.dir / "metrics.json").write_text(__import__("json").dumps(metrics))
    result = write_report(read_run(run.dir), in_tmp / "reports")
    assert "learning_curves.png" in result.files


def test_report_cli(tiny_prepared, in_tmp):
    make_fake_run(tiny_prepared, "rf", skill=0.6)
    result = runner.invoke(app, ["report", "--run", "best"])
    assert result.exit_code == 0, result.output
    assert "precision" in result.output and (in_tmp / "reports").is_dir()
    result = runner.invoke(app, ["report", "-r", "no-such-run"])
    assert result.exit_code == 1 and "no run matching" in result.output
