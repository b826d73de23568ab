"""DICOM-SEG hardening: anonymised sources (Type 2 attributes absent) still give a valid SEG, checked by
highdicom and, where installed, by dicom3tools' dciodvfy."""

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
    write_series(folder, [(0, 0, 2.0 * k) for k in range(n)])
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        for k in STRIPPED:
            if k in ds:
                delattr(ds, k)
        if sex is not None:
            ds.PatientSex = sex
        ds.save_as(f, enforce_file_format=True)
    return folder


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
