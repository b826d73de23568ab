"""Label edits (engine.data: components, distance, morphology, brush, interpolate, labeledit) against
exact voxel sets built by hand and against SciPy (test-only reference; the engine itself has no SciPy)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.brush import stroke_mask
from engine.data.components import label
from engine.data.distance import distance_to, signed_distance
from engine.data.interpolate import fill_between
from engine.data.labeledit import (NEVER_OVERWRITE, OVERWRITE_UNLOCKED, brush, fill_object_holes,
                                   interpolate_object, keep_largest, merge, smooth_object)
from engine.data.morphology import closing, dilate, erode, fill_holes, largest_component, opening
from tests.conftest import DATA, needs_shared

ndi = pytest.importorskip("scipy.ndimage")

SPACING = (3.0, 0.7, 1.1)  # sz, sy, sx mm: anisotropic in every direction


def blobs(shape=(16, 40, 48), seed=0, p=0.45):
    rng = np.random.default_rng(seed)
    return ndi.binary_opening(rng.random(shape) < p)


def ball(radius, spacing):
    n = [int(radius // s) for s in spacing]
    zz, yy, xx = np.mgrid[-n[0]:n[0] + 1, -n[1]:n[1] + 1, -n[2]:n[2] + 1]
    return (zz * spacing[0]) ** 2 + (yy * spacing[1]) ** 2 + (xx * spacing[2]) ** 2 <= radius ** 2


# --- components -----------------------------------------------------------------------------------
@pytest.mark.parametrize("conn,rank", [(6, 1), (18, 2), (26, 3)])
def test_label_3d_equals_scipy(conn, rank):
    m = np.random.default_rng(conn).random((12, 30, 35)) < 0.3
    ours, n = label(m, conn)
    ref, nref = ndi.label(m, ndi.generate_binary_structure(3, rank))
    assert n == nref and np.array_equal(ours, ref)


def test_label_in_plane_labels_each_slice_alone():
    m = np.random.default_rng(3).random((6, 25, 30)) < 0.4
    m[:, 10, :] = True  # the same row in every slice: connected through z, but not in-plane
    ours, n = label(m, 8, in_plane=True)
    assert n == sum(ndi.label(s, np.ones((3, 3)))[1] for s in m)
    off = 0
    for z in range(6):
        ref, k = ndi.label(m[z], np.ones((3, 3)))
        assert np.array_equal(ours[z], np.where(ref > 0, ref + off, 0))
        off += k


# --- distance -------------------------------------------------------------------------------------
def test_distance_equals_scipy_with_anisotropic_sampling():
    feat = np.random.default_rng(1).random((10, 33, 41)) < 0.01
    ours = distance_to(feat, SPACING)
    ref = ndi.distance_transform_edt(~feat, sampling=SPACING)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)
    sl = np.zeros((50, 60), bool)
    sl[10:30, 15:50] = True
    np.testing.assert_allclose(signed_distance(sl, (0.7, 1.1)),
                               ndi.distance_transform_edt(~sl, sampling=(0.7, 1.1))
                               - ndi.distance_transform_edt(sl, sampling=(0.7, 1.1)), atol=1e-9)
    assert np.isinf(distance_to(np.zeros((3, 4), bool))).all()


# --- morphology -----------------------------------------------------------------------------------
def test_fill_holes_constructed_and_against_scipy():
    m = np.zeros((9, 20, 20), bool)
    m[1:8, 2:18, 2:18] = True
    m[3:6, 6:10, 6:10] = False       # an enclosed cavity: a 3D hole, and a hole in slices 3..5
    m[2:7, 13:16, 13:16] = False
    m[2:7, 14, 15:18] = False        # ... with a tunnel to the outside in-plane: no hole, in 3D or in a slice
    filled = fill_holes(m)
    assert filled[3:6, 6:10, 6:10].all() and not filled[2:7, 14, 15:18].any()
    assert np.count_nonzero(filled) - np.count_nonzero(m) == 3 * 4 * 4
    per = fill_holes(m, per_slice=True)
    assert np.array_equal(per, filled)
    m[4, 0:20, 6:10] = False         # the cavity opens to the outside through slice 4 only
    assert np.array_equal(fill_holes(m), m)
    per = fill_holes(m, per_slice=True)
    assert per[[3, 5], 6:10, 6:10].all() and not per[4, 6:10, 6:10].any()
    b = blobs()
    assert np.array_equal(fill_holes(b), ndi.binary_fill_holes(b))
    assert all(np.array_equal(fill_holes(b, per_slice=True)[z], ndi.binary_fill_holes(b[z])) for z in range(len(b)))


def test_largest_component_26_connected_against_scipy():
    b = blobs(seed=4, p=0.35)
    lab, n = ndi.label(b, np.ones((3, 3, 3)))
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    assert n > 3
    assert np.array_equal(largest_component(b), lab == sizes.argmax())
    two = np.zeros((5, 5, 5), bool)
    two[0, 0, 0] = two[1, 1, 1] = two[2, 2, 2] = True  # corner contact only: one 26-component
    two[4, 4, 0] = True
    assert np.count_nonzero(largest_component(two)) == 3


def test_ball_morphology_against_scipy():
    b = blobs(seed=2)
    st = ball(2.6, SPACING)
    assert np.array_equal(dilate(b, 2.6, SPACING), ndi.binary_dilation(b, st))
    assert np.array_equal(erode(b, 2.6, SPACING), ndi.binary_erosion(b, st))
    assert np.array_equal(opening(b, 2.6, SPACING), ndi.binary_opening(b, st))
    pad = 10
    ref = ndi.binary_closing(np.pad(b, pad), st)[pad:-pad, pad:-pad, pad:-pad]
    assert np.array_equal(closing(b, 2.6, SPACING), ref)


# --- brush ----------------------------------------------------------------------------------------
def test_disc_and_sphere_are_the_exact_voxel_sets():
    shape = (12, 40, 50)
    where, mask = stroke_mask(shape, SPACING, [(20, 15, 6)], 4.0)
    full = np.zeros(shape, bool)
    z0, z1, y0, y1, x0, x1 = where
    full[z0:z1, y0:y1, x0:x1] = mask
    zz, yy, xx = np.mgrid[0:12, 0:40, 0:50]
    disc = (zz == 6) & (((xx - 20) * 1.1) ** 2 + ((yy - 15) * 0.7) ** 2 <= 16)
    assert np.array_equal(full, disc)
    # rows dy = 0, ±1, ±2, ±3, ±4, ±5 (0.7 mm) hold 7, 7, 7, 7, 5, 3 voxels (|dx| * 1.1 mm within the circle)
    assert np.count_nonzero(disc) == 7 + 2 * (7 + 7 + 7 + 5 + 3)
    where, mask = stroke_mask(shape, SPACING, [(20, 15, 6)], 4.0, sphere=True)
    full[:] = False
    z0, z1, y0, y1, x0, x1 = where
    full[z0:z1, y0:y1, x0:x1] = mask
    sphere = ((xx - 20) * 1.1) ** 2 + ((yy - 15) * 0.7) ** 2 + ((zz - 6) * 3.0) ** 2 <= 16
    assert np.array_equal(full, sphere) and set(np.flatnonzero(full.any(axis=(1, 2)))) == {5, 6, 7}


def test_stroke_is_the_capsule_and_is_clipped_at_the_border():
    shape = (3, 30, 30)
    where, mask = stroke_mask(shape, (1, 1, 1), [(2, 5, 1), (20, 5, 1)], 2.0)
    full = np.zeros(shape, bool)
    z0, z1, y0, y1, x0, x1 = where
    full[z0:z1, y0:y1, x0:x1] = mask
    zz, yy, xx = np.mgrid[0:3, 0:30, 0:30]
    d2 = np.where(xx < 2, (xx - 2) ** 2, np.where(xx > 20, (xx - 20) ** 2, 0)) + (yy - 5) ** 2
    assert np.array_equal(full, (zz == 1) & (d2 <= 4))
    where, mask = stroke_mask(shape, (1, 1, 1), [(0, 0, 0)], 1.5)
    assert where[::2] == (0, 0, 0) and mask.sum() == 4  # clipped at the corner: (0..1, 0..1)
    assert stroke_mask(shape, (1, 1, 1), [(-10, -10, 0)], 1.0) is None


def test_brush_paints_erases_and_respects_locks():
    labels = np.zeros((4, 30, 30), np.uint8)
    labels[1, 10:20, 10:20] = 2
    sp = (2.0, 1.0, 1.0)
    edit = brush(labels, 1, sp, [(15, 15, 1)], 6.0)
    painted = labels.copy()
    edit.apply(painted)
    yy, xx = np.mgrid[0:30, 0:30]
    disc = (xx - 15) ** 2 + (yy - 15) ** 2 <= 36
    assert np.array_equal(painted[1] == 1, disc)  # overwrite-unlocked takes object 2's voxels
    assert np.array_equal(painted[[0, 2, 3]], labels[[0, 2, 3]])
    kept = labels.copy()
    brush(labels, 1, sp, [(15, 15, 1)], 6.0, locked={2}).apply(kept)
    assert np.array_equal(kept[1] == 2, labels[1] == 2) and np.array_equal(kept[1] == 1, disc & (labels[1] == 0))
    never = labels.copy()
    brush(labels, 1, sp, [(15, 15, 1)], 6.0, policy=NEVER_OVERWRITE).apply(never)
    assert np.array_equal(never, kept)
    erased = painted.copy()
    brush(painted, 1, sp, [(15, 15, 1)], 6.0, erase=True).apply(erased)
    assert np.array_equal(erased, np.where(painted == 1, 0, painted))  # only the selected object is erased
    assert brush(labels, 2, sp, [(15, 15, 1)], 6.0, locked={2}) is None  # a locked object is not edited
    assert brush(labels, 2, sp, [(15, 15, 1)], 6.0, erase=True, locked={2}) is None


def test_merge_modes_and_policies():
    cur = np.array([0, 1, 2, 3, 1, 0], np.uint8)
    m = np.array([1, 1, 1, 1, 0, 0], bool)
    assert merge(cur, 1, m).tolist() == [1, 1, 1, 1, 0, 0]
    assert merge(cur, 1, m, locked={3}).tolist() == [1, 1, 1, 3, 0, 0]
    assert merge(cur, 1, m, policy=NEVER_OVERWRITE).tolist() == [1, 1, 2, 3, 0, 0]
    assert merge(cur, 1, m, "add", policy=NEVER_OVERWRITE).tolist() == [1, 1, 2, 3, 1, 0]
    assert merge(cur, 1, m, "erase").tolist() == [0, 0, 2, 3, 1, 0]
    assert merge(cur, 1, m, locked={1}).tolist() == cur.tolist()
    with pytest.raises(ValueError):
        merge(cur, 1, m, policy="sometimes")


# --- clean-up of an object in a label map ------------------------------------------------------------
def test_cleanup_edits_touch_only_the_object_and_never_locked_voxels():
    labels = np.zeros((10, 40, 40), np.uint8)
    labels[2:8, 5:30, 5:30] = 1
    labels[4:6, 10:15, 10:15] = 0      # a cavity of object 1 ...
    labels[4, 12, 12] = 2              # ... holding a voxel of locked object 2
    labels[5, 20:23, 20:23] = 0        # a cavity in one slice only
    labels[2:4, 35:38, 35:38] = 1      # an island
    out = labels.copy()
    fill_object_holes(labels, 1, locked={2}).apply(out)
    assert (out[4:6, 10:15, 10:15] == np.where(labels[4:6, 10:15, 10:15] == 2, 2, 1)).all()
    assert (out[5, 20:23, 20:23] == 1).all() and out[4, 12, 12] == 2
    assert np.array_equal(out[labels == 1], labels[labels == 1])
    per = labels.copy()
    fill_object_holes(labels, 1, per_slice=True, locked={2}).apply(per)
    assert np.array_equal(per, out)  # here every 3D hole is also a hole in its slices
    big = labels.copy()
    keep_largest(labels, 1).apply(big)
    assert not (big[2:4, 35:38, 35:38]).any() and np.array_equal(big[:, :32, :32], labels[:, :32, :32])
    assert fill_object_holes(labels, 2, locked={2}) is None
    sm = labels.copy()
    smooth_object(labels, 1, (1.0, 1.0, 1.0), 1.0).apply(sm)
    cross = ndi.generate_binary_structure(3, 1)  # the ball of radius 1 mm on a 1 mm grid
    own = np.pad(labels == 1, 4)
    ref = ndi.binary_opening(ndi.binary_closing(own, cross), cross)[4:-4, 4:-4, 4:-4]
    assert ref[4, 12, 12] and np.array_equal(sm == 1, ref)  # object 2 is not locked: the closing takes it
    locked = labels.copy()
    smooth_object(labels, 1, (1.0, 1.0, 1.0), 1.0, locked={2}).apply(locked)
    assert np.array_equal(locked == 1, ref & (labels != 2)) and locked[4, 12, 12] == 2
    assert not sm[2:4, 35:38, 35:38].any()  # the 2-slice island is thinner than the ball


# --- fill between slices ---------------------------------------------------------------------------
def test_fill_between_reproduces_a_cone_and_keeps_drawn_slices():
    z = np.arange(11)[:, None, None]
    yy, xx = np.mgrid[0:60, 0:60]
    radius = 5 + 2 * z                      # a cone: the disc radius grows linearly with z (pixels)
    cone = (yy - 30) ** 2 + (xx - 30) ** 2 <= radius ** 2
    keep = np.zeros_like(cone)
    keep[[0, 10]] = cone[[0, 10]]
    filled, zs = fill_between(keep, (4.0, 1.0, 1.0))
    assert zs == list(range(1, 10)) and not filled[[0, 10]].any()
    for k in range(1, 10):
        got = filled[k]
        # the blend of the two distance maps is the disc of the blended radius, within a voxel at the rim
        inner = (yy - 30) ** 2 + (xx - 30) ** 2 <= (radius[k, 0, 0] - 1) ** 2
        outer = (yy - 30) ** 2 + (xx - 30) ** 2 <= (radius[k, 0, 0] + 1) ** 2
        assert got[inner].all() and not got[~outer].any()
    assert fill_between(keep, (4.0, 1.0, 1.0), z_range=(0, 9))[1] == []


def test_interpolate_object_respects_locks_and_z_range():
    labels = np.zeros((9, 30, 30), np.uint8)
    labels[0, 5:25, 5:25] = 1
    labels[8, 5:25, 5:25] = 1
    labels[4, 10:12, 10:12] = 3
    edit, zs = interpolate_object(labels, 1, (2.0, 1.0, 1.0), locked={3})
    out = labels.copy()
    edit.apply(out)
    assert zs == list(range(1, 8))
    assert (out[4, 10:12, 10:12] == 3).all()
    assert np.count_nonzero(out[1:8] == 1) == 7 * 400 - 4
    assert interpolate_object(labels, 1, (2.0, 1.0, 1.0), z_range=(0, 5)) == (None, [])


SPLEEN_SEG = DATA / "raw" / "ivadomed-spleen" / "sub-spleen2_ct_seg-manual.nii.gz"


@needs_shared
@pytest.mark.parametrize("phase", [0, 1, 2, 3])
def test_fill_between_on_the_spleen_ground_truth(phase):
    """Keep every 4th slice of the manual spleen segmentation, interpolate the rest: DSC >= 0.90."""
    from engine.io.dispatch import open_image

    img = open_image(SPLEEN_SEG)
    gt = img.voxels > 0
    labels = np.zeros(gt.shape, np.uint8)
    labels[phase::4] = gt[phase::4]
    edit, zs = interpolate_object(labels, 1, img.spacing)
    edit.apply(labels)
    res = labels == 1
    dsc = 2 * np.count_nonzero(res & gt) / (np.count_nonzero(res) + np.count_nonzero(gt))
    assert dsc >= 0.90, dsc
    assert len(zs) >= 10 and all(z % 4 != phase for z in zs)


def test_boxes_computed_slab_by_slab_are_the_nonzero_bounds(monkeypatch):
    """mask_box, object_box (with padding) and changed_bounds read the volume in slabs: their boxes equal the
    bounds of np.nonzero, also across slab borders (slabs of 2 slices here)."""
    import engine.data.labeledit as le

    monkeypatch.setattr(le, "_SLAB_VOXELS", 2 * 9 * 11)
    rng = np.random.default_rng(0)
    for _ in range(40):
        a = (rng.random((7, 9, 11)) < 0.02).astype(np.uint8) * 3
        nz = np.nonzero(a)
        exp = None if not len(nz[0]) else tuple(v for ax in nz for v in (int(ax.min()), int(ax.max()) + 1))
        assert le.mask_box(a) == exp == le.object_box(a, 3) == le.changed_bounds(a, np.zeros_like(a))
        if exp is not None:
            assert le.object_box(a, 3, pad=(1, 2, 3)) == (max(exp[0] - 1, 0), min(exp[1] + 1, 7), max(exp[2] - 2, 0),
                                                        min(exp[3] + 2, 9), max(exp[4] - 3, 0), min(exp[5] + 3, 11))
    assert le.union_box((0, 2, 1, 3, 4, 5), (1, 4, 0, 2, 4, 9)) == (0, 4, 0, 3, 4, 9)
    assert le.union_box(None, (1, 2, 3, 4, 5, 6)) == (1, 2, 3, 4, 5, 6)
