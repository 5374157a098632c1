"""The command for classical baselines: `baseline` (the leaderboard is in cli/results.py).

Thin: parse options into a config, call `classical.baseline.run_baseline`, render the result with rich.
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ferkaggle.classical.baseline import BaselineConfig, ClassWeight, ModelName, run_baseline
from ferkaggle.classical.features import FeatureKind
from ferkaggle.cli.app import QUIET_OPTION, VERBOSE_OPTION, app, choices, set_output, values
from ferkaggle.core.console import console, result
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.presets import from_dict, load_preset
from ferkaggle.data.prepared import load_prepared

Model = choices("Model", ModelName)
Features = choices("Features", FeatureKind)
ClassWeights = choices("ClassWeights", ClassWeight)


@app.command()
def baseline(
    model: Optional[Model] = typer.Option(None, "--model", "-m", help="Classifier (default rf)."),
    features: Optional[Features] = typer.Option(None, "--features", help="pixels (grey levels / 255, default) or hog."),
    pca: Optional[int] = typer.Option(None, "--pca", help="PCA components fitted per fold; 0 = off (default: knn 100, svm 50, others off)."),
    n_estimators: Optional[int] = typer.Option(None, "--n-estimators", help="Trees for rf / extra-trees (default 100)."),
    max_depth: Optional[int] = typer.Option(None, "--max-depth", help="Tree depth for rf / extra-trees; 0 = full depth (default)."),
    min_samples_leaf: Optional[int] = typer.Option(None, "--min-samples-leaf", help="Minimum rows per leaf (default 1)."),
    max_features: Optional[str] = typer.Option(None, "--max-features", help="Features tried per split: sqrt (default), log2 or a fraction."),
    class_weight: Optional[ClassWeights] = typer.Option(None, "--class-weight", help="none (default) or balanced (rf, extra-trees, logreg)."),
    c: Optional[float] = typer.Option(None, "--c", help="Regularisation C for logreg, kmeans-logreg or svm (default 1)."),
    k: Optional[int] = typer.Option(None, "--k", help="Neighbours for knn (default 5)."),
    max_iter: Optional[int] = typer.Option(None, "--max-iter", help="Solver iterations for logreg and kmeans-logreg (default 200)."),
    clusters: Optional[int] = typer.Option(None, "--clusters", help="k-means clusters for kmeans / kmeans-logreg (default: kmeans 6, kmeans-logreg 35, the notebooks')."),
    max_train_rows: Optional[int] = typer.Option(None, "--max-train-rows", help="Cap on each fold's training rows, stratified; 0 = all (default: svm 8000, others all)."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="Preset name (ferkaggle/configs/baseline/<name>.toml) or path; flags override it."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default 42, core.constants.DEFAULT_SEED): the same seed gives the same CV scores."),
    n_jobs: Optional[int] = typer.Option(None, "--n-jobs", help="Worker processes; -1 = all cores (default)."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Prepared data folder or key (default: the latest `ferkaggle prepare`)."),
    save_model: Optional[bool] = typer.Option(None, "--save-model/--no-save-model", help="Write the fold models to model.joblib (default on)."),
    quiet: bool = QUIET_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Cross-validate a classical model on the prepared folds and record it as a run.

    Fits one model per CV fold of the prepared training rows, reports each fold's accuracy
    and macro-F1, then the mean ± std; saves out-of-fold, holdout-val and test probabilities
    (val/test: the mean of the fold models) to runs/<run_id>/.

    Example: ferkaggle baseline --model rf --features hog --n-estimators 300
    """
    set_output(quiet, verbose)
    model, features, class_weight = values(model), values(features), values(class_weight)
    cfg = load_preset(BaselineConfig, config, subdir="baseline")
    chosen = model or cfg.model
    flags = {
        "model": model, "features": features, "pca": pca, "n_estimators": n_estimators, "max_depth": max_depth,
        "min_samples_leaf": min_samples_leaf, "max_features": max_features, "class_weight": class_weight,
        "knn_k": k, "max_iter": max_iter, "n_clusters": clusters, "max_train_rows": max_train_rows, "seed": seed, "n_jobs": n_jobs,
        "save_model": save_model,
        "logreg_c": c if chosen in ("logreg", "kmeans-logreg") else None, "svm_c": c if chosen == "svm" else None,
    }
    if c is not None and chosen not in ("logreg", "kmeans-logreg", "svm"):
        hint = ": give --model logreg, kmeans-logreg or svm" if model is None and config is None else f", not {chosen}"
        raise FerkaggleError(f"--c applies to logreg, kmeans-logreg or svm{hint}")
    cfg = from_dict(BaselineConfig, {key: v for key, v in flags.items() if v is not None}, "command line", cfg)
    prepared = load_prepared(data, mmap=True)
    console.print(f"prepared data [bold]{escape(prepared.key)}[/bold]: {len(prepared.train_idx)} training rows in "
                  f"{prepared.num_folds} folds, {len(prepared.val_idx)} holdout-val, {len(prepared.x_test)} test")
    run = run_baseline(prepared, cfg)
    m = run.metrics

    table = Table(title=f"{run.info['summary']} — {prepared.num_folds}-fold CV", title_justify="left")
    for name, justify in (("fold", "right"), ("train rows", "right"), ("accuracy", "right"), ("macro-F1", "right"), ("time", "right")):
        table.add_column(name, justify=justify)
    for fold in m["folds"]:
        table.add_row(str(fold["fold"]), str(fold["n_train"]), f"{fold['accuracy']:.4f}", f"{fold['macro_f1']:.4f}",
                      f"{fold['seconds']:.1f}s")
    table.add_row("mean", "", f"{m['cv_mean']:.4f} ± {m['cv_std']:.4f}", f"{m['cv_macro_f1_mean']:.4f}",
                  f"{m['train_seconds']:.1f}s fit", style="bold")
    result(table)
    result(f"holdout-val: accuracy [bold]{m['val_accuracy']:.4f}[/bold], macro-F1 {m['val_macro_f1']:.4f} "
                  "(mean of the fold models)")
    if "test_accuracy" in m:
        result(f"test (labelled): accuracy {m['test_accuracy']:.4f}")
    size = f", model {m['model_bytes'] / 1e6:.1f} MB" if m.get("model_bytes") else ""
    result(f"[green]recorded[/green] run {escape(run.run_id)} in {escape(str(run.dir))}{size}")
