"""Measurements the user draws on one slice: a ruler's length and an ROI's area and intensity statistics
(numpy only; the app's ruler and ROI tools call these).

Coordinates are continuous stored voxel indices ``(x, y)`` of a slice (``voxels[z, y, x]``), with
integers at pixel centres: a pixel spans ``x - 0.5 .. x + 0.5``. Lengths use the image's in-plane
geometry (the first two columns of the voxel -> RAS affine, so anisotropic and oblique pixels are
measured truly) and are in mm, or in pixels when the image has no known spacing
(``Image.spacing_known`` False); areas in mm² or px²; intensities in the image's units (HU for CT).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.data.image import Image

ROI_SHAPES = ("ellipse", "rectangle")


def length_unit(image: Image) -> str:
    return "mm" if image.spacing_known else "px"


def line_length(image: Image, p0, p1) -> float:
    """Length of the segment p0 -> p1 ((x, y) continuous voxel indices of one slice), in
    :func:`length_unit` units: mm through the affine, or pixels without known spacing."""
    d = np.asarray(p1, np.float64) - np.asarray(p0, np.float64)
    if not image.spacing_known:
        return float(math.hypot(d[0], d[1]))
    return float(np.linalg.norm(image.affine[:3, :2] @ d))


def roi_mask(shape_yx: tuple[int, int], bounds, shape: str = "ellipse") -> tuple[np.ndarray, tuple[int, int]]:
    """The pixels of an ROI: (bool mask (h, w) of the crop, (y0, x0) of the crop's first pixel).

    bounds: (xa, ya, xb, yb) corners of the ROI's axis-aligned bounding box (continuous voxel indices,
    any order); a pixel belongs to it when its centre is inside the ellipse inscribed in the box
    (``((x-cx)/rx)² + ((y-cy)/ry)² <= 1``) or inside the box (rectangle), clipped to the slice.
    """
    if shape not in ROI_SHAPES:
        raise ValueError(f"ROI shape must be one of {ROI_SHAPES}, got {shape!r}")
    xa, ya, xb, yb = (float(v) for v in bounds)
    x0, x1, y0, y1 = min(xa, xb), max(xa, xb), min(ya, yb), max(ya, yb)
    h, w = shape_yx
    ix0, ix1 = max(0, math.ceil(x0)), min(w - 1, math.floor(x1))
    iy0, iy1 = max(0, math.ceil(y0)), min(h - 1, math.floor(y1))
    if ix1 < ix0 or iy1 < iy0:
        return np.zeros((0, 0), bool), (max(0, iy0), max(0, ix0))
    xs = np.arange(ix0, ix1 + 1, dtype=np.float64)
    ys = np.arange(iy0, iy1 + 1, dtype=np.float64)
    if shape == "rectangle":
        return np.ones((len(ys), len(xs)), bool), (iy0, ix0)
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    if rx <= 0 or ry <= 0:
        return np.zeros((len(ys), len(xs)), bool), (iy0, ix0)
    mask = ((xs[None, :] - cx) / rx) ** 2 + ((ys[:, None] - cy) / ry) ** 2 <= 1.0
    return mask, (iy0, ix0)


@dataclass
class RoiStats:
    """pixels: count; area: pixels x pixel area (``area_unit`` mm2 or px2); mean, sd (sample, n-1), min,
    max of the image values of those pixels (NaN for RGB or an empty ROI; sd NaN below 2 pixels)."""

    pixels: int
    area: float
    area_unit: str
    mean: float
    sd: float
    min: float
    max: float
    intensity_unit: str


def pixel_area(image: Image) -> float:
    """Area of one pixel of a slice: mm² through the affine, 1 (px²) without known spacing."""
    if not image.spacing_known:
        return 1.0
    m2 = image.affine[:3, :2]
    return float(np.linalg.norm(np.cross(m2[:, 0], m2[:, 1])))


def roi_stats(image: Image, z: int, bounds, shape: str = "ellipse") -> RoiStats:
    """Area and intensity statistics of an ROI (:func:`roi_mask`) on slice z of ``image``."""
    plane = image.voxels[int(z)]
    mask, (y0, x0) = roi_mask(plane.shape[:2], bounds, shape)
    n = int(np.count_nonzero(mask))
    nan = float("nan")
    unit = length_unit(image)
    stats = [nan] * 4
    if n and not image.is_rgb:
        vals = plane[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]][mask].astype(np.float64)
        stats = [float(vals.mean()), float(vals.std(ddof=1)) if n > 1 else nan, float(vals.min()),
                 float(vals.max())]
    return RoiStats(n, n * pixel_area(image), f"{unit}2", *stats, image.units)


__all__ = ["ROI_SHAPES", "RoiStats", "length_unit", "line_length", "pixel_area", "roi_mask", "roi_stats"]
