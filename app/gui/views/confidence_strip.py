"""The confidence strip (objectName ``confidenceStrip``): a thin bar under the slice slider showing, for
the selected propagated object, how far each slice can be trusted.

Slice z occupies the columns ``z * width / depth .. (z + 1) * width / depth``. A slice of the object's
span is coloured by the model's IoU estimate (red 0.5 or below .. green 0.95 or above; grey where the
model gave none: the user's own slice); a slice flagged suspicious (``engine.inference.confidence``:
low estimate, area jump, several pieces) has a red mark on top, and its reasons in the tool tip. A
click on a mark (within 4 px) goes to that slice; a click elsewhere goes to the slice under it.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QToolTip, QWidget

MARK_TOLERANCE_PX = 4


def iou_color(iou: float) -> QColor:
    if not np.isfinite(iou):
        return QColor(150, 150, 150)
    t = float(np.clip((iou - 0.5) / 0.45, 0, 1))
    return QColor(int(220 * (1 - t) + 40 * t), int(60 * (1 - t) + 190 * t), 60)


class ConfidenceStrip(QWidget):
    sliceClicked = Signal(int)

    def __init__(self, controller, parent=None):
        super().__init__(parent)
        self.setObjectName("confidenceStrip")
        self.c = controller
        self.setFixedHeight(12)
        self.setMouseTracking(True)
        self.setToolTip("Confidence of the selected propagated object per slice: colour = the model's IoU "
                        "estimate; red marks = suspicious slices (click one to go there)")
        controller.measurementsChanged.connect(self.update)
        controller.doc.currentChanged.connect(lambda _v: self.update())
        controller.sliceChanged.connect(lambda _z: self.update())
        controller.imageOpened.connect(self.update)

    @property
    def confidence(self):
        """The SliceConfidence of the selected object, or None."""
        return self.c.confidence.get(self.c.doc.current)

    def _depth(self) -> int:
        return self.c.image.depth if self.c.image is not None else 0

    def slice_x(self, z: int) -> float:
        """Centre column of slice z."""
        d = self._depth()
        return (z + 0.5) * self.width() / max(d, 1)

    def marks(self) -> list[int]:
        conf = self.confidence
        return [] if conf is None else [int(z) for z in conf.suspicious]

    def slice_at(self, x: float) -> int | None:
        """The slice a click at column x goes to: the nearest mark within the tolerance, else the slice under x."""
        d = self._depth()
        if not d:
            return None
        near = [(abs(self.slice_x(z) - x), z) for z in self.marks()]
        near = [m for m in near if m[0] <= MARK_TOLERANCE_PX]
        if near:
            return min(near)[1]
        return int(np.clip(x * d / max(self.width(), 1), 0, d - 1))

    def paintEvent(self, _e):
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(45, 45, 45))
        d, conf = self._depth(), self.confidence
        if d and conf is not None:
            w, h = self.width() / d, self.height()
            for z, iou in zip(conf.z, conf.iou):
                p.fillRect(QRectF(z * w, 3, max(w, 1.0), h - 3), iou_color(float(iou)))
            p.setPen(Qt.NoPen)
            p.setBrush(QColor(255, 40, 40))
            for z in conf.suspicious:
                x = self.slice_x(int(z))
                p.drawRect(QRectF(x - 1.5, 0, 3, h))
        if d:
            x = self.slice_x(self.c.z)
            p.setPen(QColor(255, 255, 255))
            p.drawLine(int(x), 0, int(x), self.height())
        p.end()

    def mousePressEvent(self, e):
        z = self.slice_at(e.position().x())
        if z is not None and e.button() == Qt.LeftButton:
            self.sliceClicked.emit(z)
            self.c.set_slice(z)
        e.accept()

    def mouseMoveEvent(self, e):
        conf, z = self.confidence, self.slice_at(e.position().x())
        if conf is None or z is None:
            return
        i = np.flatnonzero(conf.z == z)
        if len(i):
            k = i[0]
            iou = "–" if not np.isfinite(conf.iou[k]) else f"{conf.iou[k]:.2f}"
            why = ", ".join(conf.reasons(z))
            QToolTip.showText(e.globalPosition().toPoint(), f"slice {z}: model IoU {iou}, {int(conf.area[k])} px, "
                              f"{int(conf.blobs[k])} piece(s){' — ' + why if why else ''}", self)


__all__ = ["ConfidenceStrip", "iou_color"]
