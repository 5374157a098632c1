"""This CPU's matrix-multiply and convolution rates through TensorFlow (oneDNN), in float32 and bfloat16:
the denominator of "training images per second as a share of what the cores can do"
(docs/benchmarks.md, "The machine's limit").

Each case is one op in a `tf.function`, run back to back for about `--seconds` after warm-up; the rate
is its FLOPs (one multiply-add = 2) over the median of several timed batches of calls. Cases:

- matmul N x N x N (N = 1024 and 2048): the best case for the matrix units;
- Conv2D 3x3, stride 1, same padding, batch 64, at the shapes the default space's networks run:
  48x48 with 32 -> 32 channels (simple's first blocks), 48x48 16 -> 16 and 24x24 32 -> 32 (lean w16),
  12x12 64 -> 64, 6x6 128 -> 128: small convolutions reach a smaller share of the peak.

    python bench/peak.py --json bench/peak.json

The CPU's flags that decide the fast paths (AVX512F, AVX512_BF16, AMX_BF16 / AMX_TILE) are printed
with the table: boxes of one kind differ, so every figure names its box.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FLAGS_OF_NOTE = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")
CONVS = [  # (label, height = width, c_in, c_out); batch 64, 3x3, stride 1, same padding
    ("conv 48x48 32->32", 48, 32, 32),
    ("conv 48x48 16->16", 48, 16, 16),
    ("conv 24x24 32->32", 24, 32, 32),
    ("conv 12x12 64->64", 12, 64, 64),
    ("conv 6x6 128->128", 6, 128, 128),
]


def matmul_flops(n: int) -> int:
    """FLOPs of an n x n by n x n product."""
    return 2 * n ** 3


def conv_flops(batch: int, size: int, c_in: int, c_out: int, kernel: int = 3) -> int:
    """FLOPs of a stride-1 same-padded Conv2D: every output position of every image, k*k*c_in multiply-adds per
    output channel."""
    return 2 * batch * size * size * c_out * kernel * kernel * c_in


def rate(fn, flops: int, seconds: float) -> float:
    """FLOP/s of `fn()` (which returns a tensor): warm-up, then the median over timed batches of calls."""
    fn().numpy()
    t0 = time.perf_counter()
    fn().numpy()
    once = max(time.perf_counter() - t0, 1e-6)
    calls = max(1, int(seconds / 5 / once))
    rates = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            out = fn()
        out.numpy()
        rates.append(flops * calls / (time.perf_counter() - t0))
    return statistics.median(rates)


def measure(seconds: float, sizes: tuple[int, ...], batch: int) -> list[dict]:
    import tensorflow as tf

    rows = []
    for dtype in ("float32", "bfloat16"):
        dt = tf.as_dtype(dtype)
        for n in sizes:
            a = tf.random.normal((n, n), dtype=tf.float32)
            a, b = tf.cast(a, dt), tf.cast(tf.transpose(a), dt)
            f = tf.function(lambda a=a, b=b: tf.matmul(a, b))
            rows.append({"case": f"matmul {n}", "dtype": dtype, "flops": matmul_flops(n),
                         "flops_per_s": rate(f, matmul_flops(n), seconds)})
        for label, size, c_in, c_out in CONVS:
            x = tf.cast(tf.random.normal((batch, size, size, c_in)), dt)
            w = tf.cast(tf.random.normal((3, 3, c_in, c_out)) * 0.1, dt)
            f = tf.function(lambda x=x, w=w: tf.nn.conv2d(x, w, strides=1, padding="SAME"))
            flops = conv_flops(batch, size, c_in, c_out)
            rows.append({"case": label, "dtype": dtype, "flops": flops, "flops_per_s": rate(f, flops, seconds)})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds per case")
    ap.add_argument("--sizes", default="1024,2048", help="matmul sizes")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--json", default="", help="write the rows and the machine here")
    args = ap.parse_args(argv)
    from ferkaggle.cnn.runtime import cpu_flags, cpu_model

    flags = sorted(f for f in cpu_flags() if f in FLAGS_OF_NOTE)
    import tensorflow as tf

    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "flags": flags, "tensorflow": tf.__version__,
               "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "TensorFlow's default")}
    rows = measure(args.seconds, tuple(int(s) for s in args.sizes.split(",")), args.batch)
    print(f"{machine['cpu']}, {machine['cores']} cores, flags: {' '.join(flags) or 'none of note'}; "
          f"TensorFlow {machine['tensorflow']}")
    print(f"{'case':24s} {'float32 GFLOP/s':>16s} {'bfloat16 GFLOP/s':>17s} {'bf16 / f32':>11s}")
    for case in dict.fromkeys(r["case"] for r in rows):
        f32, bf16 = (next(r["flops_per_s"] for r in rows if r["case"] == case and r["dtype"] == d)
                     for d in ("float32", "bfloat16"))
        print(f"{case:24s} {f32 / 1e9:16.1f} {bf16 / 1e9:17.1f} {bf16 / f32:11.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
