"""Help ▸ Keyboard shortcuts (objectName ``shortcutsDialog``): every shortcut of the window's actions, read
from the actions themselves (so the list cannot drift from them), and the mouse and view keys."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout

#: keys and mouse gestures handled by the slice view itself (no QAction)
VIEW_KEYS = [
    ("Left-drag", "Box tool: draw a box in any view (a click selects the object under the cursor and moves the "
                  "crosshair there: the other views go to its slices); brush/eraser: paint/erase"),
    ("Shift+left-drag", "Brush tool: erase"),
    ("Right-drag", "Window / level"),
    ("Middle-drag, Space+drag", "Pan"),
    ("Wheel, Up/Down, PgUp/PgDn", "Previous / next slice of the view under the cursor (Shift+PgUp: 10 slices)"),
    ("Ctrl+wheel", "Zoom at the cursor"),
    ("Esc", "Cancel the box or brush stroke being drawn"),
]


#: actions whose text changes with the state ("Undo Paint Object 2"): the name they are listed under
_FIXED = {"actionUndo": "Undo", "actionRedo": "Redo"}


def action_shortcuts(window) -> list[tuple[str, str]]:
    """(keys, what) of every action of ``window`` that has a shortcut, sorted by what they do."""
    rows = {}
    for a in window.findChildren(QAction):
        keys = [k.toString(QKeySequence.NativeText) for k in a.shortcuts() if not k.isEmpty()]
        text = _FIXED.get(a.objectName()) or a.text().replace("&", "").replace("…", "").strip()
        if keys and text:
            rows[text] = ", ".join(keys)
    return sorted(((k, t) for t, k in rows.items()), key=lambda r: r[1].lower())


class ShortcutsDialog(QDialog):
    def __init__(self, window):
        super().__init__(window)
        self.setObjectName("shortcutsDialog")
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(560, 640)
        lay = QVBoxLayout(self)
        rows = action_shortcuts(window) + VIEW_KEYS
        self.table = QTableWidget(len(rows), 2)
        self.table.setObjectName("shortcutsTable")
        self.table.setHorizontalHeaderLabels(["Keys", "Does"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        for i, (keys, what) in enumerate(rows):
            self.table.setItem(i, 0, QTableWidgetItem(keys))
            self.table.setItem(i, 1, QTableWidgetItem(what))
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        lay.addWidget(self.table)
        bb = QDialogButtonBox(QDialogButtonBox.Close)
        bb.rejected.connect(self.reject)
        lay.addWidget(bb)


__all__ = ["ShortcutsDialog", "VIEW_KEYS", "action_shortcuts"]
