"""Measuring in the desktop app (issue 16), with real Qt mouse events on ``sliceView``: the objects
panel's volume and mean ± SD equal engine.data.measure, the measurements table copies and exports the
`boxseg stats --csv` rows, a dragged ruler reads its true length, an ROI's statistics equal numpy on the
same pixels, RECIST axes are drawn on their slice, the confidence strip's marks jump to their slice, and
re-propagation from a slice replaces the object from there on in one undo step.

Runs on the small generated volume of ``volumes.py`` (96x96x6, 0.8 x 0.8 x 3 mm), with the real model
(a slice encodes in well under a second)."""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pytest

from tests.app.gui.volumes import write_volume

pytestmark = pytest.mark.gui

BOX = (28, 33, 61, 66)  # around the bright block (x 35..64, y 30..59 in nibabel order = stored x, y)


def viewport_point(view, x, y):
    """The viewport point of stored voxel index (x, y) (continuous, integers at pixel centres)."""
    from PySide6.QtCore import QPointF

    c, r = view.index_to_screen_f(x, y)
    return view.mapFromScene(view.image_item.mapToScene(QPointF(c, r)))


def mouse_drag(view, p0, p1, steps=4):
    from app.gui.smoke import drag

    drag(view, p0, p1, steps=steps, step_ms=5)


@pytest.fixture
def win(qtbot, open_window, tmp_path):
    w = open_window(write_volume(tmp_path / "vol.nii.gz"))
    w.resize(1000, 800)
    qtbot.waitUntil(lambda: w.c.slice_ready(), timeout=60_000)
    return w


def add_object(qtbot, win, box=BOX):
    from app.gui.smoke import box_to_viewport

    n = len(win.c.doc.objects)
    p0, p1 = box_to_viewport(win.view, box)
    mouse_drag(win.view, p0, p1)
    qtbot.waitUntil(lambda: len(win.c.doc.objects) == n + 1 and win.c.pending_commits == 0, timeout=30_000)
    qtbot.waitUntil(lambda: win.c.measurements_current, timeout=10_000)
    return win.c.doc.objects[-1].value


def test_panel_table_copy_and_export_show_the_stats_rows(qtbot, win, tmp_path):
    from PySide6.QtWidgets import QApplication, QListWidget, QTableWidget

    from app.cli.main import main
    from app.gui.panels.objects import FIGURES_ROLE
    from engine.data.measure import COLUMNS, format_value, measure

    c = win.c
    v = add_object(qtbot, win)
    m = measure(c.doc.labels, c.image, c.doc.segments())[0]
    assert m.voxels > 200
    item = win.findChild(QListWidget, "objectList").item(0)
    vol, unit, mean, sd = item.data(FIGURES_ROLE)
    assert unit == "mL" and vol == pytest.approx(m.volume_ml) and vol == pytest.approx(m.voxels * 0.8 * 0.8 * 3 / 1000)
    assert (mean, sd) == pytest.approx((m.mean, m.sd))
    assert f"{m.volume_ml:.4g} mL" in item.text()
    # an edit updates the figures: a refinement that removes part of the mask
    c.doc.set_object_slice(v, c.z, np.zeros(c.image.shape[1:], bool))
    qtbot.waitUntil(lambda: c.measurements_current, timeout=10_000)
    assert win.findChild(QListWidget, "objectList").item(0).data(FIGURES_ROLE)[0] == 0.0
    c.doc.undo_stack.undo()
    qtbot.waitUntil(lambda: c.measurements_current, timeout=10_000)
    assert win.findChild(QListWidget, "objectList").item(0).data(FIGURES_ROLE)[0] == pytest.approx(m.volume_ml)

    win.a_show_meas.trigger()
    table = win.findChild(QTableWidget, "measurementsTable")
    assert table.isVisible() and table.rowCount() == 1 and table.columnCount() == len(COLUMNS)
    assert table.item(0, COLUMNS.index("volume_ml")).text() == format_value(m.volume_ml)
    text = win.measurements_panel.copy_to_clipboard()
    lines = QApplication.clipboard().text().splitlines()
    assert text.splitlines() == lines and lines[0].split("\t") == list(COLUMNS)
    assert lines[1].split("\t")[COLUMNS.index("voxels")] == str(m.voxels)

    # Export CSV == `boxseg stats --csv` on the saved label map
    seg = tmp_path / "seg.nii.gz"
    c.save(seg)
    qtbot.waitUntil(lambda: seg.exists() and not c.busy, timeout=20_000)
    c.export_measurements(tmp_path / "app.csv")
    qtbot.waitUntil(lambda: (tmp_path / "app.csv").exists() and not c.busy, timeout=20_000)
    assert main(["stats", str(tmp_path / "vol.nii.gz"), str(seg), "--csv", str(tmp_path / "cli.csv")]) == 0
    app_rows = list(csv.reader(open(tmp_path / "app.csv", newline="")))
    cli_rows = list(csv.reader(open(tmp_path / "cli.csv", newline="")))
    name = COLUMNS.index("name")
    for r in app_rows[1:] + cli_rows[1:]:
        r[name] = ""  # the app's object name; a NIfTI has none (`label 1`)
    assert app_rows == cli_rows and len(app_rows) == 2

    # RECIST axes on their slice
    win.a_recist.trigger()
    c.set_slice(m.recist_slice)
    lines = [it for it in win.view.recist_items if hasattr(it, "line")]
    assert len(lines) == 2
    ln = lines[0].line()
    assert (ln.x1(), ln.y1()) == pytest.approx(win.view.index_to_screen_f(*m.recist_long_ends[0]))
    c.set_slice((m.recist_slice + 2) % c.image.depth)
    assert win.view.recist_items == []


def test_a_dragged_ruler_reads_its_length_is_undoable_autosaved_and_deletable(qtbot, win):
    from app.autosave import list_snapshots

    c, view = win.c, win.view
    win.a_ruler.trigger()
    assert view.tool == "ruler"
    (x0, y0), (x1, y1) = (10.0, 20.0), (70.0, 52.0)
    mouse_drag(view, viewport_point(view, x0, y0), viewport_point(view, x1, y1))
    assert len(c.doc.annotations) == 1
    a = c.doc.annotations[0]
    assert a.kind == "ruler" and a.z == c.z
    true_mm = math.hypot((x1 - x0) * 0.8, (y1 - y0) * 0.8)
    shown = float(view.annotation_text(a.id).split()[0])
    assert abs(shown - true_mm) <= 0.5 * 0.8 and view.annotation_text(a.id).endswith("mm")
    qtbot.waitUntil(lambda: any(s.annotations for s in list_snapshots()), timeout=10_000)
    assert list_snapshots()[0].annotations == [a.to_json()]
    c.set_slice(c.z - 1)
    assert view.annotation_items == {}, "rulers are per slice"
    c.set_slice(c.z + 1)
    # a click on the line selects it; Delete ruler/ROI removes it; undo brings it back
    mid = viewport_point(view, (x0 + x1) / 2, (y0 + y1) / 2)
    mouse_drag(view, mid, mid, steps=1)
    assert view.selected_annotation == a.id
    win.a_delete_meas.trigger()
    assert c.doc.annotations == []
    win.a_undo.trigger()
    assert c.doc.annotations == [a] and a.id in view.annotation_items


def test_roi_statistics_equal_numpy_on_its_pixels(qtbot, win):
    c, view = win.c, win.view
    win.a_roi.trigger()
    mouse_drag(view, viewport_point(view, 30.0, 28.0), viewport_point(view, 58.0, 50.0))
    a = c.doc.annotations[-1]
    assert a.kind == "roi"
    xa, ya, xb, yb = a.points
    cx, cy, rx, ry = (xa + xb) / 2, (ya + yb) / 2, abs(xb - xa) / 2, abs(yb - ya) / 2
    assert rx == pytest.approx(14, abs=1) and ry == pytest.approx(11, abs=1)
    yy, xx = np.mgrid[0:c.image.shape[1], 0:c.image.shape[2]]
    inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
    vals = c.image.voxels[c.z][inside].astype(np.float64)
    text = view.annotation_text(a.id)
    area, mean, sd, lo, hi = (float(t) for t in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text.replace("mm²", "")))
    assert area == pytest.approx(inside.sum() * 0.64, abs=0.05)
    assert mean == pytest.approx(vals.mean(), rel=5e-3) and sd == pytest.approx(vals.std(ddof=1), rel=5e-3)
    assert (lo, hi) == (vals.min(), vals.max())


def test_propagation_confidence_strip_sidecar_and_repropagation(qtbot, win, tmp_path):
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QWidget

    from app.gui.controller import confidence_path

    c = win.c
    v = add_object(qtbot, win)
    start = c.z
    win.a_propagate.trigger()
    qtbot.waitUntil(lambda: c.doc.object(v).propagated and not c.busy, timeout=60_000)
    obj = c.doc.object(v)
    zs = sorted(z for z, _ in obj.slice_iou)
    assert start in zs and len(zs) >= 3, "the model's IoU estimate of every propagated slice is kept"
    qtbot.waitUntil(lambda: c.measurements_current and v in c.confidence, timeout=10_000)
    # a slice with a low estimate is marked; a click on its mark goes there
    low = max(zs)
    c.doc.set_object_volume(v, c.doc.labels == v, slice_iou={low: 0.05}, z_range=(low, low))
    qtbot.waitUntil(lambda: c.measurements_current and low in c.confidence[v].suspicious, timeout=10_000)
    strip = win.findChild(QWidget, "confidenceStrip")
    assert strip.isVisible() and low in strip.marks()
    c.set_slice(0 if low != 0 else 1)
    QTest.mouseClick(strip, Qt.LeftButton, Qt.NoModifier, QPoint(round(strip.slice_x(low)), strip.height() // 2))
    assert c.z == low

    # the sidecar next to a saved label map
    seg = tmp_path / "seg.nii.gz"
    c.save(seg)
    qtbot.waitUntil(lambda: seg.exists() and not c.busy, timeout=20_000)
    side = json.loads(confidence_path(seg).read_text())
    assert side["model"] == c.session.entry.name and side["model_version"] == c.session.entry.version
    sl = {s["z"]: s for s in side["objects"][0]["slices"]}
    assert sl[low]["iou"] == 0.05 and "low model IoU" in sl[low]["reasons"]

    # re-propagate from a slice above the start: slices below it stay, one undo step
    z = start + 1
    c.set_slice(z)
    before = c.doc.labels.copy()
    n = c.doc.undo_stack.count()
    assert win.a_repropagate.isEnabled()
    win.a_repropagate.trigger()
    qtbot.waitUntil(lambda: c.doc.undo_stack.count() == n + 1 and not c.busy, timeout=60_000)
    assert np.array_equal(c.doc.labels[:z + 1], before[:z + 1])
    assert c.doc.undo_stack.text(n).startswith("Re-propagate")
    win.a_undo.trigger()
    assert np.array_equal(c.doc.labels, before)
