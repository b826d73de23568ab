"""Saving never replaces the image (issue 18): a name typed without a suffix gets the suffix after
the dialog's own overwrite question, so the app asks again, and the image's files are refused whatever
the user answers; a DICOM series is not offered its own folder."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from tests.app.gui.volumes import write_volume
from tests.conftest import REPO

pytestmark = pytest.mark.gui

NIFTI = "NIfTI label map (*.nii.gz *.nii)"


def digest(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def answer_dialogs(monkeypatch, save_as, replace: bool):
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    asked = {}

    def get_save(parent, caption, start, filters):
        asked["start"] = start
        return (str(save_as) if save_as else ""), NIFTI

    def question(parent, title, text, *a, **k):
        asked["question"] = text
        return QMessageBox.Yes if replace else QMessageBox.No

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(get_save))
    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    return asked


def test_a_name_without_suffix_never_replaces_the_image(qtbot, open_window, tmp_path, monkeypatch):
    image = write_volume(tmp_path / "scan.nii.gz")
    before = digest(image)
    win = open_window(image)
    errors = []
    win.c.error.connect(errors.append)
    asked = answer_dialogs(monkeypatch, tmp_path / "scan", replace=True)  # the user even says "replace"
    jid = win.save_as()
    assert "scan.nii.gz already exists" in asked["question"]
    qtbot.waitUntil(lambda: not win.c.busy, timeout=30_000)
    assert jid is not None and errors and "image being read" in errors[-1]
    assert digest(image) == before


def test_an_existing_other_file_is_replaced_only_when_confirmed(qtbot, open_window, tmp_path, monkeypatch):
    image = write_volume(tmp_path / "scan.nii.gz")
    other = tmp_path / "old_seg.nii.gz"
    other.write_bytes(b"the user's earlier work")
    win = open_window(image)
    asked = answer_dialogs(monkeypatch, tmp_path / "old_seg", replace=False)
    assert win.save_as() is None and "question" in asked
    qtbot.wait(200)
    assert other.read_bytes() == b"the user's earlier work"
    answer_dialogs(monkeypatch, tmp_path / "old_seg", replace=True)
    assert win.save_as() is not None
    qtbot.waitUntil(lambda: not win.c.busy, timeout=30_000)
    assert other.read_bytes()[:2] == b"\x1f\x8b"  # now a (gzipped) NIfTI label map


def test_a_dicom_series_is_saved_beside_its_folder(qtbot, open_window, tmp_path, monkeypatch):
    series = tmp_path / "study" / "series1"
    series.mkdir(parents=True)
    shutil.copy(REPO / "assets" / "sample" / "CT_small.dcm", series / "IM0001")
    win = open_window(series)
    asked = answer_dialogs(monkeypatch, None, replace=False)
    assert win.save_as() is None
    assert str(asked["start"]).startswith(str(tmp_path / "study") + "/")
    assert not str(asked["start"]).startswith(str(series) + "/")
