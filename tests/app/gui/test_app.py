"""The desktop app on real files, offscreen, with the real model and real Qt mouse events.

Only the testing contract of issue 5 and the File actions are used to drive it (objectNames,
``app.create_main_window``); the controller is read to check the state (labels, counters).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import DATA, REPO, needs_shared

pytestmark = pytest.mark.gui

SPLEEN = DATA / "raw" / "ivadomed-spleen" / "sub-spleen2_ct.nii.gz"
CT3 = DATA / "raw" / "dcmqi" / "ct-3slice"
SAMPLE = REPO / "assets" / "sample" / "CT_small.dcm"


class Heartbeat:
    """A 10 ms timer on the GUI thread; ``max_gap_ms`` is the longest time it could not run."""

    def __init__(self):
        from PySide6.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._beat)
        self.last = None
        self.max_gap_ms = 0.0

    def _beat(self):
        now = time.perf_counter()
        if self.last is not None:
            self.max_gap_ms = max(self.max_gap_ms, (now - self.last) * 1000)
        self.last = now

    def __enter__(self):
        self.last = None
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.stop()


def widgets(win):
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QGraphicsView, QListWidget, QPushButton, QSlider

    assert win.objectName() == "mainWindow"
    view = win.findChild(QGraphicsView, "sliceView")
    objects = win.findChild(QListWidget, "objectList")
    slider = win.findChild(QSlider, "sliceSlider")
    button = win.findChild(QPushButton, "propagateButton")
    action = win.findChild(QAction, "propagateButton")
    assert None not in (view, objects, slider, button, action)
    return view, objects, slider, button


def drag_box(qtbot, win, box, steps=10, step_ms=100):
    """Drag the voxel box over sliceView with QTest events; returns (live updates, commit seconds)."""
    from app.gui.smoke import box_to_viewport, drag

    c = win.c
    n0 = len(c.doc.objects)
    committed = {}
    c.maskCommitted.connect(lambda v, ms: committed.setdefault("t", time.perf_counter()))
    p0, p1 = box_to_viewport(win.view, box)
    drag(win.view, p0, p1, steps=steps, step_ms=step_ms)
    t_release = time.perf_counter()
    live = c.live_updates
    qtbot.waitUntil(lambda: "t" in committed, timeout=30_000)
    assert len(c.doc.objects) == n0 + 1
    return live, committed["t"] - t_release


def wait_job(qtbot, win, start):
    """Run ``start()`` (which submits a long job) and wait for that job to end; returns (ok, msg)."""
    c = win.c
    done = {}
    jid = start()
    assert jid is not None
    c.jobFinished.connect(lambda i, ok, msg: i == jid and done.update(ok=ok, msg=msg))
    qtbot.waitUntil(lambda: "ok" in done, timeout=300_000)
    return done["ok"], done["msg"]


@needs_shared
def test_nifti_volume_drag_propagate_undo_save_reopen(qtbot, open_window, tmp_path, monkeypatch):
    import nibabel as nib
    from PySide6.QtWidgets import QFileDialog

    win = open_window(SPLEEN)
    view, objects, slider, button = widgets(win)
    c = win.c
    img = c.image
    assert slider.maximum() == img.depth - 1 and slider.value() == c.z
    assert c.slice_ready()  # create_main_window returns with the current slice encoded
    z = c.z

    # a box around the spleen region of the middle slice; heartbeat during the drag and commit
    with Heartbeat() as hb:
        live, commit_s = drag_box(qtbot, win, (95, 60, 150, 125))
        qtbot.wait(200)
    assert live >= 2, "the mask must follow the box during the drag"
    assert commit_s <= 10.0  # arrives (speed is bench/bench_engine.py's to judge; a loaded CI machine is slow)
    value = c.doc.current
    on_slice = int((c.doc.labels[z] == value).sum())
    assert on_slice > 100 and objects.count() == 1 and "IoU" in objects.item(0).text()
    assert hb.max_gap_ms < 100, f"GUI thread stalled {hb.max_gap_ms:.0f} ms"

    # propagate with the button, watching the GUI thread's heartbeat (encoder running)
    assert button.isEnabled()
    before = c.doc.labels.copy()
    with Heartbeat() as hb:
        ok, msg = wait_job(qtbot, win, lambda: (button.click(), c.jobs.last_id)[1])
    assert ok, msg
    assert hb.max_gap_ms < 100, f"GUI thread stalled {hb.max_gap_ms:.0f} ms during propagation"
    after = c.doc.labels.copy()
    zs = np.flatnonzero((after == value).reshape(img.depth, -1).any(axis=1))
    assert len(zs) >= 3 and zs.min() < z < zs.max(), zs
    np.testing.assert_array_equal(after[z], before[z])  # the drawn slice stays as committed

    # undo / redo of the propagation, then of the first object
    win.a_undo.trigger()
    np.testing.assert_array_equal(c.doc.labels, before)
    win.a_redo.trigger()
    np.testing.assert_array_equal(c.doc.labels, after)
    win.a_undo.trigger()
    win.a_undo.trigger()
    assert not c.doc.labels.any() and objects.count() == 0
    win.a_redo.trigger()
    win.a_redo.trigger()
    np.testing.assert_array_equal(c.doc.labels, after)

    # save through File > Save as (the dialog answered by the test), check with nibabel
    out = tmp_path / "spleen_seg.nii.gz"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    ok, msg = wait_job(qtbot, win, win.save_as)
    assert ok, msg
    assert not c.doc.dirty and "*" not in win.windowTitle()
    nii = nib.load(str(out))
    src = nib.load(str(SPLEEN))
    assert nii.shape == src.shape
    np.testing.assert_allclose(nii.affine, src.affine, atol=1e-4)
    data = np.asarray(nii.dataobj)
    np.testing.assert_array_equal(np.transpose(data, (2, 1, 0)), after)

    # reopen: delete the object, then continue from the saved label map (File > Open label map)
    win.delete_object()
    assert not c.doc.labels.any()
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(out), ""))
    done = {}
    c.jobFinished.connect(lambda i, ok, msg: done.update(ok=ok))
    win.a_open_lm.trigger()
    qtbot.waitUntil(lambda: "ok" in done, timeout=60_000)
    np.testing.assert_array_equal(c.doc.labels, after)
    assert objects.count() == 1


@needs_shared
def test_dicom_series_via_file_menu_dicom_seg_and_nifti(qtbot, open_window, tmp_path, monkeypatch):
    import nibabel as nib
    from PySide6.QtWidgets import QFileDialog

    from app.gui.launch import wait_open
    from engine.io.dispatch import read_labelmap

    win = open_window()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(CT3))
    c = win.c
    jobs = []
    c.jobStarted.connect(lambda i, t, canc: jobs.append(i))
    win.a_open_dir.trigger()
    assert jobs
    wait_open(win, jobs[-1])
    img = c.image
    assert img.shape == (3, 512, 512) and img.dicom
    view, objects, slider, button = widgets(win)
    assert slider.maximum() == 2

    live, commit_s = drag_box(qtbot, win, (200, 180, 330, 330))
    assert live >= 2 and commit_s <= 10.0  # speed: bench/, not a timed test
    ok, msg = wait_job(qtbot, win, lambda: (button.click(), c.jobs.last_id)[1])
    assert ok, msg
    labels = c.doc.labels.copy()
    assert labels.any()

    seg = tmp_path / "ct3_seg.dcm"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(seg), "DICOM-SEG (*.dcm)"))
    ok, msg = wait_job(qtbot, win, win.save_as)
    assert ok, msg
    lm = read_labelmap(seg, img)
    np.testing.assert_array_equal(lm.labels > 0, labels > 0)
    assert lm.segments and lm.segments[0].name == "Object 1"

    nii = tmp_path / "ct3_seg.nii.gz"
    ok, msg = wait_job(qtbot, win, lambda: c.save(nii))
    assert ok, msg
    data = np.asarray(nib.load(str(nii)).dataobj)
    np.testing.assert_array_equal(np.transpose(data, (2, 1, 0)) > 0, labels > 0)


def test_2d_sample_refine_undo_png_roundtrip(qtbot, open_window, tmp_path):
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtTest import QTest

    from engine.io.dispatch import read_labelmap

    win = open_window(SAMPLE)
    view, objects, slider, button = widgets(win)
    c = win.c
    assert c.image.shape == (1, 128, 128) and not slider.isEnabled() and not button.isEnabled()
    live, commit_s = drag_box(qtbot, win, (72, 0, 110, 28))
    assert live >= 2 and commit_s <= 10.0  # speed: bench/, not a timed test
    value = c.doc.current
    first = c.doc.labels.copy()
    assert (first == value).sum() > 50

    # refinement: a negative click inside the mask re-runs the decoder with the box and the point
    ys, xs = np.nonzero(first[0] == value)
    x, y = int(xs[len(xs) // 2]), int(ys[len(ys) // 2])
    win.a_remove.trigger()
    col, row = view.index_to_screen(x, y)
    pos = view.mapFromScene(view.image_item.mapToScene(QPointF(col, row)))
    n_undo = c.doc.undo_stack.count()
    QTest.mouseClick(view.viewport(), Qt.LeftButton, Qt.NoModifier, pos)
    qtbot.waitUntil(lambda: c.doc.undo_stack.count() == n_undo + 1, timeout=30_000)
    obj = c.doc.object(value)
    assert obj.points == [(float(x), float(y), 0)]
    refined = c.doc.labels.copy()
    assert not np.array_equal(refined, first)
    win.a_undo.trigger()
    np.testing.assert_array_equal(c.doc.labels, first)
    assert c.doc.object(value).points == []
    win.a_redo.trigger()
    np.testing.assert_array_equal(c.doc.labels, refined)

    out = tmp_path / "mask.png"
    ok, msg = wait_job(qtbot, win, lambda: c.save(out))
    assert ok, msg
    np.testing.assert_array_equal(read_labelmap(out, c.image).labels, refined)


def test_stale_decode_requests_are_dropped(qtbot, open_window):
    win = open_window(SAMPLE)
    c = win.c
    c.begin_drag()
    drawn = []
    c.liveMask.connect(lambda r: r is not None and drawn.append(r.request.seq))
    dropped0 = c.infer.dropped
    for i in range(30):  # far faster than the decoder: most requests never run
        c.drag_box((40, 40, 60 + i, 60 + i))
    last = c._seq
    qtbot.waitUntil(lambda: bool(drawn) and drawn[-1] == last, timeout=30_000)
    assert c.infer.dropped - dropped0 >= 20
    assert drawn == sorted(drawn) and len(drawn) < 30
    c.cancel_drag()


def test_autosave_and_crash_restore(qtbot, open_window, autosave_dir):
    from app.autosave import list_snapshots

    win = open_window(SAMPLE)
    c = win.c
    drag_box(qtbot, win, (72, 0, 110, 28))
    labels = c.doc.labels.copy()
    qtbot.waitUntil(lambda: len(list_snapshots()) == 1, timeout=10_000)
    snap = list_snapshots()[0]
    np.testing.assert_array_equal(snap.labels, labels)
    assert not list(autosave_dir.glob(".*"))  # no temporary files left behind
    # "crash": the window goes away with unsaved work; the autosave stays
    c.shutdown()
    assert len(list_snapshots()) == 1

    # next start without a path offers it; restoring reopens the image and the objects
    win2 = open_window()
    assert not win2.restore_bar.isHidden()
    jobs = []
    win2.c.jobFinished.connect(lambda i, ok, m: jobs.append(ok))
    win2.restore_btn.click()
    qtbot.waitUntil(lambda: win2.c.image is not None and win2.c.doc.labels.any(), timeout=60_000)
    np.testing.assert_array_equal(win2.c.doc.labels, labels)
    assert win2.c.doc.dirty and win2.c.doc.objects[0].iou is not None

    # saving removes the autosave; a clean close keeps nothing
    out = autosave_dir.parent / "seg.png"
    ok, msg = wait_job(qtbot, win2, lambda: win2.c.save(out))
    assert ok, msg
    qtbot.waitUntil(lambda: not list_snapshots(), timeout=10_000)


def test_opening_the_same_image_offers_its_autosave(qtbot, open_window):
    win = open_window(SAMPLE)
    drag_box(qtbot, win, (72, 0, 110, 28))
    from app.autosave import list_snapshots

    qtbot.waitUntil(lambda: len(list_snapshots()) == 1, timeout=10_000)
    win.c.shutdown()
    win2 = open_window(SAMPLE)
    assert not win2.restore_bar.isHidden()
    win2.discard_btn.click()
    qtbot.waitUntil(lambda: not list_snapshots(), timeout=10_000)


def test_about_names_the_model_licence():
    from app.gui.dialogs.about import about_text

    t = about_text()
    assert "LiteMedSAM" in t and "LICENSE-litemedsam.txt" in t and "Apache" in t


def test_smoke_test_command_2d():
    r = subprocess.run([sys.executable, "-m", "app.cli.main", "app", "--smoke-test", str(SAMPLE), "--box", "72", "0",
                        "110", "28"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(res) == {"open_ms", "first_mask_ms", "live_updates", "mask_pixels", "propagate_s", "saved", "layout"}
    assert res["saved"] is True and res["mask_pixels"] > 50 and res["propagate_s"] is None
    assert res["layout"] == "single"
    assert res["live_updates"] >= 2


@needs_shared
def test_smoke_test_command_dicom_volume():
    """A DICOM series in the three linked views (the box dragged in the axial one)."""
    r = subprocess.run([sys.executable, "-m", "app.cli.main", "app", "--smoke-test", str(CT3), "--layout", "1x3"],
                       capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["saved"] is True and res["propagate_s"] is not None and res["mask_pixels"] > 0
    assert res["layout"] == "1x3"


def test_smoke_test_failure_exits_nonzero(tmp_path):
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"not a dicom file")
    r = subprocess.run([sys.executable, "-m", "app.cli.main", "app", "--smoke-test", str(bad)], capture_output=True,
                       text=True, cwd=REPO, timeout=300)
    assert r.returncode != 0 and "broken.dcm" in r.stderr and "Traceback" not in r.stderr


def test_boxseg_without_arguments_starts_the_app(monkeypatch):
    from app.cli import desktop
    from app.cli import main as cli

    called = {}
    monkeypatch.setattr(desktop, "cmd_app", lambda args: called.setdefault("path", args.path) or 0)
    assert cli.main([]) == 0 and "path" in called and called["path"] is None
