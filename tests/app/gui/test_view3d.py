"""The 3D view (objectName ``view3D``): off-thread surfaces of the document's label map, availability of
OpenGL, and (under Xvfb) a real rendering turned with the mouse."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from app.gui.controller import Controller
from app.gui.document import SegObject
from app.gui.views import view3d
from app.gui.views.view3d import View3D
from engine.data.image import Image
from engine.data.surface import label_surfaces

REPO = Path(__file__).resolve().parents[3]
AFFINE = np.diag([0.8, 0.8, 5.0, 1.0])


def ball(radius_mm: float, shape=(16, 80, 80)) -> np.ndarray:
    z, y, x = np.mgrid[0:shape[0], 0:shape[1], 0:shape[2]]
    c = (np.array(shape) - 1) / 2
    d = np.sqrt(((x - c[2]) * 0.8) ** 2 + ((y - c[1]) * 0.8) ** 2 + ((z - c[0]) * 5.0) ** 2)
    return (d <= radius_mm).astype(np.uint8)


@pytest.fixture(scope="module")
def controller(qapp):
    """One real Controller for the module (its model loads once); each test sets its own image."""
    c = Controller()
    yield c
    c.shutdown()


@pytest.fixture
def view(qtbot, controller):
    v = View3D(controller)
    qtbot.addWidget(v)
    yield v
    v.shutdown()


def test_constructs_and_says_whether_opengl_is_there(view):
    assert view.objectName() == "view3D"
    assert isinstance(view.available, bool)
    if view.available:
        assert view.reason == "" and view.gl is not None
    else:  # e.g. the offscreen platform without a display: the reason is shown instead of a canvas
        assert view.reason.startswith("3D view") and view.gl is None
        assert view._layout.currentWidget() is view.message and view.message.text() == view.reason
        assert view.render_image().width() > 0


def test_no_gl_switch_gives_the_reason(qtbot, controller, monkeypatch):
    monkeypatch.setenv("BOXSEG_NO_GL", "1")
    monkeypatch.setattr(view3d, "_GL_STATUS", None)
    v = View3D(controller)
    qtbot.addWidget(v)
    try:
        assert (v.available, v.reason) == (False, "3D view off (BOXSEG_NO_GL is set)")
        assert v.gl is None and v.message.text() == v.reason
    finally:
        v.shutdown()
        view3d._GL_STATUS = None


def test_meshes_follow_the_labels_off_the_gui_thread(qtbot, controller, view):
    big, small = ball(20.0), ball(12.0)
    img = Image(np.zeros(big.shape, np.int16), AFFINE, modality="CT", units="HU")
    view.resize(200, 160)
    view.show()
    controller.doc.set_image(img, labels=big, objects=[SegObject(1, "Ball", (230, 60, 40))])
    assert view.pending
    with qtbot.waitSignal(view.meshesReady, timeout=30_000) as ready:
        qtbot.waitUntil(lambda: not view.pending, timeout=30_000)
    assert ready.args == [label_surfaces(big, AFFINE)[1].triangles]
    want = label_surfaces(big, AFFINE)[1]
    assert sorted(view.meshes) == [1]
    assert view.triangles == want.triangles
    np.testing.assert_allclose(view.meshes[1].volume, want.volume, rtol=1e-6)
    assert abs(want.volume - big.sum() * 0.8 * 0.8 * 5.0) / (big.sum() * 3.2) < 0.04

    # an edit through the document: the labels are copied, the new surface is the smaller ball's
    controller.doc.set_object_volume(1, small.astype(bool))
    assert view.pending
    qtbot.waitUntil(lambda: not view.pending, timeout=30_000)
    assert view.triangles == label_surfaces(small, AFFINE)[1].triangles
    assert view.meshes[1].volume < 0.35 * want.volume

    # hiding an object draws nothing of it without recomputing
    posted = view._posted
    controller.doc.update_object(1, visible=False)
    assert view.triangles == 0 and view._posted == posted and not view.pending


def test_a_hidden_view_computes_nothing_and_catches_up_when_shown(qtbot, controller, view):
    labels = ball(15.0)
    img = Image(np.zeros(labels.shape, np.int16), AFFINE)
    view.hide()
    controller.doc.set_image(img, labels=labels, objects=[SegObject(1, "Ball", (40, 200, 60))])
    qtbot.wait(2 * view3d.DEBOUNCE_MS + 100)
    assert view._posted == 0 and view.pending and view.meshes == {}
    view.show()
    qtbot.waitUntil(lambda: not view.pending, timeout=30_000)
    assert view._posted == 1 and view.triangles == label_surfaces(labels, AFFINE)[1].triangles


def test_a_view_deleted_while_its_surfaces_are_computed_is_no_trouble(qtbot, controller):
    labels = ball(20.0, shape=(40, 160, 160))
    v = View3D(controller)
    v.show()
    controller.doc.set_image(Image(np.zeros(labels.shape, np.int16), AFFINE), labels=labels,
                             objects=[SegObject(1, "Ball", (40, 200, 60))])
    qtbot.waitUntil(lambda: v._posted == 1, timeout=5_000)  # handed to the pool
    v.deleteLater()
    del v
    qtbot.wait(50)
    assert view3d._POOL.waitForDone(30_000)
    qtbot.wait(50)  # the result reaches no view; nothing to join
    other = View3D(controller)
    qtbot.addWidget(other)
    other.show()
    qtbot.waitUntil(lambda: not other.pending, timeout=30_000)
    assert other.triangles == label_surfaces(labels, AFFINE)[1].triangles


# --- a real rendering under Xvfb --------------------------------------------------------------------

def _free_display() -> int:
    for n in range(90, 140):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            return n
    raise RuntimeError("no free X display number in :90..:139")


@pytest.fixture
def xvfb():
    """DISPLAY of a fresh Xvfb server (skips where Xvfb is not installed)."""
    exe = shutil.which("Xvfb")
    if exe is None:
        pytest.skip("Xvfb not installed (apt-get install xvfb libgl1-mesa-dri libglx-mesa0): no real OpenGL render")
    n = _free_display()
    proc = subprocess.Popen([exe, f":{n}", "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t = time.monotonic()
    while not os.path.exists(f"/tmp/.X11-unix/X{n}") and time.monotonic() - t < 10:
        if proc.poll() is not None:
            pytest.skip(f"Xvfb did not start: {proc.stderr.read().decode(errors='replace')[-300:]}")
        time.sleep(0.05)
    yield f":{n}"
    proc.terminate()
    proc.wait(10)


def test_renders_the_objects_and_turns_with_the_mouse_under_xvfb(xvfb, tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", DISPLAY=xvfb, PYTHONPATH=str(REPO),
               XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_DATA_HOME=str(tmp_path / "data"),
               BOXSEG_AUTOSAVE_DIR=str(tmp_path / "autosave"))
    env.pop("BOXSEG_NO_GL", None)
    run = subprocess.run([sys.executable, str(REPO / "tests" / "app" / "gui" / "render3d.py"), str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=240)
    line = next((ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None and ("xcb" in run.stderr and "could not" in run.stderr.lower()):
        pytest.skip(f"Qt's xcb platform does not start here (missing X11 libraries?): {run.stderr[-400:]}")
    assert line is not None, run.stdout[-2000:] + run.stderr[-2000:]
    r = json.loads(line[len("RESULT "):])
    if not r["available"]:
        pytest.skip(f"no OpenGL under Xvfb (install libgl1-mesa-dri libglx-mesa0): {r['reason']}")
    assert r["meshes"] == [1, 2]
    # 320 x 240 frame fitted to both objects: the ball (radius 20 mm) covers ~11 %, the 16 mm cube ~2.6 %
    assert 0.07 < r["red"] < 0.16 and 0.015 < r["green"] < 0.04, r
    assert r["red_max"][0] >= 200 and r["red_max"][1] < 100  # lit in the object's colour (230, 60, 40)
    # seen from the front: the cube, 35 mm to the patient's right of the ball, is on the screen's left
    assert r["green_x"] < 160 < r["red_x"]
    # a 180 px left drag turns the scene 90 degrees: seen from the patient's left the cube is behind the ball
    assert r["azimuth"] == pytest.approx(270.0)
    assert r["turn_changed"] > 0.05 and r["green_after_turn"] < 0.002
    assert r["red_zoomed"] > 1.4 * r["red_after_turn"]  # one wheel step closer
    assert r["reset_changed"] < 0.001  # the double click brings the first view back
    assert r["green_hidden"] < 0.0005 and r["triangles_hidden"] < r["triangles"]
    assert (tmp_path / "view3d-front.png").is_file()
