"""Measurements of the objects of a label map: size, intensity statistics, extents, diameters (numpy only).

Every figure is computed from the label map (Z,Y,X) on an image's grid and the voxel -> RAS affine
(:mod:`engine.data.image`); nothing is resampled. A voxel counts for an object when its label is the
object's value. Units: lengths in mm (in pixels when the image has no known spacing, see
``length_unit``), volume in mL (``|det(affine[:3,:3])|`` mm³ per voxel / 1000), intensities in the
image's own units (HU for CT).

* ``mean`` ``sd`` ``min`` ``max`` ``median`` ``p5`` ``p95``: of the image values of the object's voxels;
  ``sd`` is the sample standard deviation (n-1); percentiles interpolate linearly (numpy's default).
  Empty for RGB images.
* ``extent_{r,a,s}_mm``: the size of the object along the patient's R, A and S axes: the span of its
  voxel centres plus one voxel's footprint along that axis (for an axis-aligned grid, the side of the
  object's world bounding box).
* ``feret_mm``: the maximum 3D diameter, the largest distance between two voxel centres of the object
  (as ITK's ``LabelShapeStatisticsImageFilter`` Feret diameter).
* ``recist_*``: on the slice (stored ``z``) of largest area, the long axis (largest in-plane distance
  between two pixel centres) and the short axis (the longest chord perpendicular to it, pixel centre
  to pixel centre, through columns of pixels one pixel wide along the long axis), with end points.
* ``area``: the object's area on that slice (mm², or px² without known spacing); for a 2D image the
  object's area. ``volume_ml`` is left empty for 2D images.

The Feret and long-axis searches test the exact distances among the object's surface points that are
near-extreme along 256 (3D) / 180 (2D) directions; the diameter's end points are always among them for
convex shapes, and for any shape the result is within a small fraction of a voxel of the true maximum.
Written here because the libraries that do this (SimpleITK, scikit-image) are not in the installer.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

import numpy as np

from engine.data.image import Image
from engine.data.labelmap import Segment
from engine.data.outline import mask_outline

#: CSV columns of ``boxseg stats``, in this order (a testing contract); more may follow
COLUMNS = ("label", "name", "voxels", "volume_ml", "mean", "sd", "min", "max", "median", "p5", "p95",
           "extent_r_mm", "extent_a_mm", "extent_s_mm", "feret_mm", "recist_long_mm", "recist_short_mm",
           "recist_slice", "area", "area_unit", "length_unit", "intensity_unit")


@dataclass
class Measurement:
    """The figures of one object (see the module docstring); NaN where a figure does not apply.

    recist_long_ends / recist_short_ends: ((x0, y0), (x1, y1)) stored voxel indices on ``recist_slice``.
    """

    label: int
    name: str
    voxels: int
    volume_ml: float
    mean: float
    sd: float
    min: float
    max: float
    median: float
    p5: float
    p95: float
    extent_r_mm: float
    extent_a_mm: float
    extent_s_mm: float
    feret_mm: float
    recist_long_mm: float
    recist_short_mm: float
    recist_slice: int
    area: float
    area_unit: str
    length_unit: str
    intensity_unit: str
    recist_long_ends: tuple = field(default=(), repr=False)
    recist_short_ends: tuple = field(default=(), repr=False)

    def row(self) -> dict:
        """The :data:`COLUMNS` of this object."""
        return {c: getattr(self, c) for c in COLUMNS}


def _directions_3d(n: int = 256) -> np.ndarray:
    """n unit vectors spread over a half sphere (a Fibonacci lattice; opposite directions are redundant)."""
    i = np.arange(n) + 0.5
    z = i / n  # 0..1: the upper half sphere
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    r = np.sqrt(1.0 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _directions_2d(n: int = 180) -> np.ndarray:
    a = np.arange(n) * math.pi / n
    return np.stack([np.cos(a), np.sin(a)], axis=1)


#: points projected at once by :func:`_farthest_pair` (8192 x 256 directions x 8 bytes = 16 MiB)
_CHUNK = 8192


def _farthest_pair(points: np.ndarray, directions: np.ndarray, slack: float) -> tuple[float, int, int]:
    """(largest distance, index a, index b) among (N,D) points: exact among the candidates whose
    projection is within ``slack`` of the extreme along some direction (see the module docstring)."""
    n = len(points)
    if n < 2:
        return 0.0, 0, 0
    # the (N, K) projections chunk by chunk of points: a big organ has ~10^5 surface voxels, and all its
    # projections at once took ~200 MB (issue 15's memory bound); the result is the same
    chunks = [slice(s, min(s + _CHUNK, n)) for s in range(0, n, _CHUNK)]
    lo = np.full(len(directions), np.inf)
    hi = np.full(len(directions), -np.inf)
    for c in chunks:
        proj = points[c] @ directions.T
        lo, hi = np.minimum(lo, proj.min(axis=0)), np.maximum(hi, proj.max(axis=0))
    near, extreme = [], []
    for c in chunks:
        proj = points[c] @ directions.T
        near.append(np.flatnonzero(((proj <= lo + slack) | (proj >= hi - slack)).any(axis=1)) + c.start)
        extreme.append(np.flatnonzero(((proj <= lo) | (proj >= hi)).any(axis=1)) + c.start)
    cand = np.concatenate(near)
    if len(cand) > 4000:  # large flat faces: their exactly extreme points are enough
        cand = np.concatenate(extreme)[:4000]
    c = points[cand]
    best, ia, ib = -1.0, 0, 0
    for s in range(0, len(c), 512):  # chunks keep the (chunk, M) distance matrix small
        d2 = ((c[s:s + 512, None, :] - c[None, :, :]) ** 2).sum(axis=2)
        k = int(np.argmax(d2))
        r, q = divmod(k, len(c))
        if d2[r, q] > best:
            best, ia, ib = float(d2[r, q]), s + r, q
    return math.sqrt(best), int(cand[ia]), int(cand[ib])


def _recist(mask2d: np.ndarray, m2: np.ndarray, spacing_min: float):
    """(long, short, long ends, short ends) of a 2D mask (Y,X); m2: (3,2) index (x, y) -> RAS mm columns."""
    m2 = np.linalg.qr(m2)[0].T @ m2  # the same lengths in 2D coordinates of the slice's plane
    ys, xs = np.nonzero(mask2d)
    idx = np.stack([xs, ys], axis=1).astype(np.float64)
    pts = idx @ m2.T
    surf = mask_outline(mask2d)
    sy, sx = np.nonzero(surf)
    sidx = np.stack([sx, sy], axis=1).astype(np.float64)
    spts = sidx @ m2.T
    long_mm, a, b = _farthest_pair(spts, _directions_2d(), 0.5 * spacing_min)
    long_ends = (tuple(sidx[a]), tuple(sidx[b]))
    if long_mm == 0.0:
        return 0.0, 0.0, long_ends, long_ends
    u = (spts[b] - spts[a]) / long_mm
    w = np.array([-u[1], u[0]])
    pu, pw = pts @ u, pts @ w
    # columns one pixel wide along the long axis: the chord across each column
    bins = np.floor((pu - pu.min()) / spacing_min).astype(np.int64)
    order = np.argsort(bins, kind="stable")
    b_sorted = bins[order]
    starts = np.flatnonzero(np.r_[True, b_sorted[1:] != b_sorted[:-1]])
    wmax = np.maximum.reduceat(pw[order], starts)
    wmin = np.minimum.reduceat(pw[order], starts)
    k = int(np.argmax(wmax - wmin))
    sel = order[starts[k]:(starts[k + 1] if k + 1 < len(starts) else len(order))]
    i_lo, i_hi = sel[np.argmin(pw[sel])], sel[np.argmax(pw[sel])]
    return long_mm, float(wmax[k] - wmin[k]), long_ends, (tuple(idx[i_lo]), tuple(idx[i_hi]))


def _slices_of(labels: np.ndarray) -> dict[int, tuple[int, int]]:
    """value -> (first, last) slice index where it occurs, from one pass over the label map."""
    n = int(labels.max()) + 1 if labels.size else 1
    present = np.zeros((labels.shape[0], n), bool)
    for z in range(labels.shape[0]):
        present[z] = np.bincount(labels[z].ravel(), minlength=n) > 0
    out = {}
    for v in range(1, n):
        zs = np.flatnonzero(present[:, v])
        if len(zs):
            out[v] = (int(zs[0]), int(zs[-1]))
    return out


def measure_object(labels: np.ndarray, value: int, image: Image, name: str = "",
                   z_range: tuple[int, int] | None = None) -> Measurement:
    """The figures of the object with label ``value`` of ``labels`` (Z,Y,X) on ``image``'s grid.

    z_range: (first, last) slice that holds the object, when known (:func:`measure` finds it for every
    object in one pass), so that only those slices are searched.
    """
    z0 = 0 if z_range is None else z_range[0]
    full = labels[z0:(labels.shape[0] if z_range is None else z_range[1] + 1)] == value
    a3 = image.affine[:3, :3]
    unit = "mm" if image.spacing_known else "px"
    nan = float("nan")
    zs = np.flatnonzero(full.any(axis=(1, 2))) + z0
    if len(zs) == 0:
        return Measurement(int(value), name, 0, 0.0, *([nan] * 7), *([nan] * 6), -1, 0.0,
                           f"{unit}2", unit, image.units)
    # everything below works on the object's bounding box (a big volume has small objects)
    full = full[zs[0] - z0:zs[-1] + 1 - z0]
    ys, xs = np.flatnonzero(full.any(axis=(0, 2))), np.flatnonzero(full.any(axis=(0, 1)))
    box = (slice(zs[0], zs[-1] + 1), slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
    origin = np.array([xs[0], ys[0], zs[0]], np.float64)  # (x, y, z) index of the box's first voxel
    mask = full[:, box[1], box[2]]
    nvox = int(np.count_nonzero(mask))
    # intensities
    if image.is_rgb:
        stats = [nan] * 7
    else:
        vals = image.voxels[box][mask].astype(np.float64)
        p5, med, p95 = np.percentile(vals, [5, 50, 95])
        sd = float(vals.std(ddof=1)) if nvox > 1 else nan
        stats = [float(vals.mean()), sd, float(vals.min()), float(vals.max()), float(med), float(p5), float(p95)]
    # surface voxels (a face neighbour outside the object): the extremes of any linear function of the
    # voxel centres, hence the extents and the Feret diameter, lie among them
    sz, sy, sx = np.nonzero(mask_outline(mask))
    spts = np.stack([sx, sy, sz], axis=1).astype(np.float64) @ a3.T  # RAS mm, box origin dropped: lengths only
    # extents along R, A, S: the span of the centres plus one voxel's footprint along that axis
    extent = spts.max(axis=0) - spts.min(axis=0) + np.abs(a3).sum(axis=1)
    if image.depth == 1:
        extent[np.argmax(np.abs(a3[:, 2]))] = nan  # a 2D image has no extent across its plane
    spacing_min = float(min(image.spacing))
    feret, _, _ = _farthest_pair(spts, _directions_3d(), 0.5 * spacing_min)
    # RECIST on the slice of largest area
    areas = mask.reshape(mask.shape[0], -1).sum(axis=1)
    z = int(np.argmax(areas))
    m2 = a3[:, :2]
    in_plane = np.linalg.norm(m2, axis=0)
    long_mm, short_mm, long_ends, short_ends = _recist(mask[z], m2, float(in_plane.min()))
    long_ends, short_ends = (tuple(tuple(float(v) for v in np.add(p, origin[:2])) for p in ends)
                             for ends in (long_ends, short_ends))
    pixel_area = float(np.linalg.norm(np.cross(m2[:, 0], m2[:, 1])))
    volume_ml = nvox * abs(float(np.linalg.det(a3))) / 1000.0 if image.depth > 1 else nan
    return Measurement(int(value), name, nvox, volume_ml, *stats, *(float(e) for e in extent), feret, long_mm,
                       short_mm, z + int(zs[0]), float(areas[z]) * pixel_area, f"{unit}2", unit, image.units,
                       long_ends, short_ends)


def format_value(v) -> str:
    """A figure as ``boxseg stats --csv`` writes it: floats with 6 significant digits, NaN/None empty."""
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def to_csv(rows: list[dict], columns: tuple[str, ...] = COLUMNS, sep: str = ",") -> str:
    """CSV text (header + one line per row dict, values by :func:`format_value`); ``sep="\\t"`` gives the
    tab-separated form the app copies to the clipboard. The one writer of ``boxseg stats --csv``,
    ``boxseg batch --stats`` (``stats.csv``) and the app's Export CSV."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf, delimiter=sep, lineterminator="\r\n" if sep == "," else "\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([format_value(r.get(c)) for c in columns])
    return buf.getvalue()


def json_row(m: "Measurement") -> dict:
    """:meth:`Measurement.row` with NaN as None (JSON has no NaN)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in m.row().items()}


def measure(labels: np.ndarray, image: Image, segments: list[Segment] | None = None) -> list[Measurement]:
    """One :class:`Measurement` per object: the values of ``segments`` (in their order), else every
    non-zero value present in ``labels``. labels: (Z,Y,X) on ``image``'s grid."""
    labels = np.asarray(labels)
    if labels.shape != image.shape:
        raise ValueError(f"label map shape {labels.shape} does not match the image {image.shape}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min(initial=0) < 0:
        raise ValueError(f"labels must be non-negative integers, got {labels.dtype}")
    where = _slices_of(labels)
    if segments is None:
        segments = [Segment(v, f"label {v}", (0, 0, 0)) for v in sorted(where)]
    return [measure_object(labels, s.value, image, s.name, where.get(int(s.value), (0, -1))) for s in segments]


__all__ = ["COLUMNS", "Measurement", "format_value", "json_row", "measure", "measure_object", "to_csv"]
