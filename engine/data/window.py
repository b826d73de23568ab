"""Intensities -> the model's uint8 domain (SPEC A.4 offline steps).

The window used is part of the embedding-cache key: :func:`window_key` gives its canonical string.

Pure functions (:func:`ct_window`, :func:`percentile_normalise`, :func:`minmax_u8`) apply a rule
to one array. For images and volumes, :func:`parse_window` turns a user's window spec into a
:class:`Window`, and :func:`fit_window` takes the statistics of the *whole* image once, giving an
:class:`IntensityMap` that maps any slice exactly as the rule applied to the whole volume would
(``fit_window(w, vol).apply(vol[z]) == rule(vol)[z]``), so slices can be converted lazily.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.base.errors import InputError

#: the window key of data already in the model's uint8 domain (challenge cases, 8-bit images kept as they are)
WINDOW_U8 = "u8"

#: CT presets (level, width) in HU
CT_PRESETS = {
    "soft-tissue": (40.0, 400.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}
#: other accepted preset names
PRESET_ALIASES = {"abdomen": "soft-tissue", "soft": "soft-tissue", "softtissue": "soft-tissue"}


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


@dataclass(frozen=True)
class Window:
    """A rule from original intensities to uint8.

    kind: 'ct' (params level, width in HU: clip, then min-max of the clipped image, truncate),
    'pct' (params lower, upper percentiles of the voxels > 0: clip, min-max, truncate, zeros stay 0),
    'minmax' (the 2D rule of :func:`minmax_u8`: uint8 kept, 0..255 integers cast, else min-max).
    """

    kind: str
    params: tuple[float, ...] = ()

    @property
    def key(self) -> str:
        """Canonical string for the embedding-cache key (``ct:40:400``, ``pct:0.5:99.5``, ``minmax``)."""
        return window_key(self.kind, *self.params)

    def describe(self) -> str:
        if self.kind == "ct":
            return f"CT window L{self.params[0]:g}/W{self.params[1]:g} HU"
        if self.kind == "pct":
            return f"percentiles {self.params[0]:g}-{self.params[1]:g} of voxels > 0"
        return "min-max to 0..255 (uint8 kept as is)"


def _num(s: str) -> float:
    return float(s.strip().lstrip("LlWw").strip())


def parse_window(spec: str | Window | None) -> Window:
    """A window spec -> :class:`Window`; raises :class:`InputError` with the accepted forms.

    Accepted: a CT preset name (soft-tissue/abdomen W400/L40, lung W1500/L-600, bone W1800/L400,
    brain W80/L40); ``WIDTH,LEVEL`` in HU as the radiology convention "W/L" writes it (e.g.
    ``400,40``; letters make the order explicit: ``W400,L40`` or ``L40/W400``); ``percentile`` (0.5-99.5 of voxels > 0) or ``percentile:LO,HI``;
    ``minmax``. None gives the soft-tissue preset (callers pick a modality default first).
    """
    if isinstance(spec, Window):
        return spec
    if spec is None:
        return Window("ct", CT_PRESETS["soft-tissue"])
    s = str(spec).strip().lower()
    s = PRESET_ALIASES.get(s, s)
    if s in CT_PRESETS:
        return Window("ct", CT_PRESETS[s])
    if s in ("minmax", "min-max", "u8"):
        return Window("minmax")
    if s in ("percentile", "pct", "mr"):
        return Window("pct", (0.5, 99.5))
    forms = (f"window must be a preset ({', '.join(CT_PRESETS)}), 'WIDTH,LEVEL' in HU (e.g. 400,40 or "
             f"W400,L40), 'percentile[:LO,HI]' or 'minmax'; got {spec!r}")
    if s.startswith(("percentile:", "pct:")):
        try:
            lo, hi = (float(v) for v in s.split(":", 1)[1].split(","))
        except ValueError as e:
            raise InputError(forms) from e
        if not 0 <= lo < hi <= 100:
            raise InputError(f"percentiles must satisfy 0 <= LO < HI <= 100, got {lo:g},{hi:g}")
        return Window("pct", (lo, hi))
    parts = [p for p in s.replace("/", ",").split(",") if p.strip()]
    if len(parts) != 2:
        raise InputError(forms)
    try:
        a, b = _num(parts[0]), _num(parts[1])
    except ValueError as e:
        raise InputError(forms) from e
    width, level = a, b  # W,L: the order of the issue's `--window PRESET|W,L` and of "W400/L40"
    if parts[0].strip().startswith("l") or parts[1].strip().startswith("w"):
        width, level = b, a  # "L40,W400": level first, made explicit by the letters
    if width <= 0:
        raise InputError(f"window width must be positive, got {width:g}")
    return Window("ct", (level, width))


def default_window(image) -> Window:
    """The window an image gets when the user names none.

    CT (HU) -> soft tissue; already-windowed (``units == 'u8'``), uint8 and RGB images -> minmax
    (which keeps uint8 as is, the challenge's 2D rule); MR and everything else -> percentile
    0.5-99.5 (the challenge's MR rule).
    """
    if image.units == "u8" or image.is_rgb or image.voxels.dtype == np.uint8:
        return Window("minmax")
    if image.modality == "CT":
        return Window("ct", CT_PRESETS["soft-tissue"])
    return Window("pct", (0.5, 99.5))


@dataclass(frozen=True)
class IntensityMap:
    """A :class:`Window` fitted to one image's statistics; :meth:`apply` maps any part of it.

    Values are clipped to [lo, hi], then (v - vmin) / (vmax - vmin) * 255 (vmin/vmax: min/max of the
    clipped whole image) and truncated to uint8 ('minmax' on non-uint8 data rounds instead, as
    :func:`minmax_u8`); with ``zero_stays_zero`` voxels exactly 0 map to 0 ('pct').
    """

    window: Window
    lo: float
    hi: float
    vmin: float
    vmax: float
    round: bool = False
    zero_stays_zero: bool = False
    identity: bool = False

    @property
    def key(self) -> str:
        """The window's cache key; an identity map is the engine's plain ``u8`` domain."""
        return WINDOW_U8 if self.identity else self.window.key

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Any-shape array of the image's values -> uint8 of the same shape."""
        a = np.asarray(values)
        if self.identity:
            return a.astype(np.uint8, copy=False)
        v = a.astype(np.float64)
        if not np.issubdtype(a.dtype, np.integer):
            v[~np.isfinite(v)] = self.lo  # NaN/inf (masked NIfTI voxels) become background
        v = np.clip(v, self.lo, self.hi)
        if self.vmax <= self.vmin:
            out = np.zeros(a.shape, np.uint8)
        else:
            v = (v - self.vmin) / (self.vmax - self.vmin) * 255.0
            out = (np.round(v) if self.round else v).astype(np.uint8)
        if self.zero_stays_zero:
            out[a == 0] = 0
        return out


def fit_window(window: Window, data: np.ndarray, *, what: str = "image") -> IntensityMap:
    """Fit a window to the statistics of a whole image (any shape; RGB channels together).

    Raises :class:`InputError` for an image with a single value everywhere (zero intensity range:
    nothing to segment) or with non-finite values only.
    """
    a = np.asarray(data)
    finite = a if np.issubdtype(a.dtype, np.integer) else a[np.isfinite(a)]
    if finite.size == 0:
        raise InputError(f"{what}: no finite intensity values")
    dmin, dmax = float(finite.min()), float(finite.max())
    if dmax <= dmin:
        raise InputError(f"{what}: zero intensity range (every voxel is {dmin:g}); nothing to segment")
    if window.kind == "ct":
        level, width = window.params
        lo, hi = level - width / 2, level + width / 2
        return IntensityMap(window, lo, hi, float(np.clip(dmin, lo, hi)), float(np.clip(dmax, lo, hi)))
    if window.kind == "pct":
        fg = finite[finite > 0]
        if fg.size == 0:
            raise InputError(f"{what}: no voxel above 0, so percentile normalisation has nothing to use; "
                             f"give a CT window or 'minmax'")
        lo, hi = (float(x) for x in np.percentile(fg, list(window.params)))
        return IntensityMap(window, lo, hi, float(np.clip(dmin, lo, hi)), float(np.clip(dmax, lo, hi)),
                            zero_stays_zero=True)
    if window.kind == "minmax":
        if a.dtype == np.uint8 or (np.issubdtype(a.dtype, np.integer) and dmin >= 0 and dmax <= 255):
            return IntensityMap(window, 0, 255, 0, 255, identity=True)
        return IntensityMap(window, dmin, dmax, dmin, dmax, round=True)
    raise InputError(f"unknown window kind {window.kind!r}")
