"""Edits of one object in a label map, each as a small :class:`LabelEdit` (a box and its new voxels),
and the one rule by which any mask is written into a label map: locked objects and the overlap policy.

Label maps are (Z,Y,X) uint8/uint16 arrays on an image's grid (:mod:`engine.data.labelmap`), 0 =
background. Every operation here works on the object's bounding box (a crop), never on the whole
volume, and returns only what changed, so undo stores a few kB for a brush stroke.

Locks and overlap (:func:`merge`): the voxels of a locked object are never changed, whatever writes
(a box, a propagation, the brush, an interpolation, a clean-up); a locked object itself is not edited
at all. With the policy ``overwrite-unlocked`` a new mask takes voxels from other unlocked objects;
with ``never-overwrite`` it only takes background (and its own voxels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.base.callbacks import ProgressFn, StopFn
from engine.data.brush import stroke_mask
from engine.data.interpolate import fill_between
from engine.data.morphology import fill_holes, largest_component, smooth

OVERWRITE_UNLOCKED = "overwrite-unlocked"
NEVER_OVERWRITE = "never-overwrite"
POLICIES = (OVERWRITE_UNLOCKED, NEVER_OVERWRITE)

#: how a mask is combined with the object's voxels already in the box
REPLACE, ADD, ERASE = "replace", "add", "erase"

Where = tuple[int, int, int, int, int, int]  # (z0, z1, y0, y1, x0, x1), half-open

# Whole-volume work (a propagation's mask merged into a 512x512x300 label map) goes through slabs of about
# this many voxels, so that its temporaries take a few MiB instead of several copies of the volume (75 MiB
# each there).
_SLAB_VOXELS = 1 << 22


def _slabs(shape: tuple[int, ...]):
    """Slices along axis 0 covering ``shape`` in slabs of about :data:`_SLAB_VOXELS` voxels."""
    if len(shape) == 0 or shape[0] == 0:
        yield ...
        return
    step = max(1, _SLAB_VOXELS // max(1, int(np.prod(shape[1:]))))
    for a in range(0, shape[0], step):
        yield slice(a, min(a + step, shape[0]))


@dataclass(frozen=True)
class LabelEdit:
    """labels[z0:z1, y0:y1, x0:x1] becomes ``after`` (same dtype as the label map)."""

    where: Where
    after: np.ndarray

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        z0, z1, y0, y1, x0, x1 = self.where
        return slice(z0, z1), slice(y0, y1), slice(x0, x1)

    def apply(self, labels: np.ndarray) -> None:
        """Write it into ``labels`` in place."""
        labels[self.slices] = self.after

    @property
    def voxels(self) -> int:
        return int(self.after.size)


def slices_of(where: Where) -> tuple[slice, slice, slice]:
    z0, z1, y0, y1, x0, x1 = where
    return slice(z0, z1), slice(y0, y1), slice(x0, x1)


def merge(current: np.ndarray, value: int, mask: np.ndarray, mode: str = REPLACE, *, locked=(),
          policy: str = OVERWRITE_UNLOCKED) -> np.ndarray:
    """The label voxels after writing object ``value``'s ``mask`` into them (a new array; ``current`` is kept).

    current: labels of a box (any shape); mask: bool of the same shape. mode: ``replace`` (the object
    becomes ``mask`` in this box), ``add`` (the brush) or ``erase`` (the eraser: only ``value``'s voxels
    under the mask are cleared). locked: values never changed; when ``value`` is locked nothing changes.
    policy: ``overwrite-unlocked`` or ``never-overwrite`` (see the module docstring).
    """
    if policy not in POLICIES:
        raise ValueError(f"overlap policy must be one of {POLICIES}, got {policy!r}")
    if mode not in (REPLACE, ADD, ERASE):
        raise ValueError(f"mode must be replace, add or erase, got {mode!r}")
    out = current.copy()
    locked = [int(v) for v in locked]
    if int(value) in locked:
        return out
    m = np.broadcast_to(np.asarray(mask, bool), current.shape)
    for s in _slabs(current.shape):  # temporaries of one slab, not of the whole box
        _merge_slab(out[s], current[s], m[s], value, mode, locked, policy)
    return out


def _merge_slab(out, current, m, value, mode, locked, policy) -> None:
    own = current == value
    if mode == ERASE:
        out[own & m] = 0
        return
    if mode == REPLACE:
        out[own & ~m] = 0
    free = own | (current == 0)
    if policy == OVERWRITE_UNLOCKED:
        free |= ~np.isin(current, locked) if locked else np.ones_like(free)
    out[m & free] = value


def _bounds(slabs) -> Where | None:
    """Bounding box (z0, z1, y0, y1, x0, x1), half-open, of the set voxels of bool slabs given as
    (first slice index, bool (n, Y, X)) in order along Z; None when none is set."""
    zs, ys, xs = [], None, None
    for start, m in slabs:
        if ys is None:
            ys, xs = np.zeros(m.shape[1], bool), np.zeros(m.shape[2], bool)
        rows = m.any(axis=(1, 2))
        if rows.any():
            zs.extend(np.flatnonzero(rows) + start)
            ys |= m.any(axis=(0, 2))
            xs |= m.any(axis=(0, 1))
    if not zs:
        return None
    y, x = np.flatnonzero(ys), np.flatnonzero(xs)
    return int(zs[0]), int(zs[-1]) + 1, int(y[0]), int(y[-1]) + 1, int(x[0]), int(x[-1]) + 1


def changed_bounds(before: np.ndarray, after: np.ndarray) -> Where | None:
    """Bounding box (z0, z1, y0, y1, x0, x1), half-open, of the voxels where two (Z,Y,X) arrays of one shape
    differ, or None where they are equal. Compares slab by slab: no whole-volume temporary."""
    if before.shape != after.shape:
        raise ValueError(f"shapes differ: {before.shape} and {after.shape}")
    return _bounds((s.start, before[s] != after[s]) for s in _slabs(before.shape))


def _changed(before: np.ndarray, after: np.ndarray, origin=(0, 0, 0)) -> LabelEdit | None:
    """The edit from ``before`` to ``after`` (a box at ``origin`` (z, y, x)), shrunk to the changed voxels."""
    bounds = changed_bounds(before, after)
    if bounds is None:
        return None
    z0, z1, y0, y1, x0, x1 = bounds
    oz, oy, ox = origin
    return LabelEdit((z0 + oz, z1 + oz, y0 + oy, y1 + oy, x0 + ox, x1 + ox), after[z0:z1, y0:y1, x0:x1].copy())


def write_mask(labels: np.ndarray, value: int, where: Where, mask: np.ndarray, mode: str = REPLACE, *, locked=(),
               policy: str = OVERWRITE_UNLOCKED) -> LabelEdit | None:
    """The edit that writes object ``value``'s bool ``mask`` (the box ``where``) into ``labels`` by
    :func:`merge`; None when nothing changes. ``labels`` is not modified."""
    before = labels[slices_of(where)]
    after = merge(before, value, mask, mode, locked=locked, policy=policy)
    return _changed(before, after, where[::2])


def mask_box(mask: np.ndarray) -> Where | None:
    """Bounding box (z0, z1, y0, y1, x0, x1), half-open, of the set voxels of a (Z,Y,X) array (nonzero =
    set), or None when none is set. Slab by slab: no whole-volume temporary."""
    return _bounds((s.start, np.asarray(mask[s], bool)) for s in _slabs(mask.shape))


def object_box(labels: np.ndarray, value: int, pad: int | tuple[int, int, int] = 0) -> Where | None:
    """Bounding box (z0, z1, y0, y1, x0, x1) of object ``value``, grown by ``pad`` voxels per axis
    (z, y, x) within the array; None when it has no voxel. Slab by slab (no whole-volume temporary)."""
    box = _bounds((s.start, labels[s] == value) for s in _slabs(labels.shape))
    if box is None:
        return None
    pads = (pad,) * 3 if isinstance(pad, int) else tuple(pad)
    return tuple(v for axis in range(3) for v in (max(box[2 * axis] - pads[axis], 0),
                                                   min(box[2 * axis + 1] + pads[axis], labels.shape[axis])))


def union_box(a: Where | None, b: Where | None) -> Where | None:
    """The smallest box (z0, z1, y0, y1, x0, x1) holding both boxes (either may be None)."""
    if a is None or b is None:
        return a if b is None else b
    return tuple(min(a[i], b[i]) if i % 2 == 0 else max(a[i], b[i]) for i in range(6))


def brush(labels: np.ndarray, value: int, spacing, centres, radius_mm: float, *, sphere: bool = False,
          erase: bool = False, locked=(), policy: str = OVERWRITE_UNLOCKED) -> LabelEdit | None:
    """Paint (or erase) object ``value`` along a stroke (:func:`engine.data.brush.stroke_mask`: centres
    [(x, y, z), ...] voxel indices, radius in mm, disc on the first centre's slice or ball)."""
    hit = stroke_mask(labels.shape, spacing, centres, radius_mm, sphere)
    if hit is None:
        return None
    where, mask = hit
    return write_mask(labels, value, where, mask, ERASE if erase else ADD, locked=locked, policy=policy)


def _object_op(labels, value, fn, pad=0, *, locked=(), policy=OVERWRITE_UNLOCKED) -> LabelEdit | None:
    where = object_box(labels, value, pad)
    if where is None:
        return None
    own = labels[slices_of(where)] == value
    return write_mask(labels, value, where, fn(own), REPLACE, locked=locked, policy=policy)


def fill_object_holes(labels: np.ndarray, value: int, per_slice: bool = False, *, locked=(),
                      policy: str = OVERWRITE_UNLOCKED) -> LabelEdit | None:
    """Fill the holes of object ``value`` in 3D, or in each slice (:func:`engine.data.morphology.fill_holes`);
    a hole holding another object is filled only where the policy lets the object take it."""
    return _object_op(labels, value, lambda m: fill_holes(m, per_slice), locked=locked, policy=policy)


def keep_largest(labels: np.ndarray, value: int, *, locked=(), policy: str = OVERWRITE_UNLOCKED) -> LabelEdit | None:
    """Remove every part of object ``value`` but its largest 26-connected one."""
    return _object_op(labels, value, largest_component, locked=locked, policy=policy)


def smooth_object(labels: np.ndarray, value: int, spacing, radius_mm: float = 1.0, *, locked=(),
                  policy: str = OVERWRITE_UNLOCKED) -> LabelEdit | None:
    """Closing then opening of object ``value`` by a ball of ``radius_mm`` on the true spacing."""
    pad = tuple(int(np.ceil(radius_mm / s)) + 1 for s in spacing)
    return _object_op(labels, value, lambda m: smooth(m, radius_mm, spacing), pad, locked=locked, policy=policy)


def interpolate_object(labels: np.ndarray, value: int, spacing, z_range: tuple[int, int] | None = None, *,
                       locked=(), policy: str = OVERWRITE_UNLOCKED, progress: ProgressFn | None = None,
                       should_stop: StopFn | None = None) -> tuple[LabelEdit | None, list[int]]:
    """Fill the empty slices between the slices where object ``value`` is drawn
    (:func:`engine.data.interpolate.fill_between`); returns (the edit, the slices filled)."""
    where = object_box(labels, value)
    if where is None:
        return None, []
    own = labels[slices_of(where)] == value
    zr = None if z_range is None else (z_range[0] - where[0], z_range[1] - where[0])
    new, zs = fill_between(own, spacing, zr, progress=progress, should_stop=should_stop)
    edit = write_mask(labels, value, where, new, ADD, locked=locked, policy=policy)
    return edit, [z + where[0] for z in zs]


__all__ = ["ADD", "ERASE", "LabelEdit", "NEVER_OVERWRITE", "OVERWRITE_UNLOCKED", "POLICIES", "REPLACE", "brush",
           "changed_bounds", "fill_object_holes", "interpolate_object", "keep_largest", "mask_box", "merge", "object_box",
           "slices_of", "union_box",
           "smooth_object", "write_mask"]
