"""Per-slice confidence of a propagated object (engine.inference.confidence) and the IoU estimates and
start mask of propagate_box."""

from __future__ import annotations

import math

import numpy as np

from engine.inference.confidence import AREA_JUMP, IOU_LOW, MULTI_BLOB, Thresholds, slice_confidence
from engine.inference.propagate import Box3D, propagate_box


def disc(h, w, cy, cx, r):
    yy, xx = np.mgrid[0:h, 0:w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_flags_low_iou_area_jumps_and_several_pieces():
    m = np.zeros((8, 40, 40), bool)
    for z, r in zip(range(1, 7), (6, 7, 8, 8, 7, 3)):
        m[z] = disc(40, 40, 20, 20, r)
    m[4] |= disc(40, 40, 3, 3, 2)  # a second piece on slice 4
    ious = {1: 0.9, 2: 0.92, 3: 0.95, 4: 0.9, 5: 0.6, 6: 0.9}
    c = slice_confidence(m, ious, start=3, thresholds=Thresholds(iou_min=0.7, area_jump=0.6, max_blobs=1))
    assert c.z.tolist() == [1, 2, 3, 4, 5, 6]
    assert math.isnan(c.area_change[2]) and c.area[2] == m[3].sum()
    # slice 6 against slice 5 (toward the start): disc 3 vs 7
    assert c.area_change[5] == abs(m[6].sum() - m[5].sum()) / m[5].sum()
    assert c.flags.tolist() == [0, 0, 0, MULTI_BLOB, IOU_LOW, AREA_JUMP]
    assert c.suspicious.tolist() == [4, 5, 6]
    assert c.reasons(6) == ["area jump"] and c.reasons(0) == []
    j = c.to_json()
    assert j["slices"][2]["area_change"] is None and j["slices"][4]["reasons"] == ["low model IoU"]


def test_a_gap_inside_the_span_is_an_area_jump_and_unknown_iou_is_not_low():
    m = np.zeros((5, 20, 20), bool)
    m[[0, 1, 3, 4], 5:15, 5:15] = True
    c = slice_confidence(m, None, start=1)
    assert c.z.tolist() == [0, 1, 2, 3, 4]
    assert c.area[2] == 0 and c.flags[2] & AREA_JUMP and c.flags[3] & AREA_JUMP
    assert not np.any(c.flags & IOU_LOW)
    assert slice_confidence(np.zeros((3, 4, 4), bool)).z.size == 0
    two = np.zeros((3, 20, 20), bool)
    two[:, 2:6, 2:6] = two[:, 12:16, 12:16] = True
    assert not slice_confidence(two).flags.any(), "pieces are not flagged by default"
    assert (slice_confidence(two, thresholds=Thresholds(max_blobs=1)).flags == MULTI_BLOB).all()


def test_propagate_box_reports_the_iou_of_every_kept_slice_and_starts_from_the_users_mask(session):
    rng = np.random.default_rng(0)
    vol = rng.integers(0, 30, (5, 64, 64)).astype(np.uint8)
    vol[:, 20:44, 18:40] = 220
    box = Box3D(16, 18, 0, 42, 46, 4)
    ious: dict = {}
    out = propagate_box(session, vol, box, ious=ious)
    assert sorted(ious) == [0, 1, 2, 3, 4]
    assert all(0.0 <= v <= 1.5 for v in ious.values())
    user = np.zeros((64, 64), bool)
    user[25:35, 22:30] = True  # a part of the block only
    ious2: dict = {}
    out2 = propagate_box(session, vol, box, start_mask=user, ious=ious2)
    assert np.array_equal(out2[2], user) and math.isnan(ious2[2])
    assert out2[3].sum() < out[3].sum(), "the neighbours are prompted from the user's (smaller) mask"


def test_slice_confidence_of_a_label_value_equals_that_of_its_mask():
    rng = np.random.default_rng(11)
    labels = np.zeros((12, 20, 20), np.uint8)
    for z in range(2, 10):
        r = 3 + z % 4
        labels[z, 10 - r:10 + r, 8 - r // 2:8 + r] = 2
        labels[z, 0:2, 0:3] = 1
    labels[6, 15:18, 15:18] = 2  # a second blob on one slice
    ious = {z: float(rng.uniform(0.5, 1.0)) for z in range(2, 10)}
    want = slice_confidence(labels == 2, ious, 5)
    got = slice_confidence(labels, ious, 5, value=2)
    assert got.to_json() == want.to_json()
    assert list(got.blobs) == [1, 1, 1, 1, 2, 1, 1, 1] and int(got.area[0]) == 10 * 7  # z=2: r=5, rows 5..14, columns 6..12
