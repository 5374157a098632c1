"""ferkaggle: a command-line pipeline for FER2013-style facial-expression competitions."""

import os as _os

__version__ = "0.1.0"

# oneDNN, TensorFlow's optimised CPU kernels for convolutions and matmuls: TF turns it on by itself
# only on CPUs with AVX512-VNNI/BF16 or AMX, and leaves most laptops (AVX2) on its slower Eigen
# kernels. On a 2-core AVX2 box it trained the default space's CNNs 1.1-1.6x faster, float32
# either way (docs/benchmarks.md, "CNN training throughput"): more epochs in the same budget. It
# takes effect only if set before TensorFlow is imported, hence here; the user's own setting
# (TF_ENABLE_ONEDNN_OPTS=0 turns it off) wins, and every run records which kernels it used.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
