"""engine.io.formats: the one suffix table, and every place that names a file kind follows it."""

from __future__ import annotations

import pytest

from engine.io.formats import (IMAGE_KINDS, LABELMAP_SUFFIXES, SUFFIXES, is_nifti, is_raster, kind_of,
                               label_description_paths, labelmap_format, patterns, stem)


@pytest.mark.parametrize("name,kind", [("a.nii.gz", "nifti"), ("A.NII", "nifti"), ("x.dcm", "dicom"), ("x.IMA", "dicom"),
                                       ("p.png", "raster"), ("p.JPEG", "raster"), ("t.tiff", "raster"),
                                       ("2DBox_CT_x_1.npz", "npz"), ("IM0001", None), ("a.gz", None),
                                       ("s.seg.nrrd", "nrrd"), ("S.NRRD", "nrrd"), ("s.label.txt", None)])
def test_kind_of(name, kind):
    assert kind_of(name) == kind
    assert is_nifti(name) == (kind == "nifti") and is_raster(name) == (kind == "raster")


def test_stem_strips_known_suffixes_only():
    assert stem("scan.nii.gz") == "scan" and stem("dir/ct.DCM") == "ct" and stem("a.b.png") == "a.b"
    assert stem("series.v2") == "series.v2"
    assert stem("ct_seg.seg.nrrd") == "ct_seg" and stem("ct.nrrd") == "ct"


def test_itksnap_label_descriptions_lie_beside_the_nifti():
    assert [p.name for p in label_description_paths("/d/scan_seg.nii.gz")] == [
        "scan_seg.label.txt", "scan_seg.label", "scan_seg.txt"]
    assert {p.parent.as_posix() for p in label_description_paths("/d/scan_seg.nii")} == {"/d"}


def test_labelmap_formats():
    assert labelmap_format("s.nii.gz") == labelmap_format("s.nii") == "nifti"
    assert labelmap_format("s.dcm") == "dicom-seg" and labelmap_format("s.TIF") == "png"
    assert labelmap_format("s.jpg") is None and labelmap_format("s") is None
    assert labelmap_format("s.seg.nrrd") == labelmap_format("s.NRRD") == "seg-nrrd"
    assert {fmt: s[0] for fmt, s in LABELMAP_SUFFIXES.items()} == {"nifti": ".nii.gz", "dicom-seg": ".dcm", "png": ".png",
                                                                  "seg-nrrd": ".seg.nrrd"}


def test_dialog_patterns_list_every_suffix():
    every = patterns().split()
    assert sorted(every) == sorted(f"*{s}" for k in IMAGE_KINDS for s in SUFFIXES[k])
    assert set(SUFFIXES) - set(IMAGE_KINDS) == {"nrrd"}, "a .seg.nrrd is not offered as an image"
    assert patterns(labelmaps=True).split() == ["*.nii", "*.nii.gz", "*.dcm", "*.png", "*.tif", "*.tiff", "*.nrrd",
                                                "*.seg.nrrd"]
