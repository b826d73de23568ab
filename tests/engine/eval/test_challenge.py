"""Challenge .npz reading, bad input, 3D propagation rules, and accuracy on real cases."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from engine.io.challenge_npz import Case, load_case
from engine.pipeline import validate_case_boxes
from engine.base.errors import Cancelled, InputError
from engine.inference.propagate import Box3D, propagate_box, propagation_order
from tests.conftest import EVAL, REPO, SHARED, needs_shared


def _write(tmp_path, name, **arrays):
    p = tmp_path / name
    np.savez(p, **arrays)
    return p


def test_missing_keys_and_bad_arrays(tmp_path):
    with pytest.raises(InputError, match="missing key.*boxes"):
        load_case(_write(tmp_path, "2DBox_x.npz", imgs=np.zeros((10, 10, 3), np.uint8)))
    with pytest.raises(InputError, match="missing key.*imgs"):
        load_case(_write(tmp_path, "2DBox_y.npz", boxes=np.zeros((1, 4))))
    with pytest.raises(InputError, match=r"shape \(H,W,3\)"):
        load_case(_write(tmp_path, "2DBox_z.npz", imgs=np.zeros((10, 10), np.uint8), boxes=np.zeros((1, 4))))
    with pytest.raises(InputError, match=r"\(N,6\)"):
        load_case(_write(tmp_path, "3DBox_z.npz", imgs=np.zeros((3, 10, 10), np.uint8), boxes=np.zeros((1, 4))))
    with pytest.raises(InputError, match="uint8"):
        load_case(_write(tmp_path, "2DBox_f.npz", imgs=np.zeros((10, 10, 3), np.float32) + 0.5, boxes=np.zeros((1, 4))))
    bad = tmp_path / "2DBox_bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="cannot read"):
        load_case(bad)


def test_box_outside_or_zero_area_names_the_box():
    img = np.zeros((50, 60, 3), np.uint8)
    with pytest.raises(InputError, match="box 2: .*outside"):
        validate_case_boxes(Case("2DBox_t", img, np.array([[1, 1, 20, 20], [70, 10, 80, 20]]), False))
    with pytest.raises(InputError, match="box 1: .*zero"):
        validate_case_boxes(Case("2DBox_t", img, np.array([[5, 5, 5, 20]]), False))
    vol = np.zeros((4, 50, 60), np.uint8)
    with pytest.raises(InputError, match="z range"):
        validate_case_boxes(Case("3DBox_t", vol, np.array([[1, 1, 5, 20, 20, 9]]), True))


def test_propagation_order_follows_the_reference():
    order = propagation_order(Box3D(0, 0, 2, 10, 10, 7), depth=20)
    # z_mid = 2 + 5 // 2 = 4; up 4..7, then down 3..2
    assert order == [(4, -1), (5, 4), (6, 5), (7, 6), (3, 4), (2, 3)]
    assert propagation_order(Box3D(0, 0, 0, 10, 10, 9), depth=5)[-1] == (0, 1)
    assert max(z for z, _ in propagation_order(Box3D(0, 0, 0, 10, 10, 9), depth=5)) == 4
    # Swin-LiteMedSAM (B.6): z_min and z_max themselves are never segmented
    assert propagation_order(Box3D(0, 0, 2, 10, 10, 7), depth=20, rule="B.6") == [(4, -1), (5, 4), (6, 5), (3, 4)]
    assert propagation_order(Box3D(0, 0, 3, 10, 10, 4), depth=20, rule="B.6") == [(3, -1)]


def test_b6_fallback_boxes():
    """B.6: emptiness is tested at full resolution; the downward fallback box is not truncated."""
    from engine.inference.transforms import Geometry

    class Rec(_ThresholdSession):
        def predictor(self):
            outer, inner = self, super().predictor()

            class P:
                def set_image(self, img, slice_index=-1, window="u8", plane=""):
                    inner.set_image(img, slice_index, window)

                def predict_256(self, box256):
                    outer.boxes.append(np.asarray(box256, np.float64).reshape(4).tolist())
                    return inner.predict_256(box256)

            return P()

    vol = np.zeros((9, 100, 100), np.uint8)  # nothing bright: every mask is empty
    s = Rec("swin-litemedsam")
    s.boxes = []
    propagate_box(s, vol, Box3D(11, 13, 0, 61, 57, 8))
    scale = Geometry(100, 100).scale
    up_box = [int(11 * scale), int(13 * scale), int(61 * scale), int(57 * scale)]
    assert s.visited == [4, 5, 6, 7, 3, 2, 1]
    assert all(b == up_box for b in s.boxes[:4])
    assert s.boxes[4] == pytest.approx([11 * scale, 13 * scale, 61 * scale, 57 * scale], abs=1e-4)
    assert s.boxes[4] != up_box


class _ThresholdSession:
    """Stand-in for the model (unit logic only): the mask is the bright pixels of the slice."""

    def __init__(self, family="litemedsam"):
        from engine.inference.families import get_family

        self.visited = []
        self.family = get_family(family)

    def predictor(self):
        outer = self

        class P:
            def set_image(self, img, slice_index=-1, window="u8", plane=""):
                self.img = img
                outer.visited.append(slice_index)

            def predict_256(self, box256):
                from engine.inference.predictor import Prediction

                return Prediction(self.img > 100, 1.0, np.zeros((256, 256), np.float32), box256.reshape(4))

        return P()


def test_early_stop_skips_the_empty_tail_of_each_pass():
    vol = np.zeros((20, 64, 64), np.uint8)
    vol[8:12, 20:40, 20:40] = 200  # object on slices 8..11
    box = Box3D(18, 18, 0, 42, 42, 19)  # z_mid = 9
    full_s, stop_s = _ThresholdSession(), _ThresholdSession()
    full = propagate_box(full_s, vol, box)
    stopped = propagate_box(stop_s, vol, box, early_stop=2)
    assert np.array_equal(full, stopped)
    assert sorted(full_s.visited) == list(range(20))
    # up: 9,10,11 then 12,13 empty -> stop; down: 8 then 7,6 empty -> stop
    assert stop_s.visited == [9, 10, 11, 12, 13, 8, 7, 6]


def test_object_ended_criterion():
    """Ended = empty, a speck below END_AREA_FRACTION of the object, or a blob off the last kept mask."""
    from engine.inference.propagate import END_AREA_FRACTION, END_MIN_OVERLAP, object_ended

    last = np.zeros((64, 64), bool)
    last[20:40, 20:40] = True  # 400 px
    same = last.copy()
    shrunk = np.zeros_like(last)
    shrunk[25:35, 25:35] = True  # 100 px = 25%: a thinner part of the object, kept
    speck = np.zeros_like(last)
    speck[30:32, 30:32] = True  # 4 px = 1% of 400: ended even though it lies on the object
    away = np.zeros_like(last)
    away[45:60, 45:60] = True  # 225 px, none of it on the last mask: another structure
    assert object_ended(np.zeros_like(last), 400, last)
    assert not object_ended(same, 400, last)
    assert not object_ended(shrunk, 400, last)
    assert object_ended(speck, 400, last)
    assert object_ended(away, 400, last)
    assert not object_ended(away, 400, None)  # no reference mask yet: only the area counts
    assert 4 < END_AREA_FRACTION * 400 < 100 and 0 < END_MIN_OVERLAP < 0.6


def test_early_stop_ends_on_specks_and_clears_them():
    """The model's specks (never empty) end a pass; the stopping run is cleared; None keeps all."""
    vol = np.zeros((20, 64, 64), np.uint8)
    vol[:, 30:32, 50:52] = 200  # a 4 px speck on every slice (1% of the object)
    vol[8:12, 10:30, 10:30] = 200  # object (400 px) on slices 8..11
    vol[10, 10:30, 10:30] = 0
    vol[10, 19:21, 19:21] = 200  # ... nearly vanishing on slice 10 (4 px on the object, plus the speck)
    box = Box3D(5, 5, 0, 60, 60, 19)  # z_mid = 9
    full_s, stop_s = _ThresholdSession(), _ThresholdSession()
    full = propagate_box(full_s, vol, box)
    assert np.array_equal(full, vol > 100)  # challenge rule: every slice, masks as the model gives
    stopped = propagate_box(stop_s, vol, box, early_stop=2)
    # up: 9, 10 (ended: 8 px), 11 (kept: the run resets, slice 10 stays), 12, 13 ended -> stop;
    # down: 8, then 7, 6 ended -> stop
    assert stop_s.visited == [9, 10, 11, 12, 13, 8, 7, 6]
    want = vol > 100
    want[:8] = want[12:] = False
    assert np.array_equal(stopped, want)
    # early_stop=3 clears a 3-slice run
    s3 = _ThresholdSession()
    assert np.array_equal(propagate_box(s3, vol, box, early_stop=3), want)
    assert s3.visited == [9, 10, 11, 12, 13, 14, 8, 7, 6, 5]


def test_early_stop_ends_on_a_disjoint_blob():
    """A mask that jumps to another structure (no overlap with the object) counts as ended."""
    vol = np.zeros((20, 64, 64), np.uint8)
    vol[6:12, 10:30, 10:30] = 200  # object on slices 6..11
    vol[12:, 40:60, 40:60] = 200   # another structure from slice 12 up, never empty
    s = _ThresholdSession()
    out = propagate_box(s, vol, Box3D(5, 5, 0, 60, 60, 19), early_stop=2, start=8)
    assert s.visited == [8, 9, 10, 11, 12, 13, 7, 6, 5, 4]
    want = vol > 100
    want[12:] = False
    assert np.array_equal(out, want)


def test_early_stop_ends_the_pons_of_the_mni_sample(session):
    """Regression: the pons box on the brain sample, whole volume, early stop (the app's
    "propagate until the object ends"). The model never returns an empty mask here (specks past
    the pons, a constant blob on the black slices 155..188), so stopping on empty slices alone
    walked the whole volume."""
    from engine.io.dispatch import open_image

    img = open_image(REPO / "assets" / "sample" / "mni_icbm152_t1_2009a.nii.gz")
    vol, key = img.model_volume()
    box = Box3D(78, 90, 0, 118, 124, img.depth - 1)
    seen = []
    mask = propagate_box(session, vol, box, window=key, early_stop=2, start=50,
                         progress=lambda d, t: seen.append(d))
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    # the pons is about slices 38..62; specks of 22..59 px continue to slice 70 (measured: 38..70)
    assert 50 in zs and 33 <= zs.min() and zs.max() <= 75, zs
    assert not mask[100:].any()
    assert len(seen) < 60  # both passes stopped early (the volume has 189 slices)


def test_propagation_can_be_cancelled(session):
    vol = np.zeros((6, 64, 64), np.uint8)
    seen = []
    with pytest.raises(Cancelled):
        propagate_box(session, vol, Box3D(10, 10, 0, 50, 50, 5), progress=lambda d, t: seen.append(d),
                      should_stop=lambda: len(seen) >= 2)
    assert seen == [1, 2]


def _official():
    with open(SHARED / "reference" / "litemedsam_official_eval.csv") as f:
        return {r["case"]: r for r in csv.DictReader(f)}


@needs_shared
@pytest.mark.parametrize("name", [
    "2DBox_CT_SAM-Med2D_s0114-111",      # 15 objects
    "2DBox_Dermoscopy_PH2_IMD002",
    "2DBox_Endoscopy_Kvasir-SEG_cju0qkwl35piu0993l0dewei2",
    "3DBox_CT_MSD-Spleen_spleen2",
    "3DBox_CT_dcmqi_ct-3slice",          # 3 objects
])
def test_real_cases_match_the_official_pipeline(session_fp32, session_int8, name):
    """FP32 scores what the official pipeline scored; INT8 loses at most 0.03 DSC / 0.05 NSD.

    INT8 is bounded from below only: its deviation depends on the CPU's int8 instructions (measured on
    an AVX2-only Zen 3: ct-3slice scores 0.870 in INT8 against the official 0.832, FP32 0.832), and a
    quantized model that happens to score higher than the reference is not a defect.
    """
    from engine.eval.challenge import evaluate_case

    path = EVAL / f"{name}.npz"
    if not path.exists():
        pytest.skip(f"{path.name} not in this copy of shared/data")
    ref = _official()[name]
    res, segs = evaluate_case(session_fp32, path)
    assert segs.dtype == np.uint16 and segs.max() <= res.n_objects
    # the reference CSV rounds DSC to 3 and NSD to 4 decimals
    assert abs(res.dsc - float(ref["dsc"])) < 0.002, (res.dsc, ref["dsc"])
    assert abs(res.nsd - float(ref["nsd"])) < 0.002, (res.nsd, ref["nsd"])
    res8, segs8 = evaluate_case(session_int8, path)
    assert segs8.dtype == np.uint16 and segs8.max() <= res8.n_objects
    assert res8.dsc > float(ref["dsc"]) - 0.03, (res8.dsc, ref["dsc"])
    assert res8.nsd > float(ref["nsd"]) - 0.05, (res8.nsd, ref["nsd"])
