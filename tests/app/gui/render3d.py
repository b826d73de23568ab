"""Renders the 3D view on a real OpenGL display and prints what it saw as JSON (run by test_view3d.py under
Xvfb with QT_QPA_PLATFORM=xcb; also a helper for screenshots).

    python tests/app/gui/render3d.py OUT_DIR

Scene: a 0.8 x 0.8 x 2.5 mm grid with a red ball (radius 20 mm, label 1) at the centre and a green cube
(side 16 mm, label 2) 35 mm to the patient's right of it, set through a real Controller's document. Checks
made by the caller on the printed figures: the fraction of red and green pixels, the side of the screen the
green cube is on (the first view is from the front: the patient's right on the screen's left), and the
pixels that change after a left-drag, a wheel step and a double click (real mouse events on the canvas).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QImage, QWheelEvent  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.gui.controller import Controller  # noqa: E402
from app.gui.document import SegObject  # noqa: E402
from app.gui.views.view3d import View3D  # noqa: E402
from engine.data.image import Image  # noqa: E402

RED, GREEN = (230, 60, 40), (40, 200, 60)
AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])


def scene() -> tuple[Image, np.ndarray, list[SegObject]]:
    shape = (40, 140, 160)  # z, y, x
    z, y, x = np.mgrid[0:shape[0], 0:shape[1], 0:shape[2]]
    mm = np.stack([x * 0.8, y * 0.8, z * 2.5], -1)
    centre = np.array([60.0, 56.0, 50.0])
    labels = np.zeros(shape, np.uint8)
    labels[np.linalg.norm(mm - centre, axis=-1) <= 20.0] = 1
    cube = np.all(np.abs(mm - (centre + [35.0, 0, 0])) <= 8.0, axis=-1)
    labels[cube] = 2
    img = Image(np.zeros(shape, np.int16), AFFINE, modality="CT", units="HU")
    objs = [SegObject(1, "Ball", RED), SegObject(2, "Cube", GREEN)]
    return img, labels, objs


def as_array(img: QImage) -> np.ndarray:
    img = img.convertToFormat(QImage.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    a = np.frombuffer(img.constBits(), np.uint8, count=bpl * h).reshape(h, bpl)
    return a[:, : 3 * w].reshape(h, w, 3).copy()


def colour_mask(a: np.ndarray, rgb) -> np.ndarray:
    """Pixels lit in that colour's hue (any shade between the ambient and full light)."""
    a = a.astype(np.float64)
    ref = np.asarray(rgb, np.float64)
    scale = (a @ ref) / (ref @ ref)
    return (scale > 0.2) & (np.linalg.norm(a - scale[..., None] * ref, axis=-1) < 25)


def wait(view, app, timeout=60.0) -> None:
    t = time.monotonic()
    while view.pending and time.monotonic() - t < timeout:
        app.processEvents()
        time.sleep(0.01)
    for _ in range(5):
        app.processEvents()


def render(view) -> np.ndarray:
    return as_array(view.render_image())


def main(out: Path) -> dict:
    app = QApplication.instance() or QApplication([])
    c = Controller()
    view = View3D(c)
    view.resize(320, 240)
    view.show()
    QTest.qWaitForWindowExposed(view)
    img, labels, objs = scene()
    c.doc.set_image(img, labels=labels, objects=objs)
    wait(view, app)
    res = {"available": view.available, "reason": view.reason, "triangles": view.triangles,
           "meshes": sorted(int(v) for v in view.meshes)}
    if view.available:
        first = render(view)
        QImage(first.data, first.shape[1], first.shape[0], 3 * first.shape[1], QImage.Format_RGB888).save(
            str(out / "view3d-front.png"))
        red, green = colour_mask(first, RED), colour_mask(first, GREEN)
        gx = np.flatnonzero(green.any(0))
        rx = np.flatnonzero(red.any(0))
        res.update(size=list(first.shape[:2]), red=float(red.mean()), green=float(green.mean()),
                   green_x=float(gx.mean()) if len(gx) else None, red_x=float(rx.mean()) if len(rx) else None,
                   red_max=first[red].max(0).tolist() if red.any() else None)
        canvas = view.gl
        centre = QPoint(canvas.width() // 2, canvas.height() // 2)
        QTest.mousePress(canvas, Qt.LeftButton, Qt.NoModifier, centre)
        for i in range(1, 19):  # 180 px -> 90 degrees of azimuth
            QTest.mouseMove(canvas, centre + QPoint(10 * i, 0))
        QTest.mouseRelease(canvas, Qt.LeftButton, Qt.NoModifier, centre + QPoint(180, 0))
        turned = render(view)
        res["azimuth"] = canvas.camera.azimuth
        res["turn_changed"] = float(np.any(turned != first, axis=-1).mean())
        res["green_after_turn"] = float(colour_mask(turned, GREEN).mean())
        pos = QPointF(centre)
        ev = QWheelEvent(pos, canvas.mapToGlobal(pos), QPoint(0, 0), QPoint(0, 240), Qt.NoButton, Qt.NoModifier,
                         Qt.NoScrollPhase, False)
        QApplication.sendEvent(canvas, ev)
        zoomed = render(view)
        res["red_after_turn"] = float(colour_mask(turned, RED).mean())
        res["red_zoomed"] = float(colour_mask(zoomed, RED).mean())
        QTest.mouseDClick(canvas, Qt.LeftButton, Qt.NoModifier, centre)
        again = render(view)
        res["reset_changed"] = float(np.any(np.abs(again.astype(int) - first) > 8, axis=-1).mean())
        c.doc.update_object(2, visible=False)
        hidden = render(view)
        res["green_hidden"] = float(colour_mask(hidden, GREEN).mean())
        res["triangles_hidden"] = view.triangles
    view.shutdown()
    c.shutdown()
    return res


if __name__ == "__main__":
    result = main(Path(sys.argv[1]))
    print("RESULT " + json.dumps(result), flush=True)
    sys.stderr.flush()
    # a process that made a Controller aborts in the interpreter's teardown ("terminate called without an
    # active exception", with or without this view): leave before it, the result is out
    os._exit(0)
