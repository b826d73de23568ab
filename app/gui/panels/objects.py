"""The objects panel (dock): the document's objects with colour, name, visibility, IoU, volume (mL; area
for a 2D image) and mean ± SD of the image inside; propagate, delete.

The figures come from the controller's measurements (``engine.data.measure`` on the measure worker,
after every change; "…" until the first result); each item's ``Qt.UserRole + 1`` holds its
(volume or area, unit, mean, sd). objectNames: ``objectList``, ``propagateButton``, ``deleteButton``,
``lockButton`` (the window's ``actionLockObject``: a locked object shows a padlock on its colour swatch). Names
are edited with a completer of named structures (:mod:`app.gui.panels.structure_names`).
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (QCheckBox, QColorDialog, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QPushButton, QSpinBox, QToolButton, QVBoxLayout, QWidget)

from app.gui.panels.structure_names import NameDelegate
from engine.data.measure import format_value
from engine.data.structures import GENERIC_CATEGORY, GENERIC_TYPE


class PropagateButton(QPushButton):
    """The panel's Propagate button; ``trigger()`` is an alias of ``click()`` (tests use either)."""

    def trigger(self):
        self.click()


FIGURES_ROLE = Qt.UserRole + 1
SEP = "   "  # between the name and the figures (an edited name is the text before it)


def figures(m, image) -> tuple[float, str, float, float]:
    """(volume mL, or area for a 2D image; its unit; mean; sd) of a Measurement."""
    if image is not None and image.depth > 1:
        return m.volume_ml, "mL", m.mean, m.sd
    return m.area, m.area_unit.replace("2", "²"), m.mean, m.sd


def figures_text(m, image) -> str:
    size, unit, mean, sd = figures(m, image)
    iu = f" {image.units}" if image is not None and image.units and image.units != "u8" else ""
    stats = f"{SEP}{format_value(round(mean, 1))} ± {format_value(round(sd, 1))}{iu}" if mean == mean else ""
    return f"{size:.4g} {unit}{stats}"


def _codes_tip(o) -> str:
    """The object's SNOMED CT codes for its tooltip ('' for the generic free-text ones)."""
    if o.type_code == GENERIC_TYPE and o.category_code == GENERIC_CATEGORY and o.type_modifier_code is None:
        return ""
    side = f", {o.type_modifier_code.meaning}" if o.type_modifier_code is not None else ""
    return f"\n{o.type_code.meaning}{side} ({o.type_code.scheme} {o.type_code.value}); {o.category_code.meaning}"


def _swatch(color, locked: bool = False) -> QIcon:
    """The object's colour; with a padlock (white body, dark outline) when it is locked."""
    pm = QPixmap(14, 14)
    pm.fill(QColor(*color))
    if locked:
        p = QPainter(pm)
        p.setRenderHint(QPainter.Antialiasing)
        p.setPen(QColor(20, 20, 20))
        p.setBrush(Qt.NoBrush)
        p.drawArc(4, 1, 6, 7, 0, 180 * 16)   # the shackle
        p.drawLine(4, 4, 4, 6)
        p.drawLine(10, 4, 10, 6)
        p.setBrush(QColor(255, 255, 255))
        p.drawRect(2, 6, 10, 7)              # the body
        p.end()
    return QIcon(pm)


class ObjectsPanel(QWidget):
    """Objects of the document: colour, name (editable), visibility (check box), IoU; propagate, delete."""

    def __init__(self, win):
        """win: the main window (its controller ``c``, ``propagate``, ``delete_object``, ``update_actions``)."""
        super().__init__()
        self.win, self.c = win, win.c
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        self.list = QListWidget()
        self.list.setObjectName("objectList")
        self.list.setIconSize(QSize(14, 14))
        # names are edited with a completer of named structures (codes + Slicer colour), free text allowed
        self.list.setItemDelegate(NameDelegate(self.list, self._rename, self._name_of))
        lay.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.propagate = PropagateButton("Propagate ↕")
        self.propagate.setObjectName("propagateButton")
        self.propagate.setToolTip("Propagate the selected object up and down through the volume from the slice "
                                  "where its box was drawn")
        self.delete = QPushButton("Delete")
        self.delete.setObjectName("deleteButton")
        self.color = QPushButton("Colour…")
        self.lock = QToolButton()
        self.lock.setObjectName("lockButton")
        self.lock.setDefaultAction(win.a_lock)  # toggles SegObject.locked of the selected object
        self.lock.setText("Lock")
        row.addWidget(self.propagate)
        row.addWidget(self.color)
        row.addWidget(self.lock)
        row.addWidget(self.delete)
        lay.addLayout(row)
        rng = QHBoxLayout()
        self.whole = QCheckBox("until the object ends")
        self.whole.setChecked(True)
        self.z_from, self.z_to = QSpinBox(), QSpinBox()
        for s in (self.z_from, self.z_to):
            s.setEnabled(False)
        self.whole.toggled.connect(lambda on: [s.setEnabled(not on) for s in (self.z_from, self.z_to)])
        rng.addWidget(self.whole)
        rng.addWidget(QLabel("or slices"))
        rng.addWidget(self.z_from)
        rng.addWidget(QLabel("–"))
        rng.addWidget(self.z_to)
        lay.addLayout(rng)
        help_ = QLabel("Drag a box on the image to add an object. With + / − click inside/outside to refine "
                       "the selected object. Right-drag: window/level; wheel: slices; Ctrl+wheel: zoom.")
        help_.setWordWrap(True)
        help_.setStyleSheet("color: gray")
        lay.addWidget(help_)
        self.propagate.clicked.connect(win.propagate)
        self.delete.clicked.connect(win.delete_object)
        self.color.clicked.connect(self._pick_color)
        self.list.currentItemChanged.connect(self._on_select)
        self.list.itemChanged.connect(self._on_item_changed)
        self.c.doc.objectsChanged.connect(self.refresh)
        self.c.measurementsChanged.connect(self.refresh_figures)
        self.c.doc.currentChanged.connect(self._select_value)
        self.c.imageOpened.connect(self._on_image)
        self._updating = False

    def _on_image(self):
        d = self.c.image.depth
        for s in (self.z_from, self.z_to):
            s.setRange(0, max(0, d - 1))
        self.z_from.setValue(0)
        self.z_to.setValue(max(0, d - 1))

    def refresh(self):
        self._updating = True
        self.list.clear()
        for o in self.c.doc.objects:
            iou = f"   IoU {o.iou:.2f}" if o.iou is not None else ""
            it = QListWidgetItem(_swatch(o.color, o.locked), f"{o.name}{iou}{'   3D' if o.propagated else ''}")
            it.setData(Qt.UserRole, o.value)
            it.setData(Qt.UserRole + 2, it.text())  # the text without figures
            it.setFlags(it.flags() | Qt.ItemIsUserCheckable | Qt.ItemIsEditable)
            it.setCheckState(Qt.Checked if o.visible else Qt.Unchecked)
            tip = f"label {o.value}; model IoU estimate {o.iou:.3f}" if o.iou is not None else f"label {o.value}"
            it.setToolTip(tip + ("; locked" if o.locked else "") + _codes_tip(o))
            self.list.addItem(it)
        self._updating = False
        self.refresh_figures()
        self._select_value(self.c.doc.current)
        self.win.update_actions()

    def refresh_figures(self):
        """Volume (area) and mean ± SD of each object from the latest measurements ("…" while computing)."""
        self._updating = True
        ms = self.c.measurements
        for i in range(self.list.count()):
            it = self.list.item(i)
            m = ms.get(it.data(Qt.UserRole))
            base = it.data(Qt.UserRole + 2)
            if m is None:
                it.setText(f"{base}{SEP}…")
                it.setData(FIGURES_ROLE, None)
            else:
                it.setText(f"{base}{SEP}{figures_text(m, self.c.image)}")
                it.setData(FIGURES_ROLE, figures(m, self.c.image))
        self._updating = False

    def _select_value(self, value):
        self._updating = True
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.UserRole) == value:
                self.list.setCurrentRow(i)
                break
        else:
            self.list.setCurrentRow(-1)
        self._updating = False
        self.win.update_actions()

    def _on_select(self, cur, _prev):
        if not self._updating and cur is not None:
            self.c.doc.set_current(cur.data(Qt.UserRole))

    def _on_item_changed(self, it):
        if self._updating:
            return
        v = it.data(Qt.UserRole)
        o = self.c.doc.object(v)
        if o is None:
            return
        visible = it.checkState() == Qt.Checked
        name = it.text().split(SEP)[0].strip() or o.name
        if visible != o.visible:
            QTimer.singleShot(0, lambda: self.c.doc.update_object(v, visible=visible))
        if name != o.name:
            QTimer.singleShot(0, lambda: self._rename(v, name))

    def _name_of(self, value) -> str:
        o = self.c.doc.object(value)
        return o.name if o is not None else ""

    def _rename(self, value, name: str) -> None:
        """A catalogue name sets its codes (and Slicer colour unless picked); free text the generic codes."""
        self.c.doc.rename_object(value, name)

    def _pick_color(self):
        o = self.c.doc.object(self.c.doc.current)
        if o is None:
            return
        col = QColorDialog.getColor(QColor(*o.color), self, f"Colour of {o.name}")
        if col.isValid():
            self.c.doc.update_object(o.value, color=(col.red(), col.green(), col.blue()), color_chosen=True)

    def z_range(self):
        return None if self.whole.isChecked() else (self.z_from.value(), self.z_to.value())


__all__ = ["FIGURES_ROLE", "ObjectsPanel", "PropagateButton", "figures", "figures_text"]
