"""Files -> data and back by path: the one dispatch on file kinds (:mod:`engine.io.formats`).

Images (:func:`open_image`):

* a folder -> DICOM series (:mod:`engine.io.dicom`; ``series`` picks one);
* a file named ``DICOMDIR`` -> one series of the files it lists (:mod:`engine.io.studies`; ``series`` picks one);
* ``.nii`` / ``.nii.gz`` -> NIfTI (:mod:`engine.io.nifti`);
* ``.png .jpg .jpeg .bmp .tif .tiff`` -> raster (:mod:`engine.io.raster`);
* ``.npz`` -> a challenge case (``imgs`` already in the model's uint8 domain, :mod:`engine.io.challenge_npz`);
* ``.seg.nrrd`` / ``.nrrd`` -> refused: a label map, opened onto its image (below);
* anything else -> a single DICOM file (``.dcm``, ``.ima``, no extension, ...).

Label maps (:func:`read_labelmap`, :func:`write_labelmap`) on an image's grid:

* ``.nii`` / ``.nii.gz`` — NIfTI in the image's exact geometry (:mod:`engine.io.nifti`), with the names and
  colours in ITK-SNAP label descriptions beside it (``<stem>.label.txt``, :mod:`engine.io.itksnap`) and each
  value's names, colours and codes in dcmqi's metadata JSON (``<stem>.meta.json``, :mod:`engine.io.segmeta`);
* ``.dcm`` — DICOM-SEG referencing the image's DICOM series (:mod:`engine.io.dicomseg`);
* ``.png`` (``.tif``) — one 2D slice (:mod:`engine.io.raster`);
* ``.seg.nrrd`` (``.nrrd``) — a 3D Slicer segmentation on the image's grid (:mod:`engine.io.segnrrd`).

Reading a label map back onto an open image refuses one whose geometry does not match (shape, and
the voxel->RAS affine within :data:`~engine.data.geometry.AFFINE_TOL_MM`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.base.callbacks import ProgressFn, StopFn
from engine.base.errors import InputError
from engine.data.geometry import AFFINE_TOL_MM
from engine.data.image import Image
from engine.data.labelmap import LabelMap, Segment, check_onto, codes_for_name, segments_for, with_defaults
from engine.io.challenge_npz import read_challenge_npz
from engine.io.dicom import read_dicom
from engine.io.dicomseg import read_dicom_seg, write_dicom_seg
from engine.io.formats import is_dicomdir, kind_of, label_description_paths, labelmap_format, seg_meta_path
from engine.io.itksnap import read_label_descriptions, write_label_descriptions
from engine.io.nifti import read_nifti, read_nifti_labels, write_nifti_labels
from engine.io.outputs import check_output
from engine.io.raster import read_png_labels, read_raster, write_label_png
from engine.io.segmeta import read_seg_meta, write_seg_meta
from engine.io.segnrrd import read_seg_nrrd, write_seg_nrrd
from engine.io.studies import read_dicomdir


def open_image(path: Path | str, *, series: str | None = None, progress: ProgressFn | None = None,
               should_stop: StopFn | None = None) -> Image:
    """Read an image or volume; raises :class:`InputError` with a one-line reason for anything unusable.

    progress(done, total) / should_stop() are passed to the DICOM series reader (files scanned, then
    slices read); other formats are read in one step.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_dir():
        return read_dicom(p, series=series, progress=progress, should_stop=should_stop)
    if is_dicomdir(p):
        return read_dicomdir(p, series=series, progress=progress, should_stop=should_stop)
    kind = kind_of(p)
    if kind == "nifti":
        return read_nifti(p)
    if kind == "raster":
        return read_raster(p)
    if kind == "npz":
        return read_challenge_npz(p)
    if kind == "nrrd":
        raise InputError(f"{p.name}: a NRRD label map (3D Slicer segmentation), not an image; open the image it "
                         "was drawn on, then this label map")
    return read_dicom(p, progress=progress, should_stop=should_stop)


def _nifti_segments(path: Path, labels: np.ndarray) -> tuple[list[Segment], list[str]]:
    """Segments of a NIfTI label map's values (only those present: ITK-SNAP tables list many).

    Names and colours: the first ITK-SNAP label description file found beside it
    (:func:`~engine.io.formats.label_description_paths`), else the segment metadata JSON
    (:func:`~engine.io.formats.seg_meta_path`), else defaults. Codes: the metadata JSON's for a value whose
    name there is the same (a name changed since, e.g. in ITK-SNAP, no longer means that code), else the
    codes the name means (:func:`~engine.data.labelmap.codes_for_name`). A sidecar that does not parse gives
    defaults and a warning: the voxels are still the label map."""
    notes: list[str] = []
    meta: dict[int, Segment] = {}
    if seg_meta_path(path).is_file():
        try:
            meta = read_seg_meta(seg_meta_path(path))
        except InputError as e:
            notes.append(f"structure codes not read: {e}")
    described: dict[int, Segment] | None = None
    for candidate in label_description_paths(path):
        if candidate.is_file():
            try:
                described = {s.value: s for s in read_label_descriptions(candidate)}
            except InputError as e:
                notes.append(f"names and colours not read: {e}")
            break
    out = []
    for s in segments_for(labels):
        m = meta.get(s.value)
        base = described.get(s.value, s) if described is not None else (m or s)
        if m is not None and " ".join(m.name.lower().split()) == " ".join(base.name.lower().split()):
            codes = (m.category_code, m.type_code, m.type_modifier_code)
        else:
            codes = codes_for_name(base.name)
        out.append(Segment(s.value, base.name, tuple(base.color), *codes))
    return out, notes


def read_labelmap(path: Path, image: Image | None = None, *, atol: float = AFFINE_TOL_MM) -> LabelMap:
    """A label map file (NIfTI, DICOM-SEG, PNG, .seg.nrrd) -> :class:`LabelMap`, on ``image``'s grid when given.

    With ``image``, the label map must have the image's shape and affine (within ``atol`` mm), or
    :class:`InputError` says why; a DICOM-SEG is placed by the SOP instances it references when the
    image is their DICOM series; a .seg.nrrd cropped to its segments is put back in place.
    Names and colours: the DICOM-SEG's and .seg.nrrd's segments, a NIfTI's ITK-SNAP label descriptions.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    kind = kind_of(path)
    if kind == "nifti":
        labels, affine = read_nifti_labels(path)
        if image is not None:
            check_onto(image, labels.shape, affine, path.name, atol)
        segments, notes = _nifti_segments(path, labels)
        return LabelMap(labels, affine, segments, source=path, warnings=notes)
    if kind == "nrrd":
        return read_seg_nrrd(path, image, atol=atol)
    if kind == "raster":
        labels = read_png_labels(path)
        if image is not None and labels.shape != image.shape:
            raise InputError(f"{path.name}: label map geometry does not match the image: shape (Z,Y,X) "
                             f"{labels.shape} does not match {image.shape}")
        return LabelMap(labels, image.affine if image is not None else np.eye(4), segments_for(labels), source=path)
    return read_dicom_seg(path, image, atol=atol)


def write_labelmap(path: Path, labels: np.ndarray, image: Image, *, segments: list[Segment] | None = None,
                   model_name: str = "", model_version: str = "", z: int | None = None) -> Path:
    """Write a (Z,Y,X) label map on ``image``'s grid; the format follows the extension.

    ``.nii``/``.nii.gz``: NIfTI in the image's geometry, and ``segments``' names and colours as ITK-SNAP
    label descriptions beside it (``<stem>.label.txt``), names, colours and codes in dcmqi's metadata JSON
    (``<stem>.meta.json``). ``.dcm``: DICOM-SEG (the image must come from DICOM), segments named, coloured
    and coded by ``segments``, algorithm BoxSeg + model name/version.
    ``.png``: one slice — the only one for a 2D image, else slice ``z``. ``.seg.nrrd``: a 3D Slicer
    segmentation on the image's grid with ``segments``' names, colours and terminology. Never over one
    of the image's own files (:func:`engine.io.outputs.check_output`).
    """
    path = check_output(path, image)
    labels = np.asarray(labels)
    if labels.shape != image.shape:
        raise InputError(f"label map shape (Z,Y,X) {labels.shape} does not match the image {image.shape}")
    fmt = labelmap_format(path)
    if fmt == "nifti":
        sidecar = check_output(label_description_paths(path)[0], image)
        meta = check_output(seg_meta_path(path), image)
        ordered = with_defaults(labels, segments)
        out = write_nifti_labels(path, labels, image)
        write_label_descriptions(sidecar, ordered)
        write_seg_meta(meta, ordered, algorithm=f"BoxSeg {model_name}".strip())
        return out
    if fmt == "seg-nrrd":
        return write_seg_nrrd(path, labels, image, with_defaults(labels, segments))
    if fmt == "dicom-seg":
        return write_dicom_seg(path, labels, image, with_defaults(labels, segments), model_name=model_name,
                               model_version=model_version)
    if fmt == "png":
        if image.depth > 1 and z is None:
            raise InputError(f"{path.name}: a PNG holds one slice; this image has {image.depth} - write .nii.gz or "
                             ".dcm, or segment one --slice")
        return write_label_png(path, labels[0 if z is None else image.check_slice(z)])
    raise InputError(f"{path.name}: unknown label map format {path.suffix.lower() or '(no extension)'!r}; "
                     "use .nii/.nii.gz (NIfTI), .dcm (DICOM-SEG), .seg.nrrd (3D Slicer) or .png (2D)")


__all__ = ["open_image", "read_labelmap", "write_labelmap"]
