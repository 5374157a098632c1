"""CNN training throughput (images/s) on this machine, side by side in one run.

Compares the notebooks' pipeline (the `simple` CNN fed batch by batch from a Python
generator that augments image by image with scipy, as Keras' ImageDataGenerator did)
with ferkaggle's (tf.data over in-memory uint8, batched fused augmentation in a parallel
`map`, prefetch; each row also times the input stream alone) for each architecture preset,
batch sizes, XLA (jit_compile), bfloat16 mixed precision, TensorFlow thread settings, and oneDNN on or off (each thread or oneDNN setting in its own
process, since TF fixes both at start-up).

    python bench/train_speed.py --data data/prepared/<key> --steps 30 --json bench/train_speed.json
    python bench/train_speed.py --data data/prepared/<key> --steps 60 --onednn-rounds 3   # oneDNN off vs on
    python bench/train_speed.py --data data/prepared/<key> --steps 30 --backends tensorflow,jax   # per Keras backend

Inputs: a prepared data folder (its training rows). Output: a table on stdout (and JSON).
Figures go to docs/benchmarks.md, "CNN training throughput".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

from ferkaggle.cnn.config import load_train_config, override
from ferkaggle.cnn.dataset import make_dataset
from ferkaggle.cnn.fit import build_compiled
from ferkaggle.cnn.pace import step_clock
from ferkaggle.cnn.runtime import configure_threads
from ferkaggle.data.prepared import load_prepared

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore")

VARIANTS = [
    # (label, preset, overrides, pipeline)
    ("simple, notebook pipeline (scipy per image)", "simple", {}, "python"),
    ("simple, tf.data", "simple", {}, "tfdata"),
    ("simple, tf.data, batch 128", "simple", {"batch_size": 128}, "tfdata"),
    ("simple, tf.data, bf16", "simple", {"precision": "mixed_bfloat16"}, "tfdata"),
    ("lean-w16 (vgg 16..128)", "lean", {"model": {"width": 16}}, "tfdata"),
    ("lean (vgg 24..192)", "lean", {}, "tfdata"),
    ("lean (vgg 24..192), bf16", "lean", {"precision": "mixed_bfloat16"}, "tfdata"),
    ("lean-w24-sep", "lean", {"model": {"separable": True}}, "tfdata"),
    ("resnet-w16", "resnet", {}, "tfdata"),
    ("vgg (32..256)", "vgg", {}, "tfdata"),
    ("mlp", "mlp", {}, "tfdata"),
    ("simple, float32", "simple", {"precision": "float32"}, "tfdata"),  # 11: the backends' comparison without bf16
    # 12-19: the default space's two networks as its trials train them (precision auto), against batch size
    # (the step's work grows with it; the learning rate does not change throughput) and XLA (jit_compile,
    # which Keras leaves off on a CPU)
    ("simple, auto", "simple", {"precision": "auto"}, "tfdata"),
    ("simple, auto, batch 128", "simple", {"precision": "auto", "batch_size": 128}, "tfdata"),
    ("simple, auto, XLA", "simple", {"precision": "auto", "jit_compile": True}, "tfdata"),
    ("lean-w16, auto", "lean", {"precision": "auto", "model": {"width": 16}}, "tfdata"),
    ("lean-w16, auto, batch 128", "lean", {"precision": "auto", "model": {"width": 16}, "batch_size": 128}, "tfdata"),
    ("lean-w16, auto, batch 256", "lean", {"precision": "auto", "model": {"width": 16}, "batch_size": 256}, "tfdata"),
    ("lean-w16, auto, XLA", "lean", {"precision": "auto", "model": {"width": 16}, "jit_compile": True}, "tfdata"),
    ("lean-w16, float32, XLA", "lean", {"precision": "float32", "model": {"width": 16}, "jit_compile": True}, "tfdata"),
]


def python_generator(x, y, batch_size, seed=0):
    """The notebooks' way: per-image rotation/shift/zoom/flip in NumPy/SciPy, one batch at a time."""
    import numpy as np
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    n = len(x)
    while True:
        idx = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            batch = np.empty((batch_size, 48, 48, 1), np.float32)
            for j, i in enumerate(idx[start:start + batch_size]):
                img = x[i].astype(np.float32)
                theta = np.deg2rad(rng.uniform(-10, 10))
                zoom = rng.uniform(0.9, 1.1)
                shift = rng.uniform(-4.8, 4.8, size=2)
                c, s = np.cos(theta) / zoom, np.sin(theta) / zoom
                matrix = np.array([[c, -s], [s, c]])
                centre = np.array([23.5, 23.5])
                offset = centre - matrix @ centre - shift
                img = ndimage.affine_transform(img, matrix, offset=offset, order=1, mode="nearest")
                if rng.random() < 0.5:
                    img = img[:, ::-1]
                batch[j, :, :, 0] = img
            yield batch, np.eye(7, dtype=np.float32)[y[idx[start:start + batch_size]]]


def measure(x, y, preset, changes, pipeline, steps):
    import keras

    changes = dict(changes)
    jit = changes.pop("jit_compile", False)
    cfg = override(load_train_config(preset), changes)
    model = build_compiled(cfg)
    if jit:  # the same compile with XLA on: Keras' "auto" leaves it off on a CPU
        model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"], jit_compile=True)
    bs = cfg.batch_size
    source = python_generator(x, y, bs) if pipeline == "python" else make_dataset(x, y, cfg, training=True)
    model.fit(source, steps_per_epoch=3, epochs=1, verbose=0)  # trace + warm-up
    clock = step_clock()
    t0 = time.perf_counter()
    model.fit(source, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[clock])
    call_s = time.perf_counter() - t0
    params = model.count_params()
    del model
    keras.backend.clear_session()
    # The rate is the steps' own (clock.step_seconds: first batch end to last). What a fit call costs before
    # its first batch and after its last is paid once per training run, not per step, so it is reported
    # apart: the first batch (first_batch_s) and the whole call's rate (call_images_per_s).
    row = {"images_per_s": bs / clock.step_seconds(), "first_batch_s": clock.ends[0] - t0,
           "call_images_per_s": steps * bs / call_s, "params": params, "batch_size": bs, "jit_compile": bool(jit)}
    if pipeline != "python":  # the input stream alone, no model: how far it is from starving the step
        stream = iter(source)
        next(stream)
        t0 = time.perf_counter()
        for _ in range(steps):
            next(stream)
        row["stream_images_per_s"] = steps * bs / (time.perf_counter() - t0)
    return row


def run_all(args) -> list[dict]:
    threads = configure_threads(args.intra, args.inter)
    prepared = load_prepared(args.data, mmap=True)
    x, y = prepared.x_train[:8192], prepared.y_train[:8192].astype("int64")
    only = set(args.only.split(",")) if args.only else None
    rows = []
    for i, (label, preset, changes, pipeline) in enumerate(VARIANTS):
        if only is not None and str(i) not in only:
            continue
        r = measure(x, y, preset, changes, pipeline, args.steps)
        r.update(label=label, intra=threads["intra_op_threads"], inter=threads["inter_op_threads"],
                 onednn=threads.get("onednn"), backend=threads["backend"])
        print(row_line(r), flush=True)
        rows.append(r)
    return rows


def row_line(r: dict) -> str:
    return (f"{r.get('backend', 'tensorflow'):10s} {r['label']:45s} intra {r['intra']} inter {r['inter']} oneDNN {r['onednn']!s:5s} params {r['params']:>9,d}  "
            f"{r['images_per_s']:7.0f} img/s  ({25838 / r['images_per_s']:5.0f} s per FER2013 epoch)"
            + (f"  first batch {r['first_batch_s']:5.2f} s, whole call {r['call_images_per_s']:6.0f} img/s"
               if "first_batch_s" in r else "")
            + (f"  input stream alone {r['stream_images_per_s']:6.0f} img/s" if "stream_images_per_s" in r else ""))


def child_rows(args, only: str, extra: list[str] | None = None, env: dict | None = None) -> list[dict]:
    """The rows of this script run in a fresh process (TensorFlow fixes its threads and oneDNN at start-up)."""
    cmd = [sys.executable, __file__, "--steps", str(args.steps), "--only", only, "--json", "/dev/stdout", *(extra or [])]
    cmd += ["--data", args.data] if args.data else []
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out[out.index("["):])


def threads_matrix(args) -> list[dict]:
    """Variants 1 and 5 under other intra/inter-op thread settings, one fresh process each."""
    rows = []
    for intra, inter in ((1, 1), (2, 1), (2, 2), (4, 2)):
        for r in child_rows(args, "1,5", ["--intra", str(intra), "--inter", str(inter)]):
            print(row_line(r), flush=True)
            rows.append(r)
    return rows


def onednn_matrix(args) -> list[dict]:
    """oneDNN off (TensorFlow's default on AVX2 CPUs) against on (ferkaggle's default), one fresh process
    per setting, alternating so that both see the same drift of a shared box; medians over the rounds."""
    import statistics

    rows = []
    for rnd in range(1, args.onednn_rounds + 1):
        for setting in ("0", "1"):
            for r in child_rows(args, "1,4,7", env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": setting}):
                r["round"] = rnd
                rows.append(r)
                print(f"round {rnd}  {r['label']:30s} oneDNN {r['onednn']!s:5s} {r['images_per_s']:7.0f} img/s", flush=True)
    print("\nmedian images/s (s per FER2013 epoch):")
    for label in dict.fromkeys(r["label"] for r in rows):
        med = {on: statistics.median(r["images_per_s"] for r in rows if r["label"] == label and r["onednn"] is on)
               for on in (False, True)}
        print(f"{label:30s} off {med[False]:6.0f} ({25838 / med[False]:4.0f} s)   on {med[True]:6.0f} "
              f"({25838 / med[True]:4.0f} s)   x{med[True] / med[False]:.2f}")
    return rows


def backends_matrix(args) -> list[dict]:
    """The --only variants (default: 1, the simple CNN with ferkaggle's pipeline) on each Keras backend,
    one fresh process per backend and round (a process has one backend), alternating backends so that
    all see the same drift of a shared box; medians over the rounds. On a backend other than
    tensorflow the pipeline is the portable NumPy feeder (`cnn.dataset`), not tf.data."""
    import statistics

    rows = []
    for rnd in range(1, args.backend_rounds + 1):
        for backend in args.backends.split(","):
            for r in child_rows(args, args.only or "1", env={**os.environ, "KERAS_BACKEND": backend}):
                r["round"] = rnd
                rows.append(r)
                print(f"round {rnd}  " + row_line(r), flush=True)
    print("\nmedian images/s (min..max over the rounds):")
    for key in dict.fromkeys((r["backend"], r["label"]) for r in rows):
        values = [r["images_per_s"] for r in rows if (r["backend"], r["label"]) == key]
        print(f"{key[0]:10s} {key[1]:45s} {statistics.median(values):6.0f}  ({min(values):.0f}..{max(values):.0f})")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="prepared data folder or key (default: latest)")
    ap.add_argument("--steps", type=int, default=30, help="timed training steps per variant (at least 2)")
    ap.add_argument("--intra", type=int, default=0, help="intra-op threads (0 = TF default)")
    ap.add_argument("--inter", type=int, default=0, help="inter-op threads (0 = TF default)")
    ap.add_argument("--only", default="", help="comma-separated variant numbers")
    ap.add_argument("--threads-matrix", action="store_true", help="also time variants 1 and 5 under other thread settings")
    ap.add_argument("--onednn-rounds", type=int, default=0,
                    help="instead: time variants 1, 4, 7 with oneDNN off and on, alternating, this many rounds")
    ap.add_argument("--backends", default="", help="instead: the --only variants on each of these Keras backends "
                    "(comma-separated, e.g. tensorflow,jax,torch), one process each, alternating")
    ap.add_argument("--backend-rounds", type=int, default=3, help="rounds of --backends")
    ap.add_argument("--json", default="", help="write the rows here")
    args = ap.parse_args()
    if args.backends:
        rows = backends_matrix(args)
    elif args.onednn_rounds:
        rows = onednn_matrix(args)
    else:
        rows = run_all(args) + (threads_matrix(args) if args.threads_matrix else [])
    if args.json:
        text = json.dumps(rows, indent=1)
        if args.json == "/dev/stdout":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text)


if __name__ == "__main__":
    main()
