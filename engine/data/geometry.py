"""Voxel-to-patient geometry: affines from DICOM and raster headers, orientation letters, grid comparison.

The conventions (stored (Z,Y,X) voxel order, affines mapping a voxel index column vector
(x, y, z, 1) to RAS+ mm, DICOM LPS+ converted by :data:`LPS_TO_RAS`) are those of
:mod:`engine.data.image`.
"""

from __future__ import annotations

import numpy as np

#: world-axis flip between DICOM LPS+ and NIfTI/nibabel RAS+ (its own inverse)
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: default geometry tolerance (mm) when a label map must match an image's affine
AFFINE_TOL_MM = 1e-3


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


def affine_problem(affine) -> str | None:
    """Why a voxel->RAS affine cannot be used (None when it can): not 4x4, NaN/infinite entries, a voxel
    axis of (near) zero length, or axes (nearly) in one plane (a singular matrix: no inverse, so no
    world->voxel mapping, no volumes, no reformatting)."""
    a = np.asarray(affine, np.float64)
    if a.shape != (4, 4):
        return f"affine of shape {a.shape}, not 4x4"
    if not np.all(np.isfinite(a)):
        return "voxel-to-patient affine has NaN or infinite entries"
    m = a[:3, :3]
    norms = np.linalg.norm(m, axis=0)
    if np.any(norms < 1e-6):
        axis = "XYZ"[int(np.argmin(norms))]
        return f"voxel size along {axis} is zero (singular voxel-to-patient affine)"
    if abs(np.linalg.det(m)) < 1e-6 * float(np.prod(norms)):
        return "voxel axes lie in one plane (singular voxel-to-patient affine)"
    return None


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


__all__ = ["AFFINE_TOL_MM", "LPS_TO_RAS", "affine_from_dicom", "affine_problem", "geometry_mismatch", "orientation_codes",
           "raster_affine"]
