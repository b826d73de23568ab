"""The brush: which voxels a stroke covers, on the true voxel spacing.

A stroke is a polyline of centres in voxel indices (x, y, z) (floats allowed; integers are voxel
centres, as :mod:`engine.data.image`'s X/Y/Z). Its footprint is every voxel whose centre lies within
``radius_mm`` of the polyline, in mm: a disc swept along it on the centres' slice (``sphere=False``),
or a ball swept through the neighbouring slices (``sphere=True``). One centre is a disc or a ball;
the union of stamps along each segment is the capsule around it, so a fast drag leaves no gaps.
"""

from __future__ import annotations

import numpy as np

#: a voxel centre exactly on the rim is inside (floating-point slack, mm^2)
_EPS = 1e-9


def stroke_mask(shape, spacing, centres, radius_mm: float, sphere: bool = False):
    """The voxels a stroke covers: (where, mask) or None when it misses the array.

    shape: (Z,Y,X) of the label map; spacing: (sz, sy, sx) mm (``Image.spacing``); centres: [(x, y, z), ...]
    voxel indices (a disc stroke uses the first centre's slice for all). where: (z0, z1, y0, y1, x0, x1),
    half-open bounds of the covered box; mask: bool (z1-z0, y1-y0, x1-x0), True inside.
    """
    zdim, ydim, xdim = (int(s) for s in shape)
    sz, sy, sx = (float(s) for s in spacing)
    c = np.atleast_2d(np.asarray(centres, np.float64))
    if c.size == 0:
        return None
    r = float(radius_mm)
    if not sphere:
        c = c.copy()
        c[:, 2] = np.round(c[0, 2])
    rx, ry = r / sx, r / sy
    rz = r / sz if sphere else 0.0
    lo = np.floor(c.min(axis=0) - (rx, ry, rz) - _EPS)
    hi = np.ceil(c.max(axis=0) + (rx, ry, rz) + _EPS)
    x0, y0, z0 = (int(max(v, 0)) for v in lo)
    x1, y1, z1 = (int(min(v + 1, n)) for v, n in zip(hi, (xdim, ydim, zdim)))
    if not sphere:  # the centres' slice only
        z0, z1 = int(c[0, 2]), int(c[0, 2]) + 1
        z0, z1 = max(z0, 0), min(z1, zdim)
    if x0 >= x1 or y0 >= y1 or z0 >= z1:
        return None
    # voxel centres of the box in mm, relative to the box corner
    zz = (np.arange(z0, z1, dtype=np.float64) * sz)[:, None, None]
    yy = (np.arange(y0, y1, dtype=np.float64) * sy)[None, :, None]
    xx = (np.arange(x0, x1, dtype=np.float64) * sx)[None, None, :]
    pts = c * (sx, sy, sz)
    mask = np.zeros((z1 - z0, y1 - y0, x1 - x0), bool)
    r2 = r * r + _EPS
    segs = [(pts[0], pts[0])] if len(pts) == 1 else list(zip(pts[:-1], pts[1:]))
    for a, b in segs:
        d = b - a
        dd = float(d @ d)
        if dd == 0.0:
            dist2 = (xx - a[0]) ** 2 + (yy - a[1]) ** 2 + (zz - a[2]) ** 2
        else:
            t = ((xx - a[0]) * d[0] + (yy - a[1]) * d[1] + (zz - a[2]) * d[2]) / dd
            t = np.clip(t, 0.0, 1.0)
            dist2 = (xx - a[0] - t * d[0]) ** 2 + (yy - a[1] - t * d[1]) ** 2 + (zz - a[2] - t * d[2]) ** 2
        mask |= dist2 <= r2
    return (z0, z1, y0, y1, x0, x1), mask


__all__ = ["stroke_mask"]
