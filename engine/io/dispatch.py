"""Open any supported image by its path: the one entry point for the CLI and the app.

* a folder -> DICOM series (:mod:`engine.io.dicom`; ``series`` picks one);
* ``.nii`` / ``.nii.gz`` -> NIfTI (:mod:`engine.io.nifti`);
* ``.png .jpg .jpeg .bmp .tif .tiff`` -> raster (:mod:`engine.io.raster`);
* ``.npz`` -> a challenge case (``imgs`` already in the model's uint8 domain, see ``shared/data/README.md``);
* anything else -> a single DICOM file (``.dcm``, ``.ima``, no extension, ...).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.base.errors import InputError
from engine.data.image import LPS_TO_RAS, Image, ProgressFn, StopFn


def read_challenge_npz(path: Path) -> Image:
    """A challenge ``.npz`` -> :class:`Image` with ``units == 'u8'`` (its ``boxes`` are not used here).

    2D ``imgs`` (H,W,3) -> voxels (1,H,W,3); 3D ``imgs`` (D,H,W) -> voxels as they are, spacing from
    ``spacing`` (x, y, z order in the file), affine of an LPS-aligned grid (no direction is stored).
    """
    from engine.io.challenge_npz import load_case

    case = load_case(Path(path), with_gt=False)
    if case.is_3d:
        sx, sy, sz = (float(v) for v in (case.spacing if case.spacing is not None else (1.0, 1.0, 1.0)))
        voxels = case.imgs
        affine = LPS_TO_RAS @ np.diag([sx, sy, sz, 1.0])
    else:
        voxels = case.imgs[None]
        affine = LPS_TO_RAS.copy()
    return Image(voxels=voxels, affine=affine, modality=case.modality, units="u8",
                 description=f"challenge {'3D' if case.is_3d else '2D'} case ({case.modality})", source=Path(path))


def open_image(path: Path | str, *, series: str | None = None, progress: ProgressFn | None = None,
               should_stop: StopFn | None = None) -> Image:
    """Read an image or volume; raises :class:`InputError` with a one-line reason for anything unusable.

    progress(done, total) / should_stop() are passed to the DICOM series reader (files scanned, then
    slices read); other formats are read in one step.
    """
    from engine.io.dicom import read_dicom
    from engine.io.nifti import is_nifti, read_nifti
    from engine.io.raster import is_raster, read_raster

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_dir():
        return read_dicom(p, series=series, progress=progress, should_stop=should_stop)
    if is_nifti(p):
        return read_nifti(p)
    if is_raster(p):
        return read_raster(p)
    if p.suffix.lower() == ".npz":
        return read_challenge_npz(p)
    return read_dicom(p, progress=progress, should_stop=should_stop)


__all__ = ["open_image", "read_challenge_npz"]
