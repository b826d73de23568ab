"""Restore of autosaved work on a volume: back on the slice it was made on, never onto another image
(issue 18: restore was keyed by path and shape only and was tested on a one-slice image only)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.app.gui.volumes import write_volume

pytestmark = pytest.mark.gui


def draw_on_slice(qtbot, win, z):
    from app.gui.smoke import box_to_viewport, drag

    c = win.c
    c.set_slice(z)
    qtbot.waitUntil(lambda: c.slice_ready(), timeout=60_000)
    p0, p1 = box_to_viewport(win.view, (32, 27, 66, 62))
    drag(win.view, p0, p1, steps=4, step_ms=20)
    qtbot.waitUntil(lambda: len(c.doc.objects) == 1 and c.pending_commits == 0, timeout=60_000)
    assert c.doc.labels[z].any() and not np.delete(c.doc.labels, z, axis=0).any()


def test_restore_on_a_volume_returns_to_the_slice_it_was_made_on(qtbot, open_window, tmp_path):
    from app.autosave import list_snapshots

    path = write_volume(tmp_path / "vol.nii.gz")
    win = open_window(path)
    draw_on_slice(qtbot, win, 4)
    labels = win.c.doc.labels.copy()
    qtbot.waitUntil(lambda: len(list_snapshots()) == 1, timeout=10_000)
    win.c.shutdown()  # a crash with unsaved work

    win2 = open_window()
    assert not win2.restore_bar.isHidden()
    win2.restore_btn.click()
    qtbot.waitUntil(lambda: win2.c.image is not None and win2.c.doc.labels.any(), timeout=60_000)
    np.testing.assert_array_equal(win2.c.doc.labels, labels)
    assert win2.c.z == 4


def test_autosave_is_not_applied_to_another_scan_at_the_same_path(qtbot, open_window, tmp_path):
    from app.autosave import list_snapshots

    path = write_volume(tmp_path / "vol.nii.gz")
    win = open_window(path)
    draw_on_slice(qtbot, win, 3)
    qtbot.waitUntil(lambda: len(list_snapshots()) == 1, timeout=10_000)
    win.c.shutdown()
    snap = list_snapshots()[0]

    write_volume(path, seed=1)  # another patient's scan, same shape and geometry, same file name
    win2 = open_window(path)
    c = win2.c
    assert win2.restore_bar.isHidden(), "the old segmentation is not offered for the new scan"
    errors = []
    c.error.connect(errors.append)
    c.restore(snap)  # even when asked for (e.g. from the start-up offer)
    qtbot.waitUntil(lambda: bool(errors), timeout=30_000)
    assert "content has changed" in errors[-1]
    assert not c.doc.labels.any() and c.doc.objects == []
    assert snap.path.exists(), "the autosave itself is kept"
