"""Render the desktop app's main states offscreen into docs/*.png (real model, real mouse events).

    python docs/screenshots.py [--volume DICOM_FOLDER_OR_NIFTI] [--box X0 Y0 X1 Y1 --slice Z]

States: ``app-drag.png`` (a box being dragged, the live mask following it), ``app-object.png``
(the committed object with its IoU in the objects panel), ``app-names.png`` (its name being edited, the
named-structure list open), ``app-volume.png`` (a volume after Propagate, shown on another slice than the
one the box was drawn on), ``app-measure.png`` (its Measurements table, RECIST axes on their slice, a ruler
and the confidence strip) and ``app-restore.png`` (the offer to restore autosaved work). The 2D states use
the bundled CT slice
(``assets/sample/CT_small.dcm``, pydicom test file); the volume defaults to the bundled brain MR
volume (``assets/sample/mni_icbm152_t1_2009a.nii.gz``, the MNI ICBM152 2009a template) with the
box around the pons suggested in ``assets/sample/README.md``, propagated through slices 42-58.
Another volume gets the box of ``--box``/``--slice`` (voxel indices), or one around the brightest
blob of its middle slice, propagated until the object ends.
Autosaves and settings go to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SAMPLE_VOLUME = REPO / "assets" / "sample" / "mni_icbm152_t1_2009a.nii.gz"
# assets/sample/README.md: the pons on axial slice 50 of the MNI template, propagated through slices 42-58
SAMPLE_BOX, SAMPLE_SLICE, SAMPLE_RANGE, SAMPLE_NAME = (78, 90, 118, 124), 50, (42, 58), "Pons"
SAMPLE_SHOW = 46  # the slice shown after propagation (4 mm below the box's)


def pons_window(width: int, height: int, layout: str = "single"):
    """The main window on the bundled brain MR, in ``layout``, with the pons boxed on slice 50 by a real mouse
    drag in the view of the stored slices and named "Pons" (what the editing and linked-view screenshots
    start from); returns (window, that view). Call after :func:`offscreen_session` and a QApplication."""
    from app.gui.launch import create_main_window
    from app.gui.smoke import _pump, _wait, box_to_viewport, drag

    win = create_main_window(SAMPLE_VOLUME)
    win.resize(width, height)
    if layout != "single":
        win.set_layout(layout)
    c = win.c
    c.set_slice(SAMPLE_SLICE)
    _pump(300)
    _wait(c.slice_ready, 120, "the slice's embedding")
    v = next(v for v in win.views.visible_views() if not v.reformatted)
    p0, p1 = box_to_viewport(v, SAMPLE_BOX)
    drag(v, p0, p1)
    _wait(lambda: len(c.doc.objects) == 1 and not c.pending_commits, 60, "the object")
    c.doc.update_object(1, name=SAMPLE_NAME)
    return win, v


def offscreen_session() -> Path:
    """Qt offscreen (unless a platform is set), autosaves and settings in a new temporary folder (returned),
    the repository importable: what every screenshot script does before it creates the QApplication."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    tmp = Path(tempfile.mkdtemp(prefix="boxseg-shots-"))
    os.environ["BOXSEG_AUTOSAVE_DIR"] = str(tmp / "autosave")
    os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")
    sys.path.insert(0, str(REPO))
    return tmp


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--volume", default=str(SAMPLE_VOLUME))
    ap.add_argument("--box", type=int, nargs=4, metavar=("X0", "Y0", "X1", "Y1"), help="box for --volume")
    ap.add_argument("--slice", type=int, help="slice of --box (default: the middle slice)")
    ap.add_argument("--out", default=str(DOCS))
    args = ap.parse_args(argv)
    offscreen_session()

    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from app.gui.launch import create_main_window
    from app.gui.smoke import _pump, _wait, box_to_viewport, drag

    app = QApplication.instance() or QApplication(["boxseg"])  # noqa: F841
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def shot(win, name):
        _pump(150)
        win.grab().save(str(out / name))
        print(out / name)

    def names_shot(win, path):
        """The object's name being edited: 'kid' typed, the named-structure popup open (a separate window,
        painted onto the main window's picture where it lies)."""
        from PySide6.QtGui import QPainter
        from PySide6.QtWidgets import QLineEdit

        lst = win.panel.list
        rect = lst.visualItemRect(lst.item(0))
        QTest.mouseClick(lst.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center())
        QTest.mouseDClick(lst.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center())
        _pump(200)
        edit = win.findChild(QLineEdit, "objectNameEditor")
        edit.selectAll()
        QTest.keyClicks(edit, "kid")
        _pump(300)
        popup = edit.completer().popup()
        pm = win.grab()
        painter = QPainter(pm)
        # under the editor, where Qt puts it on a screen (the offscreen platform places popups elsewhere)
        painter.drawPixmap(edit.mapTo(win, QPoint(0, edit.height())), popup.grab())
        painter.end()
        pm.save(str(path))
        print(path)
        QTest.keyClick(edit, Qt.Key_Escape)
        _pump(100)

    # 1-2: the bundled 2D sample: live drag, then the committed object
    win = create_main_window(REPO / "assets" / "sample" / "CT_small.dcm")
    win.resize(1180, 760)
    _pump(300)
    v, c = win.view, win.c
    p0, p1 = box_to_viewport(v, (72, 0, 110, 28))
    vp = v.viewport()
    QTest.mousePress(vp, Qt.LeftButton, Qt.NoModifier, p0)
    for i in range(1, 9):
        QTest.mouseMove(vp, QPoint(p0.x() + (p1.x() - p0.x()) * i // 8, p0.y() + (p1.y() - p0.y()) * i // 8))
        _pump(120)
    _wait(lambda: c.live_updates >= 1, 30, "a live mask")
    v._update_cursor(*v.item_px(p1 - QPoint(20, 20)))
    shot(win, "app-drag.png")
    QTest.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, p1)
    _wait(lambda: len(c.doc.objects) == 1, 30, "the object")
    shot(win, "app-object.png")
    names_shot(win, out / "app-names.png")
    c.shutdown(keep_autosave=True)  # leaves unsaved work behind, like a crash
    win.close()

    # 4: the next start offers to restore it
    win = create_main_window()
    win.resize(1180, 760)
    shot(win, "app-restore.png")
    win.discard_btn.click()
    _pump(200)
    win.c.shutdown()
    win.close()

    # 3: a volume after propagation, shown on another slice than the box's
    vol = Path(args.volume)
    if vol.exists():
        win = create_main_window(vol)
        win.resize(1180, 760)
        c = win.c
        z, show, name, z_range = args.slice, None, "Object 1", None
        if args.box:
            box = tuple(args.box)
        elif vol.resolve() == SAMPLE_VOLUME.resolve():
            box, z, show, name, z_range = SAMPLE_BOX, SAMPLE_SLICE, SAMPLE_SHOW, SAMPLE_NAME, SAMPLE_RANGE
        elif vol.name == "ct-3slice":  # dcmqi's CT series from ../shared/data: the liver
            box, name = (60, 140, 335, 400), "Liver"
        else:
            from app.gui.smoke import brightest_blob_box

            box = brightest_blob_box(c.image.model_slice(c.z)[0])
        if z is not None and z != c.z:
            c.set_slice(z)
            _wait(c.slice_ready, 120, "the slice's embedding")
        p0, p1 = box_to_viewport(win.view, box)
        drag(win.view, p0, p1)
        _wait(lambda: len(c.doc.objects) == 1, 60, "the object")
        done = {}
        c.jobFinished.connect(lambda i, ok, m: done.update(ok=ok))
        if z_range is not None:  # the panel's "or slices" range
            win.panel.whole.setChecked(False)
            win.panel.z_from.setValue(z_range[0])
            win.panel.z_to.setValue(z_range[1])
        win.panel.propagate.click()
        _wait(lambda: "ok" in done, 600, "propagation")
        c.doc.rename_object(c.doc.current, name)  # a catalogue name ("Liver") brings its codes and colour
        c.set_slice(show if show is not None else max(0, c.z - 1))
        _pump(300)
        win.view._update_cursor(*win.view.item_px((p0 + p1) / 2))
        shot(win, "app-volume.png")
        # 5: measurements: the table dock, RECIST axes on their slice, a ruler, the confidence strip
        win.resize(1180, 900)
        win.a_show_meas.setChecked(True)
        win.a_recist.trigger()
        _wait(lambda: c.measurements_current and c.doc.current in c.measurements, 60, "the measurements")
        c.set_slice(c.measurements[c.doc.current].recist_slice)
        _pump(300)
        win.a_ruler.trigger()
        r0, r1 = box_to_viewport(win.view, (60, 40, 133, 40))  # across the cerebellum (voxel x, y)
        drag(win.view, r0, r1)
        win.a_box.trigger()
        _pump(300)
        shot(win, "app-measure.png")
        c.shutdown(keep_autosave=False)
        win.close()
    else:
        print(f"{vol} not found: app-volume.png not rendered", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
