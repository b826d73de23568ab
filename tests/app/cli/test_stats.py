"""`boxseg stats`: the CSV contract, the same rows from a DICOM-SEG and its NIfTI, one-line errors."""

from __future__ import annotations

import csv
import json

import pytest

from app.cli.main import main
from engine.data.measure import COLUMNS
from tests.conftest import DATA, REPO, needs_shared

CT = DATA / "raw" / "dcmqi" / "ct-3slice"
SEG = DATA / "raw" / "dcmqi" / "liver.dcm"


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@needs_shared
def test_dicom_seg_and_its_nifti_give_the_same_rows(tmp_path, capsys):
    assert main(["convert", str(SEG), "-o", str(tmp_path / "liver.nii.gz"), "--reference", str(CT)]) == 0
    assert main(["stats", str(CT), str(SEG), "--csv", str(tmp_path / "seg.csv")]) == 0
    assert main(["stats", str(CT), str(tmp_path / "liver.nii.gz"), "--csv", str(tmp_path / "nii.csv")]) == 0
    seg, nii = _rows(tmp_path / "seg.csv"), _rows(tmp_path / "nii.csv")
    with open(tmp_path / "seg.csv", newline="") as f:
        assert tuple(next(csv.reader(f))) == COLUMNS
    assert len(seg) == 1 and int(seg[0]["voxels"]) > 1000 and seg[0]["name"] == "Liver"
    keys = [c for c in COLUMNS if c != "name"]  # NIfTI stores no names
    assert [{k: r[k] for k in keys} for r in seg] == [{k: r[k] for k in keys} for r in nii]
    capsys.readouterr()
    assert main(["stats", str(CT), str(SEG), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["voxels"] == int(seg[0]["voxels"]) and rows[0]["intensity_unit"] == "HU"


def test_a_label_map_of_another_grid_is_a_one_line_error(tmp_path, capsys):
    import numpy as np

    from engine.io.raster import write_label_png

    write_label_png(tmp_path / "small.png", np.ones((8, 8), np.uint8))
    assert main(["stats", str(REPO / "assets" / "sample" / "CT_small.dcm"), str(tmp_path / "small.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("boxseg: error: small.png") and "\n" not in err


@pytest.mark.parametrize("args", [["stats"], ["stats", "only-one-arg"]])
def test_usage_errors(args):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2


def test_segment_stats_is_the_stats_row_of_its_output(tmp_path, capsys):
    ct = str(REPO / "assets" / "sample" / "CT_small.dcm")
    out = tmp_path / "m.nii.gz"
    assert main(["segment", ct, "--box", "72,0,110,28", "-o", str(out), "--stats", "--name", "bone"]) == 0
    seg_lines = capsys.readouterr().out.strip().splitlines()
    assert main(["stats", ct, str(out)]) == 0
    stats_lines = capsys.readouterr().out.strip().splitlines()
    # same header, figures and name (the NIfTI's ITK-SNAP label description beside it keeps the name)
    assert seg_lines[-2].split() == stats_lines[-2].split()
    assert seg_lines[-1].split() == stats_lines[-1].split() and "bone" in stats_lines[-1]
    assert int(seg_lines[-1].split()[2]) > 100
