"""The linked views of issue 15 (layouts, crosshair, prompts in any plane), offscreen, with real mouse events.

Driven through the testing contract: ``layoutSingle``/``layout1x3``/``layout2x2``, ``sliceView``,
``axialView``/``coronalView``/``sagittalView``, ``sliceSlider``, ``propagateButton``.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import DATA, REPO, needs_shared

pytestmark = pytest.mark.gui

MR = REPO / "assets" / "sample" / "mni_icbm152_t1_2009a.nii.gz"
CT2D = REPO / "assets" / "sample" / "CT_small.dcm"
SPLEEN = DATA / "raw" / "ivadomed-spleen"


def view(win, name):
    from PySide6.QtWidgets import QGraphicsView

    v = win.findChild(QGraphicsView, name)
    assert v is not None, name
    return v


def action(win, name):
    from PySide6.QtGui import QAction

    a = win.findChild(QAction, name)
    assert a is not None, name
    return a


def viewport_point(v, col, row):
    """Continuous screen position (col, row) of a view's slice -> its viewport QPoint."""
    from PySide6.QtCore import QPointF

    return v.mapFromScene(v.image_item.mapToScene(QPointF(col, row)))


def click(v, col, row):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    QTest.mouseClick(v.viewport(), Qt.LeftButton, Qt.NoModifier, viewport_point(v, col, row))


def test_layouts_show_the_plane_views_and_persist(qtbot, open_window, temp_qsettings):
    from PySide6.QtWidgets import QSlider

    win = open_window(MR)
    single = view(win, "sliceView")
    assert single.isVisible() and not view(win, "axialView").isVisible()
    action(win, "layout1x3").trigger()
    shown = [n for n in ("axialView", "coronalView", "sagittalView") if view(win, n).isVisible()]
    assert shown == ["axialView", "coronalView", "sagittalView"] and not single.isVisible()
    assert not win.views.view3d.isVisible() and win.views.view3d.objectName() == "view3D"  # only in 2x2
    c = win.c
    shape = c.image.shape
    for name, axis in (("axial", 0), ("coronal", 1), ("sagittal", 2)):
        s = win.findChild(QSlider, f"{name}Slider")
        assert s.maximum() == shape[c.planes[name].normal_axis] - 1 and s.value() == c.cursor[c.planes[name].normal_axis]
    action(win, "layout2x2").trigger()
    assert view(win, "coronalView").isVisible()
    win2 = open_window(MR)  # the choice persists
    assert win2.views.chosen == "2x2" and view(win2, "sagittalView").isVisible()
    assert action(win2, "layout2x2").isChecked()
    win2.open_path(CT2D)  # a 2D image has one plane: the single view, the choice kept
    qtbot.waitUntil(lambda: win2.c.image is not None and win2.c.image.depth == 1, timeout=30_000)
    assert view(win2, "sliceView").isVisible() and not view(win2, "coronalView").isVisible()
    assert win2.views.chosen == "2x2"
    action(win2, "layoutSingle").trigger()


def test_click_in_one_view_moves_the_others(qtbot, open_window, temp_qsettings):
    """A click in the coronal view puts the crosshair on the clicked voxel: the axial and sagittal views
    (and sliceSlider) go to its slices; the views show the volume's exact voxels there."""
    from PySide6.QtWidgets import QSlider

    win = open_window(MR)
    action(win, "layout1x3").trigger()
    c = win.c
    cor, ax, sag = view(win, "coronalView"), view(win, "axialView"), view(win, "sagittalView")
    qtbot.wait(50)
    rows, cols = cor.screen_shape()
    col, row = 0.31 * cols, 0.62 * rows
    click(cor, col, row)
    z, y, x = (int(v) for v in c.planes["coronal"].to_voxel(cor.k, int(row), int(col)))
    assert c.cursor == (z, y, x)
    assert (z, y, x) != (c.image.depth // 2, c.image.shape[1] // 2, c.image.shape[2] // 2)
    assert win.findChild(QSlider, "sliceSlider").value() == z and ax.k == z
    assert win.findChild(QSlider, "sagittalSlider").value() == x and sag.k == x
    assert cor.k == y  # the clicked view keeps its slice
    # the sagittal view shows exactly the voxels of slice x, in its radiological frame
    np.testing.assert_array_equal(sag._shown(c.image.voxels), c.planes["sagittal"].slice(c.image.voxels, x))
    assert c.planes["sagittal"].letters == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    # the crosshair goes through the clicked voxel in every view
    for v in (ax, cor, sag):
        k, r, cc = v.geo.from_voxel((z, y, x)) if v.reformatted else (z, *v.index_to_screen(x, y)[::-1])
        assert np.allclose(v.crosshair_screen(), (cc + 0.5, r + 0.5) if v.reformatted else (cc, r))
    # the wheel over the sagittal view scrolls its own slices
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    ev = QWheelEvent(QPointF(50, 50), QPointF(50, 50), QPoint(0, 0), QPoint(0, 120), Qt.NoButton, Qt.NoModifier,
                     Qt.NoScrollPhase, False)
    QApplication.sendEvent(sag.viewport(), ev)
    assert sag.k == x + 1 and c.cursor == (z, y, x + 1)
    # window/level dragged in one view is the image's: every view follows
    from PySide6.QtTest import QTest

    before = (ax.level, ax.width)
    QTest.mousePress(cor.viewport(), Qt.RightButton, Qt.NoModifier, QPoint(100, 100))
    QTest.mouseMove(cor.viewport(), QPoint(160, 60))
    QTest.mouseRelease(cor.viewport(), Qt.RightButton, Qt.NoModifier, QPoint(160, 60))
    assert (cor.level, cor.width) != before
    single = view(win, "sliceView")
    assert (ax.level, ax.width) == (sag.level, sag.width) == (single.level, single.width) == (cor.level, cor.width)
    action(win, "layoutSingle").trigger()


def test_live_mask_of_a_sagittal_drag_shows_where_it_crosses_the_axial_slice(qtbot, open_window, temp_qsettings):
    """The live mask of a box dragged in one view is drawn in the others where it crosses their slices."""
    from app.gui.workers import DecodeRequest, DecodeResult

    win = open_window(MR)
    action(win, "layout1x3").trigger()
    c = win.c
    ax, sag = view(win, "axialView"), view(win, "sagittalView")
    sp = c.planes["sagittal"]
    k = sag.k
    m = np.zeros(sp.slice_shape, bool)
    m[60:120, 40:90] = True
    vol = np.zeros(c.image.shape, bool)
    sp.paint(vol, k, m)
    z = int(np.nonzero(vol.any(axis=(1, 2)))[0][10])
    c.set_slice(z)
    c._dragging = True
    c._drag_seq0 = c._seq + 1
    c._on_decoded(DecodeResult(DecodeRequest(c._seq + 1, k, (40, 60, 89, 119), plane="sagittal"), m, 0.9, 1.0, None))
    live = ax.live_item.pixmap().toImage()
    alpha = np.array([[live.pixelColor(col, row).alpha() > 0 for col in range(live.width())]
                      for row in range(live.height())])
    expect = c.image.display.to_screen(vol[z])
    np.testing.assert_array_equal(alpha, expect)
    assert 0 < expect.sum() < 200  # a line: where the sagittal slice meets this axial slice
    c._dragging = False
    action(win, "layoutSingle").trigger()


@needs_shared
def test_sagittal_box_on_the_spleen_then_propagation(qtbot, open_window, temp_qsettings):
    """A box dragged in the sagittal view over the spleen (real model, real mouse events): its mask lands
    on the axial slices the box spans; propagating it along the sagittal normal labels the spleen."""
    from app.gui.smoke import box_to_viewport, drag
    from engine.io.dispatch import read_labelmap

    win = open_window(SPLEEN / "sub-spleen2_ct.nii.gz")
    c = win.c
    gt = read_labelmap(SPLEEN / "sub-spleen2_ct_seg-manual.nii.gz", c.image).labels > 0
    action(win, "layout1x3").trigger()
    qtbot.wait(100)
    sag, ax = view(win, "sagittalView"), view(win, "axialView")
    sp = c.planes["sagittal"]
    k = int(np.argmax([sp.slice(gt, i).sum() for i in range(sp.n_slices)]))  # the spleen's widest
    c.set_plane_slice("sagittal", k)
    qtbot.wait(50)
    g = sp.slice(gt, k)
    rr, cc = np.nonzero(g)
    box = (int(cc.min()), int(rr.min()), int(cc.max()), int(rr.max()))
    p0, p1 = box_to_viewport(sag, box)
    drag(sag, p0, p1, steps=6, step_ms=40)
    qtbot.waitUntil(lambda: len(c.doc.objects) == 1 and not c.pending_commits, timeout=120_000)
    obj = c.doc.objects[0]
    assert obj.plane == "sagittal" and obj.z == k
    assert np.abs(np.subtract(obj.box, box)).max() <= 1  # the box's corners, to the pixel the mouse hit
    seg = c.doc.labels == obj.value
    s = sp.slice(seg, k)
    assert 2 * (s & g).sum() / (s.sum() + g.sum()) >= 0.85
    # only that sagittal slice changed; on the axial slices the box spans, the mask is on column x = k
    assert seg.sum() == s.sum() and (seg.any(axis=(0, 1)) == (np.arange(seg.shape[2]) == k)).all()
    zs = sorted({int(sp.to_voxel(k, r, 0)[0]) for r in range(box[1], box[3] + 1)})
    assert [z for z in range(seg.shape[0]) if seg[z].any()] == [z for z in zs if seg[z].any()]
    assert sum(seg[z].any() for z in zs) >= 0.8 * len(zs)
    z = zs[len(zs) // 2]
    c.set_slice(z)  # and the axial view draws it there
    overlay = ax.overlay_item.pixmap().toImage()
    drawn = np.array([[overlay.pixelColor(col, row).alpha() > 0 for col in range(overlay.width())]
                      for row in range(overlay.height())])
    np.testing.assert_array_equal(drawn, c.image.display.to_screen(seg[z]))
    # propagate along the sagittal normal (the Propagate button)
    done = {}
    c.jobFinished.connect(lambda i, ok, msg: done.update(ok=ok))
    action(win, "propagateButton").trigger()
    qtbot.waitUntil(lambda: "ok" in done, timeout=600_000)
    assert done["ok"]
    seg = c.doc.labels == obj.value
    dsc = 2 * (seg & gt).sum() / (seg.sum() + gt.sum())
    gks = [i for i in range(sp.n_slices) if sp.slice(gt, i).any()]
    covered = sum(sp.slice(seg, i).any() for i in gks) / len(gks)
    assert dsc >= 0.8 and covered >= 0.8, (dsc, covered)
    np.testing.assert_array_equal(sp.slice(seg, k), s)  # the drawn slice stays as it was made
    action(win, "layoutSingle").trigger()
