"""DICOM reading on real files: the dcmqi CT series (against its NRRD label maps' geometry), pydicom's
bundled test files (MONOCHROME1, RGB/YBR, palette, multi-frame, JPEG / JPEG 2000 / JPEG-LS / RLE),
and series built from them to exercise sorting, spacing warnings and refusals."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pydicom
import pytest

from engine.io.dicom import read_dicom, scan_folder
from engine.base.errors import Cancelled, InputError
from engine.data.geometry import LPS_TO_RAS
from engine.io.dispatch import open_image
from tests.conftest import DATA, REPO, needs_shared

RAW = DATA / "raw"
SERIES = RAW / "dcmqi" / "ct-3slice"
PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
SECRET_NAME, SECRET_ID = "Secretname^Patient", "SECRET-ID-4242"


def pd_file(name: str) -> Path:
    """A file bundled with pydicom (never get_testdata_file: it downloads missing ones)."""
    p = PYDICOM_FILES / name
    if not p.is_file():
        pytest.skip(f"{name} is not bundled with this pydicom")
    return p


def nrrd_affine_ras(path: Path) -> tuple[np.ndarray, np.ndarray]:
    nrrd = pytest.importorskip("nrrd", reason="pynrrd (test extra) reads the NRRD reference label maps")
    data, h = nrrd.read(str(path))
    assert h["space"] == "left-posterior-superior"
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(h["space directions"], np.float64).T  # rows of 'space directions' = axis vectors
    lps[:3, 3] = h["space origin"]
    return data, LPS_TO_RAS @ lps


def write_series(folder: Path, positions, *, src: str = "CT_small.dcm", uid: str | None = None,
                 iop=None, sizes=None, names=None, description: str = "synthetic") -> str:
    """Copies of a bundled single-slice file as one series; slice k at positions[k] (LPS mm).

    Files are named and numbered in reverse of their position, so neither file name nor
    InstanceNumber gives the right order. Patient name/ID are set to values the tests look for.
    """
    folder.mkdir(parents=True, exist_ok=True)
    uid = uid or pydicom.uid.generate_uid()
    n = len(positions)
    for k, pos in enumerate(positions):
        ds = pydicom.dcmread(pd_file(src))
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImagePositionPatient = [float(v) for v in pos]
        if iop is not None:
            ds.ImageOrientationPatient = list(iop)
        ds.InstanceNumber = n - k
        ds.PatientName, ds.PatientID = SECRET_NAME, SECRET_ID
        ds.SeriesDescription = description
        ds.PixelData = (ds.pixel_array.astype(np.int16) + 10 * k).astype(ds.pixel_array.dtype).tobytes()
        if sizes is not None and sizes[k] is not None:
            r, c = sizes[k]
            arr = ds.pixel_array[:r, :c].copy()
            ds.Rows, ds.Columns, ds.PixelData = r, c, arr.tobytes()
        name = names[k] if names else f"{n - k:03d}.dcm"
        ds.save_as(folder / name, enforce_file_format=True)
    return uid


# --- the dcmqi series -----------------------------------------------------------------------------

@needs_shared
def test_dcmqi_series_geometry_equals_nrrd():
    img = open_image(SERIES)
    assert img.shape == (3, 512, 512) and img.modality == "CT" and img.units == "HU"
    assert img.warnings == []
    for name in ("liver_seg.nrrd", "spine_seg.nrrd", "heart_seg.nrrd"):
        data, aff = nrrd_affine_ras(RAW / "dcmqi" / name)
        assert data.shape == img.shape[::-1]  # NRRD (i, j, k) = our (x, y, z)
        np.testing.assert_allclose(img.affine, aff, atol=1e-4)
    assert img.orientation == "LPS" and img.display.plane == "axial"
    assert img.spacing == pytest.approx((1.0, 0.810547, 0.810547), abs=1e-6)


@needs_shared
def test_dcmqi_sorted_by_position_with_rescale():
    img = open_image(SERIES)
    # SimpleITK sorts them 03, 02, 01 (ascending along the normal +z: -128.69, -127.69, -126.69)
    for z, name in enumerate(("03.dcm", "02.dcm", "01.dcm")):
        ds = pydicom.dcmread(SERIES / name)
        hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_array_equal(img.voxels[z], hu)
        assert img.dicom[z].SOPInstanceUID == ds.SOPInstanceUID
        np.testing.assert_allclose(img.index_to_ras([[0, 0, z]])[0],
                                   LPS_TO_RAS[:3, :3] @ np.asarray(ds.ImagePositionPatient, float), atol=1e-5)


@needs_shared
def test_series_progress_and_cancel():
    calls = []
    read_dicom(SERIES, progress=lambda d, t: calls.append((d, t)))
    assert (3, 3) in calls and calls[-1] == (3, 3)
    with pytest.raises(Cancelled):
        read_dicom(SERIES, should_stop=lambda: True)


def test_series_sorted_by_position_not_name_or_number(tmp_path):
    pos = [(-158.1, -179.0, z) for z in (-10.0, -7.5, -5.0, -2.5)]
    write_series(tmp_path / "s", pos)
    img = open_image(tmp_path / "s")
    assert img.shape == (4, 128, 128) and img.warnings == []
    ds = pydicom.dcmread(pd_file("CT_small.dcm"))
    base = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    for z in range(4):  # slice k carries +10*k: sorted ascending in z whatever the names/numbers say
        np.testing.assert_array_equal(img.voxels[z], base + 10 * z)
    assert img.spacing[0] == pytest.approx(2.5)
    np.testing.assert_allclose(img.affine[:3, 3], [158.1, 179.0, -10.0])


def test_series_spacing_warnings(tmp_path):
    write_series(tmp_path / "missing", [(0, 0, z) for z in (0.0, 2.0, 4.0, 8.0, 10.0)])
    img = open_image(tmp_path / "missing")
    assert any("1 slice(s) missing" in w for w in img.warnings), img.warnings
    assert img.spacing[0] == pytest.approx(2.0)  # the usual step, not the gap
    write_series(tmp_path / "irregular", [(0, 0, z) for z in (0.0, 2.0, 4.5, 6.0)])
    assert any("irregular slice spacing" in w for w in open_image(tmp_path / "irregular").warnings)
    tilt = np.tan(np.radians(15))
    write_series(tmp_path / "tilt", [(0, z * tilt, z) for z in (0.0, 2.0, 4.0)])
    t = open_image(tmp_path / "tilt")
    assert any("gantry tilt of 15.00 degrees" in w for w in t.warnings), t.warnings
    # the affine keeps the true slice positions (a sheared grid)
    ras = t.index_to_ras([[0, 0, 2]])[0]
    np.testing.assert_allclose(LPS_TO_RAS[:3, :3] @ ras, [0, 4 * tilt, 4.0], atol=1e-6)


def test_series_refusals(tmp_path):
    write_series(tmp_path / "sizes", [(0, 0, 0), (0, 0, 2), (0, 0, 4)], sizes=[None, (64, 64), None])
    with pytest.raises(InputError, match="different sizes"):
        open_image(tmp_path / "sizes")
    write_series(tmp_path / "dup", [(0, 0, 0), (0, 0, 0)])
    with pytest.raises(InputError, match="share a position"):
        open_image(tmp_path / "dup")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no dicom here")
    with pytest.raises(InputError, match="no DICOM image files"):
        open_image(tmp_path / "empty")


def test_mixed_series_choice(tmp_path):
    root = tmp_path / "mixed"
    big = write_series(root / "a", [(0, 0, z) for z in (0, 5, 10)], description="big")
    small = write_series(root / "b" / "deeper", [(0, 0, 0)], src="MR_small.dcm", description="small")
    found = scan_folder(root)
    assert [s.uid for s in found] == [big, small] and found[0].frames == 3 and found[1].modality == "MR"
    assert open_image(root).series_uid == big  # largest by default, recursive scan
    assert open_image(root, series=small).series_uid == small
    assert open_image(root, series="2").series_uid == small
    with pytest.raises(InputError, match="no series"):
        open_image(root, series="1.2.3")
    tie = tmp_path / "tie"
    write_series(tie / "a", [(0, 0, 0)])
    write_series(tie / "b", [(0, 0, 0)], src="MR_small.dcm")
    with pytest.raises(InputError, match="choose one with --series") as e:
        open_image(tie)
    assert SECRET_NAME.split("^")[0] not in str(e.value) and SECRET_ID not in str(e.value)


def test_truncated_dicom(tmp_path):
    data = pd_file("CT_small.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        open_image(tmp_path / "cut.dcm")
    with pytest.raises(InputError, match="truncated"):
        open_image(pd_file("MR_truncated.dcm"))


# --- pydicom's bundled single files ---------------------------------------------------------------

def test_ct_and_mr_small():
    ct = open_image(pd_file("CT_small.dcm"))
    ds = pydicom.dcmread(pd_file("CT_small.dcm"))
    assert ct.shape == (1, 128, 128) and ct.modality == "CT" and ct.units == "HU"
    np.testing.assert_array_equal(ct.voxels[0], ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    assert ct.spacing[1:] == pytest.approx((0.661468, 0.661468))
    assert ct.model_slice(0)[1] == "ct:40:400"
    mr = open_image(pd_file("MR_small.dcm"))
    assert mr.modality == "MR" and mr.model_slice(0)[1] == "pct:0.5:99.5"


def test_monochrome1_is_inverted():
    f = pd_file("dicomdirtests/77654033/CR1/6154")
    ds = pydicom.dcmread(f)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    img = open_image(f)
    raw = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    # inverted within the rescaled stored range: brighter is denser, whatever the header said
    corr = np.corrcoef(img.voxels[0].ravel(), raw.ravel())[0, 1]
    assert corr == pytest.approx(-1.0)
    hi = ((1 << int(ds.BitsStored)) - 1) * float(ds.RescaleSlope) + 2 * float(ds.RescaleIntercept)
    np.testing.assert_allclose(img.voxels[0], hi - raw, rtol=1e-6)


@pytest.mark.parametrize("name", ["SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_dcmtk_+eb+cy+n1.dcm",
                                  "SC_ybr_full_422_uncompressed.dcm", "SC_rgb_rle.dcm", "SC_rgb_gdcm_KY.dcm"])
def test_rgb_and_ybr(name):
    img = open_image(pd_file(name))
    assert img.is_rgb and img.voxels.dtype == np.uint8 and img.shape == (1, 100, 100)
    ref = open_image(pd_file("SC_rgb_rle.dcm"))  # lossless RGB of the same picture
    # YBR (full, 4:2:2) and lossy JPEG come back as RGB close to it, not as raw Y/Cb/Cr
    assert np.abs(img.voxels.astype(int) - ref.voxels.astype(int)).mean() < 8
    u8, key = img.model_slice(0)
    assert u8.shape == (100, 100, 3) and key == "u8"


def test_palette_color_becomes_rgb():
    img = open_image(pd_file("examples_palette.dcm"))
    assert img.is_rgb and img.shape == (1, 350, 800)


def test_multiframe_as_volume():
    dose = open_image(pd_file("rtdose.dcm"))  # 15 frames, GridFrameOffsetVector 0..70 mm
    assert dose.shape == (15, 10, 10) and dose.spacing == pytest.approx((5.0, 10.0, 10.0))
    ds = pydicom.dcmread(pd_file("rtdose.dcm"))
    np.testing.assert_allclose(dose.voxels, ds.pixel_array * float(ds.DoseGridScaling), rtol=1e-6)
    us = open_image(pd_file("examples_ybr_color.dcm"))  # US cine: frames kept in order, no geometry
    assert us.shape == (30, 240, 320) and us.is_rgb
    assert any("without patient geometry" in w for w in us.warnings)
    two = open_image(pd_file("SC_rgb_rle_2frame.dcm"))
    assert two.shape == (2, 100, 100) and two.is_rgb


@pytest.mark.parametrize("name,module", [("MR_small_jp2klossless.dcm", "openjpeg"), ("MR_small_RLE.dcm", None),
                                         ("MR_small_jpeg_ls_lossless.dcm", "jpeg_ls")])
def test_compressed_equals_uncompressed(name, module):
    if module:
        pytest.importorskip(module)
    ref = open_image(pd_file("MR_small.dcm"))
    img = open_image(pd_file(name))
    np.testing.assert_array_equal(img.voxels, ref.voxels)
    np.testing.assert_allclose(img.affine, ref.affine)


def jpeg_lossless_sv1(src: Path, out: Path) -> Path:
    """``src`` re-encoded by GDCM as JPEG Lossless, Process 14, Selection Value 1 (1.2.840.10008.1.2.4.70)."""
    import gdcm

    r = gdcm.ImageReader()
    r.SetFileName(str(src))
    assert r.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
    change.SetInput(r.GetImage())
    assert change.Change()
    w = gdcm.ImageWriter()
    w.SetFileName(str(out))
    w.SetFile(r.GetFile())
    w.SetImage(change.GetOutput())
    assert w.Write()
    return out


def test_jpeg_lossless_sv1_equals_uncompressed(tmp_path):
    pytest.importorskip("gdcm", reason="python-gdcm (Apache-2.0/BSD; optional, not in the installers: "
                                       "docs/formats.md) decodes JPEG Lossless")
    assert pydicom.dcmread(pd_file("SC_rgb_jpeg_gdcm.dcm")).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"
    rgb = open_image(pd_file("SC_rgb_jpeg_gdcm.dcm"))  # 8-bit RGB, JPEG Lossless SV1
    assert rgb.is_rgb
    np.testing.assert_array_equal(rgb.voxels, open_image(pd_file("SC_rgb_rle.dcm")).voxels)
    for name in ("CT_small.dcm", "MR_small.dcm"):  # 16-bit signed CT (HU after rescale), 16-bit MR
        out = jpeg_lossless_sv1(pd_file(name), tmp_path / name)
        ds = pydicom.dcmread(out)
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70" and ds.BitsStored == 16
        assert len(ds.PixelData) < ds.Rows * ds.Columns * 2  # really compressed
        img, ref = open_image(out), open_image(pd_file(name))
        np.testing.assert_array_equal(img.voxels, ref.voxels)  # (GDCM's writer rewrites some geometry tags)


def _open_error_without(modules: tuple[str, ...], name: str) -> str:
    """open_image's InputError for pydicom test file ``name`` in a fresh process where ``modules`` cannot be
    imported (decoders hidden as on a machine without them) — in its pixel decoder child too
    (engine.io.decoder_process), which inherits the environment: hidden by a ``sitecustomize``."""
    code = (
        "from engine.io.dispatch import open_image\n"
        "from engine.base.errors import InputError\n"
        f"try:\n    open_image({str(pd_file(name))!r})\n"
        "except InputError as e:\n    print(e)\n"
    )
    with tempfile.TemporaryDirectory() as hide:
        Path(hide, "sitecustomize.py").write_text(f"import sys\nfor m in {modules!r}: sys.modules[m] = None\n")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([hide, str(REPO), os.environ.get("PYTHONPATH", "")])}
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                           env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_jpeg_lossless_without_decoder_names_a_permissive_package():
    """Without GDCM (and without the GPL libjpeg), the one-line error names python-gdcm."""
    msg = _open_error_without(("gdcm", "libjpeg"), "SC_rgb_jpeg_gdcm.dcm")
    assert "\n" not in msg and "no decoder installed for JPEG Lossless" in msg and msg.endswith("pip install python-gdcm")


def test_jpeg2000_ct():
    pytest.importorskip("openjpeg")
    ct = open_image(pd_file("693_J2KI.dcm"))
    assert ct.modality == "CT" and ct.shape == (1, 512, 512) and ct.voxels.min() < -900


def test_missing_codec_names_the_package():
    """With every JPEG 2000 decoder hidden, the error says what to pip install (one line)."""
    msg = _open_error_without(("pylibjpeg", "openjpeg", "libjpeg", "rle", "PIL", "jpeg_ls", "gdcm"),
                              "MR_small_jp2klossless.dcm")
    assert "\n" not in msg and "no decoder installed" in msg and "pip install pylibjpeg pylibjpeg-openjpeg" in msg


def test_undecodable_and_non_image_objects():
    with pytest.raises(InputError, match="cannot decode"):  # 12-bit JPEG extended with a broken stream
        open_image(pd_file("JPEG-lossy.dcm"))
    with pytest.raises(InputError, match="DICOM-SEG"):
        open_image(pd_file("liver_1frame.dcm"))
    with pytest.raises(InputError, match="without an image"):
        open_image(pd_file("rtplan.dcm"))


def test_non_image_objects_skipped_in_folders(tmp_path):
    write_series(tmp_path / "f", [(0, 0, 0), (0, 0, 3)])
    shutil.copy(pd_file("liver_1frame.dcm"), tmp_path / "f" / "seg.dcm")
    shutil.copy(pd_file("rtplan.dcm"), tmp_path / "f" / "plan.dcm")
    (tmp_path / "f" / "README").write_text("text")
    found = scan_folder(tmp_path / "f")
    assert len(found) == 1 and found[0].frames == 2


def enhanced_from_series(folder: Path, out: Path) -> Path:
    """A Legacy Converted Enhanced CT (one multi-frame file, per-frame positions) made by highdicom."""
    import warnings

    import highdicom as hd

    dss = [pydicom.dcmread(f) for f in sorted(folder.iterdir())]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hd.legacy.LegacyConvertedEnhancedCTImage(dss, series_instance_uid=hd.UID(), series_number=5,
                                                 sop_instance_uid=hd.UID(), instance_number=1).save_as(out)
    return out


def test_enhanced_multiframe_equals_its_series(tmp_path):
    write_series(tmp_path / "s", [(0, 0, z) for z in (0.0, 2.5, 5.0, 7.5)])
    series = open_image(tmp_path / "s")
    enh = open_image(enhanced_from_series(tmp_path / "s", tmp_path / "enh.dcm"))
    assert enh.shape == (4, 128, 128) and enh.warnings == [] and enh.dicom_frames is not None
    np.testing.assert_array_equal(enh.voxels, series.voxels)
    np.testing.assert_allclose(enh.affine, series.affine, atol=1e-6)
