"""The command line with 3D Slicer ``.seg.nrrd`` and ITK-SNAP label descriptions (issue 19):
``segment -o x.seg.nrrd``, ``convert`` both ways (with and without --reference), ``stats`` on a
.seg.nrrd, ``batch --format seg-nrrd``; outputs checked with pynrrd/nibabel, not our readers."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from app.cli.main import main
from engine.io.dispatch import open_image, read_labelmap, write_labelmap
from engine.io.nifti import write_nifti_image
from tests.app.cli.test_io_cli import CT_SMALL, error_line
from tests.engine.io.test_itksnap import columns
from tests.engine.io.test_segnrrd import SEGMENTS, assert_same_in_world, nrrd_world, objects_on, oblique_image


def segment_fields(h) -> list[dict]:
    out = []
    while f"Segment{len(out)}_ID" in h:
        n = len(out)
        out.append({k.split("_", 1)[1]: v for k, v in h.items() if k.startswith(f"Segment{n}_")})
    return out


def test_segment_writes_a_seg_nrrd_on_the_nifti(tmp_path, capsys):
    """The bundled CT slice segmented twice, to .seg.nrrd and to .nii.gz: the same object in world space."""
    seg, nii = tmp_path / "ct.seg.nrrd", tmp_path / "ct.nii.gz"
    for out in (seg, nii):
        assert main(["segment", str(CT_SMALL), "--box", "72,0,110,28", "-o", str(out), "--name", "vessel"]) == 0
    assert f"-> {seg}" in capsys.readouterr().out
    assert_same_in_world(seg, nii)
    data, _, h = nrrd_world(seg)
    assert data.shape[2] == 1 and h["dimension"] == 3  # one slice, still three spatial axes (Slicer needs them)
    [f] = segment_fields(h)
    assert f["Name"] == "vessel" and f["LabelValue"] == "1"
    # a named structure (here by its synonym): SNOMED CT "Blood Vessel" in the Slicer terminology entry
    assert f["Tags"].split("~")[1:3] == ["SCT^85756007^Tissue", "SCT^59820001^Blood Vessel"]
    assert columns((tmp_path / "ct.label.txt").read_text())[1][-1] == "vessel"


@pytest.fixture
def on_disk(tmp_path):
    """An oblique image as NIfTI, its label map as NIfTI + ITK-SNAP descriptions (names and colours)."""
    img = oblique_image()
    labels = objects_on(img.shape)
    image = write_nifti_image(tmp_path / "img.nii.gz", img)
    lab = write_labelmap(tmp_path / "lab.nii.gz", labels, img, segments=SEGMENTS)
    return image, lab, labels


def test_convert_nifti_to_seg_nrrd_and_back(on_disk, tmp_path, capsys):
    image, lab, labels = on_disk
    for args in (["--reference", str(image)], []):  # a NIfTI carries its own grid for a .seg.nrrd
        out = tmp_path / f"a{len(args)}.seg.nrrd"
        assert main(["convert", str(lab), "-o", str(out), *args]) == 0
        assert_same_in_world(out, lab)
        _, _, h = nrrd_world(out)
        assert [(f["Name"], int(f["LabelValue"])) for f in segment_fields(h)] == [(s.name, s.value) for s in SEGMENTS]
    seg = tmp_path / "a2.seg.nrrd"
    assert main(["convert", str(seg), "-o", str(tmp_path / "back.nii.gz")]) == 0  # no --reference needed
    assert "1=pons, 2=left caudate, 7=lesion" in capsys.readouterr().out
    back, orig = nib.load(str(tmp_path / "back.nii.gz")), nib.load(str(lab))
    assert np.array_equal(np.asanyarray(back.dataobj), np.asanyarray(orig.dataobj))
    assert np.allclose(back.affine, orig.affine, atol=1e-5)
    rows = columns((tmp_path / "back.label.txt").read_text())
    assert {v: (r[:3], r[-1]) for v, r in rows.items() if v} == {s.value: (s.color, s.name) for s in SEGMENTS}


def test_stats_and_a_refused_grid(on_disk, tmp_path, capsys):
    image, lab, labels = on_disk
    seg = tmp_path / "lab.seg.nrrd"
    assert main(["convert", str(lab), "-o", str(seg), "--reference", str(image)]) == 0
    capsys.readouterr()
    assert main(["stats", str(image), str(seg), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["label"], r["name"]) for r in rows] == [(s.value, s.name) for s in SEGMENTS]
    other = oblique_image((9, 14, 11))
    other.affine[:3, 3] += 1.0
    ref = write_nifti_image(tmp_path / "other.nii.gz", other)
    line = error_line(capsys, "convert", seg, "-o", tmp_path / "x.nii.gz", "--reference", ref)
    assert "lab.seg.nrrd: label map geometry does not match the image" in line
    line = error_line(capsys, "stats", ref, seg)
    assert "lab.seg.nrrd" in line and "does not match" in line
    assert "needs --reference" in error_line(capsys, "convert", seg, "-o", tmp_path / "x.dcm")
    assert ".seg.nrrd" in error_line(capsys, "segment", CT_SMALL, "--box", 1, 1, 5, 5, "-o", tmp_path / "x.txt")
    assert "not an image" in error_line(capsys, "info", seg)


def test_batch_format_seg_nrrd(tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"image,study,object,box\n{CT_SMALL},ct,vessel,\"72,0,110,28\"\n")
    out = tmp_path / "out"
    assert main(["batch", str(manifest), "-o", str(out), "--workers", "0", "--format", "seg-nrrd"]) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["ct.seg.nrrd", "report.csv"]
    data, _, h = nrrd_world(out / "ct.seg.nrrd")
    assert [f["Name"] for f in segment_fields(h)] == ["vessel"] and data.any()
    # the same object as `boxseg segment` writes
    assert main(["segment", str(CT_SMALL), "--box", "72,0,110,28", "-o", str(tmp_path / "one.nii.gz")]) == 0
    assert_same_in_world(out / "ct.seg.nrrd", tmp_path / "one.nii.gz")
    lm = read_labelmap(out / "ct.seg.nrrd", open_image(CT_SMALL))
    assert [(s.value, s.name) for s in lm.segments] == [(1, "vessel")]
