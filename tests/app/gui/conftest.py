"""Desktop-app tests: offscreen Qt (set before any QApplication exists), isolated user folders
(autosave, QSettings), and a factory for main windows that are shut down cleanly."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_USER = tempfile.mkdtemp(prefix="boxseg-test-user-")
os.environ["XDG_CONFIG_HOME"] = os.path.join(_USER, "config")   # QSettings
os.environ["XDG_DATA_HOME"] = os.path.join(_USER, "data")

import pytest  # noqa: E402

pytest.importorskip("PySide6", reason="the desktop app needs the 'app' extra (PySide6-Essentials)")
pytest.importorskip("pytestqt", reason="the desktop app tests need pytest-qt (the 'test' extra)")


@pytest.fixture(autouse=True)
def autosave_dir(tmp_path, monkeypatch):
    d = tmp_path / "autosave"
    monkeypatch.setenv("BOXSEG_AUTOSAVE_DIR", str(d))
    # the embedding cache's disk tier (on in the app's settings) never writes to the user's cache folder
    monkeypatch.setenv("BOXSEG_CACHE_DIR", str(tmp_path / "embeddings"))
    return d


@pytest.fixture
def open_window(qtbot):
    """open_window(path=None) -> a shown main window (image open, current slice encoded)."""
    from app.gui.launch import create_main_window

    made = []

    def make(path=None):
        win = create_main_window(None if path is None else str(path))
        qtbot.addWidget(win)
        made.append(win)
        return win

    yield make
    for w in made:
        w.c.shutdown()


@pytest.fixture
def temp_qsettings(tmp_path):
    """QSettings of this process point at tmp_path during the test (the user's settings are never touched)."""
    from pathlib import Path

    from PySide6.QtCore import QSettings

    before = QSettings("BoxSeg", "BoxSeg").fileName()
    folder = tmp_path / "qsettings"
    QSettings.setPath(QSettings.NativeFormat, QSettings.UserScope, str(folder))
    assert QSettings("BoxSeg", "BoxSeg").fileName().startswith(str(folder))
    yield folder
    # back to the session's (already temporary) folder: <dir>/BoxSeg/BoxSeg.conf
    QSettings.setPath(QSettings.NativeFormat, QSettings.UserScope, str(Path(before).parent.parent))
    assert QSettings("BoxSeg", "BoxSeg").fileName() == before
