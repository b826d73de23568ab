"""The main window (objectName ``mainWindow``): menus, tool bar, slice view, objects panel, status bar.

Widgets only render and route input; the :class:`~app.gui.controller.Controller` owns the document
and the workers. objectNames used by tests: ``mainWindow``, ``sliceView``, ``objectList``,
``propagateButton`` (the panel's button and the Segment menu action), ``sliceSlider``; File
actions ``actionOpenFile``, ``actionOpenFolder``, ``actionOpenSample`` (the bundled brain MR volume, first
in File ▸ Open sample and the tool bar's Sample button), ``actionOpenSampleCT`` (the bundled CT slice),
``actionOpenLabelMap``, ``actionSave``, ``actionSaveAs``; ``restoreBar`` (offer to restore autosaved work).
Opening: ``actionOpenDicomdir``, the study/series browser ``seriesBrowser`` (File ▸ Open DICOM folder /
DICOMDIR, drops of a folder or DICOMDIR; :mod:`app.gui.opening`), File ▸ Recent ``menuRecent``
(:mod:`app.gui.recent`).
Measuring: tools ``toolRuler`` and ``toolRoi`` (Segment menu, tool bar), ``actionDeleteMeasurement`` (Edit),
``actionShowRecist`` and ``actionShowMeasurements`` (View; the dock ``measurementsDock`` with
``measurementsTable``), ``confidenceStrip`` under the slice slider, ``actionRepropagateFromSlice`` (Segment).
Editing (issue 14): tools ``toolBox``, ``toolBrush``, ``toolEraser`` (exclusive with the point, pan, ruler and
ROI tools), ``brushSize`` (QDoubleSpinBox, mm, tool bar), ``actionBrush3D``; Segment ▸ ``actionFillBetween``
(a preview with ``fillBar``: ``fillAcceptButton`` / ``fillDiscardButton``), ``actionFillHoles``,
``actionFillHolesSlices``, ``actionKeepLargest``, ``actionSmooth``; ``actionLockObject`` (L; also the objects
panel's lock button); Help ▸ ``actionShortcuts`` (the ``shortcutsDialog``).
Views (issue 15, :mod:`app.gui.views.layout`): View ▸ Layout ``layoutSingle`` (``sliceView``), ``layout1x3``
(``axialView``, ``coronalView``, ``sagittalView`` with ``axialSlider``/``coronalSlider``/``sagittalSlider``,
linked by the crosshair), ``layout2x2`` (the three and ``view3D``); ``sliceSlider`` stays the stored slices'.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QIcon, QKeySequence
from PySide6.QtWidgets import (QComboBox, QDialog, QDockWidget, QDoubleSpinBox, QFileDialog, QFrame, QHBoxLayout,
                               QLabel, QMainWindow, QMenu, QMessageBox, QProgressBar, QProgressDialog, QPushButton,
                               QSlider, QToolBar, QVBoxLayout, QWidget)

from app.autosave import find_snapshot
from app.gui.controller import WINDOW_PRESETS, Controller
from app.gui.dialogs.about import about_text
from app.gui.dialogs.settings import SettingsDialog
from app.gui.opening import Opener
from app.gui.dialogs.shortcuts import ShortcutsDialog
from app.gui.panels.measurements import MeasurementsPanel
from app.gui.panels.objects import ObjectsPanel
from app.gui.recent import RecentMenu, add_recent
from app.gui.samples import SAMPLES, sample_path
from app.gui.settings import Settings
from app.gui.views.confidence_strip import ConfidenceStrip
from app.gui.views.layout import ViewsArea
from app.gui.views.slice_view import SliceView
from engine.base.folders import assets_dir
from engine.io.formats import LABELMAP_SUFFIXES, is_dicomdir, labelmap_format, patterns


class PropagateAction(QAction):
    """The Segment ▸ Propagate action; ``click()`` is an alias of ``trigger()``."""

    def click(self):
        self.trigger()


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, confirm_close: bool = False):
        super().__init__()
        self.setObjectName("mainWindow")
        self.setWindowTitle("BoxSeg")
        self.setWindowIcon(QIcon(str(assets_dir() / "icon" / "boxseg.png")))
        self.resize(1200, 800)
        self.confirm_close = confirm_close
        self.c = Controller(self, settings=settings)
        self.view = SliceView(self.c)
        self.views = ViewsArea(self.c, self.view)
        self._progress: QProgressDialog | None = None
        self._job_id = None
        self._snapshot = None
        self._closed = False
        self._build_central()
        self._build_actions()
        self.setAcceptDrops(True)
        for v in self.views.all_views():  # a view's scene would take drags and refuse drops; the window takes them
            v.setAcceptDrops(False)
            v.viewport().setAcceptDrops(False)
        self._build_edit_actions()
        self._build_panel()
        self._build_status()
        c = self.c
        c.imageOpened.connect(self._on_image)
        c.sliceChanged.connect(self._on_slice)
        c.jobStarted.connect(self._on_job_started)
        c.jobProgress.connect(self._on_job_progress)
        c.jobFinished.connect(self._on_job_finished)
        c.error.connect(self.show_error)
        self.views.view3d.unavailable.connect(lambda why: self.statusBar().showMessage(why, 15000))
        c.message.connect(lambda m: self.statusBar().showMessage(m, 8000))
        c.timingsChanged.connect(self.timings_label.setText)
        c.precomputeProgress.connect(self._on_precompute)
        c.modelReady.connect(lambda s: self.model_label.setText(s))
        c.restoreAvailable.connect(self.offer_restore)
        c.doc.dirtyChanged.connect(lambda _d: self._update_title())
        c.doc.currentChanged.connect(lambda _v: self.update_actions())
        c.doc.labelsChanged.connect(lambda *_: self.update_actions())
        c.sliceChanged.connect(lambda _z: self.update_actions())
        for v in self.views.all_views():
            v.cursorInfo.connect(self.cursor_label.setText)
        self.update_actions()

    # --- layout ---------------------------------------------------------------------------------
    def _build_central(self):
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.restore_bar = QFrame()
        self.restore_bar.setObjectName("restoreBar")
        self.restore_bar.setStyleSheet("#restoreBar { background: #fff4c2; } QLabel { color: #3a3000; }")
        rb = QHBoxLayout(self.restore_bar)
        self.restore_label = QLabel()
        self.restore_btn = QPushButton("Restore")
        self.restore_btn.setObjectName("restoreButton")
        self.discard_btn = QPushButton("Discard")
        self.discard_btn.setObjectName("discardButton")
        rb.addWidget(self.restore_label, 1)
        rb.addWidget(self.restore_btn)
        rb.addWidget(self.discard_btn)
        self.restore_bar.hide()
        self.restore_btn.clicked.connect(self._restore)
        self.discard_btn.clicked.connect(self._discard)
        lay.addWidget(self.restore_bar)
        lay.addWidget(self._build_fill_bar())
        lay.addWidget(self.views, 1)
        row = QHBoxLayout()
        row.setContentsMargins(8, 4, 8, 4)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setObjectName("sliceSlider")
        self.slider.setRange(0, 0)
        self.slider.setPageStep(5)
        self.slice_label = QLabel("no image")
        self.slice_label.setMinimumWidth(110)
        self.strip = ConfidenceStrip(self.c)
        col = QVBoxLayout()  # the strip right under the slider, over the same width
        col.setSpacing(1)
        col.addWidget(self.slider)
        col.addWidget(self.strip)
        row.addWidget(QLabel("Slice"))
        row.addLayout(col, 1)
        row.addWidget(self.slice_label)
        lay.addLayout(row)
        self.slider.valueChanged.connect(self.c.set_slice)
        self.setCentralWidget(w)

    def _act(self, text, slot=None, shortcut=None, name=None, checkable=False, cls=QAction):
        a = cls(text, self)
        if name:
            a.setObjectName(name)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        a.setCheckable(checkable)
        if slot is not None:
            a.triggered.connect(slot)
        return a

    def _build_actions(self):
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self.a_open = self._act("&Open file…", self.open_file_dialog, QKeySequence.Open, "actionOpenFile")
        self.a_open_dir = self._act("Open &DICOM folder…", self.open_folder_dialog, "Ctrl+Shift+O",
                                    "actionOpenFolder")
        self.opener = Opener(self)
        self.a_open_dicomdir = self._act("Open DICOMD&IR…", self.open_dicomdir_dialog, None, "actionOpenDicomdir")
        self.recent_menu = RecentMenu(self, lambda p: self.opener.open_any(p, strict=False))
        self.a_sample = self._act(SAMPLES["volume"][1], lambda: self.open_sample("volume"), None,
                                  "actionOpenSample")
        self.a_sample_ct = self._act(SAMPLES["ct"][1], lambda: self.open_sample("ct"), None, "actionOpenSampleCT")
        self.sample_menu = QMenu("Open &sample", self)
        self.sample_menu.setObjectName("menuOpenSample")
        self.sample_menu.addAction(self.a_sample)
        self.sample_menu.addAction(self.a_sample_ct)
        self.a_open_lm = self._act("Open &label map…", self.open_labelmap_dialog, None, "actionOpenLabelMap")
        self.a_save = self._act("&Save segmentation", self.save, QKeySequence.Save, "actionSave")
        self.a_save_as = self._act("Save segmentation &as…", self.save_as, QKeySequence.SaveAs, "actionSaveAs")
        self.a_quit = self._act("&Quit", self.close, QKeySequence.Quit, "actionQuit")
        for a in (self.a_open, self.a_open_dir, self.a_open_dicomdir, self.sample_menu, self.recent_menu, None,
                  self.a_open_lm, self.a_save, self.a_save_as, None, self.a_quit):
            f.addSeparator() if a is None else f.addMenu(a) if isinstance(a, QMenu) else f.addAction(a)
        e = mb.addMenu("&Edit")
        self.a_undo = self.c.doc.undo_stack.createUndoAction(self, "&Undo")
        self.a_undo.setShortcut(QKeySequence.Undo)
        self.a_undo.setObjectName("actionUndo")
        self.a_redo = self.c.doc.undo_stack.createRedoAction(self, "&Redo")
        self.a_redo.setShortcuts([QKeySequence.Redo, QKeySequence("Ctrl+Shift+Z")])
        self.a_redo.setObjectName("actionRedo")
        self.a_delete = self._act("&Delete object", self.delete_object, QKeySequence.Delete, "actionDelete")
        self.a_settings = self._act("Se&ttings…", self.open_settings, None, "actionSettings")
        self.a_delete_meas = self._act("Delete ruler/&ROI", self.delete_measurement, "Ctrl+Backspace",
                                       "actionDeleteMeasurement")
        self.a_delete_meas.setToolTip("Delete the selected ruler/ROI (click it with the ruler or ROI tool), "
                                      "else the last one drawn on this slice")
        for a in (self.a_undo, self.a_redo, None, self.a_delete, self.a_delete_meas, None, self.a_settings):
            e.addSeparator() if a is None else e.addAction(a)
        s = mb.addMenu("&Segment")
        tools = QActionGroup(self)
        self.a_box = self._act("&Box", lambda: self.set_tool("box"), "X", "toolBox", True)
        self.a_add = self._act("Add (+) point", lambda: self.set_tool("add"), "A", "actionAddPoint", True)
        self.a_remove = self._act("Remove (−) point", lambda: self.set_tool("remove"), "R", "actionRemovePoint", True)
        self.a_pan = self._act("&Pan", lambda: self.set_tool("pan"), "H", "actionPan", True)
        self.a_ruler = self._act("R&uler", lambda: self.set_tool("ruler"), "U", "toolRuler", True)
        self.a_roi = self._act("R&OI (ellipse)", lambda: self.set_tool("roi"), "I", "toolRoi", True)
        self.a_brush = self._act("B&rush", lambda: self.set_tool("brush"), "B", "toolBrush", True)
        self.a_eraser = self._act("&Eraser", lambda: self.set_tool("eraser"), "E", "toolEraser", True)
        self.tools = tools
        for a in (self.a_box, self.a_add, self.a_remove, self.a_brush, self.a_eraser, self.a_pan, self.a_ruler,
                  self.a_roi):
            tools.addAction(a)
            s.addAction(a)
        self.a_box.setChecked(True)
        s.addSeparator()
        self.a_propagate = self._act("&Propagate through volume", self.propagate, "Ctrl+P", "propagateButton",
                                     cls=PropagateAction)
        s.addAction(self.a_propagate)
        self.a_repropagate = self._act("&Re-propagate from this slice", self.repropagate, "Ctrl+Shift+P",
                                       "actionRepropagateFromSlice")
        self.a_repropagate.setToolTip("Re-box the selected object on this slice (its mask as it is now) and "
                                      "propagate it again from here outward, replacing it from this slice on")
        s.addAction(self.a_repropagate)
        self.segment_menu = s
        v = mb.addMenu("&View")
        self.a_fit = self._act("&Fit to window", lambda: self.views.current_view().fit(), "F", "actionFit")
        self.a_zoom_in = self._act("Zoom &in", lambda: self.views.current_view().zoom(1.25), QKeySequence.ZoomIn)
        self.a_zoom_out = self._act("Zoom &out", lambda: self.views.current_view().zoom(0.8), QKeySequence.ZoomOut)
        self.a_outline = self._act("&Outline only", lambda on: self._each_view(lambda w: w.set_fill(not on)), "O",
                                   "actionOutline", True)
        self.a_recist = self._act("&RECIST axes", lambda on: self._each_view(lambda w: w.set_show_recist(on)), None,
                                  "actionShowRecist", True)
        self.a_show_meas = self._act("&Measurements table", None, "Ctrl+M", "actionShowMeasurements", True)
        for a in (self.a_fit, self.a_zoom_in, self.a_zoom_out, self.a_outline, None, self.a_recist, self.a_show_meas):
            v.addSeparator() if a is None else v.addAction(a)
        lm = v.addMenu("&Layout")
        lm.setObjectName("menuLayout")
        lg = QActionGroup(self)
        self.layout_actions = {}
        for name, text, key, obj in (("single", "&Single view", "Ctrl+1", "layoutSingle"),
                                     ("1x3", "&Three planes (1×3)", "Ctrl+2", "layout1x3"),
                                     ("2x2", "Three planes and &3D (2×2)", "Ctrl+3", "layout2x2")):
            a = self._act(text, lambda _=False, n=name: self.set_layout(n), key, obj, True)
            a.setToolTip("Axial, coronal and sagittal views linked by a crosshair (a click moves it)"
                         if name != "single" else "One view of the stored slices")
            lg.addAction(a)
            lm.addAction(a)
            self.layout_actions[name] = a
        self.layout_actions[self.views.chosen].setChecked(True)
        wm = v.addMenu("&Window preset (model input)")
        wg = QActionGroup(self)
        self.window_actions = []
        for label, spec in WINDOW_PRESETS:
            a = self._act(label, lambda _=False, sp=spec: self.set_window(sp), checkable=True)
            wg.addAction(a)
            wm.addAction(a)
            self.window_actions.append((a, spec))
        self.window_actions[0][0].setChecked(True)
        h = mb.addMenu("&Help")
        self.a_about = self._act("&About BoxSeg", self.about, None, "actionAbout")
        self.a_shortcuts = self._act("&Keyboard shortcuts", self.show_shortcuts, "F1", "actionShortcuts")
        h.addAction(self.a_shortcuts)
        h.addAction(self.a_about)

        tb = QToolBar("Main")
        tb.setObjectName("mainToolBar")
        tb.setMovable(False)
        self.addToolBar(tb)
        stack = self.c.doc.undo_stack
        self.tb_undo = self._act("Undo", stack.undo)
        self.tb_redo = self._act("Redo", stack.redo)
        self.tb_undo.setEnabled(False)
        self.tb_redo.setEnabled(False)
        stack.canUndoChanged.connect(self.tb_undo.setEnabled)
        stack.canRedoChanged.connect(self.tb_redo.setEnabled)
        stack.undoTextChanged.connect(lambda t: self.tb_undo.setToolTip(f"Undo {t}".strip()))
        stack.redoTextChanged.connect(lambda t: self.tb_redo.setToolTip(f"Redo {t}".strip()))
        short = {self.a_open: "Open", self.a_open_dir: "DICOM folder", self.a_sample: "Sample", self.a_save: "Save",
                 self.a_add: "+ point", self.a_remove: "− point", self.a_propagate: "Propagate ↕",
                 self.a_ruler: "Ruler", self.a_roi: "ROI"}
        short.update({self.a_brush: "Brush", self.a_eraser: "Eraser"})
        for a in (self.a_open, self.a_open_dir, self.a_sample, self.a_save, None, self.tb_undo, self.tb_redo, None,
                  self.a_box, self.a_add, self.a_remove, self.a_brush, self.a_eraser, self.a_pan, self.a_ruler,
                  self.a_roi, None, self.a_propagate):
            if a is None:
                tb.addSeparator()
                continue
            if a in short:
                a.setIconText(short[a])  # the tool bar shows iconText, menus the full text
                a.setToolTip(a.text().replace("&", ""))
            tb.addAction(a)
        self.a_sample.setToolTip("Open sample: " + SAMPLES["volume"][1] + " (File ▸ Open sample: both samples)")
        tb.addSeparator()
        tb.addWidget(QLabel(" Window "))
        self.window_combo = QComboBox()
        self.window_combo.setObjectName("windowCombo")
        for label, spec in WINDOW_PRESETS:
            self.window_combo.addItem(label, spec)
        self.window_combo.activated.connect(lambda i: self.set_window(self.window_combo.itemData(i)))
        tb.addWidget(self.window_combo)
        tb.addWidget(QLabel("  Opacity "))
        self.opacity = QSlider(Qt.Horizontal)
        self.opacity.setObjectName("opacitySlider")
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.opacity.setFixedWidth(100)
        self.opacity.valueChanged.connect(lambda v: self._each_view(lambda w: w.set_opacity(v / 100)))
        tb.addWidget(self.opacity)
        tb.addAction(self.a_outline)

    def _build_fill_bar(self) -> QFrame:
        """The bar shown while a fill between slices is previewed: Accept / Discard."""
        bar = QFrame()
        bar.setObjectName("fillBar")
        bar.setStyleSheet("#fillBar { background: #d9ecff; } QLabel { color: #002a4d; }")
        row = QHBoxLayout(bar)
        self.fill_label = QLabel()
        self.fill_accept = QPushButton("Accept")
        self.fill_accept.setObjectName("fillAcceptButton")
        self.fill_discard = QPushButton("Discard")
        self.fill_discard.setObjectName("fillDiscardButton")
        row.addWidget(self.fill_label, 1)
        row.addWidget(self.fill_accept)
        row.addWidget(self.fill_discard)
        bar.hide()
        self.fill_accept.clicked.connect(self.c.accept_fill)
        self.fill_discard.clicked.connect(self.c.discard_fill)
        self.c.fillPreview.connect(self._on_fill_preview)
        self.fill_bar = bar
        return bar

    def _on_fill_preview(self, p) -> None:
        if p is None:
            self.fill_bar.hide()
            return
        zs = p.slices
        self.fill_label.setText(f"Fill between slices: {len(zs)} slice{'s' if len(zs) != 1 else ''} "
                                f"({min(zs)}–{max(zs)}) shown brighter. Keep them?")
        self.fill_bar.show()
        if self.c.z not in zs:
            self.c.set_slice(zs[len(zs) // 2])

    def _build_edit_actions(self):
        """Brush size and 3D toggle, clean-up and fill between slices, lock, select object 1-9."""
        s, c = self.segment_menu, self.c
        self.addToolBarBreak()
        tb = QToolBar("Editing")  # a second row: the main tool bar is full
        tb.setObjectName("editToolBar")
        tb.setMovable(False)
        self.addToolBar(tb)
        self.a_brush3d = self._act("Brush &3D (ball through slices)", self._set_brush_3d, "Shift+B", "actionBrush3D",
                                   True)
        self.a_brush3d.setIconText("3D")
        self.a_smaller = self._act("Smaller brush", lambda: self.brush_size.stepDown(), "[", "actionBrushSmaller")
        self.a_larger = self._act("Larger brush", lambda: self.brush_size.stepUp(), "]", "actionBrushLarger")
        self.a_fill_between = self._act("Fill &between slices", self.fill_between, "Ctrl+I", "actionFillBetween")
        self.a_fill_between.setToolTip("Interpolate the selected object on the empty slices between the slices where "
                                       "it is drawn (a preview to accept or discard)")
        self.a_fill_holes = self._act("Fill &holes (3D)", lambda: c.cleanup("fill-holes"), None, "actionFillHoles")
        self.a_fill_holes2d = self._act("Fill holes in each &slice", lambda: c.cleanup("fill-holes-2d"), None,
                                        "actionFillHolesSlices")
        self.a_keep_largest = self._act("&Keep largest part (remove islands)", lambda: c.cleanup("keep-largest"),
                                        None, "actionKeepLargest")
        self.a_smooth = self._act("S&mooth (1 mm)", lambda: c.cleanup("smooth"), None, "actionSmooth")
        self.a_lock = self._act("&Lock object", self.toggle_lock, "L", "actionLockObject", True)
        self.a_lock.setToolTip("A locked object's voxels are never changed by a box, propagation, brush, "
                               "clean-up or interpolation")
        s.addSeparator()
        s.addAction(self.a_brush3d)
        s.addAction(self.a_smaller)
        s.addAction(self.a_larger)
        s.addSeparator()
        s.addAction(self.a_fill_between)
        cm = s.addMenu("&Clean up")
        for a in (self.a_fill_holes, self.a_fill_holes2d, self.a_keep_largest, self.a_smooth):
            cm.addAction(a)
        s.addSeparator()
        s.addAction(self.a_lock)
        self.select_actions = []
        for k in range(1, 10):
            a = self._act(f"Select object {k}", lambda _=False, k=k: self.select_object(k), str(k), f"actionSelect{k}")
            self.addAction(a)  # shortcuts without a menu entry
            self.select_actions.append(a)
        tb.addWidget(QLabel(" Brush "))
        self.brush_size = QDoubleSpinBox()
        self.brush_size.setObjectName("brushSize")
        self.brush_size.setRange(0.5, 100.0)
        self.brush_size.setSingleStep(1.0)
        self.brush_size.setDecimals(1)
        self.brush_size.setSuffix(" mm")
        self.brush_size.setToolTip("Brush radius in mm ([ and ] change it)")
        self.brush_size.setValue(c.brush_mm)
        self.brush_size.valueChanged.connect(self._set_brush_mm)
        tb.addWidget(self.brush_size)
        tb.addAction(self.a_brush3d)
        tb.addSeparator()
        short = {self.a_fill_between: "Fill between", self.a_fill_holes: "Fill holes", self.a_keep_largest:
                 "Keep largest", self.a_smooth: "Smooth", self.a_lock: "Lock"}
        for a in (self.a_fill_between, self.a_fill_holes, self.a_keep_largest, self.a_smooth, None, self.a_lock):
            if a is None:
                tb.addSeparator()
                continue
            a.setIconText(short[a])
            a.setToolTip(a.toolTip() or a.text().replace("&", ""))
            tb.addAction(a)

    def _set_brush_mm(self, mm: float) -> None:
        self.c.brush_mm = float(mm)
        self.c.settings.brush_mm = float(mm)
        self._each_view(lambda w: w.update_brush_cursor())

    def _set_brush_3d(self, on: bool) -> None:
        self.c.brush_3d = bool(on)

    def toggle_lock(self):
        o = self.c.doc.object(self.c.doc.current)
        if o is None:
            self.a_lock.setChecked(False)
            return
        self.c.set_locked(o.value, not o.locked)

    def select_object(self, k: int) -> None:
        """Select the k-th object of the list (1-based)."""
        objs = self.c.doc.objects
        if 1 <= k <= len(objs):
            self.c.doc.set_current(objs[k - 1].value)

    def fill_between(self):
        return self.c.fill_between(z_range=self.panel.z_range())

    def show_shortcuts(self):
        dlg = ShortcutsDialog(self)
        dlg.setAttribute(Qt.WA_DeleteOnClose)
        dlg.open()
        return dlg

    def _build_panel(self):
        self.panel = ObjectsPanel(self)
        dock = QDockWidget("Objects", self)
        dock.setObjectName("objectsDock")
        dock.setWidget(self.panel)
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        self.addDockWidget(Qt.RightDockWidgetArea, dock)
        self.resizeDocks([dock], [300], Qt.Horizontal)
        self.measurements_panel = MeasurementsPanel(self)
        md = QDockWidget("Measurements", self)
        md.setObjectName("measurementsDock")
        md.setWidget(self.measurements_panel)
        self.addDockWidget(Qt.BottomDockWidgetArea, md)
        md.hide()
        self.measurements_dock = md
        self.a_show_meas.toggled.connect(md.setVisible)
        md.visibilityChanged.connect(self.a_show_meas.setChecked)

    def _build_status(self):
        sb = self.statusBar()
        self.cursor_label = QLabel("")
        self.cursor_label.setObjectName("cursorLabel")
        self.model_label = QLabel("loading model…")
        self.model_label.setObjectName("modelLabel")
        self.timings_label = QLabel("")
        self.timings_label.setObjectName("timingsLabel")
        self.precompute_bar = QProgressBar()
        self.precompute_bar.setObjectName("precomputeBar")
        self.precompute_bar.setMaximumWidth(180)
        self.precompute_bar.setMinimumWidth(150)  # room for "embeddings 123/189" on one line
        self.precompute_bar.setFormat("embeddings %v/%m")
        self.precompute_bar.hide()
        sb.addWidget(self.cursor_label, 1)
        sb.addPermanentWidget(self.precompute_bar)
        sb.addPermanentWidget(self.timings_label)
        sb.addPermanentWidget(self.model_label)

    # --- state updates --------------------------------------------------------------------------
    def _on_image(self):
        img = self.c.image
        self.slider.blockSignals(True)
        self.slider.setRange(0, img.depth - 1)
        self.slider.setValue(self.c.z)
        self.slider.blockSignals(False)
        self.slider.setEnabled(img.depth > 1)
        self._on_slice(self.c.z)
        self._update_title()
        self.update_actions()
        self.views.current_view().setFocus()

    def _on_slice(self, z):
        img = self.c.image
        if img is None:
            return
        if self.slider.value() != z:
            self.slider.blockSignals(True)
            self.slider.setValue(z)
            self.slider.blockSignals(False)
        self.slice_label.setText(f"{z + 1} / {img.depth}  (z={z})")

    def _update_title(self):
        img = self.c.image
        name = img.source.name if img is not None and img.source is not None else ""
        star = " *" if self.c.doc.dirty else ""
        self.setWindowTitle(f"BoxSeg — {name}{star}" if name else "BoxSeg")

    def update_actions(self):
        has_img = self.c.image is not None
        self.a_save.setEnabled(has_img)
        self.a_save_as.setEnabled(has_img)
        self.a_open_lm.setEnabled(has_img)
        can = self.c.can_propagate()
        self.a_repropagate.setEnabled(self.c.can_repropagate())
        self.a_propagate.setEnabled(can)
        self.panel.propagate.setEnabled(can)
        has_obj = self.c.doc.object(self.c.doc.current) is not None
        self.a_delete.setEnabled(has_obj)
        self.panel.delete.setEnabled(has_obj)
        self.panel.color.setEnabled(has_obj)
        obj = self.c.doc.object(self.c.doc.current)
        self.a_lock.setEnabled(has_obj)
        self.a_lock.setChecked(bool(obj is not None and obj.locked))
        editable = has_img and has_obj and not obj.locked
        for a in (self.a_fill_between, self.a_fill_holes, self.a_fill_holes2d, self.a_keep_largest, self.a_smooth):
            a.setEnabled(editable)

    def _on_precompute(self, done, total):
        if total <= 0 or done >= total:
            self.precompute_bar.hide()
            return
        self.precompute_bar.setRange(0, total)
        self.precompute_bar.setValue(done)
        self.precompute_bar.show()

    def _on_job_started(self, jid, title, cancellable):
        self._job_id = jid
        dlg = QProgressDialog(title + "…", "Cancel" if cancellable else None, 0, 0, self)
        dlg.setObjectName("progressDialog")
        dlg.setWindowTitle("BoxSeg")
        dlg.setWindowModality(Qt.WindowModal)
        dlg.setMinimumDuration(400)
        dlg.setAutoClose(False)
        dlg.setAutoReset(False)
        if cancellable:
            dlg.canceled.connect(self.c.cancel_job)
        self._progress = dlg

    def _on_job_progress(self, jid, done, total):
        if self._progress is not None and jid == self._job_id:
            self._progress.setMaximum(max(total, 1))
            self._progress.setValue(min(done, max(total, 1)))

    def _on_job_finished(self, jid, ok, msg):
        if self._progress is not None and jid == self._job_id:
            self._progress.close()
            self._progress.deleteLater()
            self._progress = None
        self.update_actions()

    def show_error(self, msg: str):
        self.statusBar().showMessage(f"⚠ {msg}", 15000)
        if self.isVisible() and self.confirm_close:
            box = QMessageBox(QMessageBox.Warning, "BoxSeg", msg, QMessageBox.Ok, self)
            box.setAttribute(Qt.WA_DeleteOnClose)
            box.open()

    # --- commands ---------------------------------------------------------------------------------
    def open_path(self, path, series=None):
        jid = self.c.open_path(path, series)
        self.c.jobs.after(jid, lambda: (add_recent(path), self.recent_menu.refresh()))  # opened: File ▸ Recent
        return jid

    def open_file_dialog(self):
        path, _ = QFileDialog.getOpenFileName(
            self, "Open image", "", f"Images ({patterns()} DICOMDIR);;"
                                    "All files (*)")
        if path and is_dicomdir(path):
            self.opener.browse(path)
        elif path:
            self.open_path(path)

    def open_folder_dialog(self):
        # through the study/series browser: it opens a single series at once and offers a choice of several
        path = QFileDialog.getExistingDirectory(self, "Open DICOM folder")
        if path:
            self.opener.browse(path)

    def open_dicomdir_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, "Open DICOMDIR", "", "DICOMDIR (DICOMDIR dicomdir);;All files (*)")
        if path:
            self.opener.browse(path)

    def dragEnterEvent(self, e):
        self.opener.accept_drag(e)

    def dragMoveEvent(self, e):
        self.opener.accept_drag(e)

    def dropEvent(self, e):
        self.opener.drop(e)

    def open_sample(self, which: str = "volume"):
        return self.open_path(sample_path(which))

    def open_labelmap_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, "Open label map", "",
                                              f"Label maps ({patterns(labelmaps=True)});;All files (*)")
        if path:
            self.c.open_labelmap(path)

    #: the Save dialog's filters by label map format (engine.io.formats.LABELMAP_SUFFIXES); a NIfTI gets its
    #: ITK-SNAP label descriptions (<name>.label.txt) beside it
    SAVE_FILTERS = {"nifti": "NIfTI label map (*.nii.gz *.nii)", "dicom-seg": "DICOM-SEG (*.dcm)",
                    "png": "PNG mask (*.png)", "seg-nrrd": "3D Slicer segmentation (*.seg.nrrd)"}

    def _save_filters(self):
        img = self.c.image
        formats = []
        if img.depth == 1:
            formats.append("png")
        if img.depth > 1 or not img.dicom:
            formats.append("nifti")
        if img.dicom:
            formats.append("dicom-seg")
        if "nifti" not in formats:
            formats.append("nifti")
        formats.append("seg-nrrd")
        return ";;".join(self.SAVE_FILTERS[f] for f in formats)

    def save(self):
        if self.c.image is None:
            return None
        if self.c.doc.saved_path is not None:
            return self.c.save(self.c.doc.saved_path)
        return self.save_as()

    def save_as(self):
        if self.c.image is None:
            return None
        src = self.c.image.source
        # beside the image; a DICOM series' folder is the series itself, so its parent
        start = str(src.parent / self.c.default_save_name()) if src else self.c.default_save_name()
        path, flt = QFileDialog.getSaveFileName(self, "Save segmentation", start, self._save_filters())
        if not path:
            return None
        if labelmap_format(path) is None:  # the dialog's filter picks the format of a name without one
            fmt = next((f for f, text in self.SAVE_FILTERS.items() if text == flt), "nifti")
            path += LABELMAP_SUFFIXES[fmt][0]
            # the dialog asked about replacing the name without the suffix, not this one
            if Path(path).exists() and not self.confirm_replace(path):
                return None
        return self.c.save(path)  # the image's own files are refused there (engine.io.outputs)

    def confirm_replace(self, path) -> bool:
        r = QMessageBox.question(self, "BoxSeg", f"{Path(path).name} already exists in {Path(path).parent}.\n"
                                 "Replace it?", QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return r == QMessageBox.Yes

    def _each_view(self, fn) -> None:
        """Apply a display setting to every slice view (shown or hidden), so that layouts agree."""
        for w in self.views.all_views():
            fn(w)

    def set_tool(self, tool):
        for w in self.views.all_views():
            w.tool = tool
            w.setCursor(Qt.OpenHandCursor if tool == "pan" else Qt.CrossCursor)
            w.update_brush_cursor()

    def set_layout(self, name: str) -> None:
        """View ▸ Layout: 'single', '1x3' or '2x2' (persists; a 2D image stays in the single view). Where no
        OpenGL context can be made, 2x2 shows the three planes and says why the 3D view is missing."""
        self.views.set_layout(name)
        self.layout_actions[name].setChecked(True)
        if self.c.image is not None and self.views.shown != name:
            self.statusBar().showMessage("a 2D image has one plane: it stays in the single view", 8000)
        elif name == "2x2" and not self.views.view3d.available:
            self.statusBar().showMessage(self.views.view3d.reason, 15000)

    def set_window(self, spec):
        for a, s in self.window_actions:
            a.setChecked(s == spec)
        i = self.window_combo.findData(spec)
        if i >= 0:
            self.window_combo.setCurrentIndex(i)
        self.c.set_model_window(spec)

    def propagate(self):
        return self.c.propagate(z_range=self.panel.z_range())

    def repropagate(self):
        return self.c.repropagate_from_slice()

    def delete_measurement(self):
        """The selected ruler/ROI, else the last one of the current slice (one undo step)."""
        doc, view = self.c.doc, self.views.current_view()
        sel = view.selected_annotation
        if sel is None or all(a.id != sel for a in doc.annotations):
            here = [a for a in doc.annotations if a.z == self.c.z]
            sel = here[-1].id if here else None
        if sel is not None:
            view.selected_annotation = None
            doc.delete_annotation(sel)

    def delete_object(self):
        if self.c.doc.current:
            self.c.doc.delete_object(self.c.doc.current)

    def open_settings(self):
        dlg = SettingsDialog(self, self.c.settings)
        if dlg.exec() == QDialog.Accepted:
            s = dlg.result_settings()
            s.save()
            self.model_label.setText("loading model…")
            self.c.load_model(s)

    def about(self):
        QMessageBox.about(self, "About BoxSeg", about_text())

    # --- autosave restore -----------------------------------------------------------------------
    def offer_restore(self, snap):
        self._snapshot = snap
        self.restore_label.setText(f"Unsaved work was found: {snap.describe()}. Restore it?")
        self.restore_bar.show()

    def _restore(self):
        if self._snapshot is not None:
            self.c.restore(self._snapshot)
        self._snapshot = None
        self.restore_bar.hide()

    def _discard(self):
        if self._snapshot is not None:
            self.c.discard_snapshot(self._snapshot)
        self._snapshot = None
        self.restore_bar.hide()

    def check_autosave_at_start(self):
        snap = find_snapshot()
        if snap is not None:
            self.offer_restore(snap)

    # --- close ----------------------------------------------------------------------------------
    def closeEvent(self, e):
        if self.confirm_close and self.c.doc.dirty and not self._closed:
            r = QMessageBox.question(self, "BoxSeg", "Save the segmentation before closing?\n(Unsaved work is also "
                                     "kept in the autosave and offered at the next start.)",
                                     QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel)
            if r == QMessageBox.Cancel:
                e.ignore()
                return
            if r == QMessageBox.Save:
                if self.save() is None:
                    e.ignore()
                    return
                self._closed = True
                self.c.jobFinished.connect(lambda *_: (not self.c.busy) and self.close())
                e.ignore()
                return
            self.c.shutdown(keep_autosave=False)
        self.shutdown()
        super().closeEvent(e)

    def shutdown(self):
        self.views.view3d.shutdown()
        self.c.shutdown()


__all__ = ["MainWindow", "PropagateAction"]
