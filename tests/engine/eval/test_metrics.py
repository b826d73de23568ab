"""Tests of engine.eval.metrics: the CVPR24 "MedSAM on Laptop" DSC / NSD (SPEC section C)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from engine.eval import metrics as M
from engine.eval.metrics import (
    compute_case_metrics,
    compute_surface_dice_at_tolerance,
    compute_surface_distances,
    dice_per_label,
    neighbour_code_to_surface_area,
    nsd_per_label,
)
from engine.eval.surface_tables import NEIGHBOUR_CODE_TO_NORMALS
from tests.conftest import SHARED, needs_shared

SPEC_DATA = SHARED / "spec_testdata"


def _disc(shape, cy, cx, r2=400):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((xx - cx) ** 2 + (yy - cy) ** 2 <= r2).astype(np.uint8)


def _ball(shape, c, r):
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    return ((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# 1. Official outputs (SPEC A, "Test 2") reproduced
# --------------------------------------------------------------------------------------------


@needs_shared
def test_official_2d_case_reproduced():
    gt = np.load(SPEC_DATA / "gt_2D.npz")["gts"]
    seg = np.load(SPEC_DATA / "segs" / "2DBox_Synth_0001.npz")["segs"]
    dsc, nsd = compute_case_metrics(gt, seg, is_3d=False)
    assert round(dsc, 5) == 0.99705
    assert nsd == pytest.approx(1.0, abs=1e-9)


@needs_shared
def test_official_3d_case_reproduced():
    npz = np.load(SPEC_DATA / "gt_3D.npz")
    gt, spacing = npz["gts"], npz["spacing"]
    seg = np.load(SPEC_DATA / "segs" / "3DBox_Synth_0001.npz")["segs"]
    dsc, nsd = compute_case_metrics(gt, seg, spacing, is_3d=True)
    assert round(dsc, 5) == 0.99266
    # The spec gives no official 3D NSD; this is our value (a regression guard).
    assert round(nsd, 4) == 1.0


# --------------------------------------------------------------------------------------------
# 2. The 2D slab behaviour: shifted discs (SPEC C.2)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shift", "expected"), [(1, 1.000), (2, 1.000), (3, 0.988), (5, 0.932), (10, 0.778)]
)
def test_2d_shifted_discs_match_official_nsd(shift, expected):
    gt = _disc((128, 128), 64, 64)
    seg = _disc((128, 128), 64, 64 + shift)  # shifted along x (axis 1)
    dsc, nsd = compute_case_metrics(gt, seg, is_3d=False)
    assert dsc > 0.2
    assert round(nsd, 3) == expected
    # symmetric in gt/seg
    assert compute_case_metrics(seg, gt, is_3d=False)[1] == pytest.approx(nsd, abs=1e-12)


def test_2d_ignores_spacing_argument():
    gt = _disc((96, 96), 48, 48)
    seg = _disc((96, 96), 48, 53)
    assert compute_case_metrics(gt, seg, (5.0, 5.0, 5.0), is_3d=False) == compute_case_metrics(
        gt, seg, None, is_3d=False
    )


# --------------------------------------------------------------------------------------------
# 3. Edge cases and official-script rules
# --------------------------------------------------------------------------------------------


def test_both_empty_label_gives_nan_dsc_and_zero_nsd():
    gt = np.zeros((32, 32), np.uint8)
    gt[2:10, 2:10] = 1
    gt[20:25, 20:25] = 3  # label 2 absent from gt and seg
    seg = gt.copy()
    per_label = dice_per_label(gt, seg)
    assert per_label.shape == (3,) and per_label.dtype == np.float64
    assert per_label[0] == 1.0 and math.isnan(per_label[1]) and per_label[2] == 1.0
    dsc, nsd = compute_case_metrics(gt, seg, is_3d=False)
    assert math.isnan(dsc)
    assert nsd == 0.0  # NaN > 0.2 is False -> NSD not computed


def test_all_background_gt_gives_nan():
    gt = np.zeros((8, 8), np.uint8)
    seg = np.zeros((8, 8), np.uint8)
    assert dice_per_label(gt, seg).size == 0
    dsc, nsd = compute_case_metrics(gt, seg, is_3d=False)
    assert math.isnan(dsc) and nsd == 0.0


def test_empty_prediction_gives_zero_nsd():
    gt = _ball((12, 20, 20), (6, 10, 10), 4)
    seg = np.zeros_like(gt)
    dist = compute_surface_distances(gt.astype(bool), seg.astype(bool), (1.0, 1.0, 1.0))
    assert dist["distances_gt_to_pred"].size > 0
    assert np.all(np.isinf(dist["distances_gt_to_pred"]))
    assert dist["distances_pred_to_gt"].size == 0
    assert compute_surface_dice_at_tolerance(dist, 2.0) == 0.0
    assert nsd_per_label(gt, seg, (1.0, 1.0, 1.0)).tolist() == [0.0]
    assert compute_case_metrics(gt, seg, (1.0, 1.0, 1.0), is_3d=True) == (0.0, 0.0)


def test_both_empty_surface_distances():
    empty = np.zeros((4, 4, 4), bool)
    dist = compute_surface_distances(empty, empty, (1.0, 1.0, 1.0))
    assert all(v.size == 0 for v in dist.values())
    assert compute_surface_dice_at_tolerance(dist, 2.0) == 0.0  # official 1e-12 denominator


@pytest.mark.parametrize("is_3d", [False, True])
def test_identical_masks_score_one(is_3d):
    if is_3d:
        gt = _ball((16, 30, 30), (8, 15, 15), 6)
        gt[2:5, 2:6, 2:9] = 2
        spacing = (2.5, 0.8, 0.8)
    else:
        gt = _disc((64, 64), 30, 30, r2=200)
        gt[50:60, 5:20] = 2
        spacing = None
    dsc, nsd = compute_case_metrics(gt, gt.copy(), spacing, is_3d=is_3d)
    assert dsc == 1.0
    assert nsd == pytest.approx(1.0, abs=1e-12)


def test_nsd_zero_when_dsc_not_above_threshold():
    gt = _disc((64, 64), 32, 32)  # 1257 px
    seg = _disc((64, 64), 32, 32, r2=25)  # small disc inside: DSC ~ 0.12
    dsc, nsd = compute_case_metrics(gt, seg, is_3d=False)
    assert 0.0 < dsc <= 0.2
    assert nsd_per_label(gt[..., None], seg[..., None], (1.0, 1.0, 1.0))[0] > 0.0
    assert nsd == 0.0


def test_nsd_zero_at_exactly_threshold():
    gt = np.zeros((10, 10), np.uint8)
    gt[2:5, 2:5] = 1  # 9 px
    seg = np.zeros_like(gt)
    seg[3, 3] = 1  # 1 px inside: DSC = 2/10 = 0.2 exactly
    dsc, nsd = compute_case_metrics(gt, seg, is_3d=False)
    assert dsc == 0.2
    assert nsd == 0.0


def test_predicted_labels_above_gt_max_are_ignored():
    gt = _disc((64, 64), 20, 20, r2=100)
    seg = gt.copy()
    seg[45:60, 45:60] = 2
    seg[0:3, 60:64] = 7
    assert dice_per_label(gt, seg).tolist() == [1.0]
    dsc, nsd = compute_case_metrics(gt, seg, is_3d=False)
    assert dsc == 1.0 and nsd == pytest.approx(1.0, abs=1e-12)
    assert nsd_per_label(gt[..., None], seg[..., None], (1, 1, 1)).shape == (1,)


def test_dice_per_label_values_and_dtypes():
    gt = np.zeros((20, 20), np.int16)
    seg = np.zeros((20, 20), np.int16)
    gt[0:4, 0:5] = 1  # 20 px
    seg[0:4, 1:5] = 1  # 16 px, all inside
    gt[10:12, 10:12] = 2  # 4 px
    seg[15:17, 15:17] = 2  # disjoint
    seg[5, 5] = -3  # negative labels are never scored
    expected = [2 * 16 / 36, 0.0]
    np.testing.assert_allclose(dice_per_label(gt, seg), expected, rtol=0, atol=1e-15)
    # the generic (non-integer) path gives the same
    np.testing.assert_allclose(
        dice_per_label(gt.astype(np.float32), seg.astype(np.float32)), expected, atol=1e-15
    )


def test_3d_spacing_is_per_array_axis_and_verbatim():
    gt = _ball((20, 24, 24), (10, 12, 12), 6)
    seg = np.roll(gt, 1, axis=0)  # 1-voxel shift along array axis 0
    iso = nsd_per_label(gt, seg, (1.0, 1.0, 1.0))[0]
    coarse0 = nsd_per_label(gt, seg, (3.0, 1.0, 1.0))[0]  # shift = 3 mm > tolerance
    coarse2 = nsd_per_label(gt, seg, (1.0, 1.0, 3.0))[0]  # shift = 1 mm along axis 0
    assert iso == pytest.approx(1.0, abs=1e-12)
    assert coarse2 == pytest.approx(1.0, abs=1e-12)
    assert coarse0 < 0.97  # caps are 3 mm apart (measured 0.9613)
    # compute_case_metrics passes the npz spacing through unchanged (no (x,y,z) reordering)
    assert compute_case_metrics(gt, seg, np.array([3.0, 1.0, 1.0]), is_3d=True)[1] == coarse0
    assert compute_case_metrics(gt, seg, np.array([1.0, 1.0, 3.0]), is_3d=True)[1] == coarse2


def test_input_validation():
    with pytest.raises(ValueError):
        compute_case_metrics(np.zeros((4, 4)), np.zeros((4, 5)), is_3d=False)
    with pytest.raises(ValueError):
        compute_case_metrics(np.ones((2, 4, 4), np.uint8), np.ones((2, 4, 4), np.uint8), is_3d=True)
    with pytest.raises(ValueError):
        nsd_per_label(np.ones((2, 2, 2), np.uint8), np.ones((2, 2, 2), np.uint8), (1.0, 0.0, 1.0))


# --------------------------------------------------------------------------------------------
# Lookup table checks (catch transcription errors in the 256-entry normal table)
# --------------------------------------------------------------------------------------------


def _code_bits(code):
    k = M.ENCODE_NEIGHBOURHOOD_3D_KERNEL.astype(int)
    return (np.bitwise_and(code, k) > 0).astype(int)


def _bits_code(bits):
    return int((bits * M.ENCODE_NEIGHBOURHOOD_3D_KERNEL.astype(int)).sum())


def test_table_has_256_codes_and_trivial_ends():
    assert len(NEIGHBOUR_CODE_TO_NORMALS) == 256
    area = neighbour_code_to_surface_area((1.0, 1.0, 1.0))
    assert area.shape == (256,) and area.dtype == np.float64
    assert area[0] == 0.0 and area[255] == 0.0
    assert np.all(area[1:255] > 0)


def test_table_areas_invariant_under_cube_symmetries():
    """Areas must not change under complement, axis flips and axis permutations (with the
    spacing permuted alongside); a mistyped table entry breaks this for its symmetry orbit."""
    spacing = np.array([2.5, 1.0, 0.7])
    area = neighbour_code_to_surface_area(spacing)
    np.testing.assert_allclose(area, area[::-1], rtol=0, atol=1e-12)  # complement
    for axis in range(3):
        flipped = [area[_bits_code(np.flip(_code_bits(c), axis))] for c in range(256)]
        np.testing.assert_allclose(area, flipped, rtol=0, atol=1e-12)
    for perm in itertools.permutations(range(3)):
        area_p = neighbour_code_to_surface_area(spacing[list(perm)])
        permuted = [area_p[_bits_code(np.transpose(_code_bits(c), perm))] for c in range(256)]
        np.testing.assert_allclose(area, permuted, rtol=0, atol=1e-12)


def test_single_voxel_surface_is_octahedron():
    # Marching cubes around one voxel: 8 equilateral triangles of side sqrt(2)/2 -> sqrt(3).
    mask = np.zeros((3, 3, 3), bool)
    mask[1, 1, 1] = True
    dist = compute_surface_distances(mask, mask, (1.0, 1.0, 1.0))
    assert dist["surfel_areas_gt"].size == 8
    assert dist["surfel_areas_gt"].sum() == pytest.approx(math.sqrt(3), abs=1e-12)


def test_box_surface_area():
    # a k0 x k1 x k2 box: flat faces (k-1)^2, 45-degree edge strips of width sqrt(2)/2 and
    # an octahedron's worth of corner triangles.
    k = np.array([4, 6, 9])
    mask = np.zeros((8, 10, 13), bool)
    mask[2:6, 1:7, 3:12] = True
    dist = compute_surface_distances(mask, mask, (1.0, 1.0, 1.0))
    e = k - 1
    expected = (
        2 * (e[0] * e[1] + e[1] * e[2] + e[0] * e[2])
        + 4 * e.sum() * math.sqrt(2) / 2
        + math.sqrt(3)
    )
    assert dist["surfel_areas_gt"].sum() == pytest.approx(expected, abs=1e-9)
    assert np.all(dist["distances_gt_to_pred"] == 0.0)


# --------------------------------------------------------------------------------------------
# 4. Brute-force cross-check on tiny random 3D masks
# --------------------------------------------------------------------------------------------


def _brute_surfels(mask, spacing):
    """Every voxel corner (i, j, k), i in 0..D0 etc., with its 8-bit code computed by explicit
    loops: bit weight 2**(7 - (4a + 2b + c)) for voxel (i-1+a, j-1+b, k-1+c)."""
    d0, d1, d2 = mask.shape
    pos, codes = [], []
    for i in range(d0 + 1):
        for j in range(d1 + 1):
            for k in range(d2 + 1):
                code = 0
                for a, b, c in itertools.product((0, 1), repeat=3):
                    x, y, z = i - 1 + a, j - 1 + b, k - 1 + c
                    if 0 <= x < d0 and 0 <= y < d1 and 0 <= z < d2 and mask[x, y, z]:
                        code += 2 ** (7 - (4 * a + 2 * b + c))
                if code not in (0, 255):
                    pos.append((i * spacing[0], j * spacing[1], k * spacing[2]))
                    codes.append(code)
    return np.array(pos, dtype=np.float64).reshape(-1, 3), np.array(codes, dtype=int)


def _brute_distances(src, dst):
    if len(dst) == 0:
        return np.full(len(src), np.inf)
    return np.sqrt(((src[:, None, :] - dst[None, :, :]) ** 2).sum(-1)).min(axis=1)


@pytest.mark.parametrize("seed", range(4))
def test_brute_force_surface_distances(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(3, 7, size=3))
    spacing = tuple(float(v) for v in rng.uniform(0.5, 2.0, size=3))
    gt = rng.random(shape) < 0.45
    pred = gt.copy()
    pred[rng.random(shape) < 0.25] ^= True  # perturb
    if seed == 3:
        pred[:] = False  # one empty mask

    pos_g, code_g = _brute_surfels(gt, spacing)
    pos_p, code_p = _brute_surfels(pred, spacing)
    area = neighbour_code_to_surface_area(spacing)
    d_g = _brute_distances(pos_g, pos_p)
    d_p = _brute_distances(pos_p, pos_g)

    got = compute_surface_distances(gt, pred, spacing)
    for d_ref, a_ref, key_d, key_a in (
        (d_g, area[code_g], "distances_gt_to_pred", "surfel_areas_gt"),
        (d_p, area[code_p], "distances_pred_to_gt", "surfel_areas_pred"),
    ):
        order = np.lexsort((a_ref, d_ref))
        np.testing.assert_allclose(got[key_d], d_ref[order], rtol=0, atol=1e-9)
        np.testing.assert_allclose(got[key_a], a_ref[order], rtol=0, atol=1e-12)

    for tol in (0.8, 1.5, 2.0):
        ref = (area[code_g][d_g <= tol].sum() + area[code_p][d_p <= tol].sum()) / (
            area[code_g].sum() + area[code_p].sum() + 1e-12
        )
        assert compute_surface_dice_at_tolerance(got, tol) == pytest.approx(ref, abs=1e-12)
        assert nsd_per_label(gt.astype(np.uint8), pred.astype(np.uint8), spacing, tol)[
            0
        ] == pytest.approx(ref, abs=1e-12)
