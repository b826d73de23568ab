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
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, cwd=REPO,
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
    assert (tmp_path / "ov.png").is_file()


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
