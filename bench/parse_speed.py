"""Parsing speed of `ferkaggle prepare`'s reader against the notebooks' way, side by side.

Both go end to end from FER2013's train.csv.gz + test.csv.gz to uint8 [N,48,48] arrays:

  notebook:  df = pd.read_csv(path); np.array([np.array([int(p) for p in s.split()]).reshape(48,48)
             for s in df.pixels]).astype(np.uint8)
  ferkaggle: ferkaggle.data.io.read_source(train=..., test=...)   (validates every row too)

Each method runs in its own subprocess so its peak memory (ru_maxrss) is its own. CPU time
is the process's user+sys over all its threads (time.process_time), the figure that holds up
on a busy machine; wall time is what a user waits. Also reported: the reader decoding on one
thread only (FERKAGGLE_DECODE_THREADS=1), with zlib forced, and gzip decompression alone
(zlib and ISA-L), so the share of decompression is visible. Usage:

  nice python bench/parse_speed.py [--data ../shared/fer2013] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

FILES = ("train.csv.gz", "test.csv.gz")


def _notebook(folder: Path):
    import numpy as np
    import pandas as pd

    arrays, split = [], {"read_csv_s": 0.0, "convert_s": 0.0}
    for name in FILES:
        start = time.perf_counter()
        df = pd.read_csv(folder / name)
        middle = time.perf_counter()
        arrays.append(np.array([np.array([int(p) for p in s.split()]).reshape(48, 48) for s in df.pixels]).astype(np.uint8))
        split["read_csv_s"] += middle - start
        split["convert_s"] += time.perf_counter() - middle
    return arrays, split


def _ferkaggle(folder: Path):
    # Imported here, not at the top: each --one process loads only what its method needs, so the
    # peak memory it reports is that method's (the gunzip and notebook rows load no ferkaggle).
    from ferkaggle.data.io import read_source

    data = read_source(train=folder / FILES[0], test=folder / FILES[1])
    return [data.x, data.x_test], {}


def _decompress(folder: Path, engine: str):
    import gzip

    opener = gzip.open
    if engine == "isal":
        from isal import igzip

        opener = igzip.open
    total = 0
    for name in FILES:
        with opener(folder / name, "rb") as stream:
            while block := stream.read(4 << 20):
                total += len(block)
    return [], {"bytes": total}


def run_one(method: str, folder: Path, repeat: int) -> dict:
    """Time one method (best wall time of `repeat` runs) in this process; print JSON."""
    import hashlib

    if method == "ferkaggle-zlib":
        os.environ["FERKAGGLE_GZIP"] = "zlib"
    if method == "ferkaggle-1thread":
        os.environ["FERKAGGLE_DECODE_THREADS"] = "1"
    function = {
        "notebook": _notebook,
        "ferkaggle": _ferkaggle,
        "ferkaggle-zlib": _ferkaggle,
        "ferkaggle-1thread": _ferkaggle,
        "gunzip-zlib": lambda f: _decompress(f, "zlib"),
        "gunzip-isal": lambda f: _decompress(f, "isal"),
    }[method]
    best = None
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        arrays, split = function(folder)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if best is None or wall < best["wall_s"]:
            best = {"wall_s": wall, "cpu_s": cpu, **split}
    best["method"] = method
    best["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    best["digest"] = hashlib.sha256(b"".join(a.tobytes() for a in arrays)).hexdigest()[:16] if arrays else None
    best["rows"] = sum(len(a) for a in arrays)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "fer2013")
    parser.add_argument("--repeat", type=int, default=3, help="runs per fast method (best wall time kept)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.data, args.repeat)))
        return
    if not (args.data / FILES[0]).is_file():
        sys.exit(f"{args.data}/{FILES[0]} not found: pass --data FOLDER holding {' and '.join(FILES)}")
    methods = [("notebook", 1), ("ferkaggle", args.repeat), ("ferkaggle-1thread", args.repeat),
               ("ferkaggle-zlib", args.repeat), ("gunzip-zlib", args.repeat), ("gunzip-isal", args.repeat)]
    results = {}
    load_start = os.getloadavg()
    for method, repeat in methods:
        command = [sys.executable, __file__, "--data", str(args.data), "--repeat", str(repeat), "--one", method]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{method}: failed\n{done.stderr.strip()[-500:]}")
            continue
        results[method] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"load average (1 min) at start {load_start[0]:.2f}, at end {os.getloadavg()[0]:.2f}")
    print(f"{'method':16} {'wall s':>8} {'cpu s':>8} {'peak MiB':>9} {'rows':>7}  digest")
    for method, r in results.items():
        print(f"{method:16} {r['wall_s']:8.2f} {r['cpu_s']:8.2f} {r['peak_rss_mib']:9.0f} {r['rows']:7}  {r['digest'] or '-'}")
    if "notebook" in results:
        n = results["notebook"]
        print(f"notebook parts: pd.read_csv {n['read_csv_s']:.2f} s, int() conversion {n['convert_s']:.2f} s")
        for method in ("ferkaggle", "ferkaggle-1thread", "ferkaggle-zlib"):
            if method in results:
                r = results[method]
                same = "identical arrays" if r["digest"] == n["digest"] else "ARRAYS DIFFER"
                print(f"speed-up {method}: {n['cpu_s'] / r['cpu_s']:.1f}x cpu, {n['wall_s'] / r['wall_s']:.1f}x wall ({same})")
    if "ferkaggle" in results and "gunzip-isal" in results:
        r, g = results["ferkaggle"], results["gunzip-isal"]
        print(f"decompression share of the reader (ISA-L): {g['cpu_s'] / r['cpu_s']:.0%} of its cpu")


if __name__ == "__main__":
    main()
