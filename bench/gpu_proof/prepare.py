"""Prepare the GPU proof's carried folder HERE (a machine that reaches PyPI); `run.py` runs it THERE.

The lent GPU machine (docs/benchmarks.md, "The GPU proof") has Python 3.12, PyTorch and JAX with CUDA,
no TensorFlow and no package registry, and takes at most 64 MiB of files per call, the repository
included. This script writes, under one folder (default .carry/gpu-proof/, ignored by git):

- wheels/: ferkaggle's own wheel (built from this checkout) and the wheels of its runtime dependencies
  that the machine lacks (DEVICE_MISSING: Keras and its namex/optree, Optuna and its SQLAlchemy /
  Alembic / Mako / colorlog, optuna-integration, isal), for CPython DEVICE_PYTHON on manylinux x86-64;
  TensorFlow is not among them: the proof trains on JAX (or PyTorch).
- fer2013.npz: a compact copy of a prepared FER2013 folder: every labelled face (uint8, stored as
  row-wise differences mod 256, which zlib packs about a fifth smaller than the faces themselves), labels,
  folds, duplicate groups and manifest, and the first TEST_ROWS test faces only (the proof scores the
  holdout; the test set is not needed).
- sizes.json: each file's bytes, the repository's tracked bytes (they travel too) and the total,
  which must stay under the limit (exit 1 otherwise, naming what is largest).

Usage (from the repository root, after `ferkaggle prepare --source <FER2013 from Kaggle>`):
    python bench/gpu_proof/prepare.py --prepared data/prepared/LATEST
Then on the device: `python3 bench/gpu_proof/run.py --carry .carry/gpu-proof` (carry: [".carry/gpu-proof"]).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np

DEVICE_PYTHON = "3.12"   # the lent machine's python3 (KINDS.md: Python 3.12.3)
LIMIT_MIB = 64           # what one device call may carry, repository included
TEST_ROWS = 512
DEVICE_MISSING = ["keras", "namex", "optree", "optuna", "optuna-integration", "sqlalchemy", "alembic", "mako",
                  "colorlog", "isal"]
"""ferkaggle's runtime dependencies (and theirs) that the device's image does not hold (KINDS.md's list);
numpy, pandas, scikit-learn, scikit-image, typer, rich, pillow, matplotlib, opencv, h5py, ml-dtypes,
absl-py, PyYAML, tqdm and packaging are there already."""
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64", "manylinux_2_34_x86_64", "manylinux_2_31_x86_64"]


def local_version(name: str) -> str:
    """The version installed here, so the device runs what this machine tested."""
    from importlib.metadata import version

    return version(name)


def download_wheels(names: list[str], dest: Path, python_version: str = DEVICE_PYTHON) -> None:
    """Binary wheels for the device's CPython and platform, one version each (this machine's), no dependencies."""
    pins = [f"{name}=={local_version(name)}" for name in names]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
           python_version, "--implementation", "cp", "-d", str(dest), "-q"]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run(cmd + pins, check=True)


def build_own_wheel(repo: Path, dest: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dest),
                    str(repo)], check=True)


def row_deltas(x: np.ndarray) -> np.ndarray:
    """Each face's pixels as differences from the pixel to their left (mod 256; the first column as is)."""
    x = np.asarray(x, np.uint8)
    return np.diff(x, axis=-1, prepend=np.zeros(x.shape[:-1] + (1,), np.uint8)).astype(np.uint8)


def undo_row_deltas(d: np.ndarray) -> np.ndarray:
    """The faces back from `row_deltas` (a running sum mod 256)."""
    return np.cumsum(np.asarray(d, np.uint8), axis=-1, dtype=np.uint8)


def write_compact_data(prepared: Path, out: Path, test_rows: int = TEST_ROWS) -> None:
    """fer2013.npz: the prepared folder's arrays (x as row deltas) and its manifest, test faces cut to test_rows."""
    arrays = {name: np.load(prepared / f"{name}.npy", allow_pickle=False)
              for name in ("x", "y", "fold", "x_test", "test_ids", "groups") if (prepared / f"{name}.npy").is_file()}
    manifest = json.loads((prepared / "manifest.json").read_text())
    np.savez_compressed(out, x_deltas=row_deltas(arrays.pop("x")),
                        x_test=arrays.pop("x_test")[:test_rows], test_ids=arrays.pop("test_ids")[:test_rows],
                        manifest=np.frombuffer(json.dumps(manifest).encode(), np.uint8), **arrays)


def tracked_bytes(repo: Path) -> int:
    """The bytes of the repository's tracked files: they travel with every device call."""
    names = subprocess.run(["git", "-C", str(repo), "ls-files", "-z"], check=True, capture_output=True).stdout
    return sum((repo / n).stat().st_size for n in names.decode().split("\0") if n and (repo / n).is_file())


def size_report(folder: Path, repo_bytes: int, limit_mib: float = LIMIT_MIB) -> dict:
    """Every file's bytes under folder, the repository's, the total and whether it fits limit_mib."""
    files = {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != "sizes.json"}
    total = sum(files.values()) + repo_bytes
    return {"files": files, "repository_bytes": repo_bytes, "total_bytes": total,
            "limit_bytes": int(limit_mib * 2**20), "fits": total <= limit_mib * 2**20}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepared", required=True, type=Path, help="a `ferkaggle prepare` folder (or its LATEST)")
    parser.add_argument("--out", type=Path, default=Path(".carry/gpu-proof"))
    parser.add_argument("--repo", type=Path, default=Path("."))
    parser.add_argument("--limit-mib", type=float, default=LIMIT_MIB)
    parser.add_argument("--python-version", default=DEVICE_PYTHON, help="the CPython the wheels are for")
    parser.add_argument("--no-download", action="store_true", help="keep the wheels already in OUT/wheels")
    args = parser.parse_args(argv)
    prepared = args.prepared
    if (prepared / "LATEST").is_file():
        prepared = prepared / (prepared / "LATEST").read_text().strip()
    elif prepared.name == "LATEST" and prepared.is_file():
        prepared = prepared.parent / prepared.read_text().strip()
    if not (prepared / "manifest.json").is_file():
        print(f"error: {args.prepared}: not a prepared data folder (no manifest.json)", file=sys.stderr)
        return 1
    wheels = args.out / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    if not args.no_download:
        for old in wheels.glob("*.whl"):
            old.unlink()
        download_wheels(DEVICE_MISSING, wheels, args.python_version)
        build_own_wheel(args.repo, wheels)
    write_compact_data(prepared, args.out / "fer2013.npz")
    report = size_report(args.out, tracked_bytes(args.repo), args.limit_mib)
    (args.out / "sizes.json").write_text(json.dumps(report, indent=2) + "\n")
    mib = report["total_bytes"] / 2**20
    if not report["fits"]:
        largest = max(report["files"], key=report["files"].get)
        print(f"error: {args.out} and the repository come to {mib:.1f} MiB, over the {args.limit_mib:g} MiB a device "
              f"call carries (largest: {largest}, {report['files'][largest] / 2**20:.1f} MiB)", file=sys.stderr)
        return 1
    print(f"{args.out}: {len(report['files'])} files, {mib:.1f} MiB with the repository (limit {args.limit_mib:g} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
