"""The one table of file kinds BoxSeg reads and writes, recognised by suffix (case-insensitive).

| kind     | suffixes                              | image                     | label map                           |
|----------|---------------------------------------|---------------------------|-------------------------------------|
| nifti    | .nii.gz .nii                          | NIfTI volume              | NIfTI label map (``nifti``) + the   |
|          |                                       |                           | ITK-SNAP label descriptions beside it|
| dicom    | .dcm .ima (or none: any other file)   | DICOM file / series folder| DICOM-SEG .dcm (``dicom-seg``)      |
| raster   | .png .jpg .jpeg .bmp .tif .tiff       | 2D picture                | PNG/TIFF slice (``png``)            |
| npz      | .npz                                  | challenge case            | ``segs`` of challenge outputs       |
| nrrd     | .seg.nrrd .nrrd                       | (not read as an image)    | 3D Slicer segmentation (``seg-nrrd``)|

A folder is a DICOM series; a file named ``DICOMDIR`` (:func:`is_dicomdir`) is the index of a patient CD,
read as the series of the files it lists (:mod:`engine.io.studies`). New formats add a row here and a reader/writer module beside this one.

ITK-SNAP label descriptions (names and colours of a NIfTI label map's values, :mod:`engine.io.itksnap`)
are a sidecar, not a kind: written as ``<stem>.label.txt`` beside ``<stem>.nii.gz`` and looked for there
as ``<stem>.label.txt``, ``<stem>.label`` and ``<stem>.txt`` (:data:`LABEL_DESCRIPTION_SUFFIXES`). What each
value is (SNOMED CT codes; ITK-SNAP's format has no place for them) is a second sidecar, ``<stem>.meta.json``
(:data:`SEG_META_SUFFIX`, dcmqi's segmentation metadata JSON, :mod:`engine.io.segmeta`).
"""

from __future__ import annotations

from pathlib import Path

#: kind -> suffixes, longest first where one ends another (".nii.gz" before ".nii")
SUFFIXES: dict[str, tuple[str, ...]] = {
    "nifti": (".nii.gz", ".nii"),
    "dicom": (".dcm", ".ima"),
    "raster": (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"),
    "npz": (".npz",),
    "nrrd": (".seg.nrrd", ".nrrd"),
}

#: the kinds that open as an image (file dialogs' "Images" filter); a .seg.nrrd is a label map only
IMAGE_KINDS: tuple[str, ...] = ("nifti", "dicom", "raster", "npz")

#: label map formats -> the suffixes that select them on writing (the first is the default)
LABELMAP_SUFFIXES: dict[str, tuple[str, ...]] = {
    "nifti": (".nii.gz", ".nii"),
    "dicom-seg": (".dcm",),
    "png": (".png", ".tif", ".tiff"),
    "seg-nrrd": (".seg.nrrd", ".nrrd"),
}

#: ITK-SNAP label description files beside a NIfTI label map ``<stem>.nii.gz``: ``<stem>`` + one of these,
#: in the order they are looked for (the first is the one written). ``.label.txt``: ITK-SNAP's
#: Label Editor imports ``.txt`` and ``.label`` files, and the double suffix keeps it apart from any other
#: ``<stem>.txt`` (read only when there is no ``.label.txt``/``.label``)
LABEL_DESCRIPTION_SUFFIXES: tuple[str, ...] = (".label.txt", ".label", ".txt")

#: the file name of a DICOM Media Storage Directory (PS3.10 8.6), the index at the root of a patient CD
DICOMDIR = "DICOMDIR"

#: the segment metadata beside a NIfTI label map ``<stem>.nii.gz``: ``<stem>`` + this (dcmqi's
#: itkimage2segimage metadata JSON: names, colours and codes of each label value, :mod:`engine.io.segmeta`)
SEG_META_SUFFIX = ".meta.json"

#: SOP Class UID of a DICOM Segmentation object (DICOM PS3.4, "Segmentation Storage")
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def known_suffix(name: str | Path) -> str:
    """The suffix of the table that ``name`` ends with (lowercase, e.g. ``.nii.gz``), or ``''``."""
    low = Path(name).name.lower()
    best = ""
    for suffixes in SUFFIXES.values():
        for s in suffixes:
            if low.endswith(s) and len(s) > len(best):
                best = s
    return best


def stem(name: str | Path) -> str:
    """A file name without its known suffix (``scan.nii.gz`` -> ``scan``; unknown suffixes are kept)."""
    n = Path(name).name
    return n[: len(n) - len(known_suffix(n))]


def kind_of(path: str | Path) -> str | None:
    """'nifti', 'dicom', 'raster', 'npz' or 'nrrd' by suffix; None for a name the table does not know."""
    s = known_suffix(path)
    return next((k for k, suffixes in SUFFIXES.items() if s and s in suffixes), None)


def is_nifti(path: str | Path) -> bool:
    return kind_of(path) == "nifti"


def is_dicomdir(path: str | Path) -> bool:
    """True for a file named DICOMDIR (any case); by name only, nothing is read."""
    return Path(path).name.upper() == DICOMDIR


def is_raster(path: str | Path) -> bool:
    return kind_of(path) == "raster"


def labelmap_format(path: str | Path) -> str | None:
    """The label map format a file name asks for: 'nifti', 'dicom-seg', 'png', 'seg-nrrd', or None (not a
    label map suffix)."""
    low = Path(path).name.lower()
    return next((fmt for fmt, suffixes in LABELMAP_SUFFIXES.items() if low.endswith(suffixes)), None)


def label_description_paths(labelmap: str | Path) -> list[Path]:
    """Where the ITK-SNAP label descriptions of a NIfTI label map may be, in the order they are looked for
    (``seg.nii.gz`` -> ``seg.label.txt``, ``seg.label``, ``seg.txt``); the first is the one written."""
    p = Path(labelmap)
    return [p.with_name(stem(p) + s) for s in LABEL_DESCRIPTION_SUFFIXES]


def seg_meta_path(labelmap: str | Path) -> Path:
    """The segment metadata JSON of a NIfTI label map (``seg.nii.gz`` -> ``seg.meta.json``)."""
    p = Path(labelmap)
    return p.with_name(stem(p) + SEG_META_SUFFIX)


def patterns(*kinds: str, labelmaps: bool = False) -> str:
    """Glob patterns for a file dialog, e.g. ``*.nii *.nii.gz *.dcm``: the given kinds, else the image kinds
    (:data:`IMAGE_KINDS`); ``labelmaps``: the label map formats' suffixes."""
    table = LABELMAP_SUFFIXES if labelmaps else SUFFIXES
    out = []
    for k in kinds or (table if labelmaps else IMAGE_KINDS):
        out += sorted(table[k], key=len)
    return " ".join(f"*{s}" for s in out)


__all__ = ["DICOMDIR", "IMAGE_KINDS", "LABELMAP_SUFFIXES", "LABEL_DESCRIPTION_SUFFIXES", "SEG_META_SUFFIX",
           "SEG_SOP_CLASS", "SUFFIXES", "is_dicomdir", "is_nifti", "is_raster", "kind_of", "known_suffix",
           "label_description_paths", "labelmap_format", "patterns", "seg_meta_path", "stem"]
