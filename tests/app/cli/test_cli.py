"""The `boxseg` command line: exit codes, one-line errors, eval CSV on real cases."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import EVAL, REPO, needs_shared


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "app.cli.main", *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=600)


def _one_line_error(r):
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("boxseg: error:"), r.stderr
    return lines[0]


def test_models_lists_bundled():
    r = run("models")
    assert r.returncode == 0
    assert "litemedsam-fp32" in r.stdout and " ok " in r.stdout


def test_bad_inputs_exit_2(tmp_path):
    np.savez(tmp_path / "2DBox_nobox.npz", imgs=np.zeros((8, 8, 3), np.uint8))
    assert "missing key" in _one_line_error(run("segment", str(tmp_path / "2DBox_nobox.npz"), "--box", "1,1,5,5"))
    assert "no such file" in _one_line_error(run("segment", str(tmp_path / "nope.png"), "--box", "1,1,5,5"))
    img = str(REPO / "assets" / "sample" / "CT_small.dcm")
    assert "outside" in _one_line_error(run("segment", img, "--box", "200,200,250,250", "-o", str(tmp_path / "m.png")))
    assert "zero" in _one_line_error(run("segment", img, "--box", "10,10,10,50", "-o", str(tmp_path / "m.png")))
    assert "not found" in _one_line_error(run("eval", str(tmp_path), "--model", "nope"))


def test_eval_folder_without_cases(tmp_path):
    assert "not a folder" in _one_line_error(run("eval", str(tmp_path / "missing")))
    (tmp_path / "x").mkdir()
    assert "no challenge cases" in _one_line_error(run("eval", str(tmp_path / "x")))


def test_segment_sample(tmp_path):
    out = tmp_path / "mask.png"
    r = run("segment", str(REPO / "assets" / "sample" / "CT_small.dcm"), "--box", "72,0,110,28", "-o", str(out),
            "--overlay", str(tmp_path / "ov.png"))
    assert r.returncode == 0, r.stderr
    import cv2

    m = cv2.imread(str(out), cv2.IMREAD_GRAYSCALE)
    assert m.shape == (128, 128)
    area = int((m > 0).sum())
    assert 400 < area < 1100, area  # the aorta, about 30 px across
    # an LPS-stored DICOM axial slice is displayed as stored: the overlay is the stored slice's
    from engine.io.raster import write_overlay_png
    from engine.io.dispatch import open_image

    img = open_image(REPO / "assets" / "sample" / "CT_small.dcm")
    assert not any((img.display.transpose, img.display.flip_rows, img.display.flip_cols))
    slice_u8, _ = img.model_slice(0)
    write_overlay_png(tmp_path / "want.png", slice_u8, m > 0, [72, 0, 110, 28])
    assert np.array_equal(cv2.imread(str(tmp_path / "ov.png")), cv2.imread(str(tmp_path / "want.png")))


def test_segment_overlay_of_a_nifti_is_shown_as_the_app_shows_it(tmp_path):
    """The MNI sample is stored RAS (rows run posterior -> anterior): the overlay is flipped to the
    radiological view (anterior at the top, patient right on the left), as the app's slice view."""
    import cv2

    mni = REPO / "assets" / "sample" / "mni_icbm152_t1_2009a.nii.gz"
    ov = tmp_path / "ov.png"
    r = run("segment", str(mni), "--slice", "50", "--box", "78,90,118,124", "-o", str(tmp_path / "m.nii.gz"),
            "--overlay", str(ov))
    assert r.returncode == 0, r.stderr
    from engine.io.dispatch import open_image

    img = open_image(mni)
    stored = img.model_slice(50)[0]
    png = cv2.imread(str(ov))  # BGR
    assert png.shape[:2] == stored.shape
    untouched = (png[:, :, 0] == png[:, :, 1]) & (png[:, :, 1] == png[:, :, 2])  # grey: no mask, no box
    assert untouched.mean() > 0.9
    assert np.array_equal(png[:, :, 0][untouched], stored[::-1, ::-1][untouched])  # both in-plane axes flipped
    # anatomy: on this slice the frontal lobes (anterior) are narrow and the cerebellum (posterior)
    # is wide (brain pixels in the top vs bottom 30% of the brain's rows: ~3000 vs ~4600);
    # anterior must be at the top of the PNG
    brain = png[:, :, 0] > 20
    rows = np.flatnonzero(brain.any(axis=1))
    top, bottom = rows.min(), rows.max()
    band = int(0.3 * (bottom - top))
    assert brain[top:top + band].sum() < 0.8 * brain[bottom - band:bottom + 1].sum()
    # the box (green, BGR (0,220,0)) is drawn around the same pixels as the stored box, flipped
    green = (png[:, :, 1] == 220) & (png[:, :, 0] == 0) & (png[:, :, 2] == 0)
    gy, gx = np.nonzero(green)
    h, w = stored.shape
    assert (gx.min(), gy.min(), gx.max(), gy.max()) == (w - 1 - 118, h - 1 - 124, w - 1 - 78, h - 1 - 90)


@needs_shared
def test_eval_writes_csv_and_summary(tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    for n in ("2DBox_US_HC18_000-HC", "3DBox_MR_ivadomed-SpinalCord_unf01-T2w"):
        src = next(EVAL.glob(f"{n}*.npz"), None)
        if src is None:
            pytest.skip(f"{n} not in shared/data/eval")
        shutil.copy(src, cases / src.name)
    # a broken case is reported and does not stop the others
    np.savez(cases / "2DBox_Broken_x_1.npz", imgs=np.zeros((8, 8, 3), np.uint8))
    out = tmp_path / "res.csv"
    r = run("eval", str(cases), "--csv", str(out))
    assert r.returncode == 1, r.stderr
    assert "2DBox_Broken_x_1.npz: " in r.stderr and "missing key" in r.stderr
    rows = list(csv.DictReader(open(out)))
    assert [r_["case"][:5] for r_ in rows] == ["2DBox", "3DBox"]
    assert set(rows[0]) >= {"case", "dsc", "nsd", "seconds"}
    assert all(float(x["dsc"]) > 0.7 for x in rows)
    assert "overall" in r.stdout and "3D MR" in r.stdout
