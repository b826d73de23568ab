"""CVPR 2024 "MedSAM on Laptop" challenge metrics: DSC and NSD (normalised surface Dice).

Reproduces what the official evaluation scripts (``compute_metrics.py`` + ``SurfaceDice.py`` from
bowang-lab/MedSAM; SPEC section C) compute, including their quirks:

* labels ``1 .. max(gt)`` (inclusive) are scored; predicted labels ``> max(gt)`` are ignored;
* a label empty in both masks gives DSC NaN, which makes the case DSC NaN (and then the case
  NSD 0, because ``NaN > 0.2`` is false);
* NSD (tolerance 2.0) is computed only when the case DSC is > 0.2, otherwise it is 0;
* 3D: the ``spacing`` stored in the npz is used verbatim as the spacing of array axes (0, 1, 2),
  without reordering (the known (x,y,z) vs (z,y,x) question, MedSAM issue #401);
* 2D: masks are expanded to (H, W, 1) with spacing (1, 1, 1), so every foreground pixel is a
  surface element (the slab's top/bottom faces): the 2D NSD behaves like a region overlap with a
  2-pixel tolerance, not like a contour metric.

The surface computation follows the DeepMind "surface-distance" method: marching-cube surface
elements ("surfels") at the corners of voxels, surfel areas from a 256-entry lookup table, and
Euclidean distance transforms (``scipy.ndimage.distance_transform_edt``) with the voxel spacing.

Only numpy and scipy are used. scipy is imported on first use, so that importing the engine (or the
desktop app, whose installer leaves scipy out) does not need it; without scipy the metric
functions raise :class:`ScipyMissing`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import numpy as np

from engine.base.errors import BoxSegError
from engine.eval.surface_tables import NEIGHBOUR_CODE_TO_NORMALS

__all__ = [
    "ENCODE_NEIGHBOURHOOD_3D_KERNEL",
    "NSD_DSC_THRESHOLD",
    "ScipyMissing",
    "SurfaceDistances",
    "compute_case_metrics",
    "compute_dice_coefficient",
    "compute_surface_dice_at_tolerance",
    "compute_surface_distances",
    "dice_per_label",
    "neighbour_code_to_surface_area",
    "nsd_per_label",
]

#: NSD is only computed for a case whose DSC is strictly greater than this value.
NSD_DSC_THRESHOLD = 0.2


class ScipyMissing(BoxSegError, ImportError):
    """scipy is not installed: the challenge metrics cannot be computed (an engine error and an ImportError)."""


def _ndimage():
    """``scipy.ndimage``, imported on first use; :class:`ScipyMissing` when scipy is not installed."""
    try:
        from scipy import ndimage
    except ImportError as e:
        raise ScipyMissing("the challenge metrics need scipy: pip install scipy") from e
    return ndimage


# 2x2x2 kernel turning a binary neighbourhood into an 8-bit code. With scipy's default origin
# for an even-sized kernel, ``correlate(mask, K)[i, j, k] = sum_{a,b,c in {0,1}}
# K[a, b, c] * mask[i - 1 + a, j - 1 + b, k - 1 + c]``: weight 128 is the voxel (i-1, j-1, k-1),
# weight 1 is the voxel (i, j, k); i.e. the code of corner (i, j, k) describes the 2x2x2 block of
# voxels that ends at (i, j, k).
ENCODE_NEIGHBOURHOOD_3D_KERNEL = np.array(
    [[[128, 64], [32, 16]], [[8, 4], [2, 1]]], dtype=np.float64
)

class SurfaceDistances(TypedDict):
    """Result of :func:`compute_surface_distances` (same keys as the DeepMind/MedSAM dict).

    All four arrays are 1-D float64. ``distances_*`` are in the unit of the spacing (mm for 3D
    cases, pixels for 2D); ``surfel_areas_*`` in that unit squared. Each pair is sorted by
    distance (ties by area), as in the official code.
    """

    distances_gt_to_pred: np.ndarray
    distances_pred_to_gt: np.ndarray
    surfel_areas_gt: np.ndarray
    surfel_areas_pred: np.ndarray


def neighbour_code_to_surface_area(spacing_mm: Sequence[float]) -> np.ndarray:
    """Surfel area of each of the 256 neighbour codes for a given voxel spacing.

    Args:
        spacing_mm: 3 floats, the spacing (s0, s1, s2) of array axes 0, 1, 2.

    Returns:
        ``(256,)`` float64 array; entry ``c`` is the sum over the normals ``n`` of code ``c`` of
        ``||(n0*s1*s2, n1*s0*s2, n2*s0*s1)||`` (area in spacing units squared).
    """
    s0, s1, s2 = (float(s) for s in spacing_mm)
    scale = np.array([s1 * s2, s0 * s2, s0 * s1])
    table = np.zeros(256, dtype=np.float64)
    for code, normals in enumerate(NEIGHBOUR_CODE_TO_NORMALS):
        n = np.asarray(normals, dtype=np.float64) * scale
        # Accumulate normal by normal in the table's order (like the reference loop).
        area = 0.0
        for row in n:
            area += float(np.linalg.norm(row))
        table[code] = area
    return table


def _check_spacing(spacing_mm: Sequence[float]) -> tuple[float, float, float]:
    sp = tuple(float(s) for s in np.asarray(spacing_mm, dtype=np.float64).ravel())
    if len(sp) != 3:
        raise ValueError(f"spacing must have 3 elements, got {len(sp)}")
    if not all(np.isfinite(s) and s > 0 for s in sp):
        raise ValueError(f"spacing must be finite and positive, got {sp}")
    return sp  # type: ignore[return-value]


def _union_bbox(mask_gt: np.ndarray, mask_pred: np.ndarray) -> tuple[slice, ...] | None:
    """Bounding box (as slices) of ``mask_gt | mask_pred``; None when both are empty."""
    union = mask_gt | mask_pred
    slices = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        idx = np.flatnonzero(union.any(axis=other))
        if idx.size == 0:
            return None
        slices.append(slice(int(idx[0]), int(idx[-1]) + 1))
    return tuple(slices)


def _sorted_by_distance(dist: np.ndarray, area: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # The reference sorts zip(distance, area) tuples: by distance, ties by area.
    order = np.lexsort((area, dist))
    return dist[order], area[order]


def compute_surface_distances(
    mask_gt: np.ndarray, mask_pred: np.ndarray, spacing_mm: Sequence[float]
) -> SurfaceDistances:
    """Distances from every surfel of one surface to the other surface (DeepMind method).

    Args:
        mask_gt: ``(D0, D1, D2)`` boolean (or 0/1) array, the ground-truth mask.
        mask_pred: boolean (or 0/1) array of the same shape, the predicted mask.
        spacing_mm: 3 floats, the spacing of array axes 0, 1, 2 (used verbatim; mm for the
            challenge's 3D cases, ``(1, 1, 1)`` for 2D cases expanded to ``(H, W, 1)``).

    Returns:
        :class:`SurfaceDistances`. Both masks empty -> four empty arrays. One mask empty -> its
        lists are empty and every distance of the other surface is ``inf``.

    Surfels live on voxel corners: both masks are cropped to the bounding box of their union,
    padded with one zero voxel at the end of each axis, and encoded with
    ``scipy.ndimage.correlate(mask_uint8, ENCODE_NEIGHBOURHOOD_3D_KERNEL, mode="constant")``;
    codes other than 0 and 255 are surfels, their area comes from the marching-cube table and
    the distance to the other surface from ``distance_transform_edt(~surface, sampling)``.
    """
    mask_gt = np.asarray(mask_gt).astype(bool, copy=False)
    mask_pred = np.asarray(mask_pred).astype(bool, copy=False)
    if mask_gt.ndim != 3 or mask_gt.shape != mask_pred.shape:
        raise ValueError(
            f"masks must be 3-D and of equal shape, got {mask_gt.shape} and {mask_pred.shape}"
        )
    spacing = _check_spacing(spacing_mm)

    bbox = _union_bbox(mask_gt, mask_pred)
    if bbox is None:
        empty = np.array([], dtype=np.float64)
        return {
            "distances_gt_to_pred": empty,
            "distances_pred_to_gt": empty.copy(),
            "surfel_areas_gt": empty.copy(),
            "surfel_areas_pred": empty.copy(),
        }

    crop_shape = tuple(s.stop - s.start + 1 for s in bbox)
    inner = tuple(slice(0, -1) for _ in range(3))
    area_table = neighbour_code_to_surface_area(spacing)

    borders = []
    areas = []
    distmaps = []
    ndimage = _ndimage()
    for mask in (mask_gt, mask_pred):
        crop = np.zeros(crop_shape, dtype=np.uint8)
        crop[inner] = mask[bbox]
        # uint8 output is exact: the weights sum to 255.
        code = ndimage.correlate(crop, ENCODE_NEIGHBOURHOOD_3D_KERNEL, mode="constant", cval=0)
        border = (code != 0) & (code != 255)
        if border.any():
            distmap = ndimage.distance_transform_edt(~border, sampling=spacing)
        else:
            distmap = np.full(border.shape, np.inf)
        borders.append(border)
        areas.append(area_table[code])
        distmaps.append(distmap)

    border_gt, border_pred = borders
    d_gt, a_gt = _sorted_by_distance(distmaps[1][border_gt], areas[0][border_gt])
    d_pred, a_pred = _sorted_by_distance(distmaps[0][border_pred], areas[1][border_pred])
    return {
        "distances_gt_to_pred": d_gt,
        "distances_pred_to_gt": d_pred,
        "surfel_areas_gt": a_gt,
        "surfel_areas_pred": a_pred,
    }


def compute_surface_dice_at_tolerance(
    surface_distances: SurfaceDistances, tolerance_mm: float
) -> float:
    """Normalised surface Dice of one label at a tolerance.

    Args:
        surface_distances: output of :func:`compute_surface_distances`.
        tolerance_mm: tolerance in the unit of the spacing (mm in 3D, pixels in 2D).

    Returns:
        ``(sum of GT surfel areas with distance <= tol + sum of predicted surfel areas with
        distance <= tol) / (total GT area + total predicted area + 1e-12)`` as a float in
        [0, 1]. The ``1e-12`` is the official script's; it makes "both empty" give 0.0.
    """
    d_gt = surface_distances["distances_gt_to_pred"]
    d_pred = surface_distances["distances_pred_to_gt"]
    a_gt = surface_distances["surfel_areas_gt"]
    a_pred = surface_distances["surfel_areas_pred"]
    overlap_gt = np.sum(a_gt[d_gt <= tolerance_mm])
    overlap_pred = np.sum(a_pred[d_pred <= tolerance_mm])
    return float((overlap_gt + overlap_pred) / (np.sum(a_gt) + np.sum(a_pred) + 1e-12))


def compute_dice_coefficient(mask_gt: np.ndarray, mask_pred: np.ndarray) -> float:
    """Dice of two boolean masks of equal shape; NaN when both are empty."""
    mask_gt = np.asarray(mask_gt, dtype=bool)
    mask_pred = np.asarray(mask_pred, dtype=bool)
    volume_sum = int(mask_gt.sum()) + int(mask_pred.sum())
    if volume_sum == 0:
        return float("nan")
    return 2.0 * int(np.count_nonzero(mask_gt & mask_pred)) / volume_sum


def _num_labels(gt: np.ndarray) -> int:
    # Official: range(1, gt.max() + 1). An all-zero (or empty) gt scores no label at all.
    return int(gt.max()) if gt.size else 0


def _check_pair(gt: np.ndarray, seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt = np.asarray(gt)
    seg = np.asarray(seg)
    if gt.shape != seg.shape:
        raise ValueError(f"gt and seg shapes differ: {gt.shape} vs {seg.shape}")
    return gt, seg


def dice_per_label(gt: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """DSC of every label ``1 .. max(gt)`` over the whole array.

    Args:
        gt: ground-truth label map, any shape (``(H, W)`` for 2D, ``(D, H, W)`` for 3D),
            integer dtype (uint8/uint16/int...), 0 = background.
        seg: predicted label map of the same shape. Labels ``> max(gt)`` are ignored.

    Returns:
        ``(max(gt),)`` float64 array; entry ``i - 1`` is ``2|G_i & S_i| / (|G_i| + |S_i|)``,
        NaN where label ``i`` is absent from both. Empty array when ``gt`` has no label.
    """
    gt, seg = _check_pair(gt, seg)
    n = _num_labels(gt)
    if n <= 0:
        return np.zeros(0, dtype=np.float64)
    if np.issubdtype(gt.dtype, np.integer) and np.issubdtype(seg.dtype, np.integer):
        g = gt.ravel()
        s = seg.ravel()
        size_g = np.bincount(g[g > 0].astype(np.intp), minlength=n + 1)[: n + 1]
        s_in = s[(s > 0) & (s <= n)].astype(np.intp)
        size_s = np.bincount(s_in, minlength=n + 1)[: n + 1]
        hit = g[(g == s) & (g > 0)].astype(np.intp)
        inter = np.bincount(hit, minlength=n + 1)[: n + 1]
        denom = (size_g + size_s)[1:].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(denom > 0, 2.0 * inter[1:] / np.where(denom > 0, denom, 1.0), np.nan)
        return out.astype(np.float64)
    return np.array(
        [compute_dice_coefficient(gt == i, seg == i) for i in range(1, n + 1)], dtype=np.float64
    )


def _label_boxes(labels: np.ndarray, n: int) -> list[tuple[slice, ...] | None]:
    """Bounding box of each label 1..n (None when absent)."""
    if np.issubdtype(labels.dtype, np.integer):
        lab = labels
        if lab.dtype.kind == "i" or lab.dtype.itemsize > 4:
            # find_objects ignores values <= 0; labels above n are dropped by max_label.
            lab = np.where((lab > 0) & (lab <= n), lab, 0).astype(np.int32)
        boxes = _ndimage().find_objects(lab, max_label=n)
        return list(boxes) + [None] * (n - len(boxes))
    out: list[tuple[slice, ...] | None] = []
    for i in range(1, n + 1):
        mask = labels == i
        out.append(_union_bbox(mask, mask))
    return out


def nsd_per_label(
    gt: np.ndarray,
    seg: np.ndarray,
    spacing: Sequence[float],
    tolerance: float = 2.0,
) -> np.ndarray:
    """Normalised surface Dice of every label ``1 .. max(gt)`` (no DSC gating).

    Args:
        gt: ``(D0, D1, D2)`` integer label map (a 2D case must already be expanded to
            ``(H, W, 1)``; :func:`compute_case_metrics` does that).
        seg: predicted label map of the same shape; labels ``> max(gt)`` are ignored.
        spacing: 3 floats, spacing of array axes 0, 1, 2, used verbatim (mm in 3D).
        tolerance: NSD tolerance in the unit of ``spacing`` (challenge: 2.0).

    Returns:
        ``(max(gt),)`` float64 array of NSD values in [0, 1]. An empty prediction (or an empty
        ground truth) for a label gives 0.0; a label absent from both gives 0.0 as well
        (official ``1e-12`` in the denominator).

    Each label is cropped to the bounding box of ``(gt == i) | (seg == i)`` before the surface
    computation; this does not change the result (all surfels lie inside that box).
    """
    gt, seg = _check_pair(gt, seg)
    if gt.ndim != 3:
        raise ValueError(f"nsd_per_label needs 3-D arrays, got shape {gt.shape}")
    sp = _check_spacing(spacing)
    n = _num_labels(gt)
    if n <= 0:
        return np.zeros(0, dtype=np.float64)
    boxes_g = _label_boxes(gt, n)
    boxes_s = _label_boxes(seg, n)
    out = np.zeros(n, dtype=np.float64)
    empty = np.zeros((1, 1, 1), dtype=bool)
    for i in range(1, n + 1):
        bg, bs = boxes_g[i - 1], boxes_s[i - 1]
        if bg is None and bs is None:
            dist = compute_surface_distances(empty, empty, sp)
        else:
            boxes = [b for b in (bg, bs) if b is not None]
            box = tuple(
                slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes))
                for a in range(3)
            )
            dist = compute_surface_distances(gt[box] == i, seg[box] == i, sp)
        out[i - 1] = compute_surface_dice_at_tolerance(dist, tolerance)
    return out


def compute_case_metrics(
    gt: np.ndarray,
    seg: np.ndarray,
    spacing: Sequence[float] | None = None,
    *,
    is_3d: bool,
    tolerance: float = 2.0,
) -> tuple[float, float]:
    """Case DSC and NSD with the challenge rules.

    Args:
        gt: ground-truth label map, ``(H, W)`` for a 2D case or ``(D, H, W)`` for a 3D case,
            integer dtype, 0 = background, labels ``1 .. max(gt)`` scored.
        seg: predicted label map of the same shape (labels ``> max(gt)`` ignored).
        spacing: 3D only: the npz ``spacing`` (3 floats), used verbatim as the spacing of array
            axes (0, 1, 2) -- no reordering, as in the official script. Ignored for 2D.
        is_3d: True for a 3D case (official: file name starts with ``3D``).
        tolerance: NSD tolerance (mm in 3D, pixels in 2D); challenge value 2.0.

    Returns:
        ``(dsc, nsd)`` floats: dsc = mean of :func:`dice_per_label` (NaN if a label is absent
        from both masks or ``gt`` has no label); nsd = mean of :func:`nsd_per_label` when
        dsc > 0.2, else 0.0. 2D cases are scored as ``(H, W, 1)`` volumes with spacing (1,1,1).
    """
    gt, seg = _check_pair(gt, seg)
    dsc_labels = dice_per_label(gt, seg)
    dsc = float(np.mean(dsc_labels)) if dsc_labels.size else float("nan")
    if not dsc > NSD_DSC_THRESHOLD:  # NaN > 0.2 is False -> NSD 0, like the official script
        return dsc, 0.0
    if is_3d:
        if gt.ndim != 3:
            raise ValueError(f"3D case needs (D, H, W) arrays, got shape {gt.shape}")
        if spacing is None:
            raise ValueError("3D case needs the npz spacing")
        nsd_labels = nsd_per_label(gt, seg, spacing, tolerance)
    else:
        if gt.ndim != 2:
            raise ValueError(f"2D case needs (H, W) arrays, got shape {gt.shape}")
        nsd_labels = nsd_per_label(gt[..., None], seg[..., None], (1.0, 1.0, 1.0), tolerance)
    return dsc, float(np.mean(nsd_labels))
