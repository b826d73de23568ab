"""Starting the desktop app: ``boxseg app`` (:func:`run_app`) and, for tests and the smoke test, a
shown main window with an image opened (:func:`create_main_window`, :func:`wait_open`)."""

from __future__ import annotations

import sys
import time

from PySide6.QtCore import QCoreApplication, QEventLoop
from PySide6.QtWidgets import QApplication

from app.gui.main_window import MainWindow
from engine.base.errors import BoxSegError


def create_main_window(path=None, *, series: str | None = None, timeout: float = 300.0):
    """The main window, shown, with ``path`` opened if given (a QApplication must exist).

    With a path this returns once the image is open and the embedding of the slice shown is
    computed (the GUI keeps processing events meanwhile; reading and encoding run on workers);
    a file that cannot be opened raises :class:`engine.base.errors.BoxSegError` with the reason.
    Without a path, unsaved work autosaved by an earlier run is offered for restoring.
    """
    win = MainWindow()
    win.show()
    if path is None:
        win.check_autosave_at_start()
        return win
    wait_open(win, win.open_path(path, series), timeout)
    return win


def wait_open(win, job_id: int, timeout: float = 300.0) -> None:
    """Process events until job ``job_id`` (an open) ended and the current slice is encoded."""
    c = win.c
    state = {"done": False, "ok": True, "msg": ""}

    def on_finished(jid, ok, msg):
        if jid == job_id:
            state.update(done=True, ok=ok, msg=msg)

    c.jobFinished.connect(on_finished)
    t_end = time.monotonic() + timeout
    try:
        while time.monotonic() < t_end:
            QCoreApplication.processEvents(QEventLoop.AllEvents, 20)
            if state["done"] and not state["ok"]:
                raise BoxSegError(state["msg"])
            if c.session_error:
                raise BoxSegError(f"model could not be loaded: {c.session_error}")
            if state["done"] and c.image is not None and c.slice_ready():
                return
            time.sleep(0.005)
        raise BoxSegError(f"opening did not finish within {timeout:.0f} s")
    finally:
        c.jobFinished.disconnect(on_finished)


def run_app(path=None, series: str | None = None) -> int:
    """``boxseg app [PATH]``: the interactive application."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("BoxSeg")
    app.setOrganizationName("BoxSeg")
    win = MainWindow(confirm_close=True)
    win.show()
    if path:
        win.open_path(path, series)
    else:
        win.check_autosave_at_start()
    app.aboutToQuit.connect(win.shutdown)
    return app.exec()


__all__ = ["create_main_window", "run_app", "wait_open"]
