"""Outlines of masks and label images (drawn by the desktop app and in overlay PNGs)."""

from __future__ import annotations

import numpy as np


def outline(labels2d: np.ndarray) -> np.ndarray:
    """bool (H,W): the boundary pixels of a 2D label image or bool mask — a non-zero pixel with a
    4-neighbour of another value. Pixels on the image border count as boundary only where a
    neighbour inside differs (use :func:`mask_outline` to close shapes at the border)."""
    m = labels2d
    b = np.zeros(m.shape, bool)
    b[1:, :] |= m[1:, :] != m[:-1, :]
    b[:-1, :] |= m[:-1, :] != m[1:, :]
    b[:, 1:] |= m[:, 1:] != m[:, :-1]
    b[:, :-1] |= m[:, :-1] != m[:, 1:]
    return b & (m != 0)


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """bool (H,W): the pixels of a bool mask with a 4-neighbour outside the mask or outside the image."""
    return outline(np.pad(mask.astype(bool), 1))[1:-1, 1:-1]


__all__ = ["mask_outline", "outline"]
