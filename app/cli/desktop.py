"""``boxseg app``: start the desktop app (or run its ``--smoke-test``). The only command that reaches Qt."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from app.cli.segment import parse_cli_box
from engine.base.errors import InputError
from engine.base.heap import tune_malloc


#: Qt platform plugins that draw without a window system (QT_QPA_PLATFORM; a ';'-separated list is a
#: fallback order): with one of these the app starts without DISPLAY/WAYLAND_DISPLAY
HEADLESS_PLATFORMS = frozenset({"offscreen", "minimal", "minimalegl", "eglfs", "linuxfb", "vnc", "vkkhrdisplay"})


def missing_display(environ=None, platform: str | None = None) -> str | None:
    """Why the interactive app cannot open a window here (one line), or None when it can.

    Only Linux and other X11/Wayland systems need a display server; without DISPLAY or WAYLAND_DISPLAY
    Qt's xcb plugin prints several lines and aborts the process (no exception to catch), so the check
    is made before Qt is imported. A headless QT_QPA_PLATFORM (:data:`HEADLESS_PLATFORMS`) needs none.
    """
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if platform.startswith(("win", "darwin", "cygwin")):
        return None
    wanted = [p.strip().split(":")[0] for p in env.get("QT_QPA_PLATFORM", "").split(";") if p.strip()]
    if any(p in HEADLESS_PLATFORMS for p in wanted):
        return None
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return ("no display to open the desktop app on (DISPLAY and WAYLAND_DISPLAY are not set); "
            "`boxseg app --smoke-test PATH` runs it offscreen, and the command-line subcommands "
            "(boxseg segment/convert/info/stats/batch ...) need no display")


#: the system libraries Qt's X11 platform plugin (libqxcb, libQt6XcbQpa) loads, with their Debian/Ubuntu
#: packages: the PySide6 wheels do not ship them, and a minimal system (a container, a server with Xvfb)
#: lacks some; Qt then prints several lines and aborts the process instead of raising
X11_LIBRARIES = {
    "libxcb.so.1": "libxcb1", "libX11-xcb.so.1": "libx11-xcb1", "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4", "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0", "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0", "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1", "libxcb-xfixes.so.0": "libxcb-xfixes0", "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-shm.so.0": "libxcb-shm0", "libxcb-render.so.0": "libxcb-render0",
    "libxkbcommon.so.0": "libxkbcommon0", "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libEGL.so.1": "libegl1", "libGL.so.1": "libgl1", "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3", "libglib-2.0.so.0": "libglib2.0-0",
}


def _loadable(soname: str) -> bool:
    import ctypes

    try:
        ctypes.CDLL(soname)
        return True
    except OSError:
        return False


def missing_x11_libraries(environ=None, platform: str | None = None, loadable=_loadable) -> str | None:
    """Why Qt's X11 plugin cannot start here (one line naming the missing libraries and the packages that
    hold them), or None: not an X11 start (another OS, Wayland, a headless platform) or nothing missing."""
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux") or not env.get("DISPLAY"):
        return None
    wanted = [p.strip().split(":")[0] for p in env.get("QT_QPA_PLATFORM", "").split(";") if p.strip()]
    if (wanted and wanted[0] != "xcb") or (not wanted and env.get("WAYLAND_DISPLAY")):
        return None
    missing = [so for so in X11_LIBRARIES if not loadable(so)]
    if not missing:
        return None
    return (f"the desktop app's X11 window needs system libraries that are missing: {', '.join(missing)} "
            f"(Debian/Ubuntu: apt-get install {' '.join(X11_LIBRARIES[so] for so in missing)}); "
            "`boxseg app --smoke-test PATH` runs it offscreen, and the command-line subcommands "
            "(boxseg segment/convert/info/stats/batch ...) need no display")


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
    else:
        why = missing_display() or missing_x11_libraries()
        if why is not None:
            raise InputError(why)  # one line and exit 2 (app.cli.main), instead of Qt aborting the process
    # arrays of 1 MiB or more are given back to the OS when freed (a few hundred MiB of the app's peak
    # resident set otherwise stay in glibc's arenas: engine.base.heap); before Qt starts its threads
    tune_malloc()
    # the only imports of Qt from the command line: here, after the check above, so that every other
    # command runs without PySide6 (the import-linter contract "app.cli never imports Qt" names these edges)
    if args.smoke_test:
        from app.gui.smoke import run_smoke_test

        return run_smoke_test(args.path, box=box, series=args.series, layout=args.layout)
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
    a.add_argument("--layout", choices=("single", "1x3", "2x2"), default=None,
                   help="with --smoke-test: the views shown (default: the single view); the box is dragged in "
                        "the axial view, the other views draw the masks")
    a.set_defaults(func=cmd_app)


__all__ = ["HEADLESS_PLATFORMS", "X11_LIBRARIES", "add_parser", "cmd_app", "missing_display", "missing_x11_libraries"]
