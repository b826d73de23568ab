"""A released box or a click is never lost and never lands on another image (issue 18).

The decoder is slowed down (a wrapper that sleeps before the real model runs) so that the races the
audit reproduced — a new drag 15 ms after a release, an open that finishes while a release is still
decoding — happen every time; the boxes are drawn with real mouse events on ``sliceView``.
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.gui

SAMPLE = REPO / "assets" / "sample" / "CT_small.dcm"


def slow_decoder(win, seconds: float) -> list:
    """Make every decode take ``seconds`` more; returns the list of purposes seen (worker thread)."""
    predictor = win.c.infer.predictor
    real = predictor.predict
    seen = []

    def predict(*args, **kwargs):
        time.sleep(seconds)
        seen.append(True)
        return real(*args, **kwargs)

    predictor.predict = predict
    return seen


def mouse_box(win, box, steps=3, step_ms=5):
    from app.gui.smoke import box_to_viewport, drag

    p0, p1 = box_to_viewport(win.view, box)
    drag(win.view, p0, p1, steps=steps, step_ms=step_ms)


def test_a_new_drag_right_after_a_release_keeps_both_boxes(qtbot, open_window):
    win = open_window(SAMPLE)
    c = win.c
    qtbot.waitUntil(lambda: c.slice_ready(), timeout=60_000)
    slow_decoder(win, 0.3)
    mouse_box(win, (72, 0, 110, 28))
    qtbot.wait(15)  # the gap of the audit's reproduction
    assert c.pending_commits == 1
    mouse_box(win, (20, 60, 60, 100))
    qtbot.waitUntil(lambda: c.pending_commits == 0, timeout=30_000)
    assert [o.box for o in c.doc.objects] == [(72.0, 0.0, 110.0, 28.0), (20.0, 60.0, 60.0, 100.0)]
    values = set(np.unique(c.doc.labels)) - {0}
    assert values == {1, 2}, "each box left its own mask"
    win.a_undo.trigger()
    assert len(c.doc.objects) == 1


def test_clicks_in_quick_succession_are_all_applied(qtbot, open_window):
    win = open_window(SAMPLE)
    c = win.c
    qtbot.waitUntil(lambda: c.slice_ready(), timeout=60_000)
    mouse_box(win, (72, 0, 110, 28))
    qtbot.waitUntil(lambda: len(c.doc.objects) == 1 and c.pending_commits == 0, timeout=30_000)
    value = c.doc.current
    slow_decoder(win, 0.2)
    assert c.add_point(90, 10, True)
    assert c.add_point(100, 20, False)  # the first click has not come back yet
    assert c.pending_commits == 2
    qtbot.waitUntil(lambda: c.pending_commits == 0, timeout=30_000)
    assert c.doc.object(value).points == [(90.0, 10.0, 1), (100.0, 20.0, 0)]
    assert c.doc.undo_stack.count() == 3  # add + one step per click


def test_a_box_released_while_another_image_opens_stays_on_its_own_image(qtbot, open_window, tmp_path):
    from app.autosave import list_snapshots

    other = tmp_path / "other_CT_small.dcm"  # same shape, different path: the audit's case
    shutil.copy(SAMPLE, other)
    win = open_window(SAMPLE)
    c = win.c
    qtbot.waitUntil(lambda: c.slice_ready(), timeout=60_000)
    first = c.image
    slow_decoder(win, 0.8)
    mouse_box(win, (72, 0, 110, 28))
    c.open_path(other)  # reading this small file takes far less than the decode
    qtbot.waitUntil(lambda: c.image is not first and c.pending_commits == 0 and not c.busy, timeout=30_000)
    assert c.image.source == other
    assert c.doc.objects == [] and not c.doc.labels.any(), "the box of the first image is not on the second"
    qtbot.waitUntil(lambda: any(s.source == str(SAMPLE.resolve()) for s in list_snapshots()), timeout=10_000)
    snap = next(s for s in list_snapshots() if s.source == str(SAMPLE.resolve()))
    assert len(snap.objects) == 1 and snap.labels.any(), "it was added to its own image (and autosaved)"
