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

Slices are shown as described in :mod:`engine.data.display`; the affine helpers are in
:mod:`engine.data.geometry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.base.callbacks import ProgressFn, StopFn
from engine.base.errors import Cancelled, InputError, PromptError
from engine.data.display import Display, display_for
from engine.data.geometry import affine_problem, orientation_codes
from engine.data.window import IntensityMap, default_window, fit_window, parse_window


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
    spacing_known: False when the file gives no pixel spacing (PNG/JPEG, DICOM without PixelSpacing, a 2D
        challenge case): the affine then assumes 1 mm pixels, and lengths are really in pixels.
    files: the files the voxels came from (a DICOM series' slice files in Z order; empty when ``source``
        is that file) — outputs must never replace them (engine.io.outputs).
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
    spacing_known: bool = True
    files: list[Path] = field(default_factory=list)
    _maps: dict = field(default_factory=dict, repr=False)
    _volume: tuple | None = field(default=None, repr=False)  # (window key, read-only uint8 model volume)

    def __post_init__(self):
        v = self.voxels
        if v.ndim not in (3, 4) or (v.ndim == 4 and v.shape[3] != 3) or min(v.shape[:3], default=0) < 1:
            raise InputError(f"image array must be (Z,Y,X) or (Z,Y,X,3) and non-empty, got {v.shape}")
        self.affine = np.asarray(self.affine, np.float64).reshape(4, 4)
        why = affine_problem(self.affine)
        if why is not None:  # every reader ends here: NaN or singular geometry never reaches the app
            name = Path(self.source).name if self.source is not None else "image"
            raise InputError(f"{name}: {why}")

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
    def intensity_map(self, window: str | None = None) -> IntensityMap:
        """The :class:`~engine.data.window.IntensityMap` for a window spec (None = this image's default).

        Statistics come from the whole image, so every slice maps the same way (as the challenge's
        3D preprocessing); the result is cached per window.
        """
        w = parse_window(window) if window is not None else default_window(self)
        if w.key not in self._maps:
            self._maps[w.key] = fit_window(w, self.voxels, what=self._what())
        return self._maps[w.key]

    def model_slice(self, z: int, window: str | None = None) -> tuple[np.ndarray, str]:
        """Slice z in the model's domain: (uint8 (Y,X) or (Y,X,3), window key for the embedding cache).

        A read-only view of :meth:`model_volume`'s volume when that window's volume is held, else a new
        array windowed from this slice alone (the two are equal)."""
        z = self.check_slice(z)
        m = self.intensity_map(window)
        held = self._volume
        if held is not None and held[0] == m.key:
            return held[1][z], m.key
        return m.apply(self.voxels[z]), m.key

    def model_volume(self, window: str | None = None, *, progress: ProgressFn | None = None,
                     should_stop: StopFn | None = None) -> tuple[np.ndarray, str]:
        """The whole image in the model's domain: (uint8 (Z,Y,X[,3]), window key).

        Computed once and held: every caller (propagation, each plane's model input, the views) gets the
        same **read-only** array, so the image has one model volume (Z*Y*X bytes, 79 MB for a
        512x512x300 CT) rather than one per caller. Only the latest window's volume is held; asking for
        another window replaces it. Two threads asking at once for a volume not yet held may both
        compute it (equal arrays; one is kept). should_stop: raises :class:`Cancelled` between slices
        while computing (nothing is held then); progress(done, total) per slice computed."""
        m = self.intensity_map(window)
        held = self._volume
        if held is not None and held[0] == m.key:
            return held[1], m.key
        self._volume = None  # the old window's volume goes before the new one is made, not after
        out = np.empty(self.voxels.shape, np.uint8)
        for z in range(self.depth):
            if should_stop is not None and should_stop():
                raise Cancelled(f"windowing stopped at slice {z}")
            out[z] = m.apply(self.voxels[z])
            if progress is not None:
                progress(z + 1, self.depth)
        out.flags.writeable = False
        self._volume = (m.key, out)
        return out, m.key

    def held_model_volume(self) -> tuple[np.ndarray, str] | None:
        """(uint8 model volume, window key) when :meth:`model_volume` holds one, else None; computes nothing."""
        held = self._volume
        return None if held is None else (held[1], held[0])

    def drop_model_volume(self) -> None:
        """Let the held model volume go (e.g. when the image is closed but still referenced by an undo step)."""
        self._volume = None

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


__all__ = ["Image"]
