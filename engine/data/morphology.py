"""Binary morphology of one object's mask in numpy (no SciPy: the installer ships without it).

Masks are bool (Z,Y,X) arrays (usually an object's bounding box, see :mod:`engine.data.labeledit`);
``spacing`` is (sz, sy, sx) in mm as :attr:`engine.data.image.Image.spacing`. Holes are background
components that do not reach the array's border (6-connected in 3D, 4-connected per slice: the
complements of 26- and 8-connected foreground, as ``scipy.ndimage.binary_fill_holes`` counts them);
balls are the voxels within a radius in mm on the true spacing.
"""

from __future__ import annotations

import numpy as np

from engine.data.components import label


def fill_holes(mask: np.ndarray, per_slice: bool = False) -> np.ndarray:
    """``mask`` with its holes filled (bool, same shape): in 3D, or slice by slice (axis 0) when per_slice."""
    m = np.asarray(mask, bool)
    if per_slice:
        bg = np.pad(~m, ((0, 0), (1, 1), (1, 1)), constant_values=True)
        lab, _ = label(bg, 4, in_plane=True)
        outside = lab[:, :1, :1]            # each slice's border component
        holes = (lab > 0) & (lab != outside)
        return m | holes[:, 1:-1, 1:-1]
    bg = np.pad(~m, 1, constant_values=True)
    lab, _ = label(bg, 6)
    holes = (lab > 0) & (lab != lab[0, 0, 0])
    return m | holes[1:-1, 1:-1, 1:-1]


def largest_component(mask: np.ndarray, connectivity: int = 26) -> np.ndarray:
    """The largest connected part of ``mask`` (bool, same shape; the first in raster order on a tie)."""
    lab, n = label(mask, connectivity)
    if n <= 1:
        return np.asarray(mask, bool).copy()
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def ball_rows(radius_mm: float, spacing) -> list[tuple[int, int, int]]:
    """A ball of ``radius_mm`` on the grid as rows along x: [(dz, dy, half width in x), ...] — the
    offsets (dz, dy, dx) with (dz*sz)^2 + (dy*sy)^2 + (dx*sx)^2 <= r^2 are exactly |dx| <= half width."""
    sz, sy, sx = (float(s) for s in spacing)
    r = float(radius_mm)
    rz, ry = int(np.floor(r / sz + 1e-9)), int(np.floor(r / sy + 1e-9))
    rows = []
    for dz in range(-rz, rz + 1):
        for dy in range(-ry, ry + 1):
            rest = r * r - (dz * sz) ** 2 - (dy * sy) ** 2
            if rest >= -1e-9:
                rows.append((dz, dy, int(np.floor(np.sqrt(max(rest, 0.0)) / sx + 1e-9))))
    return rows


def _reach(rows) -> tuple[int, int, int]:
    return (max(abs(r[0]) for r in rows), max(abs(r[1]) for r in rows), max(r[2] for r in rows))


def dilate(mask: np.ndarray, radius_mm: float, spacing) -> np.ndarray:
    """Dilation by a ball (bool, same shape; nothing outside the array counts as foreground)."""
    m = np.asarray(mask, bool)
    rows = ball_rows(radius_mm, spacing)
    pz, py, px = _reach(rows)
    p = np.pad(m, ((pz, pz), (py, py), (px, px)))
    zdim, ydim, xdim = m.shape
    along_x = {0: p}  # the mask dilated along x by w voxels, built up one width at a time
    for w in range(1, px + 1):
        prev = along_x[w - 1]
        cur = prev.copy()
        cur[:, :, 1:] |= prev[:, :, :-1]
        cur[:, :, :-1] |= prev[:, :, 1:]
        along_x[w] = cur
    out = np.zeros_like(m)
    for dz, dy, w in rows:
        src = along_x[w]
        out |= src[pz - dz:pz - dz + zdim, py - dy:py - dy + ydim, px:px + xdim]
    return out


def erode(mask: np.ndarray, radius_mm: float, spacing) -> np.ndarray:
    """Erosion by a ball (bool, same shape; outside the array counts as background)."""
    m = np.asarray(mask, bool)
    rows = ball_rows(radius_mm, spacing)
    pz, py, px = _reach(rows)
    outside = np.pad(~m, ((pz, pz), (py, py), (px, px)), constant_values=True)
    grown = dilate(outside, radius_mm, spacing)
    return ~grown[pz:pz + m.shape[0], py:py + m.shape[1], px:px + m.shape[2]]


def closing(mask: np.ndarray, radius_mm: float, spacing) -> np.ndarray:
    """Dilation then erosion by a ball, computed with room around the mask so the array's border does
    not erode what the dilation joined."""
    m = np.asarray(mask, bool)
    pz, py, px = (2 * v for v in _reach(ball_rows(radius_mm, spacing)))
    p = np.pad(m, ((pz, pz), (py, py), (px, px)))
    out = erode(dilate(p, radius_mm, spacing), radius_mm, spacing)
    return out[pz:pz + m.shape[0], py:py + m.shape[1], px:px + m.shape[2]]


def opening(mask: np.ndarray, radius_mm: float, spacing) -> np.ndarray:
    """Erosion then dilation by a ball: removes parts thinner than the ball."""
    return dilate(erode(mask, radius_mm, spacing), radius_mm, spacing)


def smooth(mask: np.ndarray, radius_mm: float, spacing) -> np.ndarray:
    """Closing then opening by a ball of ``radius_mm``: fills notches and removes spurs finer than it."""
    return opening(closing(mask, radius_mm, spacing), radius_mm, spacing)


__all__ = ["ball_rows", "closing", "dilate", "erode", "fill_holes", "largest_component", "opening", "smooth"]
