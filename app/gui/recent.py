"""File ▸ Recent (QMenu objectName ``menuRecent``): the last :data:`MAX_RECENT` paths opened, most recent first.

Stored in the app's QSettings ("BoxSeg", key ``recent/paths``, a JSON list) on this machine only: paths,
never a series UID or anything read from the files. A path that no longer exists stays listed, disabled
(a USB stick or CD may come back); ``actionClearRecent`` empties the list.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMenu

MAX_RECENT = 10
KEY = "recent/paths"


def recent_paths() -> list[str]:
    """The stored paths, most recent first (at most :data:`MAX_RECENT`; [] when unset or unreadable)."""
    raw = QSettings("BoxSeg", "BoxSeg").value(KEY, "[]")
    try:
        paths = json.loads(raw) if isinstance(raw, str) else []
    except ValueError:
        return []
    return [p for p in paths if isinstance(p, str) and p][:MAX_RECENT]


def _store(paths: list[str]) -> None:
    q = QSettings("BoxSeg", "BoxSeg")
    q.setValue(KEY, json.dumps(paths[:MAX_RECENT]))
    q.sync()


def add_recent(path: str | Path) -> None:
    """Put ``path`` (made absolute) first, dropping an older entry of it and any beyond :data:`MAX_RECENT`."""
    p = os.path.abspath(os.fspath(path))
    _store([p] + [q for q in recent_paths() if q != p])


def clear_recent() -> None:
    _store([])


class RecentMenu(QMenu):
    """The Recent submenu, rebuilt from the settings each time it is shown (another window may have added)."""

    def __init__(self, parent, open_fn: Callable[[str], object]):
        super().__init__("Open &recent", parent)
        self.setObjectName("menuRecent")
        self.open_fn = open_fn
        self.aboutToShow.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        self.clear()
        paths = recent_paths()
        for p in paths:
            a = self.addAction(p)
            a.setData(p)
            if not os.path.exists(p):
                a.setEnabled(False)
                a.setToolTip(f"{p} (not found)")
            a.triggered.connect(lambda _=False, path=p: self.open_fn(path))
        if not paths:
            self.addAction("(none)").setEnabled(False)
        self.addSeparator()
        clear = self.addAction("&Clear recent")
        clear.setObjectName("actionClearRecent")
        clear.setEnabled(bool(paths))
        clear.triggered.connect(self._clear)

    def paths(self) -> list[tuple[str, bool]]:
        """(path, enabled) of the listed entries, as shown."""
        return [(a.data(), a.isEnabled()) for a in self.actions() if a.data()]

    def _clear(self) -> None:
        clear_recent()
        self.refresh()


__all__ = ["KEY", "MAX_RECENT", "RecentMenu", "add_recent", "clear_recent", "recent_paths"]
