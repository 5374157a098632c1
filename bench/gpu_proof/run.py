"""The GPU proof, run ON THE LENT GPU MACHINE (stdlib only until the wheels are installed).

Carried folder: what `prepare.py` wrote here (wheels/, fer2013.npz, sizes.json). Steps, each logged:
1. install the carried wheels offline into a private folder (`pip install --no-index --no-deps --target`;
   the image's numpy, pandas, scikit-learn ... are used as they are; no TensorFlow anywhere);
2. rebuild the prepared FER2013 folder from fer2013.npz (through ferkaggle's own `write_prepared`);
3. record the device (nvidia-smi, the backend's devices, versions);
4. `ferkaggle search --space gpu --budget <budget>` with KERAS_BACKEND=<backend> from a work folder
   outside the checkout (so the installed wheel and its own presets run, not the checkout);
5. summary.json in --out: per run, holdout accuracy, epochs, train seconds, images/s, minutes, and the
   training FLOPs per image (bench/flops.py) as a share of the H200's dense bf16 peak.

Usage there:  python3 bench/gpu_proof/run.py --carry .carry/gpu-proof --out "$OUT" [--backend jax] [--budget 6m]
`--dry-run` prints the commands without running them (tested here: tests/bench/test_gpu_proof.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BACKENDS = ("jax", "torch", "tensorflow")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Run the GPU search space on the carried FER2013 and report.")
    p.add_argument("--carry", type=Path, default=Path(".carry/gpu-proof"), help="the folder prepare.py wrote")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-proof-out")))
    p.add_argument("--backend", choices=BACKENDS, default="jax")
    p.add_argument("--budget", default="6m", help="the search's wall-time budget (ferkaggle's 90s / 6m / 1h)")
    p.add_argument("--space", default="gpu")
    p.add_argument("--work", type=Path, default=Path("/tmp/gpu-proof"), help="scratch folder (site, data, runs)")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--dry-run", action="store_true", help="print the steps' commands, run nothing")
    args = p.parse_args(argv)
    if not args.dry_run and not (args.carry / "fer2013.npz").is_file():
        p.error(f"{args.carry}: no fer2013.npz; run bench/gpu_proof/prepare.py on a machine with PyPI first")
    return args


def plan(args: argparse.Namespace) -> dict:
    """The commands and environment of the steps (what --dry-run prints)."""
    site = args.work / "site"
    env = {"KERAS_BACKEND": args.backend, "PYTHONPATH": str(site), "FERKAGGLE_RUNS_DIR": str(args.work / "runs"),
           "PYTHONUNBUFFERED": "1", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    wheels = sorted(str(w) for w in (args.carry / "wheels").glob("*.whl"))
    return {
        "env": env,
        "install": [args.python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", str(site), *wheels],
        "search": [args.python, "-m", "ferkaggle", "search", "--space", args.space, "--budget", args.budget,
                   "--data", str(args.work / "prepared" / "fer2013")],
    }


def rebuild_prepared(carry: Path, work: Path) -> Path:
    """The prepared folder from fer2013.npz (faces back from their row deltas), written by ferkaggle itself."""
    import numpy as np
    sys.path.insert(0, str(REPO / "bench" / "gpu_proof"))
    from prepare import undo_row_deltas

    from ferkaggle.data.prepared import write_prepared

    z = np.load(carry / "fer2013.npz", allow_pickle=False)
    manifest = json.loads(z["manifest"].tobytes().decode())
    manifest["note"] = "gpu proof: rebuilt from a compact copy (test faces cut to the first rows)"
    write_prepared(work / "prepared", "fer2013", x=undo_row_deltas(z["x_deltas"]), y=z["y"], fold=z["fold"],
                   x_test=z["x_test"], test_ids=z["test_ids"], y_test=None, manifest=manifest,
                   groups=z["groups"] if "groups" in z.files else None)
    return work / "prepared" / "fer2013"


def device_facts(python: str, env: dict) -> dict:
    """nvidia-smi's view and the backend's devices and versions."""
    facts: dict = {}
    smi = shutil.which("nvidia-smi")
    if smi:
        q = "name,memory.total,driver_version,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu"
        facts["nvidia_smi"] = subprocess.run([smi, f"--query-gpu={q}", "--format=csv"], capture_output=True,
                                             text=True).stdout.strip()
    probe = ("import json, keras, platform; from keras import backend as b; "
             "d = {'keras': keras.__version__, 'backend': b.backend(), 'python': platform.python_version()}\n"
             "if b.backend() == 'jax':\n import jax; d.update(jax=jax.__version__, devices=[str(x) for x in jax.devices()])\n"
             "if b.backend() == 'torch':\n import torch; d.update(torch=torch.__version__, cuda=torch.cuda.is_available(),"
             " devices=[torch.cuda.get_device_name(0)] if torch.cuda.is_available() else [])\n"
             "print(json.dumps(d))")
    r = subprocess.run([python, "-c", probe], capture_output=True, text=True, env={**os.environ, **env})
    facts["backend"] = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else r.stderr[-2000:]
    return facts


def summarize_runs(runs: Path, train_rows: int, flops: dict) -> list[dict]:
    """One row per run folder: name, holdout accuracy, epochs, train seconds, images/s, minutes, FLOPs share."""
    rows = []
    for run_json in sorted(runs.glob("*/run.json")):
        info = json.loads(run_json.read_text())
        metrics_path = run_json.parent / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        epochs, seconds = metrics.get("epochs"), metrics.get("train_seconds")
        name = info.get("name", run_json.parent.name)
        row = {"run": run_json.parent.name, "name": name, "status": info.get("status"),
               "holdout_accuracy": metrics.get("val_accuracy"), "epochs": epochs, "train_seconds": seconds,
               "minutes": round(seconds / 60, 2) if seconds else None, "runtime": info.get("runtime")}
        if epochs and seconds:
            row["images_per_second"] = round(epochs * train_rows / seconds, 1)
            per_image = flops.get(name)
            if per_image:
                row["train_flops_per_image"] = per_image
                row["share_of_bf16_peak"] = row["images_per_second"] * per_image / H200_BF16_DENSE_PEAK
        rows.append(row)
    return rows


H200_BF16_DENSE_PEAK = 989e12  # FLOP/s, dense bf16 (the H100/H200 SXM datasheet; H200.md); ~790 measured here


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    steps = plan(args)
    if args.dry_run:
        print(json.dumps({k: v for k, v in steps.items()}, indent=2, default=str))
        return 0
    t0 = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "proof.log", "w")

    def say(text: str) -> None:
        print(text, flush=True)
        log.write(text + "\n")
        log.flush()

    env = {**os.environ, **steps["env"]}
    subprocess.run(steps["install"], check=True)
    say(f"installed {len(list((args.carry / 'wheels').glob('*.whl')))} wheels into {args.work / 'site'} ({time.time() - t0:.0f}s)")
    sys.path.insert(0, str(args.work / "site"))
    os.environ.update(steps["env"])
    data = rebuild_prepared(args.carry, args.work)
    say(f"prepared {data} ({time.time() - t0:.0f}s)")
    facts = device_facts(args.python, steps["env"])
    say(json.dumps(facts))
    t1 = time.time()
    with open(args.out / "search.log", "w") as search_log:
        rc = subprocess.run(steps["search"], cwd=args.work, env=env, stdout=search_log, stderr=subprocess.STDOUT).returncode
    say(f"search exited {rc} after {(time.time() - t1) / 60:.1f} min")
    flops = {}
    try:
        sys.path.insert(0, str(REPO / "bench"))
        from flops import space_train_flops

        flops = space_train_flops(args.space)
    except Exception as exc:  # the proof's figures come back even if counting fails
        say(f"FLOPs not counted: {type(exc).__name__}: {exc}")
    manifest = json.loads((data / "manifest.json").read_text())
    train_rows = int(manifest["shapes"]["train"] * 0.9)  # the stop split keeps 10% of the training rows aside
    rows = summarize_runs(args.work / "runs", train_rows, flops)
    summary = {"backend": args.backend, "budget": args.budget, "space": args.space, "search_rc": rc,
               "device": facts, "fit_rows_per_epoch": train_rows, "bf16_dense_peak_flops": H200_BF16_DENSE_PEAK,
               "train_flops_per_image": flops,
               "total_minutes": round((time.time() - t0) / 60, 2), "runs": rows}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for r in rows:
        say(f"{r['name']:<28} {r['status']!s:<10} holdout {r['holdout_accuracy']!s:<8.6} epochs {r['epochs']!s:<4} "
            f"{r['minutes']!s:<6} min  {r.get('images_per_second', '-')} img/s  "
            f"{100 * r['share_of_bf16_peak']:.1f}% of bf16 peak" if r.get("share_of_bf16_peak") else
            f"{r['name']:<28} {r['status']!s:<10} holdout {r['holdout_accuracy']} epochs {r['epochs']}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
