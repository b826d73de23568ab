"""Label maps <-> DICOM-SEG on the dcmqi series: its SEGs against the NRRD references, our SEGs read
back by highdicom, round trips, and refusals of label maps that do not belong to the image."""

from __future__ import annotations

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest

from engine.base.errors import InputError
from engine.data.labelmap import Segment
from engine.io.dispatch import read_labelmap, write_labelmap
from engine.io.dispatch import open_image
from tests.conftest import DATA, needs_shared
from tests.engine.io.test_dicom import nrrd_affine_ras, pd_file

RAW = DATA / "raw" / "dcmqi"
SERIES = RAW / "ct-3slice"


@pytest.fixture(scope="module")
def ct():
    if not SERIES.is_dir():
        pytest.skip("shared/data/raw not found")
    return open_image(SERIES)


def nrrd_labels(name: str) -> np.ndarray:
    data, _ = nrrd_affine_ras(RAW / name)
    return np.transpose(data, (2, 1, 0))  # NRRD (i, j, k) -> (Z, Y, X)


def combined(*names: str) -> np.ndarray:
    """The NRRD label maps (liver 1, spine 2, heart 3) in one uint8 map; later ones win where they overlap."""
    out = np.zeros((3, 512, 512), np.uint8)
    for n in names:
        lab = nrrd_labels(n)
        out[lab > 0] = lab[lab > 0]
    return out


@needs_shared
def test_liver_seg_equals_nrrd_voxel_for_voxel(ct):
    want = nrrd_labels("liver_seg.nrrd")
    on_series = read_labelmap(RAW / "liver.dcm", ct)
    np.testing.assert_array_equal(on_series.labels, want)
    assert [(s.value, s.name) for s in on_series.segments] == [(1, "Liver")]
    assert on_series.referenced_series_uid == ct.series_uid
    own = read_labelmap(RAW / "liver.dcm")  # no image: the SEG's own plane positions give the grid
    np.testing.assert_array_equal(own.labels, want)
    np.testing.assert_allclose(own.affine, ct.affine, atol=1e-4)


def pydicom_segments(path, image) -> dict[int, np.ndarray]:
    """An independent reader (pydicom only, no highdicom, none of our code): each BINARY frame, unpacked
    by pydicom, put on the slice of the instance it was derived from -> {segment number: bool (Z,Y,X)}."""
    ds = pydicom.dcmread(path)
    assert ds.SegmentationType == "BINARY"
    frames = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    z_of = {str(d.SOPInstanceUID): z for z, d in enumerate(image.dicom)}
    out: dict[int, np.ndarray] = {}
    for frame, fg in zip(frames, ds.PerFrameFunctionalGroupsSequence, strict=True):
        n = int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        (src,) = [s for d in fg.DerivationImageSequence for s in d.SourceImageSequence]
        out.setdefault(n, np.zeros(image.shape, bool))[z_of[str(src.ReferencedSOPInstanceUID)]] |= frame > 0
    return out


@needs_shared
def test_overlapping_segments_flattened_with_warning(ct):
    """dcmqi's partial_overlaps.dcm (5 overlapping segments) against the frames decoded by pydicom alone."""
    masks = pydicom_segments(RAW / "partial_overlaps.dcm", ct)
    # the SEG's own voxel counts per segment and slice (frames on slices 1; 1; 0, 1, 2; 0; 0)
    assert {n: [int(m[z].sum()) for z in range(3)] for n, m in sorted(masks.items())} == {
        1: [0, 9602, 0], 2: [0, 11888, 0], 3: [117, 117, 10509], 4: [6693, 0, 0], 5: [4713, 0, 0]}
    want = np.zeros(ct.shape, np.uint8)
    for n in sorted(masks):  # a label map holds one value: the higher segment number wins
        want[masks[n]] = n
    overlap = int(np.count_nonzero(sum(m.astype(np.uint8) for m in masks.values()) > 1))
    lm = read_labelmap(RAW / "partial_overlaps.dcm", ct)
    np.testing.assert_array_equal(lm.labels, want)
    assert [int(np.count_nonzero(lm.labels == n)) for n in range(1, 6)] == [6518, 11838, 10743, 6693, 4713]
    assert overlap == 3106
    assert lm.warnings == [f"segments overlap in {overlap} voxel(s); a label map holds one value per voxel, so "
                           "the higher segment number is kept there"]
    assert [(s.value, s.name, s.color) for s in lm.segments] == [
        (1, "GREEN", (128, 174, 128)), (2, "ORANGE", (216, 101, 79)), (3, "PURPLE", (183, 156, 220)),
        (4, "LIGHT_BLUE", (140, 224, 228)), (5, "DARK_BLUE", (0, 151, 206))]
    np.testing.assert_array_equal(read_labelmap(RAW / "partial_overlaps.dcm").labels, want)  # its own grid


@needs_shared
def test_liver_seg_equals_independent_reader(ct):
    """liver.dcm decoded by pydicom alone equals both our read and dcmqi's liver_seg.nrrd."""
    (liver,) = pydicom_segments(RAW / "liver.dcm", ct).values()
    assert [int(liver[z].sum()) for z in range(3)] == [36233, 35645, 35220]
    assert [int(np.count_nonzero(nrrd_labels("liver_seg.nrrd")[z])) for z in range(3)] == [36233, 35645, 35220]
    np.testing.assert_array_equal(read_labelmap(RAW / "liver.dcm", ct).labels, liver.astype(np.uint8))


@needs_shared
def test_written_seg_references_series_and_reads_back(ct, tmp_path):
    labels = combined("liver_seg.nrrd", "spine_seg.nrrd", "heart_seg.nrrd")
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    segs = [Segment(1, "liver", (200, 100, 80)), Segment(2, "spine", (240, 240, 200)), Segment(3, "heart", (200, 0, 0))]
    out = write_labelmap(tmp_path / "seg.dcm", labels, ct, segments=segs, model_name="litemedsam-int8",
                         model_version="int8 sha256:0123456789abcdef")
    seg = hd.seg.segread(str(out))
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ct.series_uid
    refs = {u[2] for u in seg.get_source_image_uids()}
    assert refs == {str(ds.SOPInstanceUID) for ds in ct.dicom}
    assert seg.FrameOfReferenceUID == ct.frame_of_reference_uid
    for number, s in enumerate(segs, start=1):
        d = seg.get_segment_description(number)
        assert d.SegmentLabel == s.name and d.SegmentAlgorithmType == "SEMIAUTOMATIC"
        assert d.SegmentAlgorithmName == "BoxSeg litemedsam-int8"
        algo = d.SegmentationAlgorithmIdentificationSequence[0]
        assert algo.AlgorithmName == "BoxSeg litemedsam-int8" and "sha256:0123456789abcdef" in algo.AlgorithmVersion
        rgb = hd.color.CIELabColor.from_dicom_value(list(d.RecommendedDisplayCIELabValue)).to_rgb()
        assert np.abs(np.array(rgb) - np.array(s.color)).max() <= 2
    # patient module copied from the series (the SEG belongs to the same patient/study)
    src = pydicom.dcmread(SERIES / "01.dcm", stop_before_pixels=True)
    assert seg.StudyInstanceUID == src.StudyInstanceUID
    # and back: identity on the series and on the SEG's own grid
    back = read_labelmap(out, ct)
    np.testing.assert_array_equal(back.labels, labels)
    assert [(s.value, s.name) for s in back.segments] == [(1, "liver"), (2, "spine"), (3, "heart")]
    np.testing.assert_array_equal(read_labelmap(out).labels, labels)


@needs_shared
def test_nifti_to_seg_to_nifti_is_identity(ct, tmp_path):
    labels = combined("spine_seg.nrrd", "heart_seg.nrrd")  # values 2, 3 (gap at 1)
    nii = write_labelmap(tmp_path / "a.nii.gz", labels, ct)
    lm = read_labelmap(nii, ct)
    dcm = write_labelmap(tmp_path / "a.dcm", lm.labels, ct, segments=lm.segments)
    seg_back = read_labelmap(dcm, ct)
    # DICOM segment numbers are 1..S: values 2, 3 become segments 1, 2 named after the values
    assert [(s.value, s.name) for s in seg_back.segments] == [(1, "label 2"), (2, "label 3")]
    contiguous = labels.copy()
    contiguous[labels == 2], contiguous[labels == 3] = 1, 2
    np.testing.assert_array_equal(seg_back.labels, contiguous)
    nii2 = write_labelmap(tmp_path / "b.nii.gz", seg_back.labels, ct)
    np.testing.assert_array_equal(nib.load(str(nii)).affine, nib.load(str(nii2)).affine)
    # with contiguous labels 1..N the round trip is the identity
    nii3 = write_labelmap(tmp_path / "c.nii.gz", contiguous, ct)
    dcm3 = write_labelmap(tmp_path / "c.dcm", read_labelmap(nii3, ct).labels, ct)
    nii4 = write_labelmap(tmp_path / "d.nii.gz", read_labelmap(dcm3, ct).labels, ct)
    np.testing.assert_array_equal(np.asarray(nib.load(str(nii4)).dataobj), np.asarray(nib.load(str(nii3)).dataobj))
    np.testing.assert_array_equal(nib.load(str(nii4)).affine, nib.load(str(nii3)).affine)


@needs_shared
def test_seg_on_another_image_is_refused(ct):
    other = open_image(pd_file("CT_small.dcm"))
    with pytest.raises(InputError, match="geometry does not match"):
        read_labelmap(RAW / "liver.dcm", other)
    with pytest.raises(InputError, match="not a DICOM-SEG"):
        read_labelmap(SERIES / "01.dcm", ct)


def test_2d_dicom_seg_and_png(tmp_path):
    img = open_image(pd_file("CT_small.dcm"))
    labels = np.zeros(img.shape, np.uint8)
    labels[0, 10:50, 60:100] = 1
    dcm = write_labelmap(tmp_path / "m.dcm", labels, img, segments=[Segment(1, "aorta", (255, 0, 0))])
    np.testing.assert_array_equal(read_labelmap(dcm, img).labels, labels)
    png = write_labelmap(tmp_path / "m.png", labels, img)
    np.testing.assert_array_equal(read_labelmap(png, img).labels, labels)
    rgb = open_image(pd_file("SC_rgb_rle.dcm"))
    with pytest.raises(InputError, match="geometry does not match"):
        read_labelmap(png, rgb)
    with pytest.raises(InputError, match="unknown label map format"):
        write_labelmap(tmp_path / "m.txt", labels, img)


def test_dicom_seg_needs_dicom_input(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "i.png"), np.arange(100, dtype=np.uint8).reshape(10, 10))
    img = open_image(tmp_path / "i.png")
    with pytest.raises(InputError, match="DICOM-SEG needs an image read from DICOM"):
        write_labelmap(tmp_path / "x.dcm", np.ones(img.shape, np.uint8), img)


def test_seg_on_enhanced_multiframe_and_omitted_empty_frames(tmp_path):
    from tests.engine.io.test_dicom import enhanced_from_series, write_series

    write_series(tmp_path / "s", [(0, 0, z) for z in (0.0, 2.5, 5.0, 7.5)])
    series = open_image(tmp_path / "s")
    enh = open_image(enhanced_from_series(tmp_path / "s", tmp_path / "enh.dcm"))
    labels = np.zeros(enh.shape, np.uint8)
    labels[1, 10:30, 10:40] = 1
    labels[3, 50:60, 50:60] = 2  # slices 0 and 2 empty: the SEG omits their frames
    on_enh = write_labelmap(tmp_path / "enh_seg.dcm", labels, enh)
    np.testing.assert_array_equal(read_labelmap(on_enh, enh).labels, labels)
    on_series = write_labelmap(tmp_path / "series_seg.dcm", labels, series)
    np.testing.assert_array_equal(read_labelmap(on_series, series).labels, labels)
    np.testing.assert_array_equal(read_labelmap(on_series, enh).labels, labels)  # placed by positions
    own = read_labelmap(on_series)  # its own grid: the stored frames (slices 1 and 3) only, 5 mm apart
    assert own.labels.shape == (2, 128, 128) and own.affine[2, 2] == pytest.approx(5.0)
    np.testing.assert_array_equal(own.labels, labels[[1, 3]])
