"""Where an opened or dropped path goes: a DICOM folder or DICOMDIR to the study/series browser, an image file
straight to the window (:meth:`MainWindow.open_path`), anything else to a status message.

* :func:`target` decides by the path alone (no file is read on the GUI thread): a folder or a file named
  DICOMDIR -> ``"browse"``; a suffix of :data:`engine.io.formats.IMAGE_KINDS` (NIfTI, DICOM, PNG/JPEG/BMP/TIFF,
  challenge .npz), no suffix at all or a numeric one (DICOM files on a CD, UID-named files) -> ``"open"``;
  else None (a label map such as ``.seg.nrrd`` too: it opens onto an image, File ▸ Open label map).
* :meth:`Opener.browse` lists the series (:func:`engine.io.studies.list_studies`) as a job of the window's
  queue, on the I/O worker, with the window's progress dialog and Cancel; one series opens at once, several
  show the browser (:class:`~app.gui.dialogs.series_browser.SeriesBrowser`), whose choice opens through
  ``open_path(DICOMDIR or the series' own folder, series=UID)`` (:meth:`engine.io.studies.Listing.open_path`:
  the headers read again are the series', not the whole disc's); that path is what File ▸ Recent keeps.
* Drops: :meth:`Opener.accept_drag` / :meth:`Opener.drop` take local file URLs.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QObject, Qt

from app.gui.dialogs.series_browser import SeriesBrowser
from engine.io.formats import IMAGE_KINDS, is_dicomdir, kind_of
from engine.io.studies import Listing, list_studies


def target(path: str | Path) -> str | None:
    """'browse', 'open' or None (not something BoxSeg opens) for ``path``, by its name and kind only."""
    p = Path(path)
    if p.is_dir() or is_dicomdir(p):
        return "browse"
    # DICOM files on CDs and from PACS exports often have no suffix, or are named by their UID ("1.2.840...5")
    if kind_of(p) in IMAGE_KINDS or (p.is_file() and (p.suffix == "" or p.suffix[1:].isdigit())):
        return "open"
    return None


def local_paths(mime: QMimeData) -> list[Path]:
    """The local files and folders of a drag's URLs (remote URLs are left out)."""
    if mime is None or not mime.hasUrls():
        return []
    return [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile() and u.toLocalFile()]


class Opener(QObject):
    """Routes paths for one main window ``win`` (which has ``c`` (the controller), ``open_path`` and a status
    bar). ``browser``: the series browser shown last (None once closed)."""

    def __init__(self, win):
        super().__init__(win)
        self.win = win
        self.browser: SeriesBrowser | None = None

    def _status(self, msg: str) -> None:
        self.win.statusBar().showMessage(msg, 8000)

    def open_any(self, path: str | Path, strict: bool = True):
        """Open ``path`` the way its kind asks (see the module docstring). ``strict`` False (Recent: it opened
        before) opens any file whose kind the table does not know as DICOM, as File ▸ Open does. Returns the
        job id, or None when nothing was started."""
        p = Path(path)
        if not p.exists():
            self._status(f"{p}: no such file or folder")
            return None
        kind = target(p)
        if kind == "browse":
            return self.browse(p)
        if kind == "open" or not strict:
            return self.win.open_path(p)
        self._status(f"{p.name}: not a file BoxSeg opens (NIfTI, DICOM, PNG/JPEG/TIFF, a DICOM folder or DICOMDIR)")
        return None

    def browse(self, path: str | Path) -> int:
        """List the series of a folder or DICOMDIR on the I/O worker, then open or offer them. Returns the job id."""
        p = Path(path)

        def fn(progress, should_stop):
            return list_studies(p, progress=progress, should_stop=should_stop)

        return self.win.c.jobs.submit(f"Looking for series in {p.name}", "io", fn, self._listed)

    def _listed(self, listing: Listing) -> None:
        if listing.warnings:
            self._status("note: " + "; ".join(listing.warnings))
        if len(listing.series) == 1:  # nothing to choose
            self.win.open_path(listing.open_path(listing.series[0]), listing.series[0].uid)
            return
        if self.browser is not None:
            self.browser.close()
        dlg = SeriesBrowser(self.win, listing)
        dlg.setAttribute(Qt.WA_DeleteOnClose)
        dlg.setWindowModality(Qt.WindowModal)
        dlg.accepted.connect(lambda: self._chosen(dlg))
        dlg.destroyed.connect(lambda *_: self._forget(dlg))
        self.browser = dlg
        dlg.open()

    def _chosen(self, dlg: SeriesBrowser) -> None:
        entry = dlg.listing.find(dlg.chosen_uid() or "")
        if entry is not None:
            self.win.open_path(dlg.listing.open_path(entry), entry.uid)

    def _forget(self, dlg) -> None:
        if self.browser is dlg:
            self.browser = None

    # --- drag and drop ------------------------------------------------------------------------------
    def accept_drag(self, event) -> None:
        """Accept a drag (enter/move) that carries local files or folders."""
        if local_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def drop(self, event) -> None:
        """Open the first dropped path BoxSeg can open; a status message when there is none."""
        paths = local_paths(event.mimeData())
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        usable = [p for p in paths if target(p) is not None]
        if not usable:
            self._status(f"{paths[0].name}: not a file BoxSeg opens (NIfTI, DICOM, PNG/JPEG/TIFF, a DICOM folder "
                         "or DICOMDIR)")
            return
        if len(paths) > 1:
            self._status(f"{len(paths)} items dropped; opening {usable[0].name}")
        self.open_any(usable[0])


__all__ = ["Opener", "local_paths", "target"]
