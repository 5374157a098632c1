"""Export a run's model as one standalone file: Keras (`.keras`, from any backend) or TensorFlow Lite
(`.tflite`, under the tensorflow backend only: `tf_lite`; another backend is refused in one line).

Input: a CNN run (its model.keras) or an ensemble of CNN runs. Output: a model that takes
float32 [batch, 48, 48, 1] grey pixels in 0..255 (a 48x48 face crop as it is, no scaling:
the model rescales to [0, 1] itself) and returns float32 [batch, 7] probabilities in the
order of `ferkaggle.core.constants.EMOTIONS` (angry, disgust, fear, happy, sad, surprise, neutral).

The run's test-time augmentation is built in, every mode of `ferkaggle.cnn.tta.TtaMode`:
with `tta = "hflip"` the exported model returns the mean over the face and its mirror, with
"tencrop" / "shift" the mean over the same ten views `cnn.tta.predict_proba` averages (the
views are made inside the graph by `cnn.tta.tta_views`), so it gives exactly the run's
probabilities. The run is loaded as `ferkaggle predict` loads it (`Predictor.from_run`).
An ensemble becomes one model: its members' (TTA) outputs weighted as the ensemble recorded.
Forest runs have no Keras graph and are refused (their model.joblib is already one file), and so
are ensembles with such a member (`export_problem`). `select_export_run` resolves the run
argument: `best` is the best run on the current split that CAN be exported (a CNN run or a
CNN-only ensemble), anything else is the run `predict` would use.

    import keras, numpy as np
    model = keras.models.load_model("fer.keras")
    proba = model.predict(face48.reshape(1, 48, 48, 1).astype("float32"))  # [1, 7]
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from ferkaggle.cnn.runtime import require_tensorflow
from ferkaggle.cnn.tta import tta_views
from ferkaggle.core.constants import IMAGE_SIZE
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.core.fsutil import atomic_write_bytes
from ferkaggle.photos.predictor import Predictor, ensemble_members, model_problem, select_predict_run
from ferkaggle.runs.registry import Run, list_runs, runs_root
from ferkaggle.runs.select import best_candidates, current_split, rank_runs
from ferkaggle.photos.tf_lite import tflite_bytes

FORMATS = ("keras", "tflite")
EXPORTABLE = "a CNN run (`ferkaggle train` or `ferkaggle search`) or an ensemble of CNN runs only"


def export_problem(run: Run) -> str | None:
    """Why the run cannot be exported, as what follows "run <id>" in a sentence; None when it can:
    every model it predicts with is a saved Keras model."""
    problem = model_problem(run)
    if problem:
        return problem
    parts = [member for _, member in ensemble_members(run)] if run.kind == "ensemble" else [run]
    for part in parts:
        if part.model_file().suffix != ".keras":
            what = "is a" if part is run else f"is an ensemble whose member {part.run_id} is a"
            return f"{what} {part.kind} run with a scikit-learn model, which cannot be exported to keras/tflite"
    return None


def select_export_run(ref: str, root: str | Path | None = None, *,
                      prepared_root: str | Path | None = None) -> tuple[Run, Run | None]:
    """(the run to export, the best run when that one could not be exported): for `best`, the
    top-ranked run on the current split that can be exported, else `select_predict_run(ref)`.
    None exportable is one FerkaggleError naming what can be exported."""
    if ref != "best":
        return select_predict_run(ref, root, prepared_root=prepared_root), None
    split = current_split(prepared_root)
    ranked = rank_runs(best_candidates(list_runs(root), split))
    for run in ranked:
        if export_problem(run) is None:
            return run, (ranked[0] if run is not ranked[0] else None)
    raise FerkaggleError(f"no run on the current prepared data in {runs_root(root)}/ can be exported: export "
                         f"takes {EXPORTABLE} (scikit-learn baselines cannot be)")


def standalone_model(run: Run):
    """One Keras model with the run's TTA (and an ensemble's weighting) built in."""
    import keras

    problem = export_problem(run)
    if problem:
        raise FerkaggleError(f"run {run.run_id} {problem}; export takes {EXPORTABLE} "
                             "(use a forest's model.joblib with `ferkaggle predict`)")
    predictor = Predictor.from_run(run)
    inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 1), name="pixels", dtype="float32")
    outputs = []
    for index, (weight, model, tta) in enumerate(predictor.parts):
        if len(predictor.parts) > 1:
            # Members often share a builder name ("vgg"); a model's parts must be uniquely named.
            model = keras.Model(model.input, model.output, name=f"member_{index}")
        views = [model(view) for view in tta_views(inputs, tta)]
        out = views[0] if len(views) == 1 else keras.layers.Average(name=f"tta_{index}")(views)
        if len(predictor.parts) > 1:
            out = keras.layers.Rescaling(weight, name=f"weight_{index}")(out)
        outputs.append(out)
    combined = outputs[0] if len(outputs) == 1 else keras.layers.Add(name="ensemble")(outputs)
    combined = keras.layers.Activation("linear", dtype="float32", name="probabilities")(combined)
    return keras.Model(inputs, combined, name=f"ferkaggle_{run.run_id}"[:60].replace("-", "_"))


def export_run(run: Run, fmt: Literal["keras", "tflite"], out: str | Path | None = None) -> Path:
    """Write the standalone model; returns its path (default `<run_id>.<fmt>` in the working folder)."""
    if fmt not in FORMATS:
        raise FerkaggleError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    path = Path(out) if out is not None else Path(f"{run.run_id}.{fmt}")
    if path.is_dir():
        path = path / f"{run.run_id}.{fmt}"
    if path.suffix != f".{fmt}":
        raise FerkaggleError(f"{path}: a {fmt} export must end in .{fmt}")
    if fmt == "tflite":
        require_tensorflow("TFLite export")
    model = standalone_model(run)
    if fmt == "keras":
        import tempfile

        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            staged = Path(tmp) / path.name
            model.save(staged)  # Keras writes the zip itself; stage then rename, so the write is atomic
            return atomic_write_bytes(path, staged.read_bytes())
    try:
        data = tflite_bytes(model)
    except Exception as exc:
        raise FerkaggleError(f"run {run.run_id}: TensorFlow Lite could not convert the model ({type(exc).__name__}: {exc})") from None
    return atomic_write_bytes(path, data)
