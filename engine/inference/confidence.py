"""How far to trust each slice of a propagated object (numpy only, no model run).

Per slice z of an object's span (first to last slice holding it, gaps included) this gives:

* ``iou``: the model's own IoU estimate of the mask it predicted there (the LiteMedSAM decoder's iou
  head; collected by :func:`engine.inference.propagate.propagate_box` with ``ious=``; NaN for a slice
  the model did not predict: the user's own slice, a manual edit),
* ``area`` (pixels) and ``area_change``: ``|a - a_ref| / max(a, a_ref)`` (0..1, symmetric) against the
  neighbour slice it was propagated from (toward the start slice; NaN on the start slice),
* ``blobs``: connected pieces (8-connectivity) of at least ``min_blob_px`` pixels on the slice,

and a flag per slice (:data:`IOU_LOW`, :data:`AREA_JUMP`, :data:`MULTI_BLOB`, OR-ed): the estimate
below ``iou_min``, an area change above ``area_jump``, more than ``max_blobs`` pieces. A slice with a
flag is "suspicious". The default thresholds were chosen on the 3D challenge cases with ground truth
(``bench/eval_confidence.py``; docs/measurements.md records the precision and recall).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from engine.inference.imgproc import label_components

IOU_LOW, AREA_JUMP, MULTI_BLOB = 1, 2, 4
FLAG_NAMES = {IOU_LOW: "low model IoU", AREA_JUMP: "area jump", MULTI_BLOB: "several pieces"}


@dataclass(frozen=True)
class Thresholds:
    """iou_min: flag an estimate below it; area_jump: flag an area change (0..1) above it; max_blobs:
    flag more pieces than this (None: never); min_blob_px: smaller pieces are not counted (upsampling specks).

    Defaults: the best F1 of ``bench/eval_confidence.py`` on the 11 3D eval cases (487 slices, 60 with
    DSC < 0.5): IoU < 0.75 or area change > 0.4 flags 43 slices, precision 0.767, recall 0.550. The
    pieces count is off by default: "more than 1" flagged 67 slices at precision 0.119 (tumours and
    spinal cords legitimately come in pieces), lowering F1 to 0.617 even as "more than 2"."""

    iou_min: float = 0.75
    area_jump: float = 0.4
    max_blobs: int | None = None
    min_blob_px: int = 5


DEFAULT = Thresholds()


@dataclass
class SliceConfidence:
    """Per-slice figures of one object over its span (see the module docstring); arrays of length N."""

    z: np.ndarray            # int (N,) slice indices, increasing
    iou: np.ndarray          # float (N,), NaN where unknown
    area: np.ndarray         # int (N,) pixels
    area_change: np.ndarray  # float (N,) 0..1, NaN on the start slice
    blobs: np.ndarray        # int (N,)
    flags: np.ndarray        # int (N,) OR of IOU_LOW / AREA_JUMP / MULTI_BLOB
    start: int
    thresholds: Thresholds

    @property
    def suspicious(self) -> np.ndarray:
        """int (K,) the slices with a flag."""
        return self.z[self.flags != 0]

    def reasons(self, z: int) -> list[str]:
        """The flags of slice z as words (empty: not flagged or not in the span)."""
        i = np.flatnonzero(self.z == z)
        if not len(i):
            return []
        f = int(self.flags[i[0]])
        return [name for bit, name in FLAG_NAMES.items() if f & bit]

    def to_json(self) -> dict:
        """JSON-able: thresholds and one dict per slice (NaN as None)."""
        def num(v):
            return None if not np.isfinite(v) else round(float(v), 4)

        return {"start": int(self.start), "thresholds": asdict(self.thresholds),
                "slices": [{"z": int(z), "iou": num(i), "area_px": int(a), "area_change": num(c), "blobs": int(b),
                            "suspicious": bool(f), "reasons": self.reasons(int(z))}
                           for z, i, a, c, b, f in zip(self.z, self.iou, self.area, self.area_change, self.blobs,
                                                       self.flags)]}


def count_blobs(mask2d: np.ndarray, min_px: int = DEFAULT.min_blob_px) -> int:
    """Connected pieces (8-connectivity) of a bool (H,W) mask with at least ``min_px`` pixels."""
    if not mask2d.any():
        return 0
    lab, n = label_components(mask2d, connectivity=8)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    return int(np.count_nonzero(sizes >= min_px))


def flag_slices(iou: np.ndarray, area_change: np.ndarray, blobs: np.ndarray, t: Thresholds = DEFAULT) -> np.ndarray:
    """The flags (int, OR-ed) of per-slice figures (arrays of one length) under thresholds ``t``."""
    iou, area_change, blobs = (np.asarray(a) for a in (iou, area_change, blobs))
    flags = np.zeros(iou.shape, np.int64)
    with np.errstate(invalid="ignore"):
        flags |= np.where(iou < t.iou_min, IOU_LOW, 0)
        flags |= np.where(area_change > t.area_jump, AREA_JUMP, 0)
    if t.max_blobs is not None:
        flags |= np.where(blobs > t.max_blobs, MULTI_BLOB, 0)
    return flags


class _SliceEquals:
    """``labels[z] == value`` on demand: the slices of an object's mask without the whole (Z,Y,X) bool."""

    def __init__(self, labels: np.ndarray, value: int):
        self.labels, self.value = labels, value

    def __getitem__(self, z: int) -> np.ndarray:
        return self.labels[z] == self.value


def slice_confidence(mask: np.ndarray, slice_iou: dict | None = None, start: int | None = None,
                     thresholds: Thresholds = DEFAULT, *, value: int | None = None) -> SliceConfidence:
    """Per-slice confidence of one object: mask bool (Z,Y,X); slice_iou z -> the model's estimate;
    start: the slice propagation started from (default: the slice of largest area).

    value: ``mask`` is then a label map (Z,Y,X) and the object its voxels equal to ``value``, compared one
    slice at a time (no (Z,Y,X) bool copy: 75 MiB for a 512x512x300 map)."""
    if value is None:
        mask = np.asarray(mask, bool)
        areas_all = mask.reshape(mask.shape[0], -1).sum(axis=1)
    else:
        labels = np.asarray(mask)
        areas_all = np.array([np.count_nonzero(labels[z] == value) for z in range(labels.shape[0])], np.int64)
        mask = _SliceEquals(labels, value)
    present = np.flatnonzero(areas_all)
    if not len(present):
        e = np.zeros(0)
        return SliceConfidence(e.astype(int), e, e.astype(int), e, e.astype(int), e.astype(int),
                               -1 if start is None else int(start), thresholds)
    zs = np.arange(present[0], present[-1] + 1)
    if start is None or not (zs[0] <= start <= zs[-1]):
        start = int(zs[np.argmax(areas_all[zs])])
    area = areas_all[zs].astype(np.int64)
    iou = np.array([float((slice_iou or {}).get(int(z), np.nan)) for z in zs])
    ref = np.array([areas_all[z - 1] if z > start else areas_all[z + 1] if z < start else 0 for z in zs], np.float64)
    big = np.maximum(area, ref)
    with np.errstate(invalid="ignore", divide="ignore"):
        change = np.where(big > 0, np.abs(area - ref) / np.maximum(big, 1), 0.0)
    change[zs == start] = np.nan
    blobs = np.array([count_blobs(mask[z], thresholds.min_blob_px) for z in zs], np.int64)
    return SliceConfidence(zs, iou, area, change, blobs, flag_slices(iou, change, blobs, thresholds), int(start),
                           thresholds)


__all__ = ["AREA_JUMP", "DEFAULT", "FLAG_NAMES", "IOU_LOW", "MULTI_BLOB", "SliceConfidence", "Thresholds",
           "count_blobs", "flag_slices", "slice_confidence"]
