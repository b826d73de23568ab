"""Reformatting speed: a slice of each plane of a 512x512x300 int16 volume, and the model's square pixels.

    python bench/bench_planes.py [--runs 20] [--out FILE]

For a synthetic int16 CT-like volume of 512 x 512 x 300 voxels (0.7 x 0.7 x 5 mm), stored as a DICOM
series is (LPS: no flips on screen) and as many NIfTI files are (RAS: both in-plane axes flipped on screen),
times per plane (median and max of --runs slices, each a different slice):

* reformat: ``Plane.slice(volume, k, copy=True)``, the screen slice as one C-contiguous copy
  (goal, issue 15: < 10 ms for coronal/sagittal);
* model input: ``ModelFrame.pixels`` on the uint8 model volume (the slice resampled to square pixels,
  linear; the stored axial slice as it is);
* mask back: a model-frame mask mapped to the screen (nearest) and painted into a (Z,Y,X) label map.

Writes bench/results/planes-<date>.md with engine.base.sysinfo. Runs in well under a minute.
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

from engine.base.atomic import write_text  # noqa: E402
from engine.base.sysinfo import describe, markdown  # noqa: E402
from engine.data.geometry import LPS_TO_RAS  # noqa: E402
from engine.data.planes import planes_of  # noqa: E402
from engine.data.square import ModelFrame  # noqa: E402

SHAPE = (300, 512, 512)
MM_XYZ = (0.7, 0.7, 5.0)


def timed(fn, ks) -> list[float]:
    out = []
    for k in ks:
        t0 = time.perf_counter()
        fn(k)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def bench(affine, vox, u8, runs: int) -> list[str]:
    rows = []
    labels = np.ones(SHAPE, np.uint8)  # pages touched, so that the first plane does not pay their faults
    for name, plane in planes_of(affine, SHAPE).items():
        frame = ModelFrame.for_plane(plane)
        n = plane.n_slices
        ks = [int(k) for k in np.linspace(n * 0.2, n * 0.8, runs)]
        t_slice = timed(lambda k: plane.slice(vox, k, copy=True), ks)
        t_model = timed(lambda k: frame.pixels(u8, k), ks)
        mask = np.zeros(frame.shape, bool)
        h, w = frame.shape
        mask[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = True
        t_back = timed(lambda k: plane.paint(labels, k, frame.mask_to_screen(mask), 1), ks)
        rows.append(f"| {name} | {plane.normal_axis} | {plane.slice_shape[0]}x{plane.slice_shape[1]} "
                    f"({plane.pixel_spacing[0]:g} x {plane.pixel_spacing[1]:g} mm) | "
                    f"{statistics.median(t_slice):.3f} / {max(t_slice):.3f} | {h}x{w} | "
                    f"{statistics.median(t_model):.3f} / {max(t_model):.3f} | "
                    f"{statistics.median(t_back):.3f} / {max(t_back):.3f} |")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    vox = rng.integers(-1000, 1500, size=SHAPE, dtype=np.int16)
    u8 = rng.integers(0, 256, size=SHAPE, dtype=np.uint8)  # the model volume (Image.model_volume)
    head = ("| plane | normal axis (0=Z) | screen slice | reformat ms (median / max) | model input | "
            "model input ms | mask back ms |\n|---|---|---|---|---|---|---|")
    parts = []
    for label, flip in (("LPS (as a DICOM series)", LPS_TO_RAS), ("RAS (as many NIfTI files)", np.eye(4))):
        affine = flip @ np.diag([*MM_XYZ, 1.0])
        parts.append(f"### {label}\n\n{head}\n" + "\n".join(bench(affine, vox, u8, args.runs)) + "\n")
    text = (f"# Reformatted planes benchmark ({dt.date.today()})\n\n{markdown(describe())}\n"
            f"Synthetic int16 volume 512 x 512 x 300 (Z,Y,X = {SHAPE}), {MM_XYZ[0]} x {MM_XYZ[1]} x {MM_XYZ[2]} mm; "
            f"{args.runs} different slices per plane. Reformat = `Plane.slice(copy=True)` (goal < 10 ms); "
            "model input = `ModelFrame.pixels` on a uint8 volume (coronal/sagittal resampled to square "
            "0.7 mm pixels, linear; the stored axial slice as is); mask back = model-frame mask -> screen "
            "(nearest) -> painted into the (Z,Y,X) label map.\n\n" + "\n".join(parts))
    print(text)
    out = args.out or REPO / "bench" / "results" / f"planes-{dt.date.today()}.md"
    write_text(out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
