"""engine.base.atomic: a destination appears complete or not at all; temporaries are recognisable."""

from __future__ import annotations

import os
import stat
import time

import pytest

from engine.base.atomic import (atomic_path, full_suffix, is_temp_name, remove_stale_temps, temp_name, write_bytes,
                                write_text, writing)
from engine.base.errors import InputError


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


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_private_files_are_never_readable_by_others(tmp_path):
    os.umask(0o022)
    seen = []

    def writer(tmp):
        seen.append(stat.S_IMODE(tmp.stat().st_mode))  # already private while being written
        with open(tmp, "wb") as f:
            f.write(b"patient data")

    final = tmp_path / "snap.npz"
    with atomic_path(final, private=True) as tmp:
        writer(tmp)
    assert seen == [0o600] and stat.S_IMODE(final.stat().st_mode) == 0o600
    write_bytes(tmp_path / "plain.bin", b"x")
    assert stat.S_IMODE((tmp_path / "plain.bin").stat().st_mode) == 0o644  # ordinary outputs follow the umask


def test_stale_temp_files_are_removed_young_ones_and_others_kept(tmp_path):
    old = temp_name(tmp_path / "a.npz")
    young = temp_name(tmp_path / "b.npz")
    hidden_user_file = tmp_path / ".notes.txt"
    ordinary = tmp_path / "scan_seg.nii.gz"
    for p in (old, young, hidden_user_file, ordinary):
        p.write_bytes(b"x")
    two_days_ago = time.time() - 2 * 86400
    for p in (old, hidden_user_file, ordinary):
        os.utime(p, (two_days_ago, two_days_ago))
    assert remove_stale_temps(tmp_path) == 1
    assert not old.exists() and young.exists() and hidden_user_file.exists() and ordinary.exists()
    assert remove_stale_temps(tmp_path / "missing") == 0


def test_writing_creates_folders_and_names_the_file_on_failure(tmp_path):
    dest = tmp_path / "new" / "sub" / "out.nii.gz"
    with writing(dest) as tmp:
        tmp.write_bytes(b"abc")
    assert dest.read_bytes() == b"abc"
    blocker = tmp_path / "afile"
    blocker.write_bytes(b"x")
    with pytest.raises(InputError, match=r"cannot write .*afile.*out\.png"):
        with writing(blocker / "out.png") as tmp:  # a file where the folder should be
            tmp.write_bytes(b"never")
    assert blocker.read_bytes() == b"x"
    with pytest.raises(InputError, match="cannot write"):
        with writing(dest) as tmp:  # a writer failing half-way: the old file stays, no temp left
            tmp.write_bytes(b"half")
            raise OSError(28, "No space left on device")
    assert dest.read_bytes() == b"abc"
    assert [p.name for p in dest.parent.iterdir()] == ["out.nii.gz"]
