"""The one image type of the engine (2D images and volumes) and every orientation convention.

Axis convention (the only one in BoxSeg)
-----------------------------------------
``Image.voxels`` is a numpy array ``(Z, Y, X)`` for grey images or ``(Z, Y, X, 3)`` for RGB, in the
file's **stored voxel order** — nothing is ever reoriented or resampled:

* ``X`` (axis 2) = the first in-plane voxel index as stored: DICOM column, NIfTI ``i``, raster column;
* ``Y`` (axis 1) = the second in-plane index: DICOM row, NIfTI ``j``, raster row;
* ``Z`` (axis 0) = the slice index: NIfTI ``k``; for DICOM the slices **sorted by position along the
  slice normal** (row cosine x column cosine of ImageOrientationPatient), ascending — never by file
  name or InstanceNumber. A 2D image has ``Z == 1``.

This is the array order of ``SimpleITK.GetArrayFromImage`` and of the challenge ``.npz`` files, and a
slice ``voxels[z]`` is exactly what the model gets (boxes are ``[x_min, y_min, x_max, y_max]`` in
these ``X``/``Y`` pixel indices).

``Image.affine`` is a 4x4 float64 matrix mapping a voxel index **column vector (x, y, z, 1)** — note
the ITK/NIfTI index order, the reverse of the array axes — to **RAS+ millimetres** (x grows to the
patient's Right, y to Anterior, z to Superior), i.e. exactly nibabel's / the NIfTI sform convention.
DICOM positions are LPS+; :data:`LPS_TO_RAS` converts (negate the first two world axes), which gives
the affine dcm2niix, ITK and 3D Slicer derive for a series. ``Image.spacing`` is ``(sz, sy, sx)`` in
mm, in array-axis order (the column norms of the affine).

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

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.base.errors import InputError, PromptError

#: world-axis flip between DICOM LPS+ and NIfTI/nibabel RAS+ (its own inverse)
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: default geometry tolerance (mm) when a label map must match an image's affine
AFFINE_TOL_MM = 1e-3

ProgressFn = Callable[[int, int], None]
StopFn = Callable[[], bool]


def affine_from_dicom(row_cosine, col_cosine, pixel_spacing, origin_lps, slice_step_lps) -> np.ndarray:
    """Voxel (x=column, y=row, z=slice) -> RAS mm affine from DICOM geometry.

    row_cosine / col_cosine: the two triplets of ImageOrientationPatient (direction of increasing
    column index / increasing row index, LPS); pixel_spacing: DICOM PixelSpacing = (row spacing,
    column spacing) in mm, i.e. (spacing along Y, spacing along X); origin_lps: ImagePositionPatient
    of slice z=0 (centre of its first voxel); slice_step_lps: vector from slice z to z+1 in mm (LPS).
    """
    rc = np.asarray(row_cosine, np.float64).reshape(3)
    cc = np.asarray(col_cosine, np.float64).reshape(3)
    dy, dx = (float(v) for v in pixel_spacing)
    lps = np.eye(4)
    lps[:3, 0] = rc * dx
    lps[:3, 1] = cc * dy
    lps[:3, 2] = np.asarray(slice_step_lps, np.float64).reshape(3)
    lps[:3, 3] = np.asarray(origin_lps, np.float64).reshape(3)
    return LPS_TO_RAS @ lps


def raster_affine(spacing_yx=(1.0, 1.0)) -> np.ndarray:
    """Affine of an image without patient geometry: an LPS identity (as ITK gives a PNG), in RAS."""
    sy, sx = (float(v) for v in spacing_yx)
    return LPS_TO_RAS @ np.diag([sx, sy, 1.0, 1.0])


def orientation_codes(affine: np.ndarray) -> str:
    """Closest RAS axis letters of the x, y, z voxel axes, e.g. ``'LPS'`` for a standard DICOM axial series."""
    import nibabel as nib

    return "".join(nib.aff2axcodes(affine))


def geometry_mismatch(shape_a, affine_a, shape_b, affine_b, atol: float = AFFINE_TOL_MM) -> str | None:
    """Why two grids differ (a one-line reason), or None when they match.

    shape_*: (Z,Y,X) array shapes; affine_*: 4x4 voxel->RAS. The affines match when every element
    agrees within ``atol`` mm (direction x spacing and origin), plus a 1e-5 relative slack for
    float32 NIfTI headers.
    """
    if tuple(shape_a) != tuple(shape_b):
        return f"shape (Z,Y,X) {tuple(shape_a)} does not match {tuple(shape_b)}"
    a, b = np.asarray(affine_a, np.float64), np.asarray(affine_b, np.float64)
    if not np.allclose(a, b, atol=atol, rtol=1e-5):
        worst = float(np.abs(a - b).max())
        return f"voxel-to-patient affine differs by up to {worst:.4g} mm (tolerance {atol:g} mm)"
    return None


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
    right, down = _SCREEN[plane]
    dx, dy = dirs[:, 0], dirs[:, 1]
    transpose = bool(abs(dy @ right) > abs(dx @ right))  # stored y runs left-right on screen
    horiz, vert = (dy, dx) if transpose else (dx, dy)
    return Display(plane, transpose, flip_rows=bool(vert @ down < 0), flip_cols=bool(horiz @ right < 0))


@dataclass(eq=False)
class Image:
    """A 2D image or a volume with its geometry (see the module docstring for the conventions).

    voxels: (Z,Y,X) grey or (Z,Y,X,3) RGB numpy array in original units — HU for CT after
        RescaleSlope/Intercept, the file's scaled values for NIfTI, 0..255 (or 0..65535) for
        raster images, already-windowed uint8 for challenge ``.npz``.
    affine: float64 (4,4), voxel index (x, y, z, 1) -> RAS+ mm.
    modality: DICOM modality code ('CT', 'MR', 'US', ...; 'OT' when unknown).
    units: 'HU' (CT), 'u8' (already in the model's uint8 domain) or '' (arbitrary scanner units).
    description: short, patient-free ("DICOM CT series, 3 slices, 'Abdomen'").
    source: the file or folder read; series_uid: DICOM SeriesInstanceUID when there is one.
    warnings: reader notes for the user (irregular spacing, missing slices, gantry tilt, ...).
    dicom: source DICOM headers (pixel data dropped) in Z order, used to write DICOM-SEG; for a
        multi-frame file a single dataset and ``dicom_frames[z]`` = its 0-based frame of slice z.
    nifti_header: the source NIfTI header, so label maps are written with the identical geometry.
    """

    voxels: np.ndarray
    affine: np.ndarray
    modality: str = "OT"
    units: str = ""
    description: str = ""
    source: Path | None = None
    series_uid: str | None = None
    frame_of_reference_uid: str | None = None
    warnings: list[str] = field(default_factory=list)
    dicom: list | None = None
    dicom_frames: np.ndarray | None = None
    nifti_header: object | None = None
    _maps: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        v = self.voxels
        if v.ndim not in (3, 4) or (v.ndim == 4 and v.shape[3] != 3) or min(v.shape[:3], default=0) < 1:
            raise InputError(f"image array must be (Z,Y,X) or (Z,Y,X,3) and non-empty, got {v.shape}")
        self.affine = np.asarray(self.affine, np.float64).reshape(4, 4)

    # --- geometry -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """(Z, Y, X) voxel counts (colour channels excluded)."""
        return tuple(int(s) for s in self.voxels.shape[:3])

    @property
    def depth(self) -> int:
        return self.shape[0]

    @property
    def is_volume(self) -> bool:
        return self.depth > 1

    @property
    def is_rgb(self) -> bool:
        return self.voxels.ndim == 4

    @property
    def spacing(self) -> tuple[float, float, float]:
        """(sz, sy, sx) voxel size in mm, array-axis order (column norms of the affine)."""
        n = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(n[2]), float(n[1]), float(n[0]))

    @property
    def orientation(self) -> str:
        """Closest RAS letters of the (x, y, z) index axes, e.g. 'LPS' for a standard axial DICOM series."""
        return orientation_codes(self.affine)

    @property
    def display(self) -> Display:
        return display_for(self.affine)

    def index_to_ras(self, xyz) -> np.ndarray:
        """(N,3) voxel indices (x, y, z) -> (N,3) RAS mm."""
        p = np.atleast_2d(np.asarray(xyz, np.float64))
        return p @ self.affine[:3, :3].T + self.affine[:3, 3]

    def ras_to_index(self, ras) -> np.ndarray:
        """(N,3) RAS mm -> (N,3) fractional voxel indices (x, y, z)."""
        inv = np.linalg.inv(self.affine)
        p = np.atleast_2d(np.asarray(ras, np.float64))
        return p @ inv[:3, :3].T + inv[:3, 3]

    def check_slice(self, z: int) -> int:
        """Validate a slice index; raises :class:`PromptError` naming the valid range."""
        if not (0 <= int(z) < self.depth):
            raise PromptError(f"slice {z} is out of range: this image has {self.depth} slice(s), 0..{self.depth - 1}")
        return int(z)

    # --- intensities -> model domain --------------------------------------------------------
    def intensity_map(self, window: str | None = None):
        """The :class:`engine.data.window.IntensityMap` for a window spec (None = this image's default).

        Statistics come from the whole image, so every slice maps the same way (as the challenge's
        3D preprocessing); the result is cached per window.
        """
        from engine.data.window import default_window, fit_window, parse_window

        w = parse_window(window) if window is not None else default_window(self)
        if w.key not in self._maps:
            self._maps[w.key] = fit_window(w, self.voxels, what=self._what())
        return self._maps[w.key]

    def model_slice(self, z: int, window: str | None = None) -> tuple[np.ndarray, str]:
        """Slice z in the model's domain: (uint8 (Y,X) or (Y,X,3), window key for the embedding cache)."""
        z = self.check_slice(z)
        m = self.intensity_map(window)
        return m.apply(self.voxels[z]), m.key

    def model_volume(self, window: str | None = None, *, progress: ProgressFn | None = None,
                     should_stop: StopFn | None = None) -> tuple[np.ndarray, str]:
        """The whole image in the model's domain: (uint8 (Z,Y,X[,3]), window key)."""
        m = self.intensity_map(window)
        out = np.empty(self.voxels.shape, np.uint8)
        for z in range(self.depth):
            if should_stop is not None and should_stop():
                from engine.base.errors import Cancelled

                raise Cancelled(f"windowing stopped at slice {z}")
            out[z] = m.apply(self.voxels[z])
            if progress is not None:
                progress(z + 1, self.depth)
        return out, m.key

    def _what(self) -> str:
        return self.source.name if self.source is not None else "image"

    def summary(self) -> list[str]:
        """Patient-free lines for ``boxseg info``: shape, spacing, orientation, modality, range."""
        z, y, x = self.shape
        sz, sy, sx = self.spacing
        v = self.voxels
        lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
        units = f" {self.units}" if self.units and self.units != "u8" else ""
        disp = self.display
        lines = [
            f"description: {self.description}",
            f"shape: {x} x {y} pixels x {z} slice(s) (array Z,Y,X = {z},{y},{x}){' RGB' if self.is_rgb else ''}",
            f"spacing: {sx:.4g} x {sy:.4g} mm in-plane, {sz:.4g} mm between slices",
            f"orientation: index axes x,y,z -> {self.orientation} (RAS letters); slices shown as {disp.plane}",
            f"origin (RAS mm): {', '.join(f'{c:.2f}' for c in self.affine[:3, 3])}",
            f"modality: {self.modality}; intensity range {lo:.6g}..{hi:.6g}{units} ({v.dtype})",
        ]
        if self.series_uid:
            lines.append(f"series UID: {self.series_uid}")
        return lines


__all__ = ["AFFINE_TOL_MM", "Display", "Image", "LPS_TO_RAS", "affine_from_dicom", "display_for",
           "geometry_mismatch", "orientation_codes", "raster_affine"]
