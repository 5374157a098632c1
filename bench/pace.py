"""The measured pace the search plans with, against the epochs a search then really took.

    PYTHONPATH=. python bench/pace.py --data <key> [--space default] [--runs runs <run_id> ...]

For each named trial of the space: `cnn.pace.epoch_seconds` (what the search's plan measures before
its first trial, search/plan.py) and, for the runs given (trials of a search of that space on the same
box), the median and the range of their recorded epoch seconds, matched by name. Prints a Markdown
table for docs/benchmarks.md ("A plan that fits the box").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peak import FLAGS_OF_NOTE  # noqa: E402

from ferkaggle.cnn.pace import epoch_seconds  # noqa: E402
from ferkaggle.cnn.runtime import cpu_flags, cpu_model  # noqa: E402
from ferkaggle.data.prepared import load_prepared  # noqa: E402
from ferkaggle.runs.select import select_run  # noqa: E402
from ferkaggle.search.spaces import check_space, load_space  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="prepared data folder or key (default: latest)")
    ap.add_argument("--space", default="default")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--runs", default="runs", help="the registry of the runs named after it")
    ap.add_argument("run_ids", nargs="*", help="search trials' runs to compare with")
    args = ap.parse_args()

    prepared = load_prepared(args.data)
    space, path = load_space(args.space)
    checked = check_space(space, str(path))
    fit, stop = prepared.stopping_split(args.seed)
    data = (prepared.x[fit], prepared.y[fit], prepared.x[stop], prepared.y[stop])
    seen = {}
    for run_id in args.run_ids:
        run = select_run(run_id, args.runs)
        seen[run.info["name"]] = [h["seconds"] for h in run.metrics["history"]]
    print(f"{cpu_model()}, flags {' '.join(sorted(f for f in cpu_flags() if f in FLAGS_OF_NOTE))}")
    print("| trial | measured s/epoch | took (s) | epochs seen: median s (min-max) | measured / median |")
    print("|---|---:|---:|---|---:|")
    for name, cfg in checked.named:
        t0 = time.perf_counter()
        pace = epoch_seconds(cfg, *data, seed=args.seed)
        took = time.perf_counter() - t0
        secs = seen.get(name)
        if secs:
            med = statistics.median(secs)
            print(f"| {name} | {pace:.1f} | {took:.0f} | {len(secs)}: {med:.1f} ({min(secs):.1f}-{max(secs):.1f}) "
                  f"| {pace / med:.2f} |")
        else:
            print(f"| {name} | {pace:.1f} | {took:.0f} | – | – |")


if __name__ == "__main__":
    main()
