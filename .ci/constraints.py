"""Write constraints.txt: the exact versions, in this environment, of every package ferkaggle needs.

The packages are ferkaggle's requirements in pyproject.toml (its dependencies and every extra)
and, recursively, theirs, as far as they are installed here; ferkaggle itself and pip are left
out. `make install` and CI install with these pins, the versions the benchmarks were measured
with. Run it with the interpreter of the environment to pin, from the repository root:

    .venv/bin/python .ci/constraints.py > constraints.txt
"""

from __future__ import annotations

import platform
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def needed(requirements: list[Requirement]) -> dict[str, str]:
    """Installed distributions reachable from `requirements` (normalised name -> version)."""
    found: dict[str, str] = {}
    todo = [(r, set(r.extras)) for r in requirements]
    seen: set[tuple[str, frozenset]] = set()
    while todo:
        req, extras = todo.pop()
        key = (canonicalize_name(req.name), frozenset(extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue  # an extra not installed here (gpu, mtcnn, ...): nothing to pin
        found[canonicalize_name(req.name)] = dist.version
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras or {""}):
                todo.append((sub, set(sub.extras)))
    return found


# Pins for extras that are not installed in the pinning environment. torch: the CPU build of 2.13.0
# is the one a plain `pip install torch` on this machine kind does not fetch (it would take a CUDA
# build of several GB); `make install BACKEND=torch` takes this one.
NOT_INSTALLED_PINS = {"torch": "2.13.0"}


def main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    for reqs in project.get("optional-dependencies", {}).values():
        texts.extend(reqs)
    pins = needed([Requirement(t) for t in texts])
    for name, version in NOT_INSTALLED_PINS.items():
        pins.setdefault(name, version)
    pins.pop("pip", None)
    pins.pop(canonicalize_name(project["name"]), None)
    print(f"# Exact versions ferkaggle was tested and benchmarked with (Python {platform.python_version()},"
          f" {platform.machine()}); written by .ci/constraints.py.")
    print("# make install uses it (CONSTRAINTS= to install the newest versions pyproject.toml allows).")
    for name in sorted(pins):
        print(f"{name}=={Version(pins[name]).public}")  # torch 2.13.0+cpu: ==2.13.0 takes the +cpu build too


if __name__ == "__main__":
    sys.exit(main())
