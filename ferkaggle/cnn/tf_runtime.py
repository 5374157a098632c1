"""TensorFlow's own runtime knobs (TensorFlow-only, like every `tf_*` module): its thread pools, its
oneDNN kernels and the GPUs it sees. `runtime` calls these when KERAS_BACKEND is tensorflow and
the matching knobs of the other backends otherwise. TensorFlow is imported inside the functions.
"""

from __future__ import annotations

from typing import Any


def set_tf_threads(intra_op: int = 0, inter_op: int = 0) -> None:
    """Set TensorFlow's thread pools (0 = TF's default); only possible before TF starts working."""
    import tensorflow as tf

    try:
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:
        pass  # TF already initialised in this process (tests, search): keep what it has


def onednn_enabled() -> bool | None:
    """Whether TensorFlow runs its CPU ops on oneDNN here (None where this TF cannot say)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def tf_gpus() -> list[str]:
    """The GPUs TensorFlow sees (it needs the CUDA libraries: `pip install 'ferkaggle[gpu]'`)."""
    import tensorflow as tf

    return [d.name for d in tf.config.list_physical_devices("GPU")]


def tf_info() -> dict[str, Any]:
    """TensorFlow's version, thread pools and oneDNN state, for run.json's runtime."""
    import tensorflow as tf

    return {"tensorflow": tf.__version__,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "onednn": onednn_enabled()}
