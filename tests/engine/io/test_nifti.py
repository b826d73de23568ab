"""NIfTI in and out on real files (MSD spleen CT, BraTS FLAIR) and the refusals."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from engine.base.errors import InputError
from engine.data.display import Display
from engine.io.dispatch import read_labelmap, write_labelmap
from engine.io.nifti import write_nifti_image
from engine.io.dispatch import open_image
from tests.conftest import DATA, needs_shared

RAW = DATA / "raw"
SPLEEN = RAW / "ivadomed-spleen" / "sub-spleen2_ct.nii.gz"
SPLEEN_SEG = RAW / "ivadomed-spleen" / "sub-spleen2_ct_seg-manual.nii.gz"
BRATS = RAW / "deepmedic-brats_2013_pat0001_1"


@needs_shared
def test_spleen_reads_in_stored_order():
    img = open_image(SPLEEN)
    ref = nib.load(str(SPLEEN))
    data = np.asanyarray(ref.dataobj)
    assert img.shape == (26, 166, 164) and img.voxels.shape == data.shape[::-1]
    np.testing.assert_array_equal(img.voxels, np.transpose(data, (2, 1, 0)))  # voxels[k, j, i] = data[i, j, k]
    np.testing.assert_array_equal(img.affine, ref.affine)
    assert img.modality == "CT" and img.units == "HU"  # recognised from HU-like values
    assert img.spacing == pytest.approx((5.0, 0.794922, 0.794922), abs=1e-5)
    assert img.orientation == "RAS"
    assert img.display == Display("axial", False, True, True)  # RAS stored: flipped to radiological view
    u8, key = img.model_slice(13)
    assert key == "ct:40:400" and u8.shape == (166, 164) and u8.dtype == np.uint8


@needs_shared
def test_brats_flair_lps_percentile():
    img = open_image(BRATS / "Flair_subtrMeanDivStd.nii.gz")
    assert img.shape == (155, 240, 240) and img.orientation == "LPS" and img.modality == "OT"
    assert img.display == Display("axial", False, False, False)
    u8, key = img.model_slice(77)
    assert key == "pct:0.5:99.5" and u8.max() > 200


@needs_shared
@pytest.mark.parametrize("src", [SPLEEN, BRATS / "Flair_subtrMeanDivStd.nii.gz"])
def test_label_map_round_trip_same_geometry(tmp_path, src):
    """NIfTI out -> nibabel in: same shape, affine and sform/qform codes as the input."""
    img = open_image(src)
    labels = np.zeros(img.shape, np.uint8)
    labels[img.depth // 2, 10:40, 20:60] = 1
    labels[img.depth // 2 + 1, 5:9, 5:9] = 2
    out = write_labelmap(tmp_path / "lab.nii.gz", labels, img)
    back, ref = nib.load(str(out)), nib.load(str(src))
    assert back.shape == ref.shape and back.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(back.affine, ref.affine)
    for code in ("sform_code", "qform_code"):
        assert int(back.header[code]) == int(ref.header[code])
    np.testing.assert_array_equal(np.asarray(back.dataobj), np.transpose(labels, (2, 1, 0)))
    lm = read_labelmap(out, img)
    np.testing.assert_array_equal(lm.labels, labels)
    assert [s.value for s in lm.segments] == [1, 2]


@needs_shared
def test_manual_label_reads_onto_spleen_and_wrong_grid_is_refused():
    img = open_image(SPLEEN)
    lm = read_labelmap(SPLEEN_SEG, img)
    assert lm.labels.shape == img.shape and lm.labels.max() == 1
    brats = open_image(BRATS / "Flair_subtrMeanDivStd.nii.gz")
    with pytest.raises(InputError, match="geometry does not match.*shape"):
        read_labelmap(SPLEEN_SEG, brats)


def test_affine_mismatch_within_tolerance(tmp_path):
    aff = np.diag([0.8, 0.8, 2.0, 1.0])
    nib.save(nib.Nifti1Image(np.zeros((6, 5, 4), np.int16) + np.arange(4, dtype=np.int16), aff), tmp_path / "i.nii.gz")
    img = open_image(tmp_path / "i.nii.gz")
    near = aff.copy()
    near[0, 3] += 1e-4
    nib.save(nib.Nifti1Image(np.ones((6, 5, 4), np.uint8), near), tmp_path / "near.nii.gz")
    assert read_labelmap(tmp_path / "near.nii.gz", img).labels.sum() == 120
    far = aff.copy()
    far[0, 3] += 0.5
    nib.save(nib.Nifti1Image(np.ones((6, 5, 4), np.uint8), far), tmp_path / "far.nii.gz")
    with pytest.raises(InputError, match="affine differs by up to 0.5 mm"):
        read_labelmap(tmp_path / "far.nii.gz", img)
    nib.save(nib.Nifti1Image(np.full((6, 5, 4), 0.5, np.float32), aff), tmp_path / "soft.nii.gz")
    with pytest.raises(InputError, match="not a label map"):
        read_labelmap(tmp_path / "soft.nii.gz", img)


def test_scaling_applied_and_4d(tmp_path):
    raw = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    im = nib.Nifti1Image(raw, np.eye(4))
    im.header.set_slope_inter(2.0, -100.0)
    nib.save(im, tmp_path / "s.nii")
    img = open_image(tmp_path / "s.nii")
    np.testing.assert_allclose(img.voxels, np.transpose(raw * 2.0 - 100.0, (2, 1, 0)))
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, 2), np.float32), np.eye(4)), tmp_path / "4d.nii.gz")
    with pytest.raises(InputError, match="4D NIfTI.*one 3D volume"):
        open_image(tmp_path / "4d.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((4, 4, 3, 1), np.float32), np.eye(4)), tmp_path / "4d1.nii.gz")
    assert open_image(tmp_path / "4d1.nii.gz").shape == (3, 4, 4)


def test_bad_nifti_files(tmp_path):
    (tmp_path / "text.nii.gz").write_text("this is not a NIfTI file\n")
    with pytest.raises(InputError, match="not a readable NIfTI"):
        open_image(tmp_path / "text.nii.gz")
    with gzip.open(tmp_path / "gz_text.nii.gz", "wt") as f:
        f.write("gzip, but not NIfTI inside")
    with pytest.raises(InputError, match="not a readable NIfTI"):
        open_image(tmp_path / "gz_text.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.eye(4)), tmp_path / "zero.nii.gz")
    with pytest.raises(InputError, match="zero intensity range"):
        open_image(tmp_path / "zero.nii.gz").model_slice(0)


@needs_shared
def test_dicom_series_to_nifti_image(tmp_path):
    img = open_image(RAW / "dcmqi" / "ct-3slice")
    out = write_nifti_image(tmp_path / "ct.nii.gz", img)
    back = open_image(out)
    np.testing.assert_allclose(back.affine, img.affine, atol=1e-4)
    np.testing.assert_array_equal(back.voxels, img.voxels)


@needs_shared
def test_brats_float_label_map_onto_flair():
    """OTMultiClass stores labels 0..4 as float32 (and other sform/qform codes than the FLAIR)."""
    flair = open_image(BRATS / "Flair_subtrMeanDivStd.nii.gz")
    lm = read_labelmap(BRATS / "OTMultiClass.nii.gz", flair)
    assert lm.labels.dtype == np.uint8 and set(np.unique(lm.labels)) == {0, 1, 2, 3, 4}
    ref = np.asanyarray(nib.load(str(BRATS / "OTMultiClass.nii.gz")).dataobj)
    np.testing.assert_array_equal(lm.labels, np.transpose(ref, (2, 1, 0)).astype(np.uint8))
