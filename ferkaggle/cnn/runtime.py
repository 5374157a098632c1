"""The TensorFlow runtime a CNN trains in: thread pools, oneDNN, devices, freeing memory between
fits, and the compute dtype (Keras dtype policy) a model trains in.

`configure_threads` sets TensorFlow's thread pools before it starts working; `runtime_info` reports
versions, threads, devices, oneDNN and the resolved precision (run.json's "runtime", so a run says
what it actually trained in); `release_memory` drops Keras' graph state between fits.
`resolve_precision` turns a config's `precision` (`Precision`) into a policy; "auto" is the fast
one for this machine:

- a GPU that TensorFlow sees -> `mixed_float16`: float16 tensor cores on every CUDA GPU since
  Volta (T4, V100, A100, H100), which Kaggle's and Colab's GPUs all are; Keras adds dynamic
  loss scaling itself when the model's policy is mixed_float16 (`Model.compile`);
- a CPU with bfloat16 instructions (AVX512_BF16 or AMX-BF16, listed in /proc/cpuinfo) ->
  `mixed_bfloat16`: oneDNN runs convolutions and matmuls in bfloat16, twice the images per
  second on the development box (docs/benchmarks.md, "CNN training throughput");
- any other CPU -> `float32`: without those instructions bfloat16 has no fast path.

The classifier's softmax stays float32 under every policy (models.py). TensorFlow is imported
inside the functions.
"""

from __future__ import annotations

import gc
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

Precision = Literal["float32", "mixed_bfloat16", "mixed_float16", "auto"]
"""A config's `precision`: a Keras dtype policy, or "auto" for the fast one on this machine (checked
when the config is read, by `ferkaggle.core.presets.from_dict`)."""
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags of the first processor in /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@lru_cache(maxsize=1)
def _machine() -> tuple[bool, bool]:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU")), bool(cpu_flags() & BF16_FLAGS)


def gpu_visible() -> bool:
    """Whether TensorFlow sees a GPU here (it needs the CUDA libraries: `pip install 'ferkaggle[gpu]'`,
    which `make install` does where `nvidia-smi` is on the PATH)."""
    return _machine()[0]


def resolve_precision(name: Precision, *, gpu: bool | None = None, cpu_bf16: bool | None = None) -> str:
    """The Keras dtype policy for a config's `precision`; "auto" chooses by the machine (or by the
    `gpu` / `cpu_bf16` facts given)."""
    if name != "auto":
        return name
    if gpu is None or cpu_bf16 is None:
        seen_gpu, seen_bf16 = _machine()
        gpu = seen_gpu if gpu is None else gpu
        cpu_bf16 = seen_bf16 if cpu_bf16 is None else cpu_bf16
    if gpu:
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_bf16 else "float32"


def configure_threads(intra_op: int = 0, inter_op: int = 0) -> dict[str, Any]:
    """Set TensorFlow's thread pools (0 = TF's default); only possible before TF starts working."""
    import tensorflow as tf

    try:
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:
        pass  # TF already initialised in this process (tests, search): keep what it has
    return runtime_info()


def onednn_enabled() -> bool | None:
    """Whether TensorFlow runs its CPU ops on oneDNN here (None where this TF cannot say)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def runtime_info(precision: Precision | None = None) -> dict[str, Any]:
    """TensorFlow's versions, threads and devices, and what a config's `precision` resolves to here."""
    import keras
    import tensorflow as tf

    info = {
        "tensorflow": tf.__version__, "keras": keras.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "cpus": os.cpu_count(), "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "onednn": onednn_enabled(),
    }
    if precision is not None:
        info["precision"] = resolve_precision(precision)
    return info


def release_memory() -> None:
    """Keep memory flat across trials: drop Keras' graph state and collect."""
    import keras

    keras.backend.clear_session()
    gc.collect()
