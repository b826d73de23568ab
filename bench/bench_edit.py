"""Label-edit speed: brush, fill holes, keep largest, smoothing and fill between slices on a 512x512x300 label map.

    python bench/bench_edit.py [--runs 5] [--out FILE]

The label map (uint8, 0.78 x 0.78 x 2.5 mm) holds an organ-sized ellipsoid (radii 70 x 80 x 60 mm,
~200 x 180 pixels x 48 slices) with cavities and islands, and nine small objects. Each figure is the
median (and min) of --runs calls of the engine function the app calls (engine.data.labeledit),
including the search for the object's box in the whole map. Goals (issue 14): a brush stroke update
< 30 ms, fill holes / keep largest < 1 s, interpolation across 20 slices < 2 s.
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
from engine.data.labeledit import (brush, fill_object_holes, interpolate_object, keep_largest,  # noqa: E402
                                   smooth_object)

SHAPE = (300, 512, 512)
SPACING = (2.5, 0.78, 0.78)  # z, y, x mm


def label_map(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros(SHAPE, np.uint8)
    zc, yc, xc = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    sz, sy, sx = SPACING

    def ellipsoid(c, r):
        return (((zc - c[0]) * sz / r[0]) ** 2 + ((yc - c[1]) * sy / r[1]) ** 2
                + ((xc - c[2]) * sx / r[2]) ** 2) <= 1

    organ = ellipsoid((150, 256, 256), (60, 80, 70))
    organ &= ~ellipsoid((150, 250, 240), (15, 12, 12))   # a cavity (a 3D hole)
    organ &= ~ellipsoid((140, 290, 280), (3, 8, 8))      # a hole in a couple of slices
    organ |= ellipsoid((150, 256, 420), (8, 8, 8))        # an island
    organ |= ellipsoid((190, 400, 150), (6, 6, 6))        # another one
    labels[organ] = 1
    for k in range(2, 11):
        c = [rng.uniform(0.2, 0.8) * n for n in SHAPE]
        labels[ellipsoid(c, tuple(rng.uniform(8, 20, 3))) & (labels == 0)] = k
    return labels


def timed(fn, runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    labels = label_map()
    drawn = labels.copy()  # the organ drawn on two slices 20 apart only: fill between them
    drawn[drawn == 1] = 0
    drawn[140][labels[140] == 1] = 1
    drawn[160][labels[160] == 1] = 1

    def stroke_apply(sphere):
        # one mouse move of a drag: a 12-pixel segment, 5 mm radius, written into the map as the app does
        e = brush(labels, 1, SPACING, [(60, 60, 150), (72, 64, 150)], 5.0, sphere=sphere, locked={3})
        before = labels[e.slices].copy()
        e.apply(labels)
        labels[e.slices] = before

    rows = []
    for name, fn, goal in [
        ("brush stroke update (disc, 5 mm)", lambda: stroke_apply(False), "< 30 ms"),
        ("brush stroke update (3D ball, 5 mm)", lambda: stroke_apply(True), "< 30 ms"),
        ("fill holes, 3D", lambda: fill_object_holes(labels, 1), "< 1 s"),
        ("fill holes, per slice", lambda: fill_object_holes(labels, 1, per_slice=True), "< 1 s"),
        ("keep largest (26-connected)", lambda: keep_largest(labels, 1), "< 1 s"),
        ("smooth (closing + opening, 1.5 mm)", lambda: smooth_object(labels, 1, SPACING, 1.5), "-"),
        ("fill between slices (19 slices)", lambda: interpolate_object(drawn, 1, SPACING), "< 2 s"),
    ]:
        med, best = timed(fn, args.runs)
        rows.append(f"| {name} | {med * 1000:.1f} | {best * 1000:.1f} | {goal} |")
        print(rows[-1], flush=True)
    info = describe()
    text = (f"# Label-edit benchmark ({dt.date.today()})\n\n{markdown(info)}\n"
            f"512x512x300 uint8 label map, 0.78 x 0.78 x 2.5 mm, object 1 = an ellipsoid of "
            f"{np.count_nonzero(labels == 1)} voxels with a cavity, a hole and two islands; "
            f"{args.runs} runs each (`python bench/bench_edit.py`)\n\n"
            "| operation | median ms | min ms | goal |\n|---|---|---|---|\n" + "\n".join(rows) + "\n")
    print(text)
    out = args.out or REPO / "bench" / "results" / f"edit-{dt.date.today()}.md"
    out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
