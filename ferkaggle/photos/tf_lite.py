"""TensorFlow Lite conversion and inference for `ferkaggle export --format tflite` (TensorFlow-only,
like every `tf_*` module: the converter and interpreter ship with TensorFlow). TensorFlow is imported
inside the functions.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np

from ferkaggle.core.constants import IMAGE_SIZE


def tflite_bytes(model) -> bytes:
    """A Keras model (built on the TensorFlow backend) converted to a .tflite flatbuffer."""
    import tensorflow as tf

    # The converter exports a SavedModel first and prints its signature on stdout: keep stdout for our line.
    with contextlib.redirect_stdout(io.StringIO()):
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def tflite_predict(path: str | Path, faces) -> np.ndarray:
    """Probabilities [n, 7] from an exported .tflite file for float32/uint8 faces [n, 48, 48(, 1)]."""
    import tensorflow as tf

    x = np.asarray(faces, np.float32).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)
    with warnings.catch_warnings():
        # TF announces a move of the interpreter to the separate ai_edge_litert package; it still ships in TF.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        interpreter = tf.lite.Interpreter(model_path=str(path))
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()
