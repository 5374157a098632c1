"""Time per photo of `ferkaggle predict`: reading, face detection (+ crops), and the model.

Photos: scikit-image's astronaut (512x512, one face) as shipped, the same photo
enlarged to 1600x1600 and 4000x3000 (a phone photo; Haar searches photos larger than
2048 px at 2048 px, see faces.HaarDetector), and a 2048x1536 group photo of 19 faces 30 to
140 px wide (tests/helpers/photos.group_photo: the astronaut's head pasted 19 times, the true
boxes known), with how many of them each detector found (IoU >= 0.4). The model: `--run RUN` (an id, `best` or
`latest`, chosen as `ferkaggle predict --run` chooses; it needs a saved model), or by default
an untrained `simple` CNN (ferkaggle/configs/simple.toml: the time does not depend on the weights), with
hflip TTA, one face per call as `predict` and `serve` do.

Each step is timed `--repeat` times after one warm-up call; the median is reported.
CPU time is process user+sys (all threads). Usage:

  nice python bench/predict_speed.py [--run RUN] [--repeat 20] [--mtcnn]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402

from ferkaggle.cnn.config import load_train_config  # noqa: E402
from ferkaggle.cnn.models import build_model  # noqa: E402
from ferkaggle.photos.faces import HaarDetector, MtcnnDetector, find_faces, read_photo  # noqa: E402
from ferkaggle.photos.predictor import Predictor, select_predict_run  # noqa: E402
from helpers.photos import group_photo, true_faces_found  # noqa: E402


def timed(fn, repeat: int):
    fn()  # warm-up: first calls trace graphs and fill caches
    wall, cpu, out = [], [], None
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000, out


class UntrainedRun:
    """Enough of a Run for Predictor: the simple CNN with hflip TTA, random weights."""

    def __init__(self):
        cfg = load_train_config("simple")
        self.model = build_model(cfg.model)
        self.run_id = "untrained simple CNN"
        self.kind = "cnn"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a run with a saved model: its id, `best` or `latest` as for `ferkaggle predict` "
                                      "(default: an untrained simple CNN)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--mtcnn", action="store_true", help="also time the mtcnn detector (needs ferkaggle[mtcnn])")
    args = parser.parse_args()

    from PIL import Image
    from skimage import data

    if args.run:
        predictor = Predictor.from_run(select_predict_run(args.run))
    else:
        fake = UntrainedRun()
        predictor = Predictor(fake, [(1.0, fake.model, "hflip")])
    base = Image.fromarray(data.astronaut())
    group, truth = group_photo()
    photos = {"512x512": base, "1600x1600": base.resize((1600, 1600), Image.Resampling.LANCZOS),
              "4000x3000": base.resize((4000, 3000), Image.Resampling.LANCZOS),
              "2048x1536 group of 19": Image.fromarray(group)}
    detectors = [HaarDetector()]
    if args.mtcnn:
        detectors.append(MtcnnDetector())
    print(f"# {platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()} · "
          f"{time.strftime('%Y-%m-%d %H:%M')} · model: {predictor.description} · median of {args.repeat}")
    print("| photo | detector | faces | read ms | detect+crop ms (CPU) | predict ms (CPU) | total ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for label, image in photos.items():
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=92)
        jpeg = buffer.getvalue()
        read_ms, _, rgb = timed(lambda: read_photo(jpeg, label), args.repeat)
        for detector in detectors:
            det_ms, det_cpu, found = timed(lambda: find_faces(rgb, detector), args.repeat)
            pred_ms, pred_cpu, _ = timed(lambda: predictor.predict(found.crops), args.repeat)
            faces = f"{len(found.boxes)}" + (f" ({true_faces_found(found.boxes, truth)} true)" if "group" in label else "")
            print(f"| {label} JPEG | {detector.name} | {faces} | {read_ms:.1f} | {det_ms:.1f} ({det_cpu:.1f}) | "
                  f"{pred_ms:.1f} ({pred_cpu:.1f}) | {read_ms + det_ms + pred_ms:.1f} |")
    batch = np.zeros((16, 48, 48), np.uint8)
    batch_ms, batch_cpu, _ = timed(lambda: predictor.predict(batch), args.repeat)
    print(f"\nmodel alone, 16 faces in one call: {batch_ms:.1f} ms ({batch_cpu:.1f} ms CPU), {batch_ms / 16:.2f} ms a face")


if __name__ == "__main__":
    main()
