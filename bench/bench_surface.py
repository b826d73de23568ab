"""3D-view surface speed: ``engine.data.surface.label_surfaces`` per object.

    python bench/bench_surface.py [--runs 3]

Cases: a synthetic 512x512x300 label map (0.78 x 0.78 x 2.5 mm) with three organ-sized ellipsoids (a
liver-, a spleen- and a kidney-sized one), and, when ``shared/`` is beside the repository, the MSD
spleen segmentation (shared/data/raw/ivadomed-spleen). Reports ms per object (median of --runs), the
triangles and the block step, with engine.base.sysinfo. What the 3D view pays after each edit (on its
worker thread).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.base.sysinfo import describe, markdown  # noqa: E402
from engine.data.surface import label_surfaces  # noqa: E402

SPLEEN = REPO.parent / "shared" / "data" / "raw" / "ivadomed-spleen" / "sub-spleen2_ct_seg-manual.nii.gz"


def synthetic() -> tuple[np.ndarray, np.ndarray]:
    shape = (300, 512, 512)
    spacing = np.array([2.5, 0.78, 0.78])  # z, y, x mm
    labels = np.zeros(shape, np.uint8)
    zc, yc, xc = np.ogrid[: shape[0], : shape[1], : shape[2]]
    organs = [((150, 250, 180), (80, 90, 70)), ((160, 260, 380), (50, 55, 40)), ((120, 330, 300), (45, 30, 25))]
    for k, (c, r) in enumerate(organs, start=1):
        inside = (((zc - c[0]) * spacing[0] / r[0]) ** 2 + ((yc - c[1]) * spacing[1] / r[1]) ** 2
                  + ((xc - c[2]) * spacing[2] / r[2]) ** 2) <= 1
        labels[inside] = k
    return labels, np.diag([spacing[2], spacing[1], spacing[0], 1.0])


def spleen() -> tuple[np.ndarray, np.ndarray] | None:
    if not SPLEEN.is_file():
        return None
    import nibabel as nib

    img = nib.load(str(SPLEEN))
    data = np.asarray(img.dataobj)  # x, y, z
    return np.ascontiguousarray((data > 0).astype(np.uint8).transpose(2, 1, 0)), img.affine


def run(name: str, labels: np.ndarray, affine: np.ndarray, runs: int) -> list[str]:
    times, meshes = [], None
    for _ in range(runs):
        t = time.perf_counter()
        meshes = label_surfaces(labels, affine)
        times.append(time.perf_counter() - t)
    per = statistics.median(times) * 1000 / max(len(meshes), 1)
    rows = [f"| {name} {labels.shape[::-1]} | {len(meshes)} | {statistics.median(times) * 1000:.0f} | {per:.0f} | "
            + ", ".join(f"{v}: {m.triangles} tri step {m.step}" for v, m in meshes.items()) + " |"]
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args(argv)
    print(markdown(describe()))
    print("| label map (X, Y, Z) | objects | ms all (median) | ms per object | meshes |")
    print("|---|---|---|---|---|")
    labels, affine = synthetic()
    for r in run("synthetic 3 organs", labels, affine, a.runs):
        print(r)
    sp = spleen()
    if sp is not None:
        for r in run("MSD spleen", *sp, a.runs):
            print(r)


if __name__ == "__main__":
    main()
