"""Forest runs saved before the classical models moved into ferkaggle.classical still predict.

Their model.joblib pickled `ferkaggle.baseline.FoldEnsemble` holding a `ferkaggle.features.HogSettings`;
neither module exists now. The file is made here the way the old code made it (the classes
pickled under their old module names), and the truth it is checked against is computed here by
hand: the fold forests' mean on the faces' grey levels / 255.
"""

from __future__ import annotations

import shutil
import sys
import types

import joblib
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from ferkaggle.classical.baseline import BaselineConfig, FoldEnsemble
from ferkaggle.classical.features import HogSettings
from ferkaggle.photos.predictor import Predictor
from ferkaggle.runs.registry import read_run
from helpers.fakes import make_fake_run

OLD_NAMES = {FoldEnsemble: "ferkaggle.baseline", HogSettings: "ferkaggle.features"}


def pickle_as_before_the_move(obj, path, **dump_options) -> None:
    """joblib.dump with FoldEnsemble and HogSettings living in their old modules, as they did then."""
    with pytest.MonkeyPatch.context() as mp:
        for cls, old in OLD_NAMES.items():
            module = types.ModuleType(old)
            setattr(module, cls.__name__, cls)
            mp.setitem(sys.modules, old, module)
            mp.setattr(cls, "__module__", old)
        joblib.dump(obj, path, **dump_options)


def test_an_old_forest_model_file_loads_and_predicts(tiny_prepared, tmp_path):
    pixels = np.asarray(tiny_prepared.x_train).reshape(len(tiny_prepared.x_train), -1).astype(np.float32) / 255
    y = np.asarray(tiny_prepared.y_train)
    assert len(np.unique(y)) == 7  # every fold model knows all seven classes: its columns are EMOTIONS
    folds = [RandomForestClassifier(n_estimators=5, random_state=k).fit(pixels[k::2], y[k::2]) for k in (0, 1)]
    old = FoldEnsemble(BaselineConfig(n_estimators=5, n_jobs=1), folds)

    plain = tmp_path / "plain.joblib"
    pickle_as_before_the_move(old, plain)
    raw = plain.read_bytes()
    assert b"ferkaggle.baseline" in raw and b"ferkaggle.features" in raw and b"ferkaggle.classical" not in raw
    assert "ferkaggle.baseline" not in sys.modules and FoldEnsemble.__module__ == "ferkaggle.classical.baseline"
    with pytest.raises(ModuleNotFoundError, match="ferkaggle.baseline"):
        joblib.load(plain)  # what loading an old run did before

    run = make_fake_run(tiny_prepared, "old forest", 0.5)
    pickle_as_before_the_move(old, run.dir / "model.joblib", compress=3)  # as the baseline saves it
    predictor = Predictor.from_run(read_run(run.dir))
    ((_, model, tta),) = predictor.parts
    assert type(model) is FoldEnsemble and type(model.hog) is HogSettings and tta is None
    assert "ferkaggle.baseline" not in sys.modules and "ferkaggle.features" not in sys.modules

    faces = np.asarray(tiny_prepared.x_test)
    by_hand = np.mean([m.predict_proba(faces.reshape(len(faces), -1).astype(np.float32) / 255) for m in folds], axis=0)
    np.testing.assert_allclose(predictor.predict(faces), by_hand, atol=1e-6)

    shutil.copy(plain, run.dir / "model.joblib")  # the uncompressed old file loads the same
    np.testing.assert_allclose(Predictor.from_run(read_run(run.dir)).predict(faces), by_hand, atol=1e-6)
