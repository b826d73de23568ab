"""No command writes over its input (issue 18): -o equal to the image, a file of its DICOM series, the
label map being converted, or a link to any of them exits 2 with one line, and the input is unchanged.
All of these are refused before the model loads, so they run in a fraction of a second."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest

from engine.io.dispatch import open_image
from engine.io.outputs import check_output
from tests.app.cli.test_io_cli import CT_SMALL, error_line
from tests.engine.io.test_dicom import write_series

BOX = "72,0,110,28"


def digest(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def image(tmp_path):
    p = tmp_path / "scan.dcm"
    shutil.copy(CT_SMALL, p)
    return p


def test_segment_refuses_to_write_over_the_image(capsys, image):
    before = digest(image)
    line = error_line(capsys, "segment", image, "--box", BOX, "-o", image)
    assert "scan.dcm" in line and "image being read" in line
    line = error_line(capsys, "segment", image, "--box", BOX, "-o", image.parent / "." / "scan.dcm")
    assert "image being read" in line
    line = error_line(capsys, "segment", image, "--box", BOX, "-o", image.parent / "m.png", "--overlay", image)
    assert "image being read" in line
    assert digest(image) == before


@pytest.mark.skipif(os.name != "posix", reason="symbolic and hard links")
def test_links_to_the_image_are_the_image(capsys, image):
    before = digest(image)
    (image.parent / "link.dcm").symlink_to(image)
    os.link(image, image.parent / "hard.dcm")
    for name in ("link.dcm", "hard.dcm"):
        assert "image being read" in error_line(capsys, "segment", image, "--box", BOX, "-o", image.parent / name)
    assert digest(image) == before


def test_a_file_of_the_series_is_protected_but_new_files_may_go_beside(tmp_path, capsys):
    series = tmp_path / "series"
    write_series(series, [(0, 0, z) for z in (0.0, 2.5, 5.0)])
    files = sorted(series.iterdir())
    before = [digest(f) for f in files]
    img = open_image(series)
    assert sorted(img.files) == files
    line = error_line(capsys, "segment", series, "--box", BOX, "--slice", "1", "-o", files[1])
    assert files[1].name in line
    assert [digest(f) for f in files] == before
    assert check_output(series / "seg.nii.gz", img) == series / "seg.nii.gz"


def test_convert_and_stats_refuse_their_inputs(tmp_path, capsys, image):
    from app.cli.main import main

    mask = tmp_path / "mask.png"
    assert main(["segment", str(image), "--box", BOX, "-o", str(mask)]) == 0
    capsys.readouterr()
    before = digest(mask), digest(image)
    assert "an input being read" in error_line(capsys, "convert", mask, "--reference", image, "-o", mask)
    assert "image being read" in error_line(capsys, "convert", mask, "--reference", image, "-o", image)
    assert "being read" in error_line(capsys, "convert", image, "-o", image)
    assert "an input being read" in error_line(capsys, "stats", image, mask, "--csv", mask)
    assert (digest(mask), digest(image)) == before
