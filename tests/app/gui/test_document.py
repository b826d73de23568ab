"""The document model (no widgets, no model): undo/redo of every mask change, label maps, autosave files."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.geometry import raster_affine
from engine.data.image import Image
from engine.data.labelmap import LabelMap, Segment


@pytest.fixture
def doc(qapp):
    from app.gui.document import Document

    d = Document()
    d.set_image(Image(voxels=np.zeros((4, 20, 30), np.int16), affine=raster_affine()))
    return d


def _mask(y0, y1, x0, x1, shape=(20, 30)):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_every_change_is_one_undo_step(doc):
    a = doc.add_object(1, _mask(2, 8, 2, 8), iou=0.9, box=(2, 2, 7, 7))
    b = doc.add_object(1, _mask(5, 12, 5, 12), iou=0.8, box=(5, 5, 11, 11))
    assert (a, b) == (1, 2) and doc.current == 2 and doc.dirty
    assert (doc.labels[1] == 2).sum() == 49 and (doc.labels[1] == 1).sum() == 36 - 9
    vol = np.zeros(doc.image.shape, bool)
    vol[0:3, 2:8, 2:8] = True
    doc.set_object_volume(1, vol)
    assert (doc.labels[0] == 1).sum() == 36 and (doc.labels[1] == 2).sum() == 49  # other objects kept
    doc.set_object_slice(2, 1, _mask(0, 3, 0, 3), iou=0.5, points=[(1.0, 1.0, 1)])
    doc.delete_object(1)
    doc.update_object(2, name="liver", visible=False)
    states = []
    while doc.undo_stack.canUndo():
        states.append((doc.labels.copy(), [(o.value, o.name, o.visible) for o in doc.objects]))
        doc.undo_stack.undo()
    assert not doc.labels.any() and doc.objects == [] and not doc.dirty
    for labels, objs in reversed(states):
        doc.undo_stack.redo()
        np.testing.assert_array_equal(doc.labels, labels)
        assert [(o.value, o.name, o.visible) for o in doc.objects] == objs


def test_load_labelmap_makes_objects(doc):
    labels = np.zeros(doc.image.shape, np.uint16)
    labels[1, 2:5, 2:5] = 3
    labels[2, 6:9, 6:9] = 7
    doc.load_labelmap(LabelMap(labels, doc.image.affine, [Segment(3, "spleen", (1, 2, 3))]))
    assert [(o.value, o.name) for o in doc.objects] == [(3, "spleen"), (7, "Object 7")]
    assert doc.objects[0].color == (1, 2, 3)
    doc.undo_stack.undo()
    assert not doc.labels.any()


def test_autosave_is_atomic_and_round_trips(tmp_path, autosave_dir):
    from app.autosave import Snapshot, find_snapshot, list_snapshots, read_snapshot, session_key, write_snapshot

    src = tmp_path / "scan.nii.gz"
    src.write_bytes(b"x")
    labels = np.zeros((3, 5, 6), np.uint8)
    labels[1, 1:3, 1:3] = 2
    snap = Snapshot(session_key(src), str(src), None, labels, [{"value": 2, "name": "a", "color": [1, 2, 3]}], 1,
                    time=123.0)
    p = write_snapshot(snap)
    assert p.parent == autosave_dir and [f.name for f in autosave_dir.iterdir()] == [p.name]
    back = read_snapshot(p)
    np.testing.assert_array_equal(back.labels, labels)
    assert back.objects[0]["name"] == "a" and back.z == 1
    assert find_snapshot(src).key == snap.key and find_snapshot().key == snap.key
    (autosave_dir / "damaged.npz").write_bytes(b"garbage")
    assert [s.key for s in list_snapshots()] == [snap.key]


def test_locked_objects_and_the_overlap_policy_hold_for_every_write(doc):
    """A box's object, a refinement and a propagation never change a locked object's voxels; with
    'never-overwrite' no object takes another's; the lock is one undo step and survives the autosave JSON."""
    from app.gui.document import SegObject

    a = doc.add_object(1, _mask(2, 10, 2, 10), iou=0.9, box=(2, 2, 9, 9))
    first = doc.labels == a
    doc.update_object(a, locked=True)
    assert doc.object(a).locked and doc.undo_stack.undoText() == "Lock/unlock Object 1"
    b = doc.add_object(1, _mask(5, 15, 5, 15), iou=0.8, box=(5, 5, 14, 14))
    assert np.array_equal(doc.labels == a, first) and (doc.labels[1] == b).sum() == 100 - 25
    doc.set_object_slice(b, 1, _mask(0, 20, 0, 30))
    assert np.array_equal(doc.labels == a, first) and (doc.labels[1] == b).sum() == 600 - 64
    doc.set_object_volume(b, np.ones(doc.image.shape, bool))
    assert np.array_equal(doc.labels == a, first)
    doc.set_object_slice(a, 1, _mask(0, 2, 0, 2))  # a locked object itself is not edited
    assert np.array_equal(doc.labels == a, first)
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    doc.undo_stack.undo()  # back to object b from its box only
    doc.update_object(a, locked=False)
    doc.overlap_policy = "never-overwrite"
    c = doc.add_object(1, _mask(0, 20, 0, 30), iou=0.5, box=(0, 0, 29, 19))
    assert np.array_equal(doc.labels == a, first) and (doc.labels[1] == c).sum() == 600 - 64 - 75
    doc.overlap_policy = "overwrite-unlocked"
    doc.set_object_slice(c, 1, _mask(0, 20, 0, 30))
    assert (doc.labels[1] == c).sum() == 600  # unlocked objects give way
    o = SegObject.from_json(doc.object(a).to_json() | {"locked": True})
    assert o.locked and not SegObject.from_json({"value": 1, "name": "x", "color": [1, 2, 3]}).locked


def test_a_propagation_handed_over_as_a_crop_writes_what_the_whole_mask_writes(doc):
    """set_object_volume with the mask's bounding-box crop (what the propagation jobs hand over, so that no
    whole-volume mask outlives them) gives exactly the label map the whole-grid mask gives, under the lock
    and z-range rules, and one undo step puts the map back."""
    from engine.data.labeledit import mask_box, slices_of

    rng = np.random.default_rng(3)
    doc.add_object(1, _mask(2, 15, 3, 25), iou=0.9, box=(3, 2, 24, 14))   # the object, on slice 1
    doc.add_object(2, _mask(10, 18, 0, 12), iou=0.9, box=(0, 10, 11, 17))  # a neighbour (never overwritten)
    doc.add_object(2, _mask(0, 4, 0, 4), iou=0.9, box=(0, 0, 3, 3))        # object 3 (on slice 2), locked below
    doc.update_object(3, locked=True)
    vol = np.zeros(doc.image.shape, bool)
    vol[0:3, 5:17, 2:20] = rng.random((3, 12, 18)) < 0.7
    vol[0, 0:3, 0:3] = True  # over the locked object
    for z_range in (None, (1, 2)):
        before = doc.labels.copy()
        doc.set_object_volume(1, vol, z_range=z_range)
        whole = doc.labels.copy()
        doc.undo_stack.undo()
        np.testing.assert_array_equal(doc.labels, before)
        box = mask_box(vol)
        assert box == (0, 3, 0, 17, 0, 20)
        doc.set_object_volume(1, vol[slices_of(box)].copy(), z_range=z_range, where=box)
        np.testing.assert_array_equal(doc.labels, whole)
        assert (doc.labels == 3).sum() == 16 and ((doc.labels == 2) == (before == 2)).all()
        if z_range is not None:  # outside the range the object is as it was
            np.testing.assert_array_equal(doc.labels[0], before[0])
        doc.undo_stack.undo()
        np.testing.assert_array_equal(doc.labels, before)
    doc.set_object_volume(1, None)  # an empty propagation clears the object
    assert not (doc.labels == 1).any() and (doc.labels == 2).sum() == 96
