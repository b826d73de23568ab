"""The arrangement of the views in the main window: one view, or the three linked planes (and the 3D view).

Layouts (View ▸ Layout; the choice persists in the QSettings key ``layout``):

* ``single``: today's single view ``sliceView`` (the stored slices ``voxels[z]``), with the window's
  ``sliceSlider`` under it.
* ``1x3``: ``axialView``, ``coronalView``, ``sagittalView`` side by side, each with its own slider
  (``axialSlider``, ``coronalSlider``, ``sagittalSlider``) and the crosshair that links them.
* ``2x2``: as ITK-SNAP arranges them: axial and sagittal on top, coronal and the 3D view (``view3D``) below.

A 2D image (or an RGB one) has no reformatted planes: it is always shown in the single view, whatever the
layout chosen (the choice is kept for the next volume). The views only render and route input: slices,
crosshair and prompts are the controller's (:class:`~app.gui.controller.Controller`).
"""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from app.gui.views.slice_view import SliceView
from app.gui.views.view3d import View3D
from engine.data.planes import PLANES

#: the layouts, in the View ▸ Layout menu's order
LAYOUTS = ("single", "1x3", "2x2")
#: grid cells (row, column) of each view in a layout
_CELLS = {
    "1x3": {"axial": (0, 0), "coronal": (0, 1), "sagittal": (0, 2)},
    "2x2": {"axial": (0, 0), "sagittal": (0, 1), "coronal": (1, 0), "3d": (1, 1)},
}


def load_layout() -> str:
    """The layout chosen last (QSettings ``layout``), 'single' when none or an unknown one."""
    v = str(QSettings("BoxSeg", "BoxSeg").value("layout", "single") or "single")
    return v if v in LAYOUTS else "single"


def save_layout(name: str) -> None:
    q = QSettings("BoxSeg", "BoxSeg")
    q.setValue("layout", name)
    q.sync()


class PlanePane(QWidget):
    """One plane's view with its own slice slider (objectName ``<plane>Slider``) and slice label."""

    def __init__(self, controller, view: SliceView, parent=None):
        super().__init__(parent)
        self.c, self.view = controller, view
        self.setObjectName(f"{view.plane_name}Pane")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(1, 1, 1, 1)
        lay.setSpacing(2)
        lay.addWidget(view, 1)
        row = QHBoxLayout()
        row.setContentsMargins(4, 0, 4, 2)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setObjectName(f"{view.plane_name}Slider")
        self.slider.setRange(0, 0)
        self.slider.setPageStep(5)
        self.label = QLabel("")
        self.label.setMinimumWidth(70)
        row.addWidget(self.slider, 1)
        row.addWidget(self.label)
        lay.addLayout(row)
        self.slider.valueChanged.connect(self._on_slider)
        controller.imageOpened.connect(self.sync)
        controller.cursorChanged.connect(self.sync)

    def _on_slider(self, k: int) -> None:
        if self.c.image is not None and k != self.view.k:
            self.c.set_active_plane(self.view.prompt_plane)
            self.view.set_k(k)

    def sync(self) -> None:
        """Slider and label follow the slice the view shows."""
        if self.c.image is None or not self.c.planes:
            return
        n, k = self.view.n_slices(), self.view.k
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(n - 1, 0))
        self.slider.setValue(k)
        self.slider.blockSignals(False)
        self.label.setText(f"{k + 1} / {n}")


class ViewsArea(QWidget):
    """The central area: the single view or the linked plane views (see the module docstring)."""

    layoutChanged = Signal(str)  # the layout shown: 'single', '1x3' or '2x2'

    def __init__(self, controller, single: SliceView, parent=None):
        super().__init__(parent)
        self.c = controller
        self.single = single
        self.views = {p: SliceView(controller, plane=p) for p in PLANES}
        self.panes = {p: PlanePane(controller, v, self) for p, v in self.views.items()}
        self.view3d = View3D(controller)
        self.view3d.unavailable.connect(lambda _why: self.view3d.hide())
        for w in (single, self.view3d):  # every view is a child from the start (found by objectName, hidden)
            w.setParent(self)
        self.chosen = load_layout()
        self.shown = None
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        for w in (single, *self.panes.values(), self.view3d):
            w.hide()
        self.last_view: SliceView = single
        for v in self.all_views():
            v.installEventFilter(self)
            v.windowLevelChanged.connect(lambda level, width, src=v: self._share_window(src, level, width))
        controller.imageOpened.connect(self.apply)
        self.apply()

    def all_views(self) -> list[SliceView]:
        """Every slice view: the single one and the three plane views (hidden ones included)."""
        return [self.single, *self.views.values()]

    def visible_views(self) -> list[SliceView]:
        return [self.single] if self.shown == "single" else list(self.views.values())

    def current_view(self) -> SliceView:
        """The view the user worked in last (zoom and fit act on it), among those shown."""
        return self.last_view if self.last_view in self.visible_views() else self.visible_views()[0]

    def eventFilter(self, obj, ev):
        if ev.type() in (ev.Type.FocusIn, ev.Type.MouseButtonPress) and obj in self.all_views():
            self.last_view = obj
        return super().eventFilter(obj, ev)

    def _share_window(self, src: SliceView, level: float, width: float) -> None:
        """Window/level set in one view (right-drag) applies to all of them: it is the image's, as in ITK-SNAP."""
        for v in self.all_views():
            if v is not src and (v.level, v.width) != (level, width):
                v.level, v.width = level, width
                v.render_image()
                v.viewport().update()

    def effective(self) -> str:
        """The layout shown for the open image: the chosen one, or 'single' without reformatted planes."""
        return self.chosen if (self.chosen == "single" or self.c.planes) else "single"

    def set_layout(self, name: str, persist: bool = True) -> None:
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}: one of {', '.join(LAYOUTS)}")
        self.chosen = name
        if persist:
            save_layout(name)
        self.apply()

    def apply(self) -> None:
        """Put the views of the effective layout into the grid (and only those on screen)."""
        name = self.effective()
        if name == self.shown:
            return
        for i in reversed(range(self.grid.count())):
            self.grid.takeAt(i)
        for w in (self.single, *self.panes.values(), self.view3d):
            w.hide()
        for r in range(2):
            self.grid.setRowStretch(r, 0)
        for col in range(3):
            self.grid.setColumnStretch(col, 0)
        if name == "single":
            self.grid.addWidget(self.single, 0, 0)
            self.single.show()
        else:
            for key, (r, col) in _CELLS[name].items():
                w = self.view3d if key == "3d" else self.panes[key]
                self.grid.addWidget(w, r, col)
                self.grid.setRowStretch(r, 1)
                self.grid.setColumnStretch(col, 1)
                if key != "3d" or getattr(self.view3d, "available", True):
                    w.show()
            for p in self.panes.values():
                p.sync()
        multi = name != "single"
        for v in self.views.values():
            v.show_crosshair = multi
        self.shown = name
        self.layoutChanged.emit(name)


__all__ = ["LAYOUTS", "PlanePane", "ViewsArea", "load_layout", "save_layout"]
