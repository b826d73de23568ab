"""The Save dialog offers 3D Slicer .seg.nrrd beside NIfTI (+ its ITK-SNAP label descriptions), and
objects keep their names and colours through both (issue 19)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.labelmap import Segment
from engine.io.dispatch import open_image, write_labelmap
from tests.app.gui.volumes import write_volume

pytestmark = pytest.mark.gui

SLICER = "3D Slicer segmentation (*.seg.nrrd)"
NIFTI = "NIfTI label map (*.nii.gz *.nii)"


def test_save_as_seg_nrrd_and_nifti_keep_names_and_colours(qtbot, open_window, tmp_path, monkeypatch):
    nrrd = pytest.importorskip("nrrd")
    from PySide6.QtWidgets import QFileDialog

    image = write_volume(tmp_path / "scan.nii.gz")
    img = open_image(image)
    labels = np.zeros(img.shape, np.uint8)
    labels[2:5, 35:65, 30:60] = 1
    labels[3, 10:20, 10:20] = 2
    named = [Segment(1, "block", (10, 200, 30)), Segment(2, "patch", (250, 0, 250))]
    start = write_labelmap(tmp_path / "start.seg.nrrd", labels, img, segments=named)
    win = open_window(image)
    assert SLICER in win._save_filters().split(";;") and NIFTI in win._save_filters().split(";;")
    win.c.open_labelmap(start)
    qtbot.waitUntil(lambda: not win.c.busy and len(win.c.doc.segments()) == 2, timeout=30_000)
    for typed, flt, written in (("again", SLICER, "again.seg.nrrd"), ("again", NIFTI, "again.nii.gz")):
        monkeypatch.setattr(QFileDialog, "getSaveFileName",
                            staticmethod(lambda *a, f=flt, t=typed: (str(tmp_path / t), f)))
        assert win.save_as() is not None
        qtbot.waitUntil(lambda w=written: not win.c.busy and (tmp_path / w).is_file(), timeout=30_000)
    data, h = nrrd.read(str(tmp_path / "again.seg.nrrd"))
    assert np.array_equal(data.transpose(2, 1, 0), labels)
    assert [h["Segment0_Name"], h["Segment1_Name"]] == ["block", "patch"]
    assert '"patch"' in (tmp_path / "again.label.txt").read_text()
    for saved in ("again.seg.nrrd", "again.nii.gz"):  # both come back with names and colours
        win.c.open_labelmap(tmp_path / saved)
        qtbot.waitUntil(lambda: not win.c.busy, timeout=30_000)
        assert [(s.name, s.color) for s in win.c.doc.segments()] == [(s.name, s.color) for s in named]
        assert np.array_equal(win.c.doc.labels, labels)
