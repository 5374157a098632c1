"""Search throughput: trials finished per hour with 1, 2, ... `ferkaggle search` worker processes.

    ferkaggle demo-data && ferkaggle prepare --source data/demo
    python bench/search_workers.py --data data/prepared/<key> --budget 4m --workers 1 2 \
        --storage postgresql://postgres@127.0.0.1:5432/test

For each worker count: a fresh study of the space (default `quick`), that many worker
processes started together, each with `--budget` and cores/workers TensorFlow threads, each
writing its own runs folder. Output: a Markdown table (trials finished = completed + pruned,
per hour of wall time; epochs trained; how many were pruned) for docs/benchmarks.md. The
studies are deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(workers: int, args, tmp: Path) -> dict:
    import optuna
    from optuna.trial import TrialState

    study = f"bench-{workers}w-{uuid.uuid4().hex[:8]}"
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = []
    t0 = time.time()
    for i in range(workers):
        env = {**os.environ, "FERKAGGLE_RUNS_DIR": str(tmp / f"{study}-runs{i}"), "PYTHONPATH": str(REPO),
               "TF_CPP_MIN_LOG_LEVEL": "3"}
        cmd = [sys.executable, "-m", "ferkaggle", "search", "--data", args.data, "--space", args.space,
               "--storage", args.storage, "--study", study, "--budget", args.budget, "--trials", "10000",
               "--threads", str(threads), "--seed", str(args.seed)]
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=open(tmp / f"{study}-{i}.log", "w"),
                                      stderr=subprocess.STDOUT))
    for p in procs:
        p.wait()
    wall = time.time() - t0
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker failed; see {tmp}/{study}-*.log")
    trials = optuna.load_study(study_name=study, storage=args.storage).get_trials()
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    epochs = sum(int(t.user_attrs.get("epochs", 0)) for t in done)
    optuna.delete_study(study_name=study, storage=args.storage)
    return {"workers": workers, "threads": threads, "wall_s": wall, "finished": len(done),
            "pruned": sum(t.state == TrialState.PRUNED for t in done), "epochs": epochs,
            "per_hour": len(done) / wall * 3600, "epochs_per_hour": epochs / wall * 3600}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="prepared demo data folder")
    ap.add_argument("--space", default="quick")
    ap.add_argument("--budget", default="4m", help="each worker's budget (keep each measurement under 5 min)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--storage", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for w in args.workers:
            rows.append(measure(w, args, Path(tmp)))
            r = rows[-1]
            print(f"{w} worker(s): {r['finished']} trials ({r['pruned']} pruned, {r['epochs']} epochs) "
                  f"in {r['wall_s']:.0f}s", flush=True)
    print("\n| workers | TF threads each | wall s | trials finished | of which pruned | epochs | trials / hour | epochs / hour |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['threads']} | {r['wall_s']:.0f} | {r['finished']} | {r['pruned']} | {r['epochs']} "
              f"| {r['per_hour']:.0f} | {r['epochs_per_hour']:.0f} |")


if __name__ == "__main__":
    main()
