"""The object-name editor of the objects panel: a line edit whose completer offers named structures.

Editing an object's name (double-click or F2 in ``objectList``) opens a ``QLineEdit`` (objectName
``objectNameEditor``) with the bare name; typing shows a popup of catalogue structures
(:func:`engine.data.structures.search`: names and synonyms containing the text, case-insensitive, names
starting with it first). Picking one (click, or arrows and Enter), or typing any name and pressing Enter,
names the object through
:meth:`app.gui.document.Document.rename_object`: a catalogue name sets its SNOMED CT codes (and its 3D
Slicer colour unless the user picked a colour), free text the generic codes. The completer's model is
refilled from the engine's search on each keystroke (``UnfilteredPopupCompletion``), so the ranking and
synonyms are the engine's, not a second matching rule here.
"""

from __future__ import annotations

from PySide6.QtCore import QStringListModel, Qt
from PySide6.QtWidgets import QCompleter, QLineEdit, QStyledItemDelegate

from engine.data.structures import search

#: at most this many structures in the popup
MAX_SUGGESTIONS = 30


def structure_completer(edit: QLineEdit) -> QCompleter:
    """A completer on ``edit`` whose list follows the text through :func:`engine.data.structures.search`."""
    model = QStringListModel([s.name for s in search("", MAX_SUGGESTIONS)], edit)
    comp = QCompleter(model, edit)
    comp.setObjectName("structureCompleter")
    comp.setCaseSensitivity(Qt.CaseInsensitive)
    comp.setCompletionMode(QCompleter.UnfilteredPopupCompletion)
    comp.setMaxVisibleItems(12)

    def refill(text: str) -> None:
        model.setStringList([s.name for s in search(text, MAX_SUGGESTIONS)] if text.strip() else [])

    # connected before setCompleter: the list is refilled before the completer shows it for this keystroke
    edit.textEdited.connect(refill)
    edit.setCompleter(comp)
    return comp


class NameDelegate(QStyledItemDelegate):
    """Edits an item's object name (not its figures) with :func:`structure_completer`; the result goes to
    ``rename(value, name)``, not into the item's text (the panel redraws from the document)."""

    def __init__(self, parent, rename, name_of):
        """rename(value, name): apply a new name; name_of(value) -> the object's current name."""
        super().__init__(parent)
        self._rename, self._name_of = rename, name_of

    def createEditor(self, parent, option, index):
        edit = QLineEdit(parent)
        edit.setObjectName("objectNameEditor")
        edit.setPlaceholderText("structure or any name")
        comp = structure_completer(edit)
        value = index.data(Qt.UserRole)

        def picked(name: str) -> None:  # a pick from the popup names the object at once
            self._rename(value, name)
            self.closeEditor.emit(edit, QStyledItemDelegate.NoHint)

        def entered() -> None:
            # Enter while the popup is open (nothing chosen in it) reaches the line edit from the completer,
            # past the delegate's own Enter handling: commit here too (a repeated rename is a no-op)
            self.commitData.emit(edit)
            self.closeEditor.emit(edit, QStyledItemDelegate.NoHint)

        comp.activated[str].connect(picked)
        edit.returnPressed.connect(entered)
        return edit

    def setEditorData(self, editor, index):
        editor.setText(self._name_of(index.data(Qt.UserRole)) or "")

    def setModelData(self, editor, model, index):
        name = editor.text().strip()
        if name:
            self._rename(index.data(Qt.UserRole), name)


__all__ = ["MAX_SUGGESTIONS", "NameDelegate", "structure_completer"]
