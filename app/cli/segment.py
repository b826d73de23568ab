"""``boxseg segment``: one box on a slice (or propagated through slices) -> a label map file."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from app.cli.common import Progress, add_model_args, load_session, open_arg, warn
from app.cli.stats import print_rows
from engine.base.errors import InputError, PromptError
from engine.data.labelmap import Segment, codes_for_name
from engine.data.measure import measure
from engine.data.palette import default_color
from engine.data.window import parse_window
from engine.io.dispatch import write_labelmap
from engine.io.formats import labelmap_format
from engine.io.outputs import check_output
from engine.io.raster import write_overlay_png
from engine.pipeline import StudyObject, check_object, parse_box, segment_object


def parse_cli_box(values: list[str]) -> list[float]:
    """``--box X0 Y0 X1 Y1`` or the comma form ``--box X0,Y0,X1,Y1`` -> 4 floats."""
    try:
        return list(parse_box(values, sizes=(4,)))
    except PromptError:
        raise PromptError(f"--box must be X_MIN Y_MIN X_MAX Y_MAX (or x_min,y_min,x_max,y_max) in voxel indices, "
                          f"got {' '.join(values)!r}") from None


def out_format(out: Path) -> str:
    """The label map format ``-o OUT`` asks for ('nifti', 'dicom-seg', 'png', 'seg-nrrd'); :class:`InputError`
    otherwise."""
    fmt = labelmap_format(out)
    if fmt is None:
        raise InputError(f"{out.name}: output format from its extension must be .nii/.nii.gz (NIfTI label map), "
                         f".dcm (DICOM-SEG), .seg.nrrd (3D Slicer segmentation) or .png (2D mask)")
    return fmt


def cmd_segment(args) -> int:
    """Segment an image or volume with a box; write the mask as NIfTI, DICOM-SEG, .seg.nrrd or PNG (by extension)."""
    if args.image is None and len(args.box) > 1:
        # `segment --box X0 Y0 X1 Y1 IMAGE`: argparse gives the image to the open-ended --box
        args.image = args.box.pop()
    if args.image is None:
        raise InputError("segment needs an IMAGE (a DICOM folder or file, NIfTI, PNG/JPEG/BMP/TIFF or .npz)")
    box = parse_cli_box(args.box)
    out = Path(args.out)
    kind = out_format(out)
    if args.window is not None:
        parse_window(args.window)  # a bad spec is refused before any reading
    img = open_arg(args.image, args.series)
    check_output(out, img)  # before the model runs: -o must not replace the image
    if args.overlay:
        check_output(args.overlay, img, out)
    z_range = None
    if args.z_range is not None:
        z0, z1 = args.z_range
        if z1 < z0:
            raise PromptError(f"--z-range {z0} {z1}: the first slice must not be after the last")
        img.check_slice(z0)
        img.check_slice(z1)
        z_range = (z0, z1)
        z = z0 + (z1 - z0) // 2
        obj = StudyObject(args.name, (box[0], box[1], z0, box[2], box[3], z1), window=args.window)
    elif args.slice is not None:
        z = img.check_slice(args.slice)
    elif img.depth == 1:
        z = 0
    else:
        raise PromptError(f"this image is a volume of {img.depth} slices: give --slice Z (0..{img.depth - 1}) "
                          f"or --z-range Z0 Z1")
    if z_range is None:
        obj = StudyObject(args.name, tuple(box), slice=z, window=args.window)
    elif img.is_rgb:
        raise InputError("--z-range propagates through grey volumes; this one is RGB (segment one --slice)")
    check_object(img, obj)
    if kind == "dicom-seg" and not img.dicom:
        raise InputError(f"{out.name}: a DICOM-SEG needs a DICOM input; this is {img.description.split(',')[0]} "
                         "(write .nii.gz, .seg.nrrd or .png)")
    if kind == "png" and z_range is not None and img.depth > 1:
        raise InputError(f"{out.name}: a PNG holds one slice; write .nii.gz, .seg.nrrd or .dcm for --z-range")
    img.intensity_map(args.window)  # a zero-range image is refused before the model loads
    warn(img.warnings)

    t0 = time.perf_counter()
    session = load_session(args)
    t_load = time.perf_counter() - t0
    bar = Progress(z_range[1] - z_range[0] + 1, "propagate") if z_range is not None else None
    res = segment_object(session, img, obj, progress=(lambda d, t: bar.update(d)) if bar else None)
    labels = res.mask.astype(np.uint8)
    key = res.window_key
    iou = f", model IoU estimate {res.iou:.3f}" if res.iou is not None else ""
    entry = session.entry
    segment = Segment(1, args.name, default_color(1), *codes_for_name(args.name))
    write_labelmap(out, labels, img, segments=[segment], model_name=entry.name, model_version=entry.version, z=z)
    if args.overlay:
        # oriented as the app's slice view shows the plane (radiological, engine.data.display.Display), not
        # in stored voxel order (a NIfTI's stored rows often run posterior -> anterior); not
        # resampled for anisotropic pixels
        disp = img.display
        shape_yx = labels.shape[1:]
        slice_u8, _ = img.model_slice(z, args.window)
        write_overlay_png(Path(args.overlay), np.ascontiguousarray(disp.to_screen(slice_u8)),
                          np.ascontiguousarray(disp.to_screen(labels[z])), disp.box_to_screen(box, shape_yx))
    zs = np.flatnonzero(labels.reshape(img.depth, -1).any(axis=1))
    where = f"slice {z}" if z_range is None else f"slices {z_range[0]}..{z_range[1]} ({len(zs)} non-empty)"
    zt, yt, xt = img.shape
    print(f"{args.image}: {img.description}; {xt}x{yt} px x {zt} slice(s); window {key}")
    print(f"mask: {int(labels.astype(bool).sum())} voxels on {where}{iou} -> {out}")
    print(f"model {entry.name}: load {t_load * 1000:.0f} ms, encoder {session.timings.encoder_ms:.0f} ms "
          f"(x{session.timings.encoder_runs}), decoder {session.timings.decoder_ms:.1f} ms "
          f"({session.runtime.precision}, {session.runtime.threads} threads)")
    if args.stats:
        print_rows(measure(labels, img, [segment]), img)
    return 0


def add_parser(sub) -> None:
    s = sub.add_parser("segment", help="segment an image or volume with a box; write NIfTI, DICOM-SEG, .seg.nrrd or PNG",
                       description="Coordinates are voxel indices as stored in the file: X is the first in-plane "
                                   "index (NIfTI i, DICOM column), Y the second (NIfTI j, DICOM row), Z the slice "
                                   "(NIfTI k; DICOM slices sorted by position along the slice normal).")
    s.add_argument("image", nargs="?", help="DICOM folder or file, NIfTI .nii/.nii.gz, PNG/JPEG/BMP/TIFF, or "
                                            "challenge .npz")
    s.add_argument("--box", required=True, nargs="+", metavar="X",
                   help="X0 Y0 X1 Y1 (or x0,y0,x1,y1): the box in voxel indices of the slice")
    zs = s.add_mutually_exclusive_group()
    zs.add_argument("--slice", type=int, default=None, metavar="Z", help="segment slice Z (needed for a volume)")
    zs.add_argument("--z-range", type=int, nargs=2, default=None, metavar=("Z0", "Z1"),
                    help="propagate the box (drawn on the middle slice Z0+(Z1-Z0)//2) through slices Z0..Z1")
    s.add_argument("--series", default=None, help="DICOM folder: series UID or its number in `boxseg info` "
                                                 "(default: the series with the most slices)")
    s.add_argument("--window", default=None,
                   help="intensity window: soft-tissue|lung|bone|brain, WIDTH,LEVEL in HU (e.g. 400,40; or W400,L40), "
                        "percentile, minmax (default: soft-tissue for CT, percentile for MR, as-is for 8-bit)")
    s.add_argument("-o", "--out", default="mask.png",
                   help="output by extension: .nii/.nii.gz label map in the input's geometry (with ITK-SNAP label "
                        "descriptions beside it, NAME.label.txt), .seg.nrrd 3D Slicer segmentation, .dcm DICOM-SEG "
                        "(DICOM input), .png mask of the slice (default mask.png)")
    s.add_argument("--overlay", default=None,
                   help="also write an overlay PNG of the box slice (image + mask + box), oriented as the app shows it")
    s.add_argument("--name", default="BoxSeg object",
                   help="object name stored in the DICOM-SEG / .seg.nrrd segment or the ITK-SNAP label descriptions; "
                        "a named structure (liver, 'Kidney, left', tumour, ...: docs/formats.md) also stores its "
                        "SNOMED CT codes")
    s.add_argument("--stats", action="store_true",
                   help="also print the object's measurements (the row `boxseg stats` gives: mL, HU, Feret, RECIST)")
    add_model_args(s)
    s.set_defaults(func=cmd_segment)


__all__ = ["add_parser", "cmd_segment", "out_format", "parse_cli_box"]
