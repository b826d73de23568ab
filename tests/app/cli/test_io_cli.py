"""`boxseg segment / info / convert` on medical images: outputs in the input's geometry, and every bad
input of issue 4 as a one-line error with exit code 2 (no traceback, no patient name or ID)."""

from __future__ import annotations

import subprocess
import sys

import cv2
import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest

from app.cli.main import main
from engine.io.dispatch import open_image
from tests.conftest import DATA, REPO, needs_shared
from tests.engine.io.test_dicom import SECRET_ID, SECRET_NAME, nrrd_affine_ras, pd_file, write_series

RAW = DATA / "raw"
SERIES = RAW / "dcmqi" / "ct-3slice"
SPLEEN = RAW / "ivadomed-spleen" / "sub-spleen2_ct.nii.gz"
SPLEEN_SEG = RAW / "ivadomed-spleen" / "sub-spleen2_ct_seg-manual.nii.gz"
CT_SMALL = REPO / "assets" / "sample" / "CT_small.dcm"


def run(*args):
    return subprocess.run([sys.executable, "-m", "app.cli.main", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=600)


def error_line(capsys, *args) -> str:
    """Run the CLI in-process; it must exit 2 with exactly one 'boxseg: error:' line on stderr."""
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    assert rc == 2, (rc, out.err)
    lines = [ln for ln in out.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("boxseg: error:"), out.err
    assert "Traceback" not in out.err
    assert SECRET_NAME.split("^")[0] not in out.err + out.out and SECRET_ID not in out.err + out.out
    return lines[0]


def no_secrets(text: str) -> None:
    for s in (SECRET_NAME.split("^")[0], SECRET_ID, "CompressedSamples"):  # CT_small's own patient name
        assert s not in text


# --- bad inputs through `boxseg segment` ---------------------------------------------------------

@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """Bad input files, built once."""
    d = tmp_path_factory.mktemp("bad")
    data = pd_file("CT_small.dcm").read_bytes()
    (d / "truncated.dcm").write_bytes(data[: len(data) // 2])
    (d / "nodicom").mkdir()
    (d / "nodicom" / "readme.txt").write_text("no images here")
    write_series(d / "mixed" / "a", [(0, 0, 0), (0, 0, 5)])
    write_series(d / "mixed" / "b", [(0, 0, 0), (0, 0, 5)], src="MR_small.dcm")
    write_series(d / "sizes", [(0, 0, 0), (0, 0, 2), (0, 0, 4)], sizes=[None, (64, 64), None])
    write_series(d / "volume", [(0, 0, 0), (0, 0, 2), (0, 0, 4)])
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4, 3), np.float32), np.eye(4)), d / "4d.nii.gz")
    (d / "text.nii.gz").write_text("just text\n")
    cv2.imwrite(str(d / "flat.png"), np.full((16, 16), 128, np.uint8))
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.int16), np.eye(4)), d / "flat.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((6, 6, 2), np.uint8), np.eye(4)), d / "wrong_grid.nii.gz")
    return d


@pytest.mark.parametrize("case,args,expect", [
    ("truncated DICOM", ["truncated.dcm", "--box", 1, 1, 20, 20], "truncated"),
    ("folder without DICOM", ["nodicom", "--box", 1, 1, 20, 20], "no DICOM image files"),
    ("mixed series, no choice", ["mixed", "--box", 1, 1, 20, 20, "--slice", 0], "choose one with --series"),
    ("unknown series", ["mixed", "--series", "1.2.3.4", "--box", 1, 1, 20, 20, "--slice", 0], "no series"),
    ("inconsistent slice sizes", ["sizes", "--box", 1, 1, 20, 20, "--slice", 0], "different sizes"),
    ("4D NIfTI", ["4d.nii.gz", "--box", 1, 1, 5, 5, "--slice", 0], "4D NIfTI"),
    ("text named .nii.gz", ["text.nii.gz", "--box", 1, 1, 5, 5, "--slice", 0], "not a readable NIfTI"),
    ("zero-range PNG", ["flat.png", "--box", 1, 1, 5, 5], "zero intensity range"),
    ("zero-range NIfTI", ["flat.nii.gz", "--box", 1, 1, 5, 5, "--slice", 0], "zero intensity range"),
    ("box outside", ["volume", "--box", 200, 200, 250, 250, "--slice", 1], "outside"),
    ("box of zero area", ["volume", "--box", 10, 10, 10, 50, "--slice", 1], "zero or negative area"),
    ("slice out of range", ["volume", "--box", 1, 1, 20, 20, "--slice", 3], "slice 3 is out of range"),
    ("z-range out of range", ["volume", "--box", 1, 1, 20, 20, "--z-range", 0, 9], "slice 9 is out of range"),
    ("volume without a slice", ["volume", "--box", 1, 1, 20, 20], "give --slice Z"),
    ("missing file", ["nope.nii.gz", "--box", 1, 1, 20, 20], "no such file"),
    ("bad window", ["volume", "--box", 1, 1, 20, 20, "--slice", 0, "--window", "40"], "window must be"),
    ("box with 3 numbers", ["volume", "--box", 1, 1, 20, "--slice", 0], "--box must be"),
])
def test_segment_bad_input(capsys, bad, case, args, expect):
    out = bad / "out.nii.gz"
    args = [bad / args[0] if i == 0 else a for i, a in enumerate(args)]
    line = error_line(capsys, "segment", *args, "-o", out)
    assert expect in line, (case, line)
    assert not out.exists()


def test_segment_bad_outputs(capsys, bad, tmp_path):
    assert "DICOM-SEG needs a DICOM input" in error_line(
        capsys, "segment", bad / "flat.png", "--box", 1, 1, 5, 5, "-o", tmp_path / "x.dcm")
    assert "output format" in error_line(capsys, "segment", CT_SMALL, "--box", 1, 1, 5, 5, "-o", tmp_path / "x.txt")
    assert "PNG holds one slice" in error_line(
        capsys, "segment", bad / "volume", "--box", 1, 1, 20, 20, "--z-range", 0, 2, "-o", tmp_path / "x.png")


def test_label_map_of_wrong_geometry(capsys, bad, tmp_path):
    line = error_line(capsys, "convert", bad / "wrong_grid.nii.gz", "--reference", bad / "volume",
                      "-o", tmp_path / "x.dcm")
    assert "geometry does not match" in line and "shape" in line
    assert "needs --reference" in error_line(capsys, "convert", bad / "wrong_grid.nii.gz", "-o", tmp_path / "x.dcm")


def test_bad_input_via_real_process(bad):
    """The installed entry point's path: exit code 2, one line, no traceback."""
    r = run("segment", bad / "text.nii.gz", "--box", "1", "1", "5", "5", "--slice", "0", "-o", bad / "o.nii.gz")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert [ln for ln in r.stderr.splitlines() if ln.strip()] == [
        "boxseg: error: text.nii.gz: not a readable NIfTI file (bad header or compressed data)"]


# --- info ------------------------------------------------------------------------------------------

def test_info_lists_series_without_patient_data(capsys, bad):
    assert main(["info", str(bad / "mixed"), "--series", "1"]) == 0
    out = capsys.readouterr()
    assert "2 DICOM series" in out.out  # a tie: listed in a stable order, numbered for --series
    assert "CT 2 slice(s) 128x128 'synthetic'" in out.out and "MR 2 slice(s) 64x64 'synthetic'" in out.out
    assert "  #1 " in out.out and "  #2 " in out.out
    assert "orientation: index axes x,y,z -> LPS" in out.out and "intensity range" in out.out
    no_secrets(out.out + out.err)


@needs_shared
def test_info_nifti(capsys):
    assert main(["info", str(SPLEEN)]) == 0
    out = capsys.readouterr().out
    assert "164 x 166 pixels x 26 slice(s)" in out and "0.7949 x 0.7949 mm in-plane, 5 mm" in out
    assert "-> RAS" in out and "-1019..949 HU" in out


# --- segment with the model (few runs: each encoder call costs ~0.5-2 s) ---------------------------

@needs_shared
def test_segment_spleen_nifti(tmp_path):
    gt = np.asarray(nib.load(str(SPLEEN_SEG)).dataobj)
    z = 13
    i, j = np.nonzero(gt[:, :, z])
    box = (i.min(), j.min(), i.max(), j.max())  # x = NIfTI i, y = NIfTI j
    out = tmp_path / "spleen.nii.gz"
    r = run("segment", SPLEEN, "--box", *box, "--slice", z, "-o", out)
    assert r.returncode == 0, r.stderr
    lab, src = nib.load(str(out)), nib.load(str(SPLEEN))
    assert lab.shape == src.shape
    np.testing.assert_array_equal(lab.affine, src.affine)
    m = np.asarray(lab.dataobj)
    assert m.dtype == np.uint8 and set(np.unique(m)) == {0, 1}
    assert np.flatnonzero(m.any(axis=(0, 1))).tolist() == [z]
    sl = m[:, :, z] > 0
    inside = np.zeros_like(sl)
    inside[box[0]:box[2] + 1, box[1]:box[3] + 1] = True
    assert sl.sum() > 1000 and (sl & ~inside).sum() < 0.05 * sl.sum()
    dsc = 2 * (sl & (gt[:, :, z] > 0)).sum() / (sl.sum() + (gt[:, :, z] > 0).sum())
    assert dsc > 0.85, dsc


@needs_shared
def test_segment_dcmqi_series_nifti_and_dicom_seg(tmp_path):
    liver, aff_ras = nrrd_affine_ras(RAW / "dcmqi" / "liver_seg.nrrd")  # (i, j, k) = (column, row, slice)
    i, j = np.nonzero(liver[:, :, 1])
    box = (i.min(), j.min(), i.max(), j.max())
    nii = tmp_path / "liver.nii.gz"
    r = run("segment", SERIES, "--box", *box, "--slice", 1, "-o", nii)
    assert r.returncode == 0, r.stderr
    lab = nib.load(str(nii))
    assert lab.shape == liver.shape
    np.testing.assert_allclose(lab.affine, aff_ras, atol=1e-4)  # the NRRD's LPS geometry, as RAS
    m = np.asarray(lab.dataobj)
    dsc = 2 * ((m[:, :, 1] > 0) & (liver[:, :, 1] > 0)).sum() / ((m[:, :, 1] > 0).sum() + (liver[:, :, 1] > 0).sum())
    assert dsc > 0.8, dsc

    dcm = tmp_path / "liver.dcm"
    r = run("segment", SERIES, "--box", *box, "--z-range", 0, 2, "-o", dcm, "--name", "liver")
    assert r.returncode == 0, r.stderr
    seg = hd.seg.segread(str(dcm))
    series_uids = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in SERIES.glob("*.dcm")}
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == open_image(SERIES).series_uid
    assert {u[2] for u in seg.get_source_image_uids()} == series_uids
    d = seg.get_segment_description(1)
    assert d.SegmentLabel == "liver" and d.SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert d.SegmentAlgorithmName.startswith("BoxSeg ")
    back = seg.get_volume()
    assert back.array.sum() > 0
    no_secrets(r.stdout + r.stderr)


# --- convert ------------------------------------------------------------------------------------------

@needs_shared
def test_convert_liver_seg_equals_nrrd(capsys, tmp_path):
    liver, aff_ras = nrrd_affine_ras(RAW / "dcmqi" / "liver_seg.nrrd")
    out = tmp_path / "liver.nii.gz"
    assert main(["convert", str(RAW / "dcmqi" / "liver.dcm"), "--reference", str(SERIES), "-o", str(out)]) == 0
    lab = nib.load(str(out))
    np.testing.assert_array_equal(np.asarray(lab.dataobj), liver)
    np.testing.assert_allclose(lab.affine, aff_ras, atol=1e-4)
    # and back to DICOM-SEG against the series, then to NIfTI again: the identity
    assert main(["convert", str(out), "--reference", str(SERIES), "-o", str(tmp_path / "liver.dcm")]) == 0
    assert main(["convert", str(tmp_path / "liver.dcm"), "-o", str(tmp_path / "again.nii.gz")]) == 0
    again = nib.load(str(tmp_path / "again.nii.gz"))
    np.testing.assert_array_equal(np.asarray(again.dataobj), liver)
    np.testing.assert_allclose(again.affine, lab.affine, atol=1e-6)
    capsys.readouterr()


def test_convert_never_leaks_patient_name(tmp_path):
    """highdicom warns with a single-component patient name; none of that may reach the terminal."""
    src = tmp_path / "s"
    write_series(src, [(0, 0, 0), (0, 0, 5)])
    for f in src.iterdir():
        ds = pydicom.dcmread(f)
        ds.PatientName = "SECRETNAME"
        ds.save_as(f)
    img = open_image(src)
    labels = np.zeros((2, 128, 128), np.uint8)
    labels[:, 20:40, 20:40] = 1
    nib.save(nib.Nifti1Image(np.transpose(labels, (2, 1, 0)).copy(), img.affine), tmp_path / "l.nii.gz")
    r = run("convert", tmp_path / "l.nii.gz", "--reference", src, "-o", tmp_path / "l.dcm")
    assert r.returncode == 0, r.stderr
    assert "SECRETNAME" not in r.stdout + r.stderr and SECRET_ID not in r.stdout + r.stderr
    seg = pydicom.dcmread(tmp_path / "l.dcm")
    assert str(seg.PatientName) == "SECRETNAME"  # the SEG itself belongs to the patient, as it must


def test_box_forms():
    """Both `--box X0 Y0 X1 Y1` and the comma form (the model run: tests/app/cli/test_cli.py::test_segment_sample)."""
    from app.cli.segment import parse_cli_box

    assert parse_cli_box(["72,0,110,28"]) == parse_cli_box(["72", "0", "110", "28"]) == [72.0, 0.0, 110.0, 28.0]


def test_image_after_box_is_still_the_image(capsys, tmp_path):
    line = error_line(capsys, "segment", "--box", 1, 1, 5, 5, tmp_path / "missing.png")
    assert "missing.png: no such file" in line
