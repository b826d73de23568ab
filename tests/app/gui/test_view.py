"""The desktop app's bundled samples, view navigation and settings, offscreen with the real model.

File ▸ Open sample (both bundled samples), zoom (Ctrl+wheel) and pan (middle-drag) of the slice
view, window/level by right-drag, and Settings persisted through QSettings (in a temporary folder,
never the user's own settings).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.gui

VOLUME = REPO / "assets" / "sample" / "mni_icbm152_t1_2009a.nii.gz"
CT = REPO / "assets" / "sample" / "CT_small.dcm"
PONS = (78, 90, 118, 124)  # assets/sample/README.md: the pons on axial slice 50
PONS_Z = 50


def _trigger_and_wait_open(win, action):
    from app.gui.launch import wait_open

    jobs = []
    win.c.jobStarted.connect(lambda i, t, canc: jobs.append(i))
    action.trigger()
    assert jobs, f"{action.objectName()} started no job"
    wait_open(win, jobs[-1])


def _wheel(widget, pos, dy, modifiers):
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    p = QPointF(pos)
    ev = QWheelEvent(p, QPointF(widget.mapToGlobal(pos)), QPoint(0, 0), QPoint(0, dy), Qt.NoButton, modifiers,
                     Qt.NoScrollPhase, False)
    QApplication.sendEvent(widget, ev)


def _shown_image(view) -> np.ndarray:
    from PySide6.QtGui import QImage

    qi = view.image_item.pixmap().toImage().convertToFormat(QImage.Format_Grayscale8)
    w, h, bpl = qi.width(), qi.height(), qi.bytesPerLine()
    return np.frombuffer(qi.constBits(), np.uint8, bpl * h).reshape(h, bpl)[:, :w].copy()


def test_file_menu_offers_both_samples_and_about_names_their_licences():
    from app.gui.dialogs.about import about_text
    from app.gui.samples import SAMPLES, sample_path

    assert sample_path() == sample_path("volume") and sample_path().is_file() and sample_path().name == VOLUME.name
    assert sample_path("ct").is_file() and sample_path("ct").name == "CT_small.dcm"
    for name, _label, lic in SAMPLES.values():
        assert (REPO / "assets" / "sample" / lic).is_file(), lic
    t = about_text()
    assert "ICBM152" in t and "LICENSE-ICBM152.txt" in t and "Louis Collins" in t
    assert "pydicom" in t and "LICENSE-pydicom.txt" in t and "MIT" in t


def test_open_volume_sample_drag_propagate(qtbot, open_window):
    """File ▸ Open sample ▸ Brain MR volume: the bundled MNI template opens as an axial volume in the
    radiological convention; the README's box around the pons gives a mask that propagates."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QMenu

    from app.gui.smoke import box_to_viewport, drag

    win = open_window()
    act = win.findChild(QAction, "actionOpenSample")
    menu = win.findChild(QMenu, "menuOpenSample")
    assert act is not None and menu is not None
    assert [a.objectName() for a in menu.actions()] == ["actionOpenSample", "actionOpenSampleCT"]
    assert "MNI ICBM152" in act.text() and "CT" in win.a_sample_ct.text()
    _trigger_and_wait_open(win, act)
    c, view = win.c, win.view
    img = c.image
    assert img.source.name == VOLUME.name and img.shape == (189, 233, 197)
    assert img.display.plane == "axial" and img.display.flip_cols  # patient's right on the screen's left
    assert win.slider.maximum() == 188 and win.slider.isEnabled() and "mni_icbm152" in win.windowTitle()

    # wheel without Ctrl scrolls slices (no zoom)
    z0, m0 = c.z, view.transform().m11()
    _wheel(view.viewport(), view.viewport().rect().center(), 120, Qt.NoModifier)
    assert c.z == z0 + 1 and view.transform().m11() == pytest.approx(m0)
    c.set_slice(PONS_Z)
    qtbot.waitUntil(c.slice_ready, timeout=60_000)

    committed = {}
    c.maskCommitted.connect(lambda v, ms: committed.setdefault("v", v))
    p0, p1 = box_to_viewport(view, PONS)
    drag(view, p0, p1)
    qtbot.waitUntil(lambda: "v" in committed, timeout=30_000)
    value = c.doc.current
    mask = c.doc.labels[PONS_Z] == value
    ys, xs = np.nonzero(mask)
    assert 450 < mask.sum() < 1000, mask.sum()  # the pons (676 px), not the box (1360 px), not the brain
    x0, y0, x1, y1 = PONS
    assert xs.min() >= x0 - 2 and xs.max() <= x1 + 2 and ys.min() >= y0 - 2 and ys.max() <= y1 + 2
    assert abs(xs.mean() - 98) < 4  # on the midline (MNI x = 0 is voxel 98)
    sl = img.voxels[PONS_Z].astype(np.float32)
    assert sl[mask].mean() > sl[y0:y1 + 1, x0:x1 + 1][~mask[y0:y1 + 1, x0:x1 + 1]].mean() + 30  # not the dark CSF

    # propagate within a few slices (the panel's slice range), one undo step
    win.panel.whole.setChecked(False)
    win.panel.z_from.setValue(PONS_Z - 3)
    win.panel.z_to.setValue(PONS_Z + 3)
    done = {}
    c.jobFinished.connect(lambda i, ok, msg: done.update(ok=ok, msg=msg))
    n_undo = c.doc.undo_stack.count()
    win.panel.propagate.click()
    qtbot.waitUntil(lambda: "ok" in done, timeout=300_000)
    assert done["ok"], done["msg"]
    per_slice = (c.doc.labels == value).reshape(img.depth, -1).sum(axis=1)
    assert all(400 < per_slice[z] < 1000 for z in range(PONS_Z - 3, PONS_Z + 4)), per_slice
    assert not per_slice[: PONS_Z - 3].any() and not per_slice[PONS_Z + 4:].any()
    assert c.doc.undo_stack.count() == n_undo + 1


def test_open_ct_sample_through_file_menu(qtbot, open_window):
    from PySide6.QtGui import QAction

    win = open_window()
    _trigger_and_wait_open(win, win.findChild(QAction, "actionOpenSampleCT"))
    assert win.c.image.source.name == "CT_small.dcm" and win.c.image.shape == (1, 128, 128)
    assert not win.slider.isEnabled()


def test_ctrl_wheel_zooms_at_the_cursor_and_middle_drag_pans(qtbot, open_window):
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    win = open_window(CT)
    view, c = win.view, win.c
    vp = view.viewport()
    z = c.z
    m0 = view.transform().m11()
    anchor = vp.rect().center() + QPoint(40, -30)
    under = view.mapToScene(anchor)

    _wheel(vp, anchor, 120, Qt.ControlModifier)
    assert view.transform().m11() == pytest.approx(m0 * 1.25)
    after = view.mapToScene(anchor)  # zoom keeps the point under the cursor in place
    assert abs(after.x() - under.x()) < 1 and abs(after.y() - under.y()) < 1
    _wheel(vp, anchor, 120, Qt.ControlModifier)
    assert view.transform().m11() == pytest.approx(m0 * 1.25 ** 2)
    _wheel(vp, anchor, -120, Qt.ControlModifier)
    assert view.transform().m11() == pytest.approx(m0 * 1.25 ** 2 * 0.8)
    assert c.z == z and not c.doc.objects

    # middle-drag pans: the scene point under a fixed viewport pixel moves against the drag
    scale = view.transform().m11()
    centre = vp.rect().center()
    s0 = view.mapToScene(centre)
    t0 = view.transform()
    QTest.mousePress(vp, Qt.MiddleButton, Qt.NoModifier, centre)
    for i in range(1, 6):
        QTest.mouseMove(vp, centre + QPoint(12 * i, 8 * i))
        qtbot.wait(20)
    QTest.mouseRelease(vp, Qt.MiddleButton, Qt.NoModifier, centre + QPoint(60, 40))
    s1 = view.mapToScene(centre)
    assert view.transform().m11() == pytest.approx(scale)  # pan does not zoom
    assert view.transform() != t0
    assert s1.x() - s0.x() == pytest.approx(-60 / scale, abs=1.5 / scale)
    assert s1.y() - s0.y() == pytest.approx(-40 / scale, abs=1.5 / scale)
    assert not c.doc.objects and not view.box_item.isVisible()  # no box was drawn

    # View ▸ Fit to window brings the whole image back
    win.a_fit.trigger()
    rect = view.mapFromScene(view.image_item.mapRectToScene(view.image_item.boundingRect())).boundingRect()
    assert vp.rect().adjusted(-2, -2, 2, 2).contains(rect)
    assert view.transform().m11() == pytest.approx(m0, rel=1e-3)


def test_right_drag_sets_window_level(qtbot, open_window):
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    win = open_window(CT)
    view, c = win.view, win.c
    vp = view.viewport()
    level0, width0 = view.level, view.width
    assert (level0, width0) == (40.0, 400.0)  # CT: soft tissue
    shown0 = _shown_image(view)
    model_window = c.model_window
    seen = []
    view.windowLevelChanged.connect(lambda lv, w: seen.append((lv, w)))

    p = vp.rect().center()
    QTest.mousePress(vp, Qt.RightButton, Qt.NoModifier, p)
    for i in range(1, 6):
        QTest.mouseMove(vp, p + QPoint(20 * i, 10 * i))  # right: wider window; down: lower level
        qtbot.wait(20)
    QTest.mouseRelease(vp, Qt.RightButton, Qt.NoModifier, p + QPoint(100, 50))
    assert seen, "window/level did not change during the drag"
    assert view.width == pytest.approx(width0 + 100 * width0 / 256 * 2)
    assert view.level == pytest.approx(level0 - 50 * width0 / 256)
    shown1 = _shown_image(view)
    assert shown1.shape == shown0.shape and not np.array_equal(shown1, shown0)
    # the displayed grey values follow the new window exactly
    img = c.image
    sl = img.display.to_screen(img.voxels[c.z]).astype(np.float32)
    lo = view.level - view.width / 2
    expect = np.clip((sl - lo) * (255.0 / view.width), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(shown1, expect)
    assert c.model_window == model_window and not c.doc.objects  # the display only, not the model input

    # the overlay text shows the new values
    assert f"W {view.width:.0f}  L {view.level:.0f}" in _foreground_text(view)


def _foreground_text(view) -> str:
    """The corner texts drawn over the image (read from drawForeground via a recording painter)."""
    from PySide6.QtGui import QImage, QPainter

    texts = []

    class Recorder(QPainter):
        def drawText(self, *args):  # noqa: N802
            texts.append(str(args[-1]))
            return super().drawText(*args)

    img = QImage(view.viewport().size(), QImage.Format_ARGB32)
    p = Recorder(img)
    view.drawForeground(p, view.sceneRect())
    p.end()
    return "\n".join(texts)


def test_settings_dialog_values_persist(qtbot, open_window, temp_qsettings):
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication, QDialogButtonBox

    from app.gui.dialogs.settings import SettingsDialog
    from app.gui.settings import Settings

    assert Settings.load() == Settings()  # nothing stored yet: defaults
    win = open_window()
    seen = {}

    def answer():
        dlg = QApplication.activeModalWidget()
        assert isinstance(dlg, SettingsDialog)
        seen["initial"] = dlg.result_settings()
        dlg.threads.setValue(1)
        dlg.cache.setValue(512)
        dlg.precision.setCurrentText("f32")
        dlg.overlap.setCurrentIndex(dlg.overlap.findData("never-overwrite"))
        dlg.findChild(QDialogButtonBox).button(QDialogButtonBox.Ok).click()

    ready = []
    win.c.modelReady.connect(ready.append)
    QTimer.singleShot(0, answer)
    win.a_settings.trigger()  # runs the modal dialog until answer() presses OK
    assert seen["initial"] == Settings()
    stored = Settings.load()
    assert (stored.threads, stored.cache_mb, stored.precision, stored.model) == (1, 512, "f32", "")
    assert stored.overlap == "never-overwrite" and win.c.doc.overlap_policy == "never-overwrite"
    q = QSettings("BoxSeg", "BoxSeg")
    assert q.fileName().startswith(str(temp_qsettings))
    assert int(q.value("threads")) == 1 and int(q.value("cache_mb")) == 512
    # the window reloads the model with the new settings
    qtbot.waitUntil(lambda: any("1 threads" in r for r in ready), timeout=60_000)
    assert win.c.settings == stored and "1 threads" in win.model_label.text()

    # a new window (the next start) reads them back, and its dialog shows them
    win2 = open_window()
    assert win2.c.settings == stored
    dlg = SettingsDialog(win2, win2.c.settings)
    assert dlg.threads.value() == 1 and dlg.cache.value() == 512 and dlg.precision.currentText() == "f32"
    dlg.deleteLater()

    # Cancel changes nothing
    def cancel():
        d = QApplication.activeModalWidget()
        d.threads.setValue(3)
        d.reject()

    QTimer.singleShot(0, cancel)
    win2.a_settings.trigger()
    assert Settings.load() == stored
