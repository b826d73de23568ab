"""How a stored slice is put on the screen, and the grey levels it is shown with.

Display convention
------------------
A slice ``voxels[z]`` is shown the way ITK-SNAP and 3D Slicer show that anatomical plane by default
(radiological convention): axial — patient Right on the screen's left, Anterior at the top; coronal
— Right on the left, Superior at the top; sagittal — Anterior on the left, Superior at the top. The
plane is the one the slice axis ``Z`` is closest to; slices are never resampled, so an oblique
acquisition is shown as its closest plane. :class:`Display` holds the flips/transpose from a stored
slice to the screen and back; it is derived from the affine only (``Image.display``). A raster image
(PNG, ...) gets the affine of an LPS identity, so it is shown as stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.data.window import CT_PRESETS, default_window, parse_window


@dataclass(frozen=True)
class Display:
    """How a stored slice ``(Y, X)`` is put on the screen (see the module docstring).

    The screen array is ``s = a.T if transpose else a`` followed by ``flip_rows`` (reverse screen
    rows) and ``flip_cols`` (reverse screen columns). ``plane`` is 'axial', 'coronal' or 'sagittal'.
    """

    plane: str
    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    def to_screen(self, slice_yx: np.ndarray) -> np.ndarray:
        """A stored slice (Y,X[,C]) -> the screen view (a numpy view, no copy)."""
        s = np.swapaxes(slice_yx, 0, 1) if self.transpose else slice_yx
        if self.flip_rows:
            s = s[::-1]
        if self.flip_cols:
            s = s[:, ::-1]
        return s

    def screen_to_index(self, row: float, col: float, shape_yx) -> tuple[float, float]:
        """Screen pixel (row, col) -> stored voxel index (x, y) of a slice of shape (Y, X)."""
        h, w = (shape_yx[1], shape_yx[0]) if self.transpose else (shape_yx[0], shape_yx[1])
        r = h - 1 - row if self.flip_rows else row
        c = w - 1 - col if self.flip_cols else col
        return (r, c) if self.transpose else (c, r)  # transpose: screen rows are stored x

    def index_to_screen(self, x: float, y: float, shape_yx) -> tuple[float, float]:
        """Stored voxel index (x, y) of a slice of shape (Y, X) -> screen pixel (row, col).

        The inverse of :meth:`screen_to_index` (pixel indices, not pixel centres).
        """
        r, c = (x, y) if self.transpose else (y, x)
        h, w = (shape_yx[1], shape_yx[0]) if self.transpose else (shape_yx[0], shape_yx[1])
        return (h - 1 - r if self.flip_rows else r), (w - 1 - c if self.flip_cols else c)

    def box_to_screen(self, box, shape_yx) -> tuple[int, int, int, int]:
        """A box [x_min, y_min, x_max, y_max] in stored voxel indices of a (Y, X) slice -> the same
        pixels as an XYXY box (col_min, row_min, col_max, row_max) of the screen array
        :meth:`to_screen` gives. Corners are rounded to pixel indices first, so a flip maps the
        box's inclusive pixels exactly."""
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
        (ra, ca), (rb, cb) = self.index_to_screen(x0, y0, shape_yx), self.index_to_screen(x1, y1, shape_yx)
        return int(min(ca, cb)), int(min(ra, rb)), int(max(ca, cb)), int(max(ra, rb))


# screen right / screen down targets in RAS for each plane (radiological display, as Slicer)
_SCREEN = {
    "axial": (np.array([-1.0, 0, 0]), np.array([0, -1.0, 0])),     # right -> patient Left, down -> Posterior
    "coronal": (np.array([-1.0, 0, 0]), np.array([0, 0, -1.0])),   # right -> Left, down -> Inferior
    "sagittal": (np.array([0, -1.0, 0]), np.array([0, 0, -1.0])),  # right -> Posterior, down -> Inferior
}


def display_for(affine: np.ndarray) -> Display:
    """The :class:`Display` of slices along the affine's z axis (derived from directions only)."""
    m = np.asarray(affine, np.float64)[:3, :3]
    dirs = m / np.maximum(np.linalg.norm(m, axis=0), 1e-12)
    normal = np.cross(dirs[:, 0], dirs[:, 1])
    plane = ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]
    return display_in_plane(plane, dirs[:, 0], dirs[:, 1])


def display_in_plane(plane: str, dx, dy) -> Display:
    """The :class:`Display` of a 2D array shown as anatomical ``plane`` ('axial', 'coronal', 'sagittal').

    dx, dy: RAS directions (3,) of the array's column index (its "x", axis 1) and row index (its "y",
    axis 0); any length (they are normalised here). Used for the stored slices (:func:`display_for`)
    and for the reformatted planes of :mod:`engine.data.planes`.
    """
    right, down = _SCREEN[plane]
    dx, dy = (np.asarray(d, np.float64) / max(float(np.linalg.norm(d)), 1e-12) for d in (dx, dy))
    transpose = bool(abs(dy @ right) > abs(dx @ right))  # stored y runs left-right on screen
    horiz, vert = (dy, dx) if transpose else (dx, dy)
    return Display(plane, transpose, flip_rows=bool(vert @ down < 0), flip_cols=bool(horiz @ right < 0))


def display_level_width(image, window_spec=None) -> tuple[float, float]:
    """(level, width) of the grey levels an image is first shown with, in its own units (HU for CT).

    image: an :class:`~engine.data.image.Image`; window_spec: the model window the user picked (as
    :func:`~engine.data.window.parse_window` takes it; None = the modality default). A CT window is
    shown as it is; 8-bit and RGB images as stored (0..255); everything else (MR, ...) spans the
    0.5-99.5 percentiles of the voxels > 0, estimated from a sample of at most ~2 million voxels
    of every ~16th slice so that opening a large volume stays fast.
    """
    w = parse_window(window_spec) if window_spec else default_window(image)
    if w.kind == "ct":
        return float(w.params[0]), float(w.params[1])
    v = image.voxels
    if image.is_rgb or v.dtype == np.uint8:
        return 127.5, 255.0
    if image.modality == "CT" and w.kind != "pct":
        return CT_PRESETS["soft-tissue"]
    sample = v[:: max(1, v.shape[0] // 16)].reshape(-1)
    if sample.size > 2_000_000:
        sample = sample[:: sample.size // 2_000_000]
    sample = sample[np.isfinite(sample)]
    fg = sample[sample > 0] if (sample > 0).any() else sample
    lo, hi = (float(x) for x in np.percentile(fg, [0.5, 99.5])) if fg.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return (lo + hi) / 2, hi - lo


__all__ = ["Display", "display_for", "display_in_plane", "display_level_width"]
