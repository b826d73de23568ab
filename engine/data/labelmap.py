"""Label maps: what a segmentation is (values, names, colours) and reading/writing it by file type.

A label map is a (Z,Y,X) uint8/uint16 array on an :class:`~engine.data.image.Image`'s grid (same axes,
see :mod:`engine.data.image`): 0 = background, one value per object. Files:

* ``.nii`` / ``.nii.gz`` — NIfTI in the image's exact geometry (:mod:`engine.io.nifti`);
* ``.dcm`` — DICOM-SEG referencing the image's DICOM series (:mod:`engine.io.dicomseg`);
* ``.png`` (``.tif``) — one 2D slice (:mod:`engine.io.raster`).

Reading a label map back onto an open image refuses one whose geometry does not match (shape, and
the voxel->RAS affine within :data:`~engine.data.image.AFFINE_TOL_MM`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.base.errors import InputError
from engine.data.image import AFFINE_TOL_MM, Image, geometry_mismatch

#: default object colours (RGB 0..255), in label order; the first ones follow 3D Slicer's
#: GenericColors table so that exports look familiar
PALETTE = [(128, 174, 128), (241, 214, 145), (177, 122, 101), (111, 184, 210), (216, 101, 79), (221, 130, 101),
           (144, 238, 144), (192, 104, 88), (220, 245, 20), (78, 63, 0), (255, 250, 220), (230, 220, 70),
           (200, 200, 235), (250, 250, 210), (244, 214, 49), (0, 151, 206)]


def default_color(value: int) -> tuple[int, int, int]:
    return PALETTE[(int(value) - 1) % len(PALETTE)]


@dataclass
class Segment:
    """One object of a label map: its value in the array, a display name and an RGB colour."""

    value: int
    name: str
    color: tuple[int, int, int]


@dataclass
class LabelMap:
    """labels: uint8/uint16 (Z,Y,X); affine: voxel (x,y,z) -> RAS mm of that grid; segments: the
    objects (value, name, colour); referenced_series_uid: the DICOM series it was drawn on, if known;
    warnings: notes for the user (e.g. overlapping DICOM-SEG segments flattened)."""

    labels: np.ndarray
    affine: np.ndarray
    segments: list[Segment] = field(default_factory=list)
    source: Path | None = None
    referenced_series_uid: str | None = None
    warnings: list[str] = field(default_factory=list)


def segments_for(labels: np.ndarray, names: dict[int, str] | None = None) -> list[Segment]:
    """A :class:`Segment` per non-zero value present in ``labels`` (default names 'label N')."""
    names = names or {}
    return [Segment(int(v), names.get(int(v), f"label {int(v)}"), default_color(int(v)))
            for v in np.unique(labels) if v != 0]


def check_onto(image: Image, shape, affine, what: str, atol: float = AFFINE_TOL_MM) -> None:
    """Raise :class:`InputError` when a label grid (shape (Z,Y,X), affine) does not match ``image``."""
    why = geometry_mismatch(shape, affine, image.shape, image.affine, atol=atol)
    if why is not None:
        raise InputError(f"{what}: label map geometry does not match the image: {why}")


def read_labelmap(path: Path, image: Image | None = None, *, atol: float = AFFINE_TOL_MM) -> LabelMap:
    """A label map file (NIfTI, DICOM-SEG, PNG) -> :class:`LabelMap`, on ``image``'s grid when given.

    With ``image``, the label map must have the image's shape and affine (within ``atol`` mm), or
    :class:`InputError` says why; a DICOM-SEG is placed by the SOP instances it references when the
    image is their DICOM series.
    """
    from engine.io.nifti import is_nifti, read_nifti_labels
    from engine.io.raster import is_raster, read_png_labels

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if is_nifti(path):
        labels, affine = read_nifti_labels(path)
        if image is not None:
            check_onto(image, labels.shape, affine, path.name, atol)
        return LabelMap(labels, affine, segments_for(labels), source=path)
    if is_raster(path):
        labels = read_png_labels(path)
        if image is not None and labels.shape != image.shape:
            raise InputError(f"{path.name}: label map geometry does not match the image: shape (Z,Y,X) "
                             f"{labels.shape} does not match {image.shape}")
        return LabelMap(labels, image.affine if image is not None else np.eye(4), segments_for(labels), source=path)
    from engine.io.dicomseg import read_dicom_seg

    return read_dicom_seg(path, image, atol=atol)


def write_labelmap(path: Path, labels: np.ndarray, image: Image, *, segments: list[Segment] | None = None,
                   model_name: str = "", model_version: str = "", z: int | None = None) -> Path:
    """Write a (Z,Y,X) label map on ``image``'s grid; the format follows the extension.

    ``.nii``/``.nii.gz``: NIfTI in the image's geometry. ``.dcm``: DICOM-SEG (the image must come
    from DICOM), segments named and coloured by ``segments``, algorithm BoxSeg + model name/version.
    ``.png``: one slice — the only one for a 2D image, else slice ``z``.
    """
    from engine.io.nifti import is_nifti, write_nifti_labels
    from engine.io.raster import write_label_png

    path = Path(path)
    labels = np.asarray(labels)
    if labels.shape != image.shape:
        raise InputError(f"label map shape (Z,Y,X) {labels.shape} does not match the image {image.shape}")
    suffix = path.suffix.lower()
    if is_nifti(path):
        return write_nifti_labels(path, labels, image)
    if suffix == ".dcm":
        from engine.io.dicomseg import write_dicom_seg

        return write_dicom_seg(path, labels, image, segments or segments_for(labels), model_name=model_name,
                               model_version=model_version)
    if suffix in (".png", ".tif", ".tiff"):
        if image.depth > 1 and z is None:
            raise InputError(f"{path.name}: a PNG holds one slice; this image has {image.depth} - write .nii.gz or "
                             ".dcm, or segment one --slice")
        return write_label_png(path, labels[0 if z is None else image.check_slice(z)])
    raise InputError(f"{path.name}: unknown label map format {suffix or '(no extension)'!r}; "
                     "use .nii/.nii.gz (NIfTI), .dcm (DICOM-SEG) or .png (2D)")


__all__ = ["LabelMap", "PALETTE", "Segment", "check_onto", "default_color", "read_labelmap", "segments_for",
           "write_labelmap"]
