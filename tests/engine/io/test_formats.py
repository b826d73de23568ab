"""engine.io.formats: the one suffix table, and every place that names a file kind follows it."""

from __future__ import annotations

import pytest

from engine.io.formats import LABELMAP_SUFFIXES, SUFFIXES, is_nifti, is_raster, kind_of, labelmap_format, patterns, stem


@pytest.mark.parametrize("name,kind", [("a.nii.gz", "nifti"), ("A.NII", "nifti"), ("x.dcm", "dicom"), ("x.IMA", "dicom"),
                                       ("p.png", "raster"), ("p.JPEG", "raster"), ("t.tiff", "raster"),
                                       ("2DBox_CT_x_1.npz", "npz"), ("IM0001", None), ("a.gz", None)])
def test_kind_of(name, kind):
    assert kind_of(name) == kind
    assert is_nifti(name) == (kind == "nifti") and is_raster(name) == (kind == "raster")


def test_stem_strips_known_suffixes_only():
    assert stem("scan.nii.gz") == "scan" and stem("dir/ct.DCM") == "ct" and stem("a.b.png") == "a.b"
    assert stem("series.v2") == "series.v2"


def test_labelmap_formats():
    assert labelmap_format("s.nii.gz") == labelmap_format("s.nii") == "nifti"
    assert labelmap_format("s.dcm") == "dicom-seg" and labelmap_format("s.TIF") == "png"
    assert labelmap_format("s.jpg") is None and labelmap_format("s") is None
    assert {fmt: s[0] for fmt, s in LABELMAP_SUFFIXES.items()} == {"nifti": ".nii.gz", "dicom-seg": ".dcm", "png": ".png"}


def test_dialog_patterns_list_every_suffix():
    every = patterns().split()
    assert sorted(every) == sorted(f"*{s}" for suffixes in SUFFIXES.values() for s in suffixes)
    assert patterns(labelmaps=True).split() == ["*.nii", "*.nii.gz", "*.dcm", "*.png", "*.tif", "*.tiff"]
