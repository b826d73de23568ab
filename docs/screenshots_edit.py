"""Render the editing tools offscreen into docs/app-edit.png, app-eraser.png, app-keep-largest.png (real model,
real mouse events).

    python docs/screenshots_edit.py [--out docs]

On the bundled brain MR volume: the pons boxed on slice 50 (the model) and locked; a second object
painted with the brush on slices 48 and 56 around it (the stroke over the pons leaves it untouched);
Fill between slices previewed on slice 50 (around the locked pons) with its Accept/Discard bar; the brush
outline under the cursor. Then the fill accepted, an eraser stroke cutting the painted band on slice 56 and an
island painted beside it (app-eraser.png), and Keep largest part removing the island (app-keep-largest.png).
Autosaves and settings go to a temporary folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "docs"))
from screenshots import SAMPLE_SLICE as PONS_Z, offscreen_session, pons_window  # noqa: E402  (docs/screenshots.py)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "docs"))
    args = ap.parse_args(argv)
    offscreen_session()

    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from app.gui.smoke import _pump, _wait

    app = QApplication.instance() or QApplication(["boxseg"])  # noqa: F841
    win, v = pons_window(1440, 800)
    c = win.c
    win.a_lock.trigger()

    def vp_at(x, y):
        col, row = v.index_to_screen(x, y)
        return v.mapFromScene(v.image_item.mapToScene(QPointF(col, row)))

    def stroke(points):
        vp = v.viewport()
        QTest.mousePress(vp, Qt.LeftButton, Qt.NoModifier, vp_at(*points[0]))
        for x, y in points[1:]:
            QTest.mouseMove(vp, vp_at(x, y))
            _pump(20)
        QTest.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, vp_at(*points[-1]))
        _pump(50)

    c.doc.set_current(0)
    win.a_brush.trigger()
    win.brush_size.setValue(4.0)
    path = [(70 + 4 * i, 100 + (i % 3)) for i in range(16)]  # across the pons: it stays as it is
    for z in (PONS_Z - 2, PONS_Z + 6):
        c.set_slice(z)
        stroke(path)
    c.doc.update_object(2, name="Brush")
    done = {}
    c.jobFinished.connect(lambda i, ok, m: done.update(ok=ok))
    win.a_fill_between.trigger()
    _wait(lambda: "ok" in done, 60, "fill between")
    c.set_slice(PONS_Z)  # the locked pons, and the previewed fill around it
    _pump(200)
    cur = vp_at(100, 140)
    QTest.mouseMove(v.viewport(), cur)
    v.update_brush_cursor(*v.item_px(cur))
    v._update_cursor(*v.item_px(cur))
    _pump(300)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    win.grab().save(str(out / "app-edit.png"))
    print(out / "app-edit.png")

    # the eraser and Keep largest part: the fill accepted, the brush object cut in two by an eraser stroke on
    # slice 56, an island painted beside it; then Keep largest (3D, 26-connected) removes the island
    win.fill_accept.click()
    _pump(300)
    z = PONS_Z + 6
    c.set_slice(z)
    win.a_eraser.trigger()
    stroke([(96, 94 + 2 * i) for i in range(7)])  # a vertical cut through the painted band
    win.a_brush.trigger()
    stroke([(150 + 2 * i, 130) for i in range(6)])  # an island away from the band
    cur = vp_at(96, 100)
    QTest.mouseMove(v.viewport(), cur)
    v.update_brush_cursor(*v.item_px(cur))
    _pump(300)
    win.grab().save(str(out / "app-eraser.png"))
    print(out / "app-eraser.png")
    done.clear()
    win.a_keep_largest.trigger()
    _wait(lambda: "ok" in done, 60, "keep largest")
    _pump(300)
    win.grab().save(str(out / "app-keep-largest.png"))
    print(out / "app-keep-largest.png")
    c.shutdown(keep_autosave=False)
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
