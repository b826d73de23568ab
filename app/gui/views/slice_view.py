"""The slice view (objectName ``sliceView``): a QGraphicsView with the image, the objects' masks,
the live mask of the box being dragged, the preview of a fill between slices, and the box, point,
brush and eraser tools.

Screen orientation follows ``Image.display`` (radiological convention, as ITK-SNAP/3D Slicer), and
pixels are drawn with their in-plane spacing (an item transform), so anatomy has its true shape.
Scene items live in "screen pixel" coordinates of the displayed slice; :meth:`to_index` converts
to the stored voxel indices the engine uses (X = column, Y = row of ``voxels[z]``).

Mouse: left-drag draws a box (box tool), a ruler (ruler tool: its length beside it) or an ellipse ROI
(ROI tool: area and mean/SD/min/max of the image inside); a click with the ruler or ROI tool selects
the ruler/ROI under it (Edit ▸ Delete ruler/ROI removes it); clicks add points (+/- tools); right-drag sets
window/level; middle-drag (or the pan tool, or Space+drag) pans; wheel scrolls slices, Ctrl+wheel
zooms at the cursor. Brush/eraser tools: left-drag paints/erases the selected object on the slice (a
ball through neighbouring slices with the 3D toggle; Shift+drag with the brush erases), the cursor
shows the brush's outline at its true size in mm. Keys: PgUp/PgDn, Up/Down scroll slices; Esc cancels
a drag or a stroke.

Planes: with ``plane=None`` the view shows the stored slices ``voxels[z]`` (the single view, objectName
``sliceView``). With a plane name ('axial', 'coronal', 'sagittal'; objectName ``<plane>View``) it shows that
plane's slice through the controller's crosshair (:attr:`Controller.cursor`): the stored slices when that
plane is the stored one (then it is exactly the single view), else the reformatted slice
(:mod:`engine.data.planes`, exact voxels, true pixel spacing), with the objects' masks, the live mask of a
box dragged in any view (where it crosses this slice), boxes and +/- points that segment that slice
(the controller's plane prompts), a click that moves the crosshair and, in the multi-view layouts,
the crosshair itself. Brush, eraser, rulers and ROIs work on the stored slices only.

Rulers and ROIs are the document's (``Document.annotations``, per slice, undoable, autosaved); their
figures come from :mod:`engine.data.roi`. With View ▸ RECIST axes the long and short axes of each
visible object (``engine.data.measure``, computed off the GUI thread) are drawn on its RECIST slice.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPen, QPixmap, QTransform
from PySide6.QtWidgets import QFrame, QGraphicsEllipseItem, QGraphicsLineItem, QGraphicsPixmapItem, \
    QGraphicsRectItem, QGraphicsScene, QGraphicsSimpleTextItem, QGraphicsView

from engine.data.outline import outline
from engine.data.palette import default_color
from engine.data.planes import cross_section
from engine.data.roi import length_unit, line_length, roi_stats

_RULER = QColor(80, 220, 255)
_CROSSHAIR = QColor(255, 70, 70, 170)
#: tools that edit or measure on the stored slices only
_STORED_ONLY_TOOLS = ("brush", "eraser", "ruler", "roi")
_SELECTED = QColor(255, 90, 200)


def _pen(color: QColor, width: float = 1.5, style=Qt.SolidLine) -> QPen:
    pen = QPen(color, 0, style)
    pen.setCosmetic(True)  # the same width on screen at every zoom
    pen.setWidthF(width)
    return pen


def _fmt_num(v: float) -> str:
    return "–" if not np.isfinite(v) else f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def annotation_text(image, ann) -> str:
    """The figures shown beside a ruler or ROI: its length, or area and mean ± SD [min, max]."""
    x0, y0, x1, y1 = ann.points
    unit = length_unit(image)
    if ann.kind == "ruler":
        return f"{line_length(image, (x0, y0), (x1, y1)):.1f} {unit}"
    st = roi_stats(image, ann.z, ann.points)
    iu = f" {st.intensity_unit}" if st.intensity_unit and st.intensity_unit != "u8" else ""
    return (f"{st.area:.1f} {unit}²  {_fmt_num(st.mean)} ± {_fmt_num(st.sd)}{iu}  "
            f"[{_fmt_num(st.min)}, {_fmt_num(st.max)}]")

_SIDES = {  # plane -> (left, right, top, bottom) patient directions on screen
    "axial": ("R", "L", "A", "P"),
    "coronal": ("R", "L", "S", "I"),
    "sagittal": ("A", "P", "S", "I"),
}


def _qimage(arr: np.ndarray) -> QImage:
    """uint8 (H,W) grey, (H,W,3) RGB or (H,W,4) RGBA -> a QImage owning its pixels."""
    a = np.ascontiguousarray(arr)
    h, w = a.shape[:2]
    if a.ndim == 2:
        fmt, bpl = QImage.Format_Grayscale8, w
    elif a.shape[2] == 3:
        fmt, bpl = QImage.Format_RGB888, 3 * w
    else:
        fmt, bpl = QImage.Format_RGBA8888, 4 * w
    return QImage(a.data, w, h, bpl, fmt).copy()


class SliceView(QGraphicsView):
    cursorInfo = Signal(str)      # "x 12 y 40 z 3 | 45 HU"
    windowLevelChanged = Signal(float, float)
    zoomChanged = Signal(float)

    def __init__(self, controller, parent=None, plane: str | None = None):
        super().__init__(parent)
        self.plane_name = plane  # None: the stored slices (the single view); else the plane it shows
        self.setObjectName("sliceView" if plane is None else f"{plane}View")
        self.show_crosshair = False
        self._stale = False     # a render was skipped while the view was hidden
        self._shown_k = None    # the slice rendered last (a crosshair move on it only redraws the lines)
        self._refit = False     # resized under a box being dragged: fit on release
        self.c = controller
        self.setFrameShape(QFrame.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setTransformationAnchor(QGraphicsView.NoAnchor)
        self.setResizeAnchor(QGraphicsView.AnchorViewCenter)
        self.setBackgroundBrush(QBrush(QColor(0, 0, 0)))
        self.setMouseTracking(True)
        self.viewport().setMouseTracking(True)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setMinimumSize(256, 256)
        self.installEventFilter(self)  # mouse events sent to the view itself go to the viewport handlers
        self.scene_ = QGraphicsScene(self)
        self.setScene(self.scene_)
        self.image_item = QGraphicsPixmapItem()
        self.image_item.setTransformationMode(Qt.FastTransformation)
        self.scene_.addItem(self.image_item)
        self.overlay_item = QGraphicsPixmapItem(self.image_item)
        self.live_item = QGraphicsPixmapItem(self.image_item)
        self.preview_item = QGraphicsPixmapItem(self.image_item)  # a fill between slices waiting for Accept
        self.brush_item = QGraphicsEllipseItem(self.image_item)   # the brush outline under the cursor
        self.brush_item.setPen(_pen(QColor(255, 255, 255), 1.2, Qt.DashLine))
        self.brush_item.hide()
        self.box_item = QGraphicsRectItem(self.image_item)
        pen = QPen(QColor(255, 220, 0), 0, Qt.DashLine)
        pen.setCosmetic(True)
        pen.setWidthF(1.5)
        self.box_item.setPen(pen)
        self.box_item.hide()
        self.point_items: list[QGraphicsEllipseItem] = []
        self.drawing_item = None  # the ruler line / ROI ellipse being dragged
        self.annotation_items: dict[int, tuple] = {}  # annotation id -> (shape item, text item)
        self.recist_items: list = []
        self.show_recist = False
        self.selected_annotation: int | None = None
        self.tool = "box"
        self.opacity = 0.45
        self.fill = True
        self.level, self.width = 40.0, 400.0
        self._drag = None       # ("box", start screen px) | ("wl", pos, level, width) | ("pan", pos)
        self._moved = False
        self._fitted = True
        self._space = False
        self._live_value = 0
        self._cursor = None
        c = controller
        c.imageOpened.connect(self._on_image)
        # a new stored slice is a new slice here only for the view of the stored slices; the other planes
        # follow the crosshair (cursorChanged: their slice, or only the crosshair lines, moves)
        c.sliceChanged.connect(lambda z: self._on_cursor() if self.reformatted else self.render_all())
        c.windowChanged.connect(self._on_window)
        c.liveMask.connect(self._on_live)
        c.doc.labelsChanged.connect(self._on_labels)
        c.strokePainted.connect(self._on_labels)
        c.fillPreview.connect(lambda _p: self.render_preview())
        c.doc.objectsChanged.connect(self.render_overlay)
        c.doc.currentChanged.connect(lambda v: self.render_points())
        c.doc.annotationsChanged.connect(self.render_annotations)
        c.measurementsChanged.connect(self.render_recist)
        c.cursorChanged.connect(self._on_cursor)

    # --- geometry -----------------------------------------------------------------------------
    @property
    def image(self):
        return self.c.image

    @property
    def geo(self):
        """The engine :class:`~engine.data.planes.Plane` this view shows, None for the stored slices or a 2D image."""
        return self.c.planes.get(self.plane_name) if self.plane_name is not None else None

    @property
    def reformatted(self) -> bool:
        """True when this view shows a plane other than the stored one (its own slices and screen frame)."""
        g = self.geo
        return g is not None and not g.is_stored

    @property
    def prompt_plane(self) -> str:
        """The plane argument of this view's prompts: '' (stored slices) or the reformatted plane's name."""
        return self.plane_name if self.reformatted else ""

    @property
    def k(self) -> int:
        """The slice shown: ``c.z`` for the stored slices, else the index along this plane's normal."""
        return self.c.plane_slice(self.plane_name) if self.reformatted else self.c.z

    def n_slices(self) -> int:
        return self.geo.n_slices if self.reformatted else self.image.depth

    def set_k(self, k: int) -> None:
        """Show slice k of this view's plane (moves the crosshair)."""
        if self.reformatted:
            self.c.set_plane_slice(self.plane_name, k)
        else:
            self.c.set_slice(k)

    def _disp(self):
        return self.geo.display if self.reformatted else self.image.display

    def _yx(self) -> tuple[int, int]:
        """Shape of the slice as stored (before the display's transpose/flips)."""
        return self.geo.stored_shape if self.reformatted else tuple(self.image.shape[1:3])

    def _shown(self, volume: np.ndarray) -> np.ndarray:
        """This view's slice of a (Z,Y,X[,C]) array as shown on the screen (a view, no copy)."""
        if self.reformatted:
            return self.geo.slice(volume, self.k)
        return self.image.display.to_screen(volume[self.c.z])

    def _visible(self) -> bool:
        if self.isVisibleTo(self.window()) or self.window() is self:
            return True
        self._stale = True
        return False

    def showEvent(self, e):
        super().showEvent(e)
        if self._stale and self.image is not None:
            self._stale = False
            self.render_all()
        if self._fitted and self.image is not None:
            self.fit()  # it was fitted, if at all, to the size it had while hidden

    def screen_shape(self) -> tuple[int, int]:
        """(rows, cols) of the displayed slice."""
        y, x = self._yx()
        return (x, y) if self._disp().transpose else (y, x)

    def _aspect(self) -> tuple[float, float]:
        """Screen-pixel size (sx along screen columns, sy along rows) relative to the smaller one."""
        if self.reformatted:
            rh, cw = self.geo.pixel_spacing
        else:
            _, sy, sx = self.image.spacing
            cw, rh = (sy, sx) if self.image.display.transpose else (sx, sy)
        m = min(cw, rh) or 1.0
        return (cw / m, rh / m) if np.isfinite(cw / m) and np.isfinite(rh / m) else (1.0, 1.0)

    def item_px(self, viewport_pos) -> tuple[float, float]:
        """Viewport position -> continuous (col, row) in screen pixels of the slice."""
        p = self.image_item.mapFromScene(self.mapToScene(viewport_pos.toPoint()
                                                         if hasattr(viewport_pos, "toPoint") else viewport_pos))
        return p.x(), p.y()

    def to_index(self, col: float, row: float, clamp: bool = True) -> tuple[int, int] | None:
        """Screen pixel (col, row) -> stored voxel index (x, y) of the current slice (of a reformatted plane:
        the index in its stored slice, :meth:`engine.data.planes.Plane.stored_slice`)."""
        rows, cols = self.screen_shape()
        c, r = int(np.floor(col)), int(np.floor(row))
        if clamp:
            c, r = int(np.clip(c, 0, cols - 1)), int(np.clip(r, 0, rows - 1))
        elif not (0 <= c < cols and 0 <= r < rows):
            return None
        xi, yi = self._disp().screen_to_index(r, c, self._yx())
        return int(xi), int(yi)

    def voxel_at(self, col: float, row: float) -> tuple[int, int, int] | None:
        """Screen pixel (col, row) -> the voxel (z, y, x) shown there, None outside the slice."""
        if not self._in_image(col, row):
            return None
        if self.reformatted:
            z, y, x = self.geo.to_voxel(self.k, int(np.floor(row)), int(np.floor(col)))
            return int(z), int(y), int(x)
        x, y = self.to_index(col, row)
        return self.c.z, y, x

    def index_to_screen(self, x: float, y: float) -> tuple[float, float]:
        """Stored voxel (x, y) -> screen pixel centre (col, row)."""
        r, c = self._disp().index_to_screen(x, y, self._yx())
        return c + 0.5, r + 0.5

    def screen_to_index_f(self, col: float, row: float) -> tuple[float, float]:
        """Continuous screen position (col, row; pixel k spans k..k+1) -> continuous stored voxel index
        (x, y) with integers at pixel centres (engine.data.roi's coordinates)."""
        xi, yi = self._disp().screen_to_index(row - 0.5, col - 0.5, self._yx())
        return float(xi), float(yi)

    def index_to_screen_f(self, x: float, y: float) -> tuple[float, float]:
        """The inverse of :meth:`screen_to_index_f`."""
        r, c = self._disp().index_to_screen(x, y, self._yx())
        return c + 0.5, r + 0.5

    def box_from_screen(self, a, b) -> tuple[int, int, int, int]:
        """The box between two screen positions as the controller takes it: stored voxel indices
        (x0, y0, x1, y1) of the slice, or screen pixels (col0, row0, col1, row1) of a reformatted plane."""
        if self.reformatted:
            rows, cols = self.screen_shape()
            (c0, r0), (c1, r1) = ((int(np.clip(np.floor(c), 0, cols - 1)), int(np.clip(np.floor(r), 0, rows - 1)))
                                  for c, r in (a, b))
            return min(c0, c1), min(r0, r1), max(c0, c1), max(r0, r1)
        (x0, y0), (x1, y1) = self.to_index(*a), self.to_index(*b)
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)

    # --- rendering ----------------------------------------------------------------------------
    def _on_image(self) -> None:
        self.level, self.width = self.c.display_wl
        ax, ay = self._aspect()
        self.image_item.setTransform(QTransform.fromScale(ax, ay))
        self.live_item.setPixmap(QPixmap())
        self.box_item.hide()
        self.render_all()
        rect = self.image_item.mapRectToScene(self.image_item.boundingRect())
        self.scene_.setSceneRect(rect.adjusted(-rect.width() * 4, -rect.height() * 4, rect.width() * 4,
                                               rect.height() * 4))
        self.fit()

    def _on_window(self) -> None:
        self.level, self.width = self.c.display_wl
        self.render_image()
        self.windowLevelChanged.emit(self.level, self.width)

    def fit(self) -> None:
        if self.image is None:
            return
        self._fitted = True
        self.fitInView(self.image_item.mapRectToScene(self.image_item.boundingRect()), Qt.KeepAspectRatio)
        self.zoomChanged.emit(self.transform().m11())

    def resizeEvent(self, e):
        super().resizeEvent(e)
        if self._fitted and self._drag is None:
            self.fit()
        elif self._fitted:
            self._refit = True  # not under a box being dragged (the layout changed, e.g. a status bar item)

    def _on_cursor(self) -> None:
        """The crosshair moved: a new slice of this plane, or only the crosshair lines."""
        if self.image is None:
            return
        k = self.k
        if self._shown_k != k:
            self.render_all()
        elif self.show_crosshair:
            self.viewport().update()

    def render_all(self) -> None:
        if self.image is None or not self._visible():
            return
        self._shown_k = self.k
        self.render_image()
        self.render_overlay()
        self.render_points()
        self.render_annotations()
        self.render_recist()
        self.render_preview()
        self.viewport().update()

    def render_preview(self) -> None:
        """The voxels a pending fill between slices adds on this slice (the object's colour, brighter)."""
        p = self.c.preview
        z = self.c.z
        if self.image is None or p is None or self.reformatted or not (p.edit.where[0] <= z < p.edit.where[1]):
            self.preview_item.setPixmap(QPixmap())
            return
        z0, _, y0, y1, x0, x1 = p.edit.where
        labels = self.c.doc.labels
        m = np.zeros(labels.shape[1:], bool)
        m[y0:y1, x0:x1] = (p.edit.after[z - z0] == p.value) & (labels[z, y0:y1, x0:x1] != p.value)
        m = self.image.display.to_screen(m)
        obj = self.c.doc.object(p.value)
        color = QColor(*(obj.color if obj is not None else (255, 255, 0))).lighter(150)
        rgba = np.zeros(m.shape + (4,), np.uint8)
        rgba[m] = (color.red(), color.green(), color.blue(), 170)
        rgba[outline(m.astype(np.uint8))] = (255, 255, 255, 255)
        self.preview_item.setPixmap(QPixmap.fromImage(_qimage(rgba)))

    def _label_item(self, text: str, color: QColor, at: QPointF) -> QGraphicsSimpleTextItem:
        t = QGraphicsSimpleTextItem(text)
        t.setBrush(QBrush(color))
        t.setFlag(QGraphicsSimpleTextItem.ItemIgnoresTransformations)  # readable at every zoom
        t.setPos(self.image_item.mapToScene(at) + QPointF(6, 4))
        self.scene_.addItem(t)
        return t

    def render_annotations(self) -> None:
        """The rulers and ROIs of the current slice, each with its figures (:func:`annotation_text`)."""
        for shape, text in self.annotation_items.values():
            self.scene_.removeItem(shape)
            self.scene_.removeItem(text)
        self.annotation_items = {}
        if self.image is None or self.reformatted:
            return
        for a in self.c.doc.annotations:
            if a.z != self.c.z:
                continue
            color = _SELECTED if a.id == self.selected_annotation else _RULER
            c0, r0 = self.index_to_screen_f(a.points[0], a.points[1])
            c1, r1 = self.index_to_screen_f(a.points[2], a.points[3])
            if a.kind == "ruler":
                shape = QGraphicsLineItem(c0, r0, c1, r1, self.image_item)
                at = QPointF((c0 + c1) / 2, (r0 + r1) / 2)
            else:
                shape = QGraphicsEllipseItem(QRectF(QPointF(min(c0, c1), min(r0, r1)),
                                                    QPointF(max(c0, c1), max(r0, r1))), self.image_item)
                at = QPointF(max(c0, c1), max(r0, r1))
            shape.setPen(_pen(color))
            self.annotation_items[a.id] = (shape, self._label_item(annotation_text(self.image, a), color, at))
        self.viewport().update()

    def annotation_text(self, ann_id: int) -> str:
        """The text shown beside annotation ``ann_id`` (on the current slice), '' if not shown."""
        item = self.annotation_items.get(ann_id)
        return item[1].text() if item else ""

    def set_show_recist(self, on: bool) -> None:
        self.show_recist = bool(on)
        self.render_recist()

    def render_recist(self) -> None:
        """RECIST long (solid) and short (dashed) axes of the visible objects whose RECIST slice is this one."""
        for it in self.recist_items:
            self.scene_.removeItem(it)
        self.recist_items = []
        if self.image is None or not self.show_recist or self.reformatted:
            return
        for o in self.c.doc.objects:
            m = self.c.measurements.get(o.value)
            if not o.visible or m is None or m.recist_slice != self.c.z or len(m.recist_long_ends) != 2:
                continue
            color = QColor(*o.color).lighter(140)
            for ends, style, mm in ((m.recist_long_ends, Qt.SolidLine, m.recist_long_mm),
                                    (m.recist_short_ends, Qt.DashLine, m.recist_short_mm)):
                (c0, r0), (c1, r1) = self.index_to_screen_f(*ends[0]), self.index_to_screen_f(*ends[1])
                line = QGraphicsLineItem(c0, r0, c1, r1, self.image_item)
                line.setPen(_pen(color, 2.0, style))
                self.recist_items.append(line)
                self.recist_items.append(self._label_item(f"{mm:.1f} {m.length_unit}", color, QPointF(c1, r1)))
        self.viewport().update()

    def render_image(self) -> None:
        img = self.image
        if img is None or not self._visible():
            return
        sl = self._shown(img.voxels)
        if img.is_rgb:
            u8 = sl if sl.dtype == np.uint8 else np.clip(sl, 0, 255).astype(np.uint8)
        else:
            lo = self.level - self.width / 2
            u8 = np.clip((sl.astype(np.float32) - lo) * (255.0 / max(self.width, 1e-6)), 0, 255).astype(np.uint8)
        self.image_item.setPixmap(QPixmap.fromImage(_qimage(u8)))

    def _lut(self) -> np.ndarray:
        lut = np.zeros((256, 4), np.uint8)
        a = int(round(255 * self.opacity))
        for o in self.c.doc.objects:
            if o.visible:
                lut[o.value, :3] = o.color
                lut[o.value, 3] = a
        return lut

    def render_overlay(self) -> None:
        doc = self.c.doc
        if self.image is None or doc.labels is None or not self._visible():
            return
        lab = np.ascontiguousarray(self._shown(doc.labels))
        lut = self._lut()
        if self.fill:
            rgba = lut[lab]
            edge = outline(lab)
            rgba[edge, 3] = 255
        else:
            rgba = np.zeros(lab.shape + (4,), np.uint8)
            edge = outline(lab)
            rgba[edge] = lut[lab[edge]]
            rgba[edge, 3] = np.where(lut[lab[edge], 3] > 0, 255, 0)
        self.overlay_item.setPixmap(QPixmap.fromImage(_qimage(rgba)))
        self.viewport().update()

    def _on_labels(self, z0: int, z1: int) -> None:
        if self.reformatted or z0 <= self.c.z <= z1:
            self.render_overlay()

    def _live_on_this_slice(self, res) -> np.ndarray | None:
        """The live mask of a decode result on this view's slice (screen frame): the mask itself when it
        was drawn here, else where it crosses this slice; None when it does not show here."""
        req = res.request
        if req.plane == self.prompt_plane:
            if req.z != self.k:
                return None
            return res.mask if req.plane else self.image.display.to_screen(res.mask)
        planes = self.c.planes
        src = planes.get(req.plane) if req.plane else planes.get(self.c.stored_plane())
        dst = self.geo if self.reformatted else planes.get(self.c.stored_plane())
        if src is None or dst is None:
            return None
        m = res.mask if req.plane else src.display.to_screen(res.mask)
        m = cross_section(src, req.z, m, dst, self.k)
        return m if m.any() else None

    def _on_live(self, res) -> None:
        m = None if res is None or res.mask is None or self.image is None else self._live_on_this_slice(res)
        if m is None or not self._visible():
            self.live_item.setPixmap(QPixmap())
            if res is None and self._drag is None:
                self.box_item.hide()
            return
        doc = self.c.doc
        if res.request.purpose == "refine" and doc.object(res.request.value) is not None:
            color = doc.object(res.request.value).color
        else:
            try:
                color = default_color(doc.next_value())
            except ValueError:
                color = (255, 255, 0)
        rgba = np.zeros(m.shape + (4,), np.uint8)
        rgba[m] = (*color, int(255 * max(self.opacity, 0.35)))
        rgba[outline(m.astype(np.uint8))] = (*color, 255)
        self.live_item.setPixmap(QPixmap.fromImage(_qimage(rgba)))

    def render_points(self) -> None:
        for it in self.point_items:
            self.scene_.removeItem(it)
        self.point_items = []
        obj = self.c.doc.object(self.c.doc.current)
        if self.image is None or obj is None or obj.z != self.k or obj.plane != self.prompt_plane:
            return
        for x, y, lab in obj.points:
            c, r = (x + 0.5, y + 0.5) if self.reformatted else self.index_to_screen(x, y)
            it = QGraphicsEllipseItem(-4, -4, 8, 8)
            it.setFlag(QGraphicsEllipseItem.ItemIgnoresTransformations)
            it.setPos(self.image_item.mapToScene(QPointF(c, r)))
            it.setBrush(QBrush(QColor(40, 220, 40) if lab else QColor(230, 40, 40)))
            it.setPen(QPen(QColor(255, 255, 255), 1))
            self.scene_.addItem(it)
            self.point_items.append(it)

    def set_window_level(self, level: float, width: float) -> None:
        self.level, self.width = float(level), max(float(width), 1e-3)
        self.render_image()
        self.viewport().update()
        self.windowLevelChanged.emit(self.level, self.width)

    def set_opacity(self, v: float) -> None:
        self.opacity = float(v)
        self.render_overlay()

    def set_fill(self, fill: bool) -> None:
        self.fill = bool(fill)
        self.render_overlay()

    def zoom(self, factor: float, anchor=None) -> None:
        if self.image is None:
            return
        anchor = anchor if anchor is not None else self.viewport().rect().center()
        before = self.mapToScene(anchor)
        self.scale(factor, factor)
        after = self.mapToScene(anchor)
        d = after - before
        self.translate(d.x(), d.y())
        self._fitted = False
        self.zoomChanged.emit(self.transform().m11())

    # --- orientation letters and slice text ---------------------------------------------------
    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        img = self.image
        if img is None:
            painter.save()
            painter.resetTransform()
            painter.setPen(QColor(170, 170, 170))
            painter.drawText(self.viewport().rect(), Qt.AlignCenter,
                             "Open a scan: File ▸ Open file (NIfTI, DICOM, PNG…), Open DICOM folder, or Open sample.\n"
                             "Then drag a box around a structure.")
            painter.restore()
            return
        painter.save()
        painter.resetTransform()
        vr = self.viewport().rect()
        f = QFont(self.font())
        f.setPointSizeF(max(9.0, f.pointSizeF()))
        painter.setFont(f)
        fm = painter.fontMetrics()
        if self.reformatted:
            lt = self.geo.letters
            left, right, top, bottom = lt["left"], lt["right"], lt["top"], lt["bottom"]
        else:
            left, right, top, bottom = _SIDES[img.display.plane]
        img_rect = self.mapFromScene(self.image_item.mapRectToScene(self.image_item.boundingRect())).boundingRect()
        if self.show_crosshair and self.c.planes:
            self._draw_crosshair(painter, vr)
        r = img_rect.intersected(vr.adjusted(4, 4, -4, -4))
        cy, cx = r.center().y(), r.center().x()
        painter.setPen(QColor(255, 200, 60))
        painter.drawText(r.left() + 4, cy + fm.ascent() // 2, left)
        painter.drawText(r.right() - fm.horizontalAdvance(right) - 4, cy + fm.ascent() // 2, right)
        painter.drawText(cx - fm.horizontalAdvance(top) // 2, r.top() + fm.ascent() + 4, top)
        painter.drawText(cx - fm.horizontalAdvance(bottom) // 2, r.bottom() - 4, bottom)
        painter.setPen(QColor(230, 230, 230))
        plane = self.geo.name if self.reformatted else img.display.plane
        lines_tl = [f"{plane.capitalize()}  {self.k + 1} / {self.n_slices()}",
                    f"W {self.width:.0f}  L {self.level:.0f}" if not img.is_rgb else "RGB"]
        for i, t in enumerate(lines_tl):
            painter.drawText(8, 8 + fm.ascent() + i * fm.height(), t)
        if self._cursor:
            painter.drawText(8, vr.bottom() - 8, self._cursor)
        painter.restore()

    def crosshair_screen(self) -> tuple[float, float]:
        """The crosshair voxel's centre on this view's slice: continuous screen (col, row)."""
        z, y, x = self.c.cursor
        if self.reformatted:
            _, row, col = self.geo.from_voxel((z, y, x))
            return float(col) + 0.5, float(row) + 0.5
        return self.index_to_screen(x, y)

    def _draw_crosshair(self, painter: QPainter, vr) -> None:
        col, row = self.crosshair_screen()
        p = self.mapFromScene(self.image_item.mapToScene(QPointF(col, row)))
        pen = QPen(_CROSSHAIR, 1)
        painter.setPen(pen)
        painter.drawLine(vr.left(), p.y(), vr.right(), p.y())
        painter.drawLine(p.x(), vr.top(), p.x(), vr.bottom())

    # --- input --------------------------------------------------------------------------------
    def eventFilter(self, obj, ev):
        if obj is self and self.image is not None:
            t = ev.type()
            if t == QEvent.MouseButtonPress:
                self.mousePressEvent(ev)
                return True
            if t == QEvent.MouseMove:
                self.mouseMoveEvent(ev)
                return True
            if t == QEvent.MouseButtonRelease:
                self.mouseReleaseEvent(ev)
                return True
        return super().eventFilter(obj, ev)

    def _in_image(self, col, row) -> bool:
        rows, cols = self.screen_shape()
        return 0 <= col < cols and 0 <= row < rows

    def mousePressEvent(self, e):
        if self.image is None:
            return super().mousePressEvent(e)
        self.setFocus()
        pos = e.position()
        col, row = self.item_px(pos)
        b = e.button()
        self._moved = False
        self.c.set_active_plane(self.prompt_plane)
        if b == Qt.LeftButton and self.reformatted and self.tool in _STORED_ONLY_TOOLS and not self._space:
            self._drag = None
            self.c.message.emit(f"the {self.tool} works on the stored ({self.c.stored_plane() or 'axial'}) slices: "
                                "use that view")
            return
        if b == Qt.MiddleButton or (b == Qt.LeftButton and (self.tool == "pan" or self._space)):
            self._drag = ("pan", pos)
        elif b == Qt.RightButton:
            self._drag = ("wl", pos, self.level, self.width)
        elif b == Qt.LeftButton and self.tool == "box":
            if not self._in_image(col, row):
                self._drag = None
                return
            self._drag = ("box", (col, row))
            self.box_item.setRect(QRectF(col, row, 0, 0))
            self.box_item.show()
            self.c.begin_drag()
        elif b == Qt.LeftButton and self.tool in ("ruler", "roi"):
            if not self._in_image(col, row):
                self._drag = None
                return
            self._drag = (self.tool, (col, row))
            self.drawing_item = (QGraphicsLineItem(col, row, col, row, self.image_item) if self.tool == "ruler"
                                 else QGraphicsEllipseItem(QRectF(col, row, 0, 0), self.image_item))
            self.drawing_item.setPen(_pen(_RULER, 1.5, Qt.DashLine))
        elif b == Qt.LeftButton and self.tool in ("add", "remove"):
            self._drag = ("click", pos)
        elif b == Qt.LeftButton and self.tool in ("brush", "eraser"):
            erase = self.tool == "eraser" or bool(e.modifiers() & Qt.ShiftModifier)
            self._drag = None
            if self._in_image(col, row) and self.c.stroke_begin(*self.screen_to_index_f(col, row), erase=erase):
                self._drag = ("stroke",)
        e.accept()

    def mouseMoveEvent(self, e):
        if self.image is None:
            return super().mouseMoveEvent(e)
        pos = e.position()
        col, row = self.item_px(pos)
        self._update_cursor(col, row)
        self.update_brush_cursor(col, row)
        d = self._drag
        if d is None:
            return
        self._moved = True
        if d[0] == "stroke":
            self.c.stroke_to(*self.screen_to_index_f(col, row))
        elif d[0] == "box":
            c0, r0 = d[1]
            rows, cols = self.screen_shape()
            c1, r1 = float(np.clip(col, 0, cols)), float(np.clip(row, 0, rows))
            self.box_item.setRect(QRectF(QPointF(min(c0, c1), min(r0, r1)), QPointF(max(c0, c1), max(r0, r1))))
            box = self.box_from_screen((c0, r0), (c1, r1))
            if box[2] > box[0] and box[3] > box[1]:
                self.c.drag_box(box, self.prompt_plane)
        elif d[0] in ("ruler", "roi") and self.drawing_item is not None:
            c0, r0 = d[1]
            rows, cols = self.screen_shape()
            c1, r1 = float(np.clip(col, 0, cols)), float(np.clip(row, 0, rows))
            if d[0] == "ruler":
                self.drawing_item.setLine(c0, r0, c1, r1)
            else:
                self.drawing_item.setRect(QRectF(QPointF(min(c0, c1), min(r0, r1)), QPointF(max(c0, c1), max(r0, r1))))
        elif d[0] == "wl":
            dx, dy = pos.x() - d[1].x(), pos.y() - d[1].y()
            scale = max(d[3], 1.0) / 256.0
            self.set_window_level(d[2] - dy * scale, max(1.0, d[3] + dx * scale * 2))
        elif d[0] == "pan":
            delta = (pos - d[1]) / max(self.transform().m11(), 1e-6)
            self._drag = ("pan", pos)
            self.translate(delta.x(), delta.y())
            self._fitted = False
        e.accept()

    def mouseReleaseEvent(self, e):
        if self.image is None:
            return super().mouseReleaseEvent(e)
        d, self._drag = self._drag, None
        if d is None:
            return
        col, row = self.item_px(e.position())
        if self._refit:
            self._refit = False
            self.fit()
        if d[0] == "stroke":
            self.c.stroke_end()
        elif d[0] == "box":
            c0, r0 = d[1]
            rows, cols = self.screen_shape()
            c1, r1 = float(np.clip(col, 0, cols)), float(np.clip(row, 0, rows))
            box = self.box_from_screen((c0, r0), (c1, r1))
            if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
                self.c.end_drag(box, self.prompt_plane)
            else:  # a click: the crosshair goes there, and the object under it is selected
                self.box_item.hide()
                self.c.cancel_drag()
                self._select_at(col, row)
                self.move_crosshair(col, row)
        elif d[0] in ("ruler", "roi"):
            if self.drawing_item is not None:
                self.scene_.removeItem(self.drawing_item)
                self.drawing_item = None
            c0, r0 = d[1]
            rows, cols = self.screen_shape()
            c1, r1 = float(np.clip(col, 0, cols)), float(np.clip(row, 0, rows))
            # under 3 screen pixels of drag: a click, which selects the ruler/ROI under the cursor
            p0 = self.mapFromScene(self.image_item.mapToScene(QPointF(c0, r0)))
            if (p0 - e.position().toPoint()).manhattanLength() < 3:
                self.select_annotation_at(e.position())
            else:
                self.c.add_annotation(d[0], (*self.screen_to_index_f(c0, r0), *self.screen_to_index_f(c1, r1)))
        elif d[0] == "click" and self._in_image(col, row):
            if self.reformatted:
                self.c.add_point(int(np.floor(col)), int(np.floor(row)), positive=self.tool == "add",
                                 plane=self.prompt_plane)
            else:
                x, y = self.to_index(col, row)
                self.c.add_point(x, y, positive=self.tool == "add")
        e.accept()

    def select_annotation_at(self, viewport_pos, tolerance: float = 6.0) -> int | None:
        """Select the ruler/ROI of this slice nearest to the viewport position (within ``tolerance``
        screen pixels of its line or outline); returns its id, or None (nothing selected)."""
        best, best_d = None, tolerance
        p = np.array([viewport_pos.x(), viewport_pos.y()], float)
        for aid, (shape, _) in self.annotation_items.items():
            if isinstance(shape, QGraphicsLineItem):
                ln = shape.line()
                a = self.mapFromScene(shape.mapToScene(ln.p1()))
                b = self.mapFromScene(shape.mapToScene(ln.p2()))
                a, b = np.array([a.x(), a.y()], float), np.array([b.x(), b.y()], float)
                t = float(np.clip(np.dot(p - a, b - a) / max(np.dot(b - a, b - a), 1e-9), 0, 1))
                d = float(np.linalg.norm(a + t * (b - a) - p))
            else:
                r = self.mapFromScene(shape.mapToScene(shape.rect())).boundingRect()
                cx, cy, rx, ry = r.center().x(), r.center().y(), max(r.width() / 2, 1), max(r.height() / 2, 1)
                ang = np.arctan2((p[1] - cy) / ry, (p[0] - cx) / rx)
                d = float(np.hypot(cx + rx * np.cos(ang) - p[0], cy + ry * np.sin(ang) - p[1]))
            if d <= best_d:
                best, best_d = aid, d
        self.selected_annotation = best
        self.render_annotations()
        return best

    def update_brush_cursor(self, col: float | None = None, row: float | None = None) -> None:
        """The brush outline (radius ``c.brush_mm`` on the slice's true spacing) centred at screen
        position (col, row), or where it was; hidden for the other tools and outside the image."""
        if col is None:
            if not self.brush_item.isVisible():
                return
            r = self.brush_item.rect()
            col, row = r.center().x(), r.center().y()
        if self.image is None or self.tool not in ("brush", "eraser") or not self._in_image(col, row):
            self.brush_item.hide()
            return
        _, sy, sx = self.image.spacing
        cw, rh = (sy, sx) if self.image.display.transpose else (sx, sy)  # mm per screen column / row
        rc, rr = self.c.brush_mm / cw, self.c.brush_mm / rh
        self.brush_item.setRect(QRectF(col - rc, row - rr, 2 * rc, 2 * rr))
        self.brush_item.show()

    def move_crosshair(self, col: float, row: float) -> None:
        """Move the crosshair to the voxel at screen (col, row): the other views go to its slices."""
        v = self.voxel_at(col, row)
        if v is not None:
            self.c.set_cursor(*v)

    def _select_at(self, col, row) -> None:
        v = self.voxel_at(col, row)
        if v is None or self.c.doc.labels is None:
            return
        val = int(self.c.doc.labels[v])
        if val:
            self.c.doc.set_current(val)

    def _update_cursor(self, col, row) -> None:
        img = self.image
        vox = self.voxel_at(col, row)
        if vox is None:
            self._cursor = None
        else:
            z, y, x = vox
            v = img.voxels[z, y, x]
            if img.is_rgb:
                val = "RGB " + ",".join(str(int(c)) for c in v)
            else:
                unit = " HU" if img.units == "HU" else ""
                val = f"{float(v):.0f}{unit}" if abs(float(v)) >= 100 or img.units == "HU" else f"{float(v):.4g}"
            ras = img.index_to_ras([[x, y, z]])[0]
            self._cursor = f"x {x}  y {y}  z {z}   {val}   (RAS {ras[0]:.1f}, {ras[1]:.1f}, {ras[2]:.1f} mm)"
        self.cursorInfo.emit(self._cursor or "")
        self.viewport().update()

    def wheelEvent(self, e):
        if self.image is None:
            return
        dy = e.angleDelta().y()
        if e.modifiers() & Qt.ControlModifier:
            self.zoom(1.25 if dy > 0 else 0.8, e.position().toPoint())
        elif dy:
            self.c.set_active_plane(self.prompt_plane)
            self.set_k(self.k + (1 if dy > 0 else -1))
        e.accept()

    def keyPressEvent(self, e):
        k = e.key()
        if self.image is not None and k in (Qt.Key_PageUp, Qt.Key_Up):
            self.set_k(self.k + (10 if k == Qt.Key_PageUp and e.modifiers() & Qt.ShiftModifier else 1))
        elif self.image is not None and k in (Qt.Key_PageDown, Qt.Key_Down):
            self.set_k(self.k - 1)
        elif k == Qt.Key_Escape and self._drag is not None and self._drag[0] == "stroke":
            self._drag = None
            self.c.stroke_cancel()
        elif k == Qt.Key_Escape and self._drag is not None and self._drag[0] == "box":
            self._drag = None
            self.box_item.hide()
            self.c.cancel_drag()
        elif k == Qt.Key_Escape and self._drag is not None and self._drag[0] in ("ruler", "roi"):
            self._drag = None
            if self.drawing_item is not None:
                self.scene_.removeItem(self.drawing_item)
                self.drawing_item = None
        elif k == Qt.Key_Space and not e.isAutoRepeat():
            self._space = True
        else:
            super().keyPressEvent(e)

    def keyReleaseEvent(self, e):
        if e.key() == Qt.Key_Space and not e.isAutoRepeat():
            self._space = False
        super().keyReleaseEvent(e)
