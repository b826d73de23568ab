"""Fill between slices: shape-based interpolation of an object drawn on some slices.

The user draws an object on a few slices (a box, points, the brush) and leaves the slices between them
empty; each empty slice between two drawn ones gets the zero level of the linear blend of the two
drawn slices' signed distance maps (Raya and Udupa's shape-based interpolation, what ITK-SNAP and
3D Slicer's "Fill between slices" do in spirit). Signed distances are in mm on the in-plane spacing
(:func:`engine.data.distance.signed_distance`), so anisotropic pixels keep their true shape; the
blend weight is the slice's position between the two drawn slices.

Work is limited to the bounding box of the object in-plane: the blend is negative (inside) only where
one of the two drawn slices is inside, so nothing outside that box can change.
"""

from __future__ import annotations

import numpy as np

from engine.base.callbacks import ProgressFn, StopFn
from engine.base.errors import Cancelled
from engine.data.distance import signed_distance


def drawn_slices(mask: np.ndarray, z_range: tuple[int, int] | None = None) -> list[int]:
    """Slices z (ascending) of a bool (Z,Y,X) mask that hold any voxel, within z_range (inclusive)."""
    zs = np.flatnonzero(np.asarray(mask).reshape(mask.shape[0], -1).any(axis=1))
    if z_range is not None:
        zs = zs[(zs >= z_range[0]) & (zs <= z_range[1])]
    return [int(z) for z in zs]


def fill_between(mask: np.ndarray, spacing, z_range: tuple[int, int] | None = None, *,
                 progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> tuple[np.ndarray, list[int]]:
    """Interpolate the empty slices between drawn slices of an object.

    mask: bool (Z,Y,X), the object; spacing: (sz, sy, sx) mm (only sy, sx are used); z_range: the
    slices to consider (inclusive; default all). Returns (filled, zs): bool (Z,Y,X) with only the new
    voxels, on the empty slices ``zs`` that lie between two drawn slices (drawn slices are never
    changed; slices beyond the first/last drawn one are not extrapolated).
    """
    m = np.asarray(mask, bool)
    filled = np.zeros(m.shape, bool)
    zs = drawn_slices(m, z_range)
    gaps = [(a, b) for a, b in zip(zs[:-1], zs[1:]) if b - a > 1]
    if not gaps:
        return filled, []
    _, sy, sx = (float(s) for s in spacing)
    ys = np.flatnonzero(m.any(axis=(0, 2)))
    xs = np.flatnonzero(m.any(axis=(0, 1)))
    y0, y1 = max(int(ys[0]) - 1, 0), min(int(ys[-1]) + 2, m.shape[1])
    x0, x1 = max(int(xs[0]) - 1, 0), min(int(xs[-1]) + 2, m.shape[2])
    cache: dict[int, np.ndarray] = {}

    def sdf(z: int) -> np.ndarray:
        if z not in cache:
            # one voxel of margin beyond the box: the outside must exist for the distance to it
            sl = np.pad(m[z, y0:y1, x0:x1], 1)
            cache[z] = signed_distance(sl, (sy, sx))[1:-1, 1:-1]
        return cache[z]

    out_z = []
    total = sum(b - a - 1 for a, b in gaps)
    done = 0
    for a, b in gaps:
        if should_stop is not None and should_stop():
            raise Cancelled(f"fill between slices stopped at slice {a}")
        da, db = sdf(a), sdf(b)
        cache.pop(a, None)  # each drawn slice is needed by at most two gaps, in order
        for z in range(a + 1, b):
            t = (z - a) / (b - a)
            filled[z, y0:y1, x0:x1] = (1.0 - t) * da + t * db < 0
            out_z.append(z)
            done += 1
            if progress is not None:
                progress(done, total)
    return filled, out_z


__all__ = ["drawn_slices", "fill_between"]
