"""Memory rules of the engine's data room: one shared uint8 model volume per image, and label-map merges
and diffs that work slab by slab (same voxels as the whole-array rule)."""

from __future__ import annotations

import numpy as np
import pytest

import engine.data.labeledit as labeledit
from engine.base.errors import Cancelled
from engine.data.image import Image
from engine.data.labeledit import ADD, ERASE, NEVER_OVERWRITE, OVERWRITE_UNLOCKED, REPLACE, changed_bounds, merge


def _ct() -> Image:
    v = np.full((6, 20, 24), -1000, np.int16)
    v[:, 4:16, 5:20] = 40
    v[2:5, 8:12, 9:14] = 300
    return Image(v, np.diag([0.7, 0.7, 2.0, 1.0]), modality="CT", units="HU")


def test_model_volume_is_computed_once_and_shared_read_only():
    img = _ct()
    assert img.held_model_volume() is None
    vol, key = img.model_volume()
    again, key2 = img.model_volume("soft-tissue")  # the CT default, named: the same window
    assert again is vol and key2 == key == "ct:40:400"
    assert vol.dtype == np.uint8 and vol.shape == (6, 20, 24) and not vol.flags.writeable
    with pytest.raises(ValueError):
        vol[0, 0, 0] = 1
    # windowed as before: clip to [-160, 240] HU, min-max of the clipped image to 0..255, truncated
    assert vol[0, 0, 0] == 0 and vol[3, 10, 10] == 255 and vol[0, 10, 10] == int((40 + 160) / 400 * 255)
    held, held_key = img.held_model_volume()
    assert held is vol and held_key == key
    # a slice of the held volume is a view of it, equal to the slice windowed alone
    s, _ = img.model_slice(3)
    assert np.shares_memory(s, vol) and np.array_equal(s, _ct().model_slice(3)[0])


def test_another_window_replaces_the_held_volume():
    img = _ct()
    soft, _ = img.model_volume()
    lung, key = img.model_volume("lung")
    assert key == "ct:-600:1500" and lung is not soft
    assert img.held_model_volume()[0] is lung  # one volume held, not one per window
    assert img.model_volume("lung")[0] is lung
    assert not np.shares_memory(img.model_slice(3)[0], lung)  # the default window: not held, windowed alone


def test_cancelled_model_volume_holds_nothing():
    img = _ct()
    calls = []
    with pytest.raises(Cancelled):
        img.model_volume(should_stop=lambda: len(calls) >= 2, progress=lambda d, t: calls.append(d))
    assert img.held_model_volume() is None and calls == [1, 2]
    vol, _ = img.model_volume()
    assert img.held_model_volume()[0] is vol


def _merge_whole(current, value, mask, mode, locked=(), policy=OVERWRITE_UNLOCKED):
    """The rule before slabs (the whole array at once), for reference."""
    out = current.copy()
    if value in locked:
        return out
    own = current == value
    if mode == ERASE:
        out[own & mask] = 0
        return out
    if mode == REPLACE:
        out[own & ~mask] = 0
    free = own | (current == 0)
    if policy == OVERWRITE_UNLOCKED:
        free |= ~np.isin(current, list(locked)) if locked else np.ones_like(free)
    out[mask & free] = value
    return out


@pytest.mark.parametrize("mode", [REPLACE, ADD, ERASE])
@pytest.mark.parametrize("policy", [OVERWRITE_UNLOCKED, NEVER_OVERWRITE])
def test_merge_in_slabs_equals_the_whole_array_rule(monkeypatch, mode, policy):
    monkeypatch.setattr(labeledit, "_SLAB_VOXELS", 2 * 9 * 11)  # 2 slices of 9x11 per slab: 7 slabs
    rng = np.random.default_rng(5)
    current = rng.integers(0, 4, (13, 9, 11)).astype(np.uint8)
    mask = rng.random((13, 9, 11)) < 0.4
    for locked in ((), (3,)):
        got = merge(current, 2, mask, mode, locked=locked, policy=policy)
        want = _merge_whole(current, 2, mask, mode, locked, policy)
        assert np.array_equal(got, want)
        assert (got != current).sum() > 0  # the case changes voxels, so it can tell the rules apart
    assert np.array_equal(merge(current, 3, mask, mode, locked=(3,), policy=policy), current)


def test_changed_bounds_in_slabs(monkeypatch):
    monkeypatch.setattr(labeledit, "_SLAB_VOXELS", 50)
    a = np.zeros((10, 8, 9), np.uint8)
    assert changed_bounds(a, a.copy()) is None
    b = a.copy()
    b[2, 3, 4] = 1
    b[7, 6, 1] = 2
    assert changed_bounds(a, b) == (2, 8, 3, 7, 1, 5)
    c = a.copy()
    c[9, 7, 8] = 5
    assert changed_bounds(a, c) == (9, 10, 7, 8, 8, 9)


def test_label_values_slice_by_slice_equal_np_unique():
    from engine.data.labelmap import label_values, segments_for

    a = np.zeros((7, 9, 11), np.uint8)
    a[2:5, 3:6, 4:8] = 3
    a[6, 8, 10] = 255
    assert label_values(a) == [0, 3, 255] == [int(v) for v in np.unique(a)]
    b = a.astype(np.uint16)
    b[0, 0, 0] = 40000
    assert label_values(b) == [0, 3, 255, 40000]
    assert label_values(np.full((2, 3), 5, np.uint8)) == [5]
    assert label_values(np.array([[4, 1], [1, 4]], np.int32)) == [1, 4]  # other dtypes: np.unique
    assert [s.value for s in segments_for(b)] == [3, 255, 40000]
