"""Issue 18's crafted bad inputs (tests/engine/io/crafted.py) through the one open dispatch.

Every bad input must raise BoxSeg's own InputError (the CLI's one-line error, exit 2) that names the
file and quotes no patient data, within 5 s and without allocating what the header merely claims
(Python-side peak allocation, numpy's included, measured with tracemalloc); odd but valid files open.
"""

from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np
import pytest

from engine.base.errors import InputError
from engine.io.dicom import MAX_DEPTH, scan_folder
from engine.io.dispatch import open_image
from tests.engine.io import crafted as c

#: a bad input may allocate this much at most (the crafted headers claim GiB to TiB)
PEAK_MAX = 64 << 20


def _refused(path):
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(InputError) as err:
            open_image(path)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return str(err.value), time.perf_counter() - t0, peak


@pytest.mark.parametrize("maker", c.BAD, ids=lambda m: m.__name__)
def test_bad_input_is_an_input_error(tmp_path, maker):
    path = maker(tmp_path)
    msg, seconds, peak = _refused(path)
    assert "\n" not in msg and path.name in msg and c.PATIENT not in msg, msg
    assert seconds < 5, (seconds, msg)
    assert peak < PEAK_MAX, (peak >> 20, msg)


def test_the_deflate_bomb_is_not_inflated(tmp_path):
    """The 1 GiB bomb: refused after inflating at most the 16 MiB a header may take (it took 13 s before)."""
    msg, seconds, peak = _refused(c.dicom_deflate_bomb(tmp_path))
    assert "bomb.dcm" in msg and seconds < 5 and peak < PEAK_MAX, (msg, seconds, peak >> 20)


def test_a_valid_deflated_file_still_opens():
    from pydicom.data import get_testdata_file
    import pydicom

    path = get_testdata_file("image_dfl.dcm")
    img = open_image(path)
    ref = pydicom.dcmread(path).pixel_array
    assert np.array_equal(img.voxels[0], ref)


def test_one_bad_file_is_left_out_of_its_series(tmp_path):
    folder = c.series_with_one_bad_file(tmp_path / "series")
    img = open_image(folder)
    assert img.depth == 3
    note = " ".join(img.warnings)
    assert "s003.dcm" in note and "RescaleSlope" in note and c.PATIENT not in note


def test_a_folder_of_bad_files_names_the_first(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    c.dicom_text_slope(folder)
    with pytest.raises(InputError, match=r"no usable DICOM image \(1 refused, first: slope\.dcm: RescaleSlope"):
        open_image(folder)


def test_a_fifo_in_the_folder_does_not_block(tmp_path):
    folder = c.fifo_in_series(tmp_path / "series")
    out = {}

    def run():
        try:
            out["img"] = open_image(folder)
        except Exception as e:  # noqa: BLE001 - reported below
            out["err"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # unblock the reader so the test run can end, then fail
        with open(folder / "pipe.dcm", "wb"):
            pass
        pytest.fail("opening a folder with a FIFO blocked")
    assert "err" not in out, out.get("err")
    assert out["img"].depth == 2


@pytest.fixture
def deep_tmp(tmp_path):
    """tmp_path, with the deep trees made in it removed afterwards (see crafted.remove_tree)."""
    yield tmp_path
    for name in ("deep", "deep2"):
        if (tmp_path / name).exists():
            c.remove_tree(tmp_path / name)


def test_a_very_deep_folder_is_searched_without_recursion(deep_tmp):
    tmp_path = deep_tmp
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep2").mkdir()
    root = c.deep_folder(tmp_path / "deep", depth=1100)
    levels, p = 0, root
    while (p / "d").is_dir():
        levels, p = levels + 1, p / "d"
    assert levels > 500  # as deep as PATH_MAX allows (the audit's 1100 levels broke os.walk)
    shallow = root
    for _ in range(5):
        shallow = shallow / "d"
    c.series(shallow / "s", 2)  # found: 6 levels down
    found = scan_folder(root)
    assert len(found) == 1 and found[0].frames == 2
    deep = c.deep_folder(tmp_path / "deep2", depth=MAX_DEPTH + 5)
    with pytest.raises(InputError, match=f"deeper than {MAX_DEPTH} levels not searched"):
        scan_folder(deep)


def test_a_folder_link_loop_ends(tmp_path):
    folder = c.series(tmp_path / "series", 2)
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    found = scan_folder(folder)
    assert len(found) == 1 and found[0].frames == 2


def test_a_file_without_preamble_opens(tmp_path):
    img = open_image(c.valid_no_preamble(tmp_path))
    assert img.voxels.shape[-2:] == (8, 8)
    assert np.array_equal(img.voxels[0], (np.arange(64).reshape(8, 8) % 200) - 1024)


def test_a_bare_dataset_without_file_meta_opens(tmp_path):
    img = open_image(c.valid_no_meta(tmp_path))
    assert np.array_equal(img.voxels[0], (np.arange(64).reshape(8, 8) % 200) - 1024)


def test_non_dicom_files_are_not_forced(tmp_path):
    """force=True is for files that start like a dataset only: a text file in a series folder is skipped."""
    folder = c.series(tmp_path / "series", 2)
    (folder / "notes.txt").write_text("not dicom at all\n" * 10)
    (folder / "blob.bin").write_bytes(bytes(range(256)) * 4)
    assert scan_folder(folder)[0].frames == 2


def test_memory_budget_is_applied(tmp_path, monkeypatch):
    """A plausible size passes; the same file is refused once the budget is below it (BOXSEG_MEMORY_BUDGET_MIB)."""
    import nibabel as nib

    p = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((64, 64, 64), np.int16), np.eye(4)), str(p))
    assert open_image(p).shape == (64, 64, 64)
    monkeypatch.setenv("BOXSEG_MEMORY_BUDGET_MIB", "0.25")
    with pytest.raises(InputError, match=r"v\.nii\.gz: NIfTI image of 64x64x64 voxels would need"):
        open_image(p)
