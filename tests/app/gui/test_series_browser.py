"""The study/series browser, drops onto the window and File ▸ Recent, on a patient CD built with pydicom's FileSet
(tests/engine/io/patient_cd.py: 2 patients, 3 series) and a small NIfTI; QSettings in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.app.gui.volumes import write_volume
from tests.engine.io.patient_cd import PATIENT_A, PATIENT_B, SPECS, files_of, write_patient_cd


def drop(win, *paths, kind=None):
    """Send a drag-enter and a drop of ``paths`` (file URLs) to the window, as a file manager's drop does.
    Returns whether the drag was accepted."""
    from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = win.view.geometry().center()
    enter = QDragEnterEvent(QPoint(pos), Qt.CopyAction, mime, Qt.NoButton, Qt.NoModifier)
    QApplication.sendEvent(win, enter)
    if not enter.isAccepted():
        return False
    ev = QDropEvent(QPointF(pos), Qt.CopyAction, mime, Qt.NoButton, Qt.NoModifier)
    QApplication.sendEvent(win, ev)
    return ev.isAccepted()


def wait_image(qtbot, win, uid=None, path=None):
    def opened():
        img = win.c.image
        return img is not None and not win.c.busy and (uid is None or img.series_uid == uid) \
            and (path is None or Path(img.source) == Path(path))
    qtbot.waitUntil(opened, timeout=120_000)
    return win.c.image


def test_dropped_dicomdir_shows_the_series_and_opens_the_one_double_clicked(qtbot, open_window, tmp_path,
                                                                            temp_qsettings):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QDialog, QDialogButtonBox

    cd = write_patient_cd(tmp_path / "cd")
    win = open_window()
    started = []
    win.c.jobStarted.connect(lambda i, title, canc: started.append((title, canc)))
    assert drop(win, cd)
    qtbot.waitUntil(lambda: win.opener.browser is not None and win.opener.browser.isVisible(), timeout=60_000)
    assert started[0] == ("Looking for series in DICOMDIR", True)  # a cancellable job on the worker
    dlg = win.findChild(QDialog, "seriesBrowser")
    assert dlg is win.opener.browser
    tree = dlg.tree
    assert [tree.headerItem().text(i) for i in range(6)] == ["Patient", "Study", "Series", "Modality", "Slices",
                                                             "Date"]
    assert tree.topLevelItemCount() == 2
    pa, pb = tree.topLevelItem(0), tree.topLevelItem(1)
    assert pa.text(0) == "Cdtest, Alice (CD-A-1001)" and pb.text(0) == "Cdtest, Bob (CD-B-2002)"
    study_a = pa.child(0)
    assert (study_a.text(1), study_a.text(4), study_a.text(5)) == ("CT abdomen", "7", "2024-01-15")
    rows = [[study_a.child(i).text(c) for c in range(2, 6)] for i in range(study_a.childCount())]
    assert rows == [["#1 scout", "CT", "2", "2024-01-15"], ["#2 venous", "CT", "5", "2024-01-15"]]
    mr = pb.child(0).child(0)
    assert [mr.text(c) for c in range(1, 6)] == ["", "#1 T1", "MR", "3", "2023-06-30"]
    # preselected: the largest series; a patient row cannot be opened
    assert dlg.chosen_uid() == SPECS[0].uid
    tree.setCurrentItem(pa)
    assert not dlg.buttons.button(QDialogButtonBox.Open).isEnabled()

    # double-click the MR row with the mouse: it opens that series, from the DICOMDIR
    tree.scrollToItem(mr)
    rect = tree.visualItemRect(mr)
    qtbot.mouseClick(tree.viewport(), Qt.LeftButton, pos=rect.center())
    assert dlg.chosen_uid() == SPECS[2].uid
    qtbot.mouseDClick(tree.viewport(), Qt.LeftButton, pos=rect.center())
    img = wait_image(qtbot, win, uid=SPECS[2].uid)
    assert img.voxels.shape == (3, 6, 6) and img.modality == "MR"
    np.testing.assert_array_equal(img.voxels[:, 2, 3], [10, 11, 12])
    assert sorted(img.files) == files_of(cd, SPECS[2].uid)
    qtbot.waitUntil(lambda: win.opener.browser is None)
    # the DICOMDIR is what File ▸ Recent offers again (a path, not the series or the patient)
    assert win.recent_menu.paths() == [(str(cd), True)]
    stored = (temp_qsettings / "BoxSeg" / "BoxSeg.conf").read_text()
    for ident in (*PATIENT_A, *PATIENT_B, SPECS[2].uid):
        assert ident not in stored


def test_open_button_opens_the_selected_series_of_a_folder(qtbot, open_window, tmp_path, temp_qsettings):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QDialogButtonBox

    cd = write_patient_cd(tmp_path / "cd")
    cd.unlink()  # a plain folder now: scanned recursively, the same three series
    win = open_window()
    win.opener.browse(cd.parent)
    qtbot.waitUntil(lambda: win.opener.browser is not None, timeout=60_000)
    dlg = win.opener.browser
    assert sorted(dlg.series_items) == sorted(s.uid for s in SPECS)
    dlg.tree.setCurrentItem(dlg.series_items[SPECS[1].uid])  # the 2-slice scout
    qtbot.mouseClick(dlg.buttons.button(QDialogButtonBox.Open), Qt.LeftButton)
    img = wait_image(qtbot, win, uid=SPECS[1].uid)
    assert img.voxels.shape == (2, 8, 8)
    np.testing.assert_array_equal(img.voxels[:, 0, 0], [300, 301])
    # read again from the series' own folder only; that folder is the Recent entry
    own = img.files[0].parent
    assert own.name.startswith("SE") and win.recent_menu.paths() == [(str(own), True)]


def test_a_folder_with_one_series_opens_without_asking(qtbot, open_window, tmp_path, temp_qsettings):
    cd = write_patient_cd(tmp_path / "cd")
    one = files_of(cd, SPECS[0].uid)[0].parent  # PT.../ST.../SE...: the venous series only
    win = open_window()
    shown = []
    win.c.jobStarted.connect(lambda *_: shown.append(win.opener.browser))
    win.opener.browse(one)
    img = wait_image(qtbot, win, uid=SPECS[0].uid)
    assert img.voxels.shape == (5, 8, 8) and win.opener.browser is None and shown == [None, None]


def test_drop_nifti_opens_it_and_an_unknown_file_only_says_so(qtbot, open_window, tmp_path, temp_qsettings):
    nii = write_volume(tmp_path / "vol.nii.gz")
    notes = tmp_path / "notes.docx"
    notes.write_bytes(b"PK\x03\x04")
    win = open_window()
    jobs = []
    win.c.jobStarted.connect(lambda *a: jobs.append(a))
    assert not win.view.viewport().acceptDrops()  # drops over the image reach the window
    assert drop(win, notes)
    assert win.statusBar().currentMessage().startswith("notes.docx: not a file BoxSeg opens")
    qtbot.wait(50)
    assert jobs == [] and win.c.image is None
    assert drop(win, nii)
    img = wait_image(qtbot, win, path=nii)
    assert img.voxels.shape == (6, 96, 96) and len(jobs) == 1


def test_recent_menu_persists_across_windows(qtbot, open_window, tmp_path, temp_qsettings):
    from PySide6.QtWidgets import QMenu

    from app.gui.recent import MAX_RECENT, add_recent, recent_paths

    a, b = write_volume(tmp_path / "a.nii.gz"), write_volume(tmp_path / "b.nii.gz", seed=1)
    win = open_window()
    for p in (a, b, a):  # a again: moves to the top, listed once
        win.open_path(p)
        wait_image(qtbot, win, path=p)
    menu = win.findChild(QMenu, "menuRecent")
    assert menu is win.recent_menu
    assert menu.paths() == [(str(a), True), (str(b), True)]

    b.unlink()  # a missing file stays listed, disabled
    win2 = open_window()  # the next start
    assert win2.recent_menu.paths() == [(str(a), True), (str(b), False)]
    # triggering an entry opens it
    next(x for x in win2.recent_menu.actions() if x.data() == str(a)).trigger()
    assert wait_image(qtbot, win2, path=a).voxels.shape == (6, 96, 96)

    for i in range(MAX_RECENT + 2):
        add_recent(tmp_path / f"x{i}.nii")
    assert recent_paths() == [str(tmp_path / f"x{i}.nii") for i in range(MAX_RECENT + 1, 1, -1)]
    win2.recent_menu.refresh()
    clear = next(x for x in win2.recent_menu.actions() if x.objectName() == "actionClearRecent")
    clear.trigger()
    assert recent_paths() == [] and win2.recent_menu.paths() == []
    assert open_window().recent_menu.paths() == []


def test_what_a_drop_does_by_name(tmp_path):
    from app.gui.opening import target

    cd = write_patient_cd(tmp_path / "cd")
    uid_named = tmp_path / "1.2.826.0.1.3680043.8.498.5"
    uid_named.write_bytes(b"x")
    other = {n: tmp_path / n for n in ("notes.docx", "seg.seg.nrrd", "IM000001")}
    for f in other.values():
        f.write_bytes(b"x")
    assert [target(p) for p in (cd, cd.parent, tmp_path / "scan.nii.gz", uid_named, other["IM000001"])] == [
        "browse", "browse", "open", "open", "open"]
    assert target(other["notes.docx"]) is None and target(other["seg.seg.nrrd"]) is None
