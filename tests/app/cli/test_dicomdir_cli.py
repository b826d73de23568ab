"""``boxseg info`` / ``boxseg segment`` read a DICOMDIR (a patient CD built with pydicom's FileSet): its series
listed without patient data, ``--series`` picks one by number or UID."""

from __future__ import annotations

import numpy as np

from app.cli.main import main
from engine.io.dispatch import open_image
from tests.engine.io.patient_cd import PATIENT_A, PATIENT_B, SPECS, write_patient_cd


def test_info_lists_a_dicomdir_and_opens_the_series_asked_for(capsys, tmp_path):
    cd = write_patient_cd(tmp_path / "cd")
    assert main(["info", str(cd), "--series", "2"]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0] == f"{cd}: 3 DICOM series"
    assert lines[1:4] == [f"  #1 CT 5 slice(s) 8x8 'venous' {SPECS[0].uid}",
                          f"  #2 MR 3 slice(s) 6x6 'T1' {SPECS[2].uid}",
                          f"  #3 CT 2 slice(s) 8x8 'scout' {SPECS[1].uid}"]
    assert "shape: 6 x 6 pixels x 3 slice(s)" in out.out  # #2: the MR
    for ident in (*PATIENT_A, *PATIENT_B, "Cdtest", "20240115", "2024-01-15"):
        assert ident not in out.out + out.err
    img = open_image(cd, series=SPECS[1].uid)
    np.testing.assert_array_equal(img.voxels[:, 0, 0], [300, 301])
