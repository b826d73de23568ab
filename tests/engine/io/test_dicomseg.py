"""DICOM-SEG hardening: anonymised sources (Type 2 attributes absent) still give a valid SEG (highdicom and,
where installed, dicom3tools' dciodvfy); reading is segment by segment (exact labels, bounded peak memory),
FRACTIONAL SEGs are thresholded at 0.5, frames off their slices and malformed SEGs are one-line errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from engine.data.labelmap import Segment
from engine.io.dispatch import open_image, read_labelmap, write_labelmap
from tests.engine.io.test_dicom import write_series

#: Type 2 attributes anonymisers commonly delete (PS3.15 basic profile "Z"/"X" actions), plus a few
#: Type 3 ones; highdicom read the first eight from the source unconditionally
STRIPPED = ("PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
            "AccessionNumber", "PatientName", "PatientID", "SeriesNumber", "InstanceNumber", "Manufacturer",
            "SeriesDate", "SeriesTime", "ContentDate", "ContentTime", "AcquisitionDate", "AcquisitionTime",
            "PatientAge", "InstitutionName", "OperatorsName")


def anonymised_series(folder: Path, n: int = 3, *, sex: str | None = None) -> Path:
    write_series(folder, [(0, 0, 5.0 * k) for k in range(n)])
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        for k in STRIPPED:
            if k in ds:
                delattr(ds, k)
        if sex is not None:
            ds.PatientSex = sex
        ds.save_as(f, enforce_file_format=True)
    return folder


def series(folder: Path, positions, size: int | None = None):
    """A written series (CT_small copies) opened; ``size``: blank size x size slices instead of 128x128."""
    write_series(folder, positions)
    if size is not None:
        for f in folder.iterdir():
            ds = pydicom.dcmread(f)
            blank = np.zeros((size, size), ds.pixel_array.dtype).tobytes()
            ds.Rows = ds.Columns = size
            ds.PixelData = blank
            ds.save_as(f, enforce_file_format=True)
    return open_image(folder)


def dciodvfy_errors(path: Path) -> list[str]:
    """dciodvfy's 'Error' lines for ``path`` (dicom3tools; the test skips that part without it)."""
    r = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (r.stdout + r.stderr).splitlines() if line.startswith("Error")]


@pytest.mark.parametrize("sex", [None, "U"])  # absent, and a value DICOM does not allow (anonymisers write it)
def test_seg_from_anonymised_series(tmp_path, sex):
    img = open_image(anonymised_series(tmp_path / "s", sex=sex))
    assert "PatientBirthDate" not in img.dicom[0]
    labels = np.zeros(img.shape, np.uint8)
    labels[1, 10:40, 20:60] = 1
    labels[2, 50:70, 50:90] = 2
    out = write_labelmap(tmp_path / "seg.dcm", labels, img,
                         segments=[Segment(1, "liver", (200, 100, 80)), Segment(2, "spleen", (0, 200, 0))])
    seg = hd.seg.segread(str(out))
    for k in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyID", "StudyDate", "StudyTime",
              "AccessionNumber", "ReferringPhysicianName"):
        assert k in seg and str(seg[k].value or "") == "", k  # Type 2: present and empty
    assert seg.StudyInstanceUID == img.dicom[0].StudyInstanceUID
    assert [seg.get_segment_description(n).SegmentLabel for n in (1, 2)] == ["liver", "spleen"]
    np.testing.assert_array_equal(read_labelmap(out, img).labels, labels)
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) not installed: the SEG was checked by highdicom only")
    assert dciodvfy_errors(out) == []


# --- reading: segment by segment, FRACTIONAL, mismatched and malformed SEGs ------------------------

def many_segments(tmp_path: Path, n_segments: int = 40, depth: int = 20, size: int | None = None):
    """A series of ``depth`` 128x128 slices 5 mm apart (as CT_small's SpacingBetweenSlices says) and a SEG
    written by BoxSeg with ``n_segments`` segments: segment k a (9+k%7)x9 block on slice k % depth."""
    img = series(tmp_path / "s", [(0, 0, 5.0 * k) for k in range(depth)], size)
    labels = np.zeros(img.shape, np.uint8)
    for k in range(1, n_segments + 1):
        y, x = 5 + 20 * (k // depth), 30 + k
        labels[k % depth, y:y + 9 + k % 7, x:x + 9] = k
    return img, labels, write_labelmap(tmp_path / "many.dcm", labels, img)


def test_many_segments_read_one_at_a_time(tmp_path):
    import tracemalloc

    img, labels, out = many_segments(tmp_path, size=512)  # a 5 MiB label map: highdicom's index (~1.5 MiB) is small
    assert len(np.unique(labels)) == 41
    tracemalloc.start()
    try:
        lm = read_labelmap(out, img)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(lm.labels, labels)
    assert [s.value for s in lm.segments] == list(range(1, 41))
    # all 40 segments at once were 40 x 20x512x512 bytes (200 MiB); now the map + one segment + highdicom's index
    assert peak < 3 * labels.nbytes, f"peak {peak / 2**20:.2f} MiB for a {labels.nbytes / 2**20:.2f} MiB label map"
    own = read_labelmap(out)  # its own grid: the 20 slices, all of them hold a segment
    np.testing.assert_array_equal(own.labels, labels)


def test_overlapping_segments_later_wins(tmp_path):
    img = series(tmp_path / "s", [(0, 0, 5.0 * k) for k in range(2)])
    a = np.zeros(img.shape, np.uint8)
    a[1, 10:20, 10:20] = 1
    b = np.zeros(img.shape, np.uint8)
    b[1, 15:25, 15:25] = 1
    seg = highdicom_seg(img, np.stack([a, b], axis=-1), "BINARY")
    lm = read_labelmap(seg.save(tmp_path / "ov.dcm"), img)
    want = np.zeros(img.shape, np.uint8)
    want[a > 0] = 1
    want[b > 0] = 2
    np.testing.assert_array_equal(lm.labels, want)
    assert lm.warnings == ["segments overlap in 25 voxel(s); a label map holds one value per voxel, so the "
                           "higher segment number is kept there"]


class _Saved:
    def __init__(self, ds):
        self.ds = ds

    def save(self, path: Path) -> Path:
        self.ds.save_as(str(path))
        return path


def highdicom_seg(img, masks: np.ndarray, kind: str) -> _Saved:
    """A SEG written by highdicom itself: masks (Z,Y,X,S) in 0..1 (FRACTIONAL) or 0/1 (BINARY)."""
    from pydicom.sr.codedict import codes

    algo = hd.AlgorithmIdentificationSequence(name="test", family=codes.cid7162.ArtificialIntelligence,
                                              version="1")
    desc = [hd.seg.SegmentDescription(
        segment_number=i + 1, segment_label=f"s{i + 1}", segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algo) for i in range(masks.shape[-1])]
    kwargs = {"max_fractional_value": 255} if kind == "FRACTIONAL" else {}
    seg = hd.seg.Segmentation(
        source_images=list(img.dicom), pixel_array=masks.astype(np.float32 if kind == "FRACTIONAL" else np.uint8),
        segmentation_type=kind, segment_descriptions=desc, series_instance_uid=hd.UID(), series_number=5,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="test", manufacturer_model_name="test",
        software_versions="1", device_serial_number="1", **kwargs)
    return _Saved(seg)


def test_fractional_seg_reads_thresholded(tmp_path):
    img = series(tmp_path / "s", [(0, 0, 5.0 * k) for k in range(3)])
    frac = np.zeros((*img.shape, 2), np.float32)
    frac[1, 10:30, 10:30, 0] = 0.3   # below one half: outside
    frac[1, 40:50, 40:60, 0] = 0.8   # inside, 200 voxels
    frac[1, 45:50, 40:50, 0] = 0.5   # exactly one half (stored 128 of 255): inside
    frac[2, 60:70, 60:70, 1] = 1.0   # segment 2, 100 voxels
    frac[2, 0:5, 0:5, 1] = 0.49      # stored 125: outside
    path = highdicom_seg(img, frac, "FRACTIONAL").save(tmp_path / "frac.dcm")
    assert pydicom.dcmread(path).SegmentationType == "FRACTIONAL"
    want = np.zeros(img.shape, np.uint8)
    want[1, 40:50, 40:60] = 1
    want[2, 60:70, 60:70] = 2
    np.testing.assert_array_equal(read_labelmap(path, img).labels, want)
    np.testing.assert_array_equal(read_labelmap(path).labels, want[1:])  # its own grid: the two stored slices


def one_line_error(path: Path, *args) -> str:
    from engine.base.errors import InputError

    with pytest.raises(InputError) as e:
        read_labelmap(path, *args)
    msg = str(e.value)
    assert "\n" not in msg and path.name in msg
    return msg


def test_frame_positions_not_in_the_image_refused(tmp_path):
    img, labels, out = many_segments(tmp_path, n_segments=3, depth=4)
    ds = pydicom.dcmread(out)
    pos = ds.PerFrameFunctionalGroupsSequence[1].PlanePositionSequence[0]
    pos.ImagePositionPatient = [float(v) + (40.0 if i == 2 else 0.0) for i, v in enumerate(pos.ImagePositionPatient)]
    ds.save_as(tmp_path / "moved.dcm")
    assert "frame 2 lies 40 mm from the slice it references" in one_line_error(tmp_path / "moved.dcm", img)
    # a SEG on its own grid placed on an image whose slices are elsewhere
    shifted = series(tmp_path / "t", [(0, 0, 5.0 * k + 1.0) for k in range(4)])
    assert "geometry does not match" in one_line_error(tmp_path / "moved.dcm", shifted)


@pytest.mark.parametrize("drop", ["SegmentSequence", "PerFrameFunctionalGroupsSequence", "SegmentLabel"])
def test_malformed_seg_refused(tmp_path, drop):
    img, labels, out = many_segments(tmp_path, n_segments=2, depth=2)
    ds = pydicom.dcmread(out)
    if drop == "SegmentLabel":
        del ds.SegmentSequence[0].SegmentLabel
    else:
        delattr(ds, drop)
    ds.save_as(tmp_path / "bad.dcm")
    msg = one_line_error(tmp_path / "bad.dcm", img)
    assert "malformed DICOM-SEG" in msg or "cannot place" in msg
    one_line_error(tmp_path / "bad.dcm")


def test_declared_grid_is_gated_before_allocation(tmp_path, monkeypatch):
    """A frame moved 500 m away makes the SEG's own grid 100000 slices (5 mm spacing, empty slices allowed):
    refused from the declared size before anything is allocated (it used to allocate it once per segment)."""
    img, labels, out = many_segments(tmp_path, n_segments=3, depth=4)
    ds = pydicom.dcmread(out)
    ds.PerFrameFunctionalGroupsSequence[-1].PlanePositionSequence[0].ImagePositionPatient = [0.0, 0.0, 5.0e5]
    ds.save_as(tmp_path / "far.dcm")
    monkeypatch.setenv("BOXSEG_MEMORY_BUDGET_MIB", "256")
    msg = one_line_error(tmp_path / "far.dcm")
    assert "DICOM-SEG label map of 100000x128x128 voxels would need 3.05 GiB" in msg
