"""Measurement speed: every figure of ``engine.data.measure`` for a 512x512x300 label map with 10 objects.

    python bench/bench_measure.py [--runs 5] [--out FILE]

Objects are ellipsoids of 1..30 mL (and one large organ-sized one) on a 0.78 x 0.78 x 2.5 mm grid
over an int16 CT-like volume; reports the median and min of --runs full passes (all objects, all
figures) with engine.base.sysinfo. Goal (issue 16): < 2 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.base.sysinfo import describe, markdown  # noqa: E402
from engine.data.image import Image  # noqa: E402
from engine.data.measure import measure  # noqa: E402


def volume(seed: int = 0) -> tuple[Image, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (300, 512, 512)
    vox = rng.integers(-200, 300, size=shape, dtype=np.int16)
    labels = np.zeros(shape, np.uint8)
    spacing = np.array([2.5, 0.78, 0.78])  # z, y, x mm
    zc, yc, xc = np.ogrid[: shape[0], : shape[1], : shape[2]]
    radii_mm = [(60, 80, 70)] + [tuple(rng.uniform(8, 25, 3)) for _ in range(9)]
    for k, r in enumerate(radii_mm, start=1):
        c = [rng.uniform(0.3, 0.7) * n for n in shape]
        inside = (((zc - c[0]) * spacing[0] / r[0]) ** 2 + ((yc - c[1]) * spacing[1] / r[1]) ** 2
                  + ((xc - c[2]) * spacing[2] / r[2]) ** 2) <= 1
        labels[inside] = k
    aff = np.diag([spacing[2], spacing[1], spacing[0], 1.0])
    return Image(voxels=vox, affine=aff, modality="CT", units="HU"), labels


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    img, labels = volume()
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        rows = measure(labels, img)
        times.append(time.perf_counter() - t0)
    info = describe()
    text = (f"# Measurement benchmark ({dt.date.today()})\n\n{markdown(info)}\n"
            f"512x512x300 int16 volume, {len(rows)} objects ({min(r.voxels for r in rows)}.."
            f"{max(r.voxels for r in rows)} voxels), all figures: median {statistics.median(times):.3f} s, "
            f"min {min(times):.3f} s over {args.runs} runs (goal < 2 s)\n")
    print(text)
    out = args.out or REPO / "bench" / "results" / f"measure-{dt.date.today()}.md"
    out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
