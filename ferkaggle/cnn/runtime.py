"""The runtime a CNN trains in: the Keras backend (KERAS_BACKEND: tensorflow, the default, jax or
torch), its thread settings and devices, freeing memory between fits, and the compute dtype (Keras
dtype policy) a model trains in.

`selected_backend` says which backend runs; `require_tensorflow` refuses a TensorFlow-only step
(TFLite export) under another one in one line. `configure_threads` sets the backend's CPU threads
with its own knobs before it starts working; `runtime_info` reports the backend and its version,
Keras', threads, devices, oneDNN (TensorFlow) and the resolved precision (run.json's "runtime", so a
run says what it actually trained in); `release_memory` drops Keras' graph state between fits.
TensorFlow's own knobs live in `tf_runtime`.
`resolve_precision` turns a config's `precision` (`Precision`) into a policy; "auto" is the fast
one for this machine:

- a GPU that the backend sees -> `mixed_float16`: float16 tensor cores on every CUDA GPU since
  Volta (T4, V100, A100, H100), which Kaggle's and Colab's GPUs all are; Keras adds dynamic
  loss scaling itself when the model's policy is mixed_float16 (`Model.compile`);
- a CPU with bfloat16 instructions (AVX512_BF16 or AMX-BF16, listed in /proc/cpuinfo) ->
  `mixed_bfloat16`: oneDNN runs convolutions and matmuls in bfloat16, twice the images per
  second on the development box (docs/benchmarks.md, "CNN training throughput");
- any other CPU -> `float32`: without those instructions bfloat16 has no fast path.

The classifier's softmax stays float32 under every policy (models.py). The backends are imported
inside the functions.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import re
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from ferkaggle.cnn.tf_runtime import set_tf_threads, tf_gpus, tf_info
from ferkaggle.core.errors import FerkaggleError

Precision = Literal["float32", "mixed_bfloat16", "mixed_float16", "auto"]
"""A config's `precision`: a Keras dtype policy, or "auto" for the fast one on this machine (checked
when the config is read, by `ferkaggle.core.presets.from_dict`)."""
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
BACKENDS = ("tensorflow", "jax", "torch")
"""The Keras backends ferkaggle trains on (KERAS_BACKEND); tensorflow is Keras' default."""


def _cpuinfo_value(keys: tuple[str, ...], cpuinfo: str | Path) -> str | None:
    """The value of the first line of /proc/cpuinfo whose key is one of `keys` (the first processor's)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in keys:
            return value.strip()
    return None


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags of the first processor in /proc/cpuinfo (empty where there is none)."""
    return frozenset((_cpuinfo_value(("flags", "Features"), cpuinfo) or "").split())


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The first processor's model name in /proc/cpuinfo (the machine type where there is none): the
    name a benchmark figure gives its box."""
    return _cpuinfo_value(("model name",), cpuinfo) or platform.machine() or "unknown"


def selected_backend() -> str:
    """The Keras backend this process runs (or will run, where Keras is not imported yet): Keras'
    own answer once imported, else KERAS_BACKEND, else the backend of Keras' config file, else
    tensorflow, as Keras itself decides on import."""
    if "keras" in sys.modules:
        import keras

        return keras.config.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    config = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "keras.json"
    try:
        return json.loads(config.read_text()).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def check_backend() -> None:
    """Refuse, in one line, a KERAS_BACKEND that Keras does not know or whose package is not installed."""
    backend = selected_backend()
    if backend not in BACKENDS:
        raise FerkaggleError(f"KERAS_BACKEND={backend}: ferkaggle runs on {', '.join(BACKENDS)}")
    if backend_version(backend) is None:
        extra = "" if backend == "tensorflow" else f" (make install BACKEND={backend}, or pip install 'ferkaggle[{backend}]')"
        raise FerkaggleError(f"Keras backend {backend} is selected but {backend} is not installed{extra}")


def tensorflow_backend() -> bool:
    """Whether Keras runs on TensorFlow here (the default): the TensorFlow-only fast paths apply."""
    return selected_backend() == "tensorflow"


def require_tensorflow(what: str) -> None:
    """Refuse a TensorFlow-only step under another backend, in one line."""
    if not tensorflow_backend():
        raise FerkaggleError(f"{what} needs the tensorflow backend (this process runs Keras on "
                             f"{selected_backend()}); run it again with KERAS_BACKEND=tensorflow")


def backend_version(backend: str) -> str | None:
    """The installed version of a backend's package (None where it is not installed)."""
    try:
        return metadata.version(backend)
    except metadata.PackageNotFoundError:
        return None


def gpus() -> list[str]:
    """The GPUs the running backend sees."""
    backend = selected_backend()
    if backend == "tensorflow":
        return tf_gpus()
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform != "cpu"]
    if backend == "torch":
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


@lru_cache(maxsize=1)
def _machine() -> tuple[bool, bool]:
    return bool(gpus()), bool(cpu_flags() & BF16_FLAGS)


def gpu_visible() -> bool:
    """Whether the running backend sees a GPU here (TensorFlow needs the CUDA libraries:
    `pip install 'ferkaggle[gpu]'`, which `make install` does where `nvidia-smi` is on the PATH)."""
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
    """Set the running backend's CPU thread counts (0 = its default), with its own knobs, before it
    starts working: TensorFlow's two thread pools; torch's `set_num_threads` and
    `set_num_interop_threads`; XLA's intra-op thread count for jax (through XLA_FLAGS, read when jax
    starts, so only where jax is not imported yet; jax has no inter-op setting). Returns `runtime_info()`."""
    backend = selected_backend()
    if backend == "tensorflow":
        set_tf_threads(intra_op, inter_op)
    elif backend == "jax" and intra_op and "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        if "intra_op_parallelism_threads" not in flags:
            os.environ["XLA_FLAGS"] = (f"{flags} --xla_cpu_multi_thread_eigen=false "
                                       f"intra_op_parallelism_threads={intra_op}").strip()
    elif backend == "torch":
        import torch

        if intra_op:
            torch.set_num_threads(intra_op)
        if inter_op:
            try:
                torch.set_num_interop_threads(inter_op)
            except RuntimeError:
                pass  # torch already ran parallel work in this process: keep what it has
    return runtime_info()


def _xla_threads() -> int:
    match = re.search(r"intra_op_parallelism_threads=(\d+)", os.environ.get("XLA_FLAGS", ""))
    return int(match.group(1)) if match else 0


def runtime_info(precision: Precision | None = None) -> dict[str, Any]:
    """The backend and its version, Keras', the thread counts (0 = the backend's default; None where
    the backend has no such setting), devices, oneDNN (TensorFlow only) and what a config's
    `precision` resolves to here: run.json's "runtime"."""
    import keras

    backend = keras.config.backend()
    info: dict[str, Any] = {"backend": backend, "backend_version": backend_version(backend),
                            "keras": keras.__version__, "cpus": os.cpu_count(), "gpus": gpus()}
    if backend == "tensorflow":
        info.update(tf_info())
    elif backend == "jax":
        info.update(intra_op_threads=_xla_threads(), inter_op_threads=None)
    elif backend == "torch":
        import torch

        info.update(intra_op_threads=torch.get_num_threads(), inter_op_threads=torch.get_num_interop_threads())
    if precision is not None:
        info["precision"] = resolve_precision(precision)
    return info


def describe_runtime(info: dict[str, Any]) -> str:
    """One line for `train` / `search`: "jax 0.10.2 (Keras 3.15.1), default threads" and the like."""
    threads = info.get("intra_op_threads")
    line = (f"{info['backend']} {info.get('backend_version') or '?'} (Keras {info['keras']}), "
            f"{threads or 'default'} threads")
    if info.get("gpus"):
        line += f", GPU {', '.join(info['gpus'])}"
    return line + (", oneDNN" if info.get("onednn") else "")


def release_memory() -> None:
    """Keep memory flat across trials: drop Keras' graph state and collect."""
    import keras

    keras.backend.clear_session()
    gc.collect()
