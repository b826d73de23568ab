"""Outlines of masks and label images: drawn by the desktop app and in overlay PNGs, and the surface
voxels that the measurements search (engine.data.measure). Any number of dimensions."""

from __future__ import annotations

import numpy as np


def outline(labels: np.ndarray) -> np.ndarray:
    """bool, same shape: the boundary of a label image or bool mask (2D (H,W), 3D (Z,Y,X), ...) — a
    non-zero element with a face neighbour (4 in 2D, 6 in 3D) of another value. Elements on the array
    border count as boundary only where a neighbour inside differs (use :func:`mask_outline` to close
    shapes at the border)."""
    m = labels
    b = np.zeros(m.shape, bool)
    for ax in range(m.ndim):
        hi = tuple(slice(1, None) if a == ax else slice(None) for a in range(m.ndim))
        lo = tuple(slice(None, -1) if a == ax else slice(None) for a in range(m.ndim))
        differs = m[hi] != m[lo]
        b[hi] |= differs
        b[lo] |= differs
    return b & (m != 0)


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """bool, same shape: the elements of a bool mask with a face neighbour outside the mask or outside the array."""
    inner = tuple(slice(1, -1) for _ in range(mask.ndim))
    return outline(np.pad(mask.astype(bool), 1))[inner]


__all__ = ["mask_outline", "outline"]
