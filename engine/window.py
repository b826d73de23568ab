"""Intensities -> the model's uint8 domain (SPEC A.4 offline steps). Pure functions.

The window used is part of the embedding-cache key: :func:`window_key` gives its canonical string.
"""

from __future__ import annotations

import numpy as np

#: CT presets (level, width) in HU
CT_PRESETS = {
    "soft-tissue": (40.0, 400.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}


def ct_window(hu: np.ndarray, level: float = 40.0, width: float = 400.0) -> np.ndarray:
    """CT in HU (any shape) -> uint8: clip to [L-W/2, L+W/2], min-max of the clipped array, truncate.

    Exactly the challenge's ``pre_CT_MR.py`` rule (the min/max are those of the clipped data, so
    a slice without air or bone is stretched); a constant input gives zeros.
    """
    if width <= 0:
        raise ValueError(f"window width must be positive, got {width}")
    lo, hi = level - width / 2, level + width / 2
    v = np.clip(np.asarray(hu, dtype=np.float64), lo, hi)
    vmin, vmax = float(v.min()), float(v.max())
    if vmax <= vmin:
        return np.zeros(v.shape, np.uint8)
    return ((v - vmin) / (vmax - vmin) * 255.0).astype(np.uint8)


def percentile_normalise(data: np.ndarray, lower: float = 0.5, upper: float = 99.5) -> np.ndarray:
    """MR/other -> uint8: percentiles of the voxels > 0, clip, min-max, truncate; zeros stay 0."""
    a = np.asarray(data, dtype=np.float64)
    fg = a[a > 0]
    if fg.size == 0:
        return np.zeros(a.shape, np.uint8)
    lo, hi = np.percentile(fg, [lower, upper])
    v = np.clip(a, lo, hi)
    vmin, vmax = float(v.min()), float(v.max())
    out = np.zeros(a.shape, np.uint8) if vmax <= vmin else ((v - vmin) / (vmax - vmin) * 255.0).astype(np.uint8)
    out[a == 0] = 0
    return out


def minmax_u8(data: np.ndarray) -> np.ndarray:
    """2D rule (pre_grey_rgb.py): values already in 0..255 are cast, otherwise min-max to 0..255."""
    a = np.asarray(data)
    if a.dtype == np.uint8:
        return a
    if a.size and a.min() >= 0 and a.max() <= 255 and np.issubdtype(a.dtype, np.integer):
        return a.astype(np.uint8)
    a = a.astype(np.float64)
    vmin, vmax = float(a.min()), float(a.max())
    if vmax <= vmin:
        return np.zeros(a.shape, np.uint8)
    return np.round((a - vmin) / (vmax - vmin) * 255.0).astype(np.uint8)


def window_key(kind: str, *params: float) -> str:
    """Canonical cache-key string of an intensity mapping, e.g. ``ct:40:400`` or ``pct:0.5:99.5``."""
    return ":".join([kind] + [f"{float(p):g}" for p in params])
