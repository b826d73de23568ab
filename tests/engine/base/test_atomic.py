"""engine.base.atomic: a destination appears complete or not at all; temporaries are recognisable."""

from __future__ import annotations

import os

import pytest

from engine.base.atomic import atomic_path, full_suffix, is_temp_name, temp_name, write_bytes, write_text


def test_temp_names_keep_the_extension_and_are_recognised(tmp_path):
    for name, ext in (("scan_seg.nii.gz", ".nii.gz"), ("a.dcm", ".dcm"), ("report.csv", ".csv"), ("noext", "")):
        t = temp_name(tmp_path / name)
        assert t.parent == tmp_path and t.name.startswith(f".{name}.") and t.name.endswith(ext)
        assert full_suffix(name) == ext and is_temp_name(t.name) and not is_temp_name(name)
    assert temp_name(tmp_path / "a.png") != temp_name(tmp_path / "a.png")


def test_write_replaces_the_destination_and_leaves_nothing_behind(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    write_text(dest, "new")
    assert dest.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["out.txt"]
    write_bytes(dest, b"\x00\x01")
    assert dest.read_bytes() == b"\x00\x01"


def test_a_failing_writer_leaves_the_old_file_untouched(tmp_path):
    dest = tmp_path / "seg.nii.gz"
    dest.write_bytes(b"previous complete file")
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"half a fi")
            raise RuntimeError("disk full")
    assert dest.read_bytes() == b"previous complete file"
    assert sorted(os.listdir(tmp_path)) == ["seg.nii.gz"]


def test_the_writer_sees_a_path_with_the_real_extension(tmp_path):
    with atomic_path(tmp_path / "x.nii.gz") as tmp:
        assert tmp.name.endswith(".nii.gz") and not tmp.exists()
        tmp.write_bytes(b"data")
    assert (tmp_path / "x.nii.gz").read_bytes() == b"data"
