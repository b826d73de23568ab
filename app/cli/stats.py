"""``boxseg stats IMAGE LABELMAP``: one row of measurements per label (engine.data.measure), as a table, CSV or JSON."""

from __future__ import annotations

import json
from pathlib import Path

from app.cli.common import open_arg, warn
from engine.base.atomic import write_text
from engine.data.measure import format_value, json_row, measure, to_csv
from engine.io.dispatch import read_labelmap
from engine.io.outputs import check_output

#: columns of the terminal table (all of COLUMNS go to --csv / --json)
SHOWN = ("label", "name", "voxels", "volume_ml", "mean", "sd", "min", "max", "feret_mm", "recist_long_mm",
         "recist_short_mm", "recist_slice")


_fmt = format_value


def print_rows(measurements, img) -> None:
    """The measurements as a table on stdout (the :data:`SHOWN` columns), with their units."""
    rows = [m.row() for m in measurements]
    unit = rows[0]["length_unit"] if rows else "mm"
    print(f"lengths in {unit}, intensities in {img.units or 'image units'}"
          + ("" if img.spacing_known else " (the image has no pixel spacing: pixel units)"))
    table = [SHOWN] + [tuple(_fmt(r[c]) for c in SHOWN) for r in rows]
    widths = [max(len(t[i]) for t in table) for i in range(len(SHOWN))]
    for t in table:
        print("  ".join(v.rjust(w) if i != 1 else v.ljust(w) for i, (v, w) in enumerate(zip(t, widths))))


def cmd_stats(args) -> int:
    img = open_arg(args.image, args.series)
    warn(img.warnings)
    lm = read_labelmap(Path(args.labelmap), img)
    warn(lm.warnings)
    measurements = measure(lm.labels, img, lm.segments)
    rows = [m.row() for m in measurements]
    if args.csv:
        write_text(check_output(args.csv, img, args.labelmap), to_csv(rows))
    if args.json:
        print(json.dumps([json_row(m) for m in measurements], indent=1))
        return 0
    print(f"{Path(args.labelmap).name} on {img.description}: {len(rows)} label(s)")
    print_rows(measurements, img)
    if args.csv:
        print(f"csv: {args.csv}")
    return 0


def add_parser(sub) -> None:
    s = sub.add_parser("stats", help="measurements per label: volume, intensity statistics, extents, Feret, RECIST",
                       description="One row per label of LABELMAP (NIfTI, DICOM-SEG or PNG, on IMAGE's grid): "
                                   "voxels, volume_ml, mean/sd (n-1)/min/max/median/p5/p95 in the image's units, "
                                   "extent along R/A/S, maximum 3D diameter (Feret) and the RECIST long/short axes "
                                   "on the slice of largest area, in mm. See docs/measurements.md.")
    s.add_argument("image", help="the image the label map was drawn on (DICOM folder or file, NIfTI, PNG, ...)")
    s.add_argument("labelmap", help="NIfTI / DICOM-SEG / PNG label map on that image")
    s.add_argument("--series", default=None, help="DICOM folder: series UID or its number in `boxseg info`")
    s.add_argument("--csv", default=None, metavar="OUT", help="also write every column to OUT (CSV)")
    s.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    s.set_defaults(func=cmd_stats)


__all__ = ["add_parser", "cmd_stats", "print_rows"]
