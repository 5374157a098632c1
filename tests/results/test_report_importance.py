"""The forest report's feature-importance heatmap over the 48x48 face."""

from __future__ import annotations

import joblib
import numpy as np
import pytest

from ferkaggle.classical.baseline import BaselineConfig, run_baseline
from ferkaggle.results.report import feature_importance_grid, write_report


def _hog_grid_by_loop(importances: np.ndarray) -> np.ndarray:
    """Independent mapping of default HOG features (5x5 blocks of 2x2 cells of 8x8 px, 9 bins) to pixels."""
    grid = np.zeros((48, 48))
    for index, value in enumerate(importances):
        by, bx, cy, cx, _ = np.unravel_index(index, (5, 5, 2, 2, 9))
        row, col = (by + cy) * 8, (bx + cx) * 8
        grid[row:row + 8, col:col + 8] += value / 64
    return grid


def test_forest_report_has_the_pixel_importance_heatmap(tiny_prepared, in_tmp):
    run = run_baseline(tiny_prepared, BaselineConfig(n_estimators=12, n_jobs=1), show_progress=False)
    result = write_report(run, in_tmp / "reports")
    assert "feature_importance.png" in result.files
    assert (result.folder / "feature_importance.png").stat().st_size > 0
    assert "![feature importance](feature_importance.png)" in (result.folder / "report.md").read_text()
    folds = joblib.load(run.dir / "model.joblib").models
    expected = np.mean([m.named_steps["model"].feature_importances_ for m in folds], axis=0).reshape(48, 48)
    grid = feature_importance_grid(joblib.load(run.dir / "model.joblib"))
    np.testing.assert_allclose(grid, expected)
    assert grid.sum() == pytest.approx(1.0)


def test_hog_importances_spread_over_their_cells(tiny_prepared, in_tmp):
    run = run_baseline(tiny_prepared, BaselineConfig(n_estimators=12, n_jobs=1, features="hog"), show_progress=False)
    model = joblib.load(run.dir / "model.joblib")
    expected = np.mean([_hog_grid_by_loop(m.named_steps["model"].feature_importances_) for m in model.models], axis=0)
    np.testing.assert_allclose(feature_importance_grid(model), expected, atol=1e-12)


def test_no_heatmap_for_models_without_importances(tiny_prepared, in_tmp):
    run = run_baseline(tiny_prepared, BaselineConfig(model="nb", n_jobs=1), show_progress=False)
    assert feature_importance_grid(joblib.load(run.dir / "model.joblib")) is None
    assert "feature_importance.png" not in write_report(run, in_tmp / "reports").files
