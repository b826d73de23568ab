"""``boxseg app``: start the desktop app (or run its ``--smoke-test``). The only command that reaches Qt."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from app.cli.segment import parse_cli_box
from engine.base.errors import InputError


def cmd_app(args) -> int:
    """The desktop app (PySide6, imported only here), or its end-to-end ``--smoke-test``."""
    if importlib.util.find_spec("PySide6") is None:
        raise InputError("the desktop app needs PySide6: pip install 'boxseg[app]' (or PySide6-Essentials)")
    box = parse_cli_box(args.box) if args.box else None
    if args.smoke_test:
        if args.path is None:
            raise InputError("--smoke-test needs a PATH (a DICOM folder or file, NIfTI or 2D image)")
        if not Path(args.path).exists():
            raise InputError(f"{args.path}: no such file or folder")
    # the only imports of Qt from the command line: here, after the check above, so that every other
    # command runs without PySide6 (the import-linter contract "app.cli never imports Qt" names these edges)
    if args.smoke_test:
        from app.gui.smoke import run_smoke_test

        return run_smoke_test(args.path, box=box, series=args.series)
    from app.gui.launch import run_app

    return run_app(args.path, series=args.series)


def add_parser(sub) -> None:
    a = sub.add_parser("app", help="the desktop app (also what `boxseg` alone starts)")
    a.add_argument("path", nargs="?", default=None, help="DICOM folder or file, NIfTI, PNG/JPEG/BMP/TIFF to open")
    a.add_argument("--series", default=None, help="DICOM folder: series UID or its number in `boxseg info`")
    a.add_argument("--smoke-test", action="store_true",
                   help="open PATH, drag a box with real mouse events, propagate, save and reload; print one "
                        "JSON line (open_ms, first_mask_ms, live_updates, mask_pixels, propagate_s, saved)")
    a.add_argument("--box", nargs="+", default=None, metavar="X",
                   help="with --smoke-test: X0 Y0 X1 Y1 voxel box (default: around the brightest blob)")
    a.set_defaults(func=cmd_app)


__all__ = ["add_parser", "cmd_app"]
