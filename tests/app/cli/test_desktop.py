"""``boxseg app`` / ``boxseg`` without a display: one line and exit 2, never a Qt abort; the smoke test
still runs offscreen (issue 19, item 1)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.cli.desktop import X11_LIBRARIES, missing_display, missing_x11_libraries
from tests.conftest import REPO

SAMPLE_MR = REPO / "assets" / "sample" / "mni_icbm152_t1_2009a.nii.gz"


def _headless_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(extra)
    return env


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the display check is for X11/Wayland systems")
@pytest.mark.parametrize("argv", [["app", str(SAMPLE_MR)], ["app"], []], ids=["app PATH", "app", "boxseg alone"])
def test_app_without_a_display_says_so_in_one_line(argv):
    r = subprocess.run([sys.executable, "-m", "app.cli.main", *argv], capture_output=True, text=True, cwd=REPO,
                       env=_headless_env(), timeout=120)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("boxseg: error: no display"), r.stderr
    assert "--smoke-test" in lines[0] and "command-line subcommands" in lines[0]
    assert "Traceback" not in r.stderr and r.stdout == ""


@pytest.mark.parametrize("env, platform, ok", [
    ({}, "linux", False),
    ({"QT_QPA_PLATFORM": "xcb"}, "linux", False),      # asks for X11 but there is none
    ({"QT_QPA_PLATFORM": "wayland;xcb"}, "linux", False),
    ({"DISPLAY": ":0"}, "linux", True),
    ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", True),
    ({"QT_QPA_PLATFORM": "offscreen"}, "linux", True),
    ({"QT_QPA_PLATFORM": "minimal"}, "linux", True),
    ({"QT_QPA_PLATFORM": "xcb;offscreen"}, "linux", True),  # Qt falls back to offscreen
    ({"QT_QPA_PLATFORM": "vnc:size=800x600"}, "freebsd14", True),
    ({}, "freebsd14", False),
    ({}, "win32", True),
    ({}, "darwin", True),
])
def test_missing_display(env, platform, ok):
    why = missing_display(env, platform)
    assert (why is None) == ok, why
    if why is not None:
        assert "\n" not in why and "DISPLAY" in why


@pytest.mark.gui
def test_smoke_test_still_runs_without_a_display(tmp_path):
    """The smoke test sets QT_QPA_PLATFORM=offscreen itself when there is no display."""
    pytest.importorskip("PySide6")
    import json

    r = subprocess.run([sys.executable, "-m", "app.cli.main", "app", "--smoke-test",
                        str(REPO / "assets" / "sample" / "CT_small.dcm"), "--box", "72", "0", "110", "28"],
                       capture_output=True, text=True, cwd=REPO, timeout=600,
                       env=_headless_env(BOXSEG_AUTOSAVE_DIR=str(tmp_path / "autosave")))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["saved"] and res["mask_pixels"] > 0


@pytest.mark.parametrize("env, platform, checked", [
    ({"DISPLAY": ":0"}, "linux", True),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, "linux", True),
    ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, "linux", False),  # Qt picks Wayland
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux", False),
    ({}, "linux", False),                                                 # missing_display's case
    ({"DISPLAY": ":0"}, "darwin", False),
])
def test_missing_x11_libraries_names_them_and_their_packages(env, platform, checked):
    gone = {"libxcb-icccm.so.4", "libxcb-keysyms.so.1"}
    why = missing_x11_libraries(env, platform, loadable=lambda so: so not in gone)
    if not checked:
        assert why is None
        return
    assert why is not None and "\n" not in why
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1" in why and "apt-get install libxcb-icccm4 libxcb-keysyms1" in why
    assert "--smoke-test" in why
    assert missing_x11_libraries(env, platform, loadable=lambda so: True) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 libraries are a Linux matter")
def test_x11_library_check_uses_the_real_loader():
    """On this machine: every library the check reports missing really fails to load, and the rest load."""
    import ctypes

    why = missing_x11_libraries({"DISPLAY": ":0"}, "linux")
    for so in X11_LIBRARIES:
        try:
            ctypes.CDLL(so)
            loads = True
        except OSError:
            loads = False
        assert (why is not None and so in why) != loads, so
