"""``boxseg info`` and ``boxseg convert``: describe an image; convert label maps and images between formats."""

from __future__ import annotations

from pathlib import Path

from app.cli.common import open_arg, read_progress, warn
from app.cli.segment import out_format
from engine.base.errors import InputError
from engine.data.image import Image
from engine.io.dicomseg import is_dicom_seg
from engine.io.dispatch import read_labelmap, write_labelmap
from engine.io.formats import is_dicomdir, is_nifti, is_raster, kind_of
from engine.io.nifti import write_nifti_image
from engine.io.outputs import check_output
from engine.io.studies import list_studies


def cmd_info(args) -> int:
    """Series found (for a folder), shape, spacing, orientation, modality, intensity range."""
    p = Path(args.image)
    if p.is_dir() or is_dicomdir(p):
        listing = list_studies(p, progress=read_progress("scan"))  # a folder: scan_folder; a DICOMDIR: its files
        warn(listing.warnings)
        print(f"{p}: {len(listing.series)} DICOM series")
        for i, e in enumerate(listing.series, 1):
            print(f"  {e.info.line(i)}")
    img = open_arg(args.image, args.series)
    print(f"{img.source}:")
    for line in img.summary():
        print(f"  {line}")
    for w in img.warnings:
        print(f"  warning: {w}")
    return 0


def cmd_convert(args) -> int:
    """Label map <-> DICOM-SEG / .seg.nrrd / NIfTI (aligned to --reference), or a DICOM image -> NIfTI.

    DICOM-SEG and .seg.nrrd carry their own grid (and names), so they convert without --reference (to
    anything but DICOM-SEG); a NIfTI/PNG label map needs its image, except to .seg.nrrd, which takes the
    NIfTI's own grid (a PNG has none)."""
    src, out = Path(args.input), Path(args.out)
    kind = out_format(out)
    if not src.exists():
        raise InputError(f"{src}: no such file or folder")
    check_output(out, None, src)
    ref = open_arg(args.reference, args.series) if args.reference else None
    if ref is not None:
        warn(ref.warnings)
        check_output(out, ref)
    own_grid = is_dicom_seg(src) or kind_of(src) == "nrrd" or (is_nifti(src) and kind == "seg-nrrd")
    if own_grid or ((is_nifti(src) or is_raster(src)) and ref is not None):
        lm = read_labelmap(src, ref)
        warn(lm.warnings)
        if ref is None:
            if kind == "dicom-seg":
                raise InputError(f"{out.name}: writing a DICOM-SEG needs --reference (the DICOM series it belongs to)")
            ref = Image(voxels=lm.labels, affine=lm.affine, description="label map grid")
        write_labelmap(out, lm.labels, ref, segments=lm.segments, model_name="convert",
                       model_version="boxseg convert", z=0 if ref.depth == 1 else None)
        values = ", ".join(f"{s.value}={s.name}" for s in lm.segments) or "empty"
        print(f"{src.name} -> {out}: {ref.shape[2]}x{ref.shape[1]}x{ref.shape[0]} label map ({values})")
        return 0
    if is_nifti(src) or is_raster(src):
        raise InputError(f"{src.name}: converting a label map needs --reference IMAGE (the image it was drawn on)")
    img = open_arg(args.input, args.series)
    if kind != "nifti":
        raise InputError(f"{src.name} is an image; it converts to NIfTI only (-o NAME.nii.gz)")
    warn(img.warnings)
    write_nifti_image(check_output(out, img), img)
    print(f"{src.name} -> {out}: {img.description}; {img.shape[2]}x{img.shape[1]}x{img.shape[0]}, "
          f"orientation {img.orientation}")
    return 0


def add_parser(sub) -> None:
    n = sub.add_parser("info", help="describe an image: series found, shape, spacing, orientation, modality, range")
    n.add_argument("image", help="DICOM folder or file, NIfTI, PNG/JPEG/BMP/TIFF, or challenge .npz")
    n.add_argument("--series", default=None, help="DICOM folder: the series to describe (UID or number)")
    n.set_defaults(func=cmd_info)

    c = sub.add_parser("convert", help="label map <-> DICOM-SEG / .seg.nrrd / NIfTI (aligned to --reference), or "
                                       "DICOM image -> NIfTI")
    c.add_argument("input", help="DICOM-SEG .dcm, 3D Slicer .seg.nrrd, NIfTI/PNG label map (with --reference), or a "
                                 "DICOM image/folder")
    c.add_argument("-o", "--out", required=True,
                   help=".nii/.nii.gz (+ NAME.label.txt, ITK-SNAP), .seg.nrrd (3D Slicer), .dcm (DICOM-SEG) or .png, by "
                        "extension")
    c.add_argument("--reference", default=None,
                   help="the image the label map belongs to (a DICOM series folder for DICOM-SEG output); the "
                        "label map's geometry must match it")
    c.add_argument("--series", default=None, help="series of a DICOM folder given as input or --reference")
    c.set_defaults(func=cmd_convert)


__all__ = ["add_parser", "cmd_convert", "cmd_info"]
