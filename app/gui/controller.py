"""The window's controller: document + workers + settings, and the data flow of one drag. No widgets.

Data flow of one drag (see docs/ARCHITECTURE.md): the slice view reports the box in voxel indices
(:meth:`Controller.drag_box`) -> a :class:`~app.gui.workers.DecodeRequest` with the next sequence
number goes to the inference worker's mailbox (an older live request still waiting is dropped) ->
the worker decodes (the embedding is cached) -> :meth:`_on_decoded` on the GUI thread draws the
result only if it is newer than the last one drawn for this drag (stale results are dropped) ->
on release the result of the release box becomes an object (one undo step) and is autosaved.

Commits (releases) and refinements (clicks) are never dropped: each is queued with the image it was
drawn on and tracked in ``_pending`` until its result is applied, so a new drag may start at once; an
open of another image waits (on its worker) until they are applied, and a result whose image is no
longer open is never applied to the new one.

Label edits (brush, eraser, clean-up, fill between slices) are engine functions
(:mod:`engine.data.labeledit`) called with the document's lock and overlap rules
(:meth:`Document.edit_rules`). A brush stroke is painted into the label map as the mouse moves (each
segment well under a millisecond of numpy on the slice; the view redraws on :attr:`strokePainted`) and
becomes one undo step on release; clean-ups and interpolation run as jobs on a copy of the label map
and are applied only if the map did not change meanwhile; an interpolation is first shown as a preview
(:attr:`fillPreview`) the user accepts or discards.

Long jobs (open, propagate, save, read a label map) go through one :class:`~app.gui.jobs.JobQueue`:
one runs at a time, the next starts when it ends, so "propagate, then save" saves the propagated
result. Each reports progress and can be cancelled; they run on the I/O worker or (propagation,
which needs the predictor's session) on the inference worker.
"""

from __future__ import annotations

import json
import math
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QThread, QTimer, Signal

from app.autosave import (Snapshot, autosave_dir, find_snapshot, image_fingerprint, mismatch, remove_snapshot,
                          session_key)
from app.gui.document import Annotation, Document, SegObject
from app.gui.jobs import JobQueue, JobWorker, Place
from app.gui.settings import Settings
from app.gui.workers import Autosaver, DecodeRequest, DecodeResult, InferenceWorker, LatestWorker, PrecomputeThread
from engine.base.atomic import remove_stale_temps, write_text
from engine.base.errors import InputError
from engine.data.display import display_level_width
from engine.data.interpolate import drawn_slices
from engine.data.labeledit import (LabelEdit, brush, fill_object_holes, interpolate_object, keep_largest, mask_box,
                                   slices_of, smooth_object)
from engine.data.planes import planes_of
from engine.data.measure import measure, to_csv
from engine.data.palette import default_color
from engine.inference.confidence import slice_confidence
from engine.inference.propagate import Box3D
from engine.inference.registry import shared_session
from engine.io.dispatch import open_image, read_labelmap, write_labelmap
from engine.io.formats import LABELMAP_SUFFIXES, stem
from engine.io.outputs import check_output
from engine.pipeline import propagate_in_plane, propagate_object

#: format of the ``<label map>.confidence.json`` sidecar written next to a saved label map
CONFIDENCE_FORMAT = 1


def confidence_path(labelmap: Path) -> Path:
    """``<folder>/<label map name without its suffix>.confidence.json``."""
    labelmap = Path(labelmap)
    return labelmap.with_name(f"{stem(labelmap.name)}.confidence.json")


def _gaps(mask) -> int:
    """Empty slices between the first and last slice of a bool (Z,Y,X) mask."""
    zs = drawn_slices(mask)
    return (zs[-1] - zs[0] + 1 - len(zs)) if zs else 0


def _cropped(mask: np.ndarray) -> tuple:
    """A propagation's bool (Z,Y,X) mask as (its bounding-box crop, the box) or (None, None) when empty: what a
    job hands to the GUI thread, so that a whole-volume mask does not outlive the job (issue 15's memory)."""
    box = mask_box(mask)
    return (None, None) if box is None else (mask[slices_of(box)].copy(), box)


def compute_figures(image, labels, segments, propagated) -> tuple[dict, dict]:
    """What the panels show of a label map (runs on the measure worker): ({value: Measurement},
    {value: SliceConfidence} of the propagated objects). propagated: [(value, slice_iou dict, start z)]."""
    ms = {m.label: m for m in measure(labels, image, segments)}
    conf = {v: slice_confidence(labels, ious, start, value=v) for v, ious, start in propagated}
    return ms, conf

#: model-window choices offered in the View menu: (label, engine window spec)
WINDOW_PRESETS = [("Auto (modality default)", None), ("CT soft tissue (W400 L40)", "soft-tissue"),
                  ("CT lung (W1500 L-600)", "lung"), ("CT bone (W1800 L400)", "bone"),
                  ("CT brain (W80 L40)", "brain"), ("MR auto (percentiles)", "percentile")]

@dataclass
class OpenResult:
    image: object
    display_wl: tuple[float, float]
    fingerprint: str | None = None   # app.autosave.image_fingerprint of the image


@dataclass
class FillPreview:
    """An interpolation shown before it is applied: the edit of object ``value``, the slices it fills, and
    the undo-stack index it was computed at (it is applied only onto that same label map)."""

    edit: LabelEdit
    value: int
    slices: list
    gen: int
    image: object


class Controller(QObject):
    """See the module docstring. Lives on the GUI thread; owns the worker threads."""

    imageOpened = Signal()
    sliceChanged = Signal(int)
    sliceReady = Signal(int)                  # the current slice's embedding is cached
    liveMask = Signal(object)                 # DecodeResult during a drag, None to clear
    maskCommitted = Signal(int, float)        # object value, ms from release to commit
    jobStarted = Signal(int, str, bool)       # id, title, cancellable
    jobProgress = Signal(int, int, int)       # id, done, total
    jobFinished = Signal(int, bool, str)      # id, ok, message
    error = Signal(str)
    message = Signal(str)
    timingsChanged = Signal(str)
    precomputeProgress = Signal(int, int)
    modelReady = Signal(str)
    windowChanged = Signal()
    restoreAvailable = Signal(object)         # Snapshot
    measurementsChanged = Signal()            # self.measurements / self.confidence were recomputed
    strokePainted = Signal(int, int)          # a live brush stroke changed slices z0..z1 (not yet an undo step)
    cursorChanged = Signal()                  # the crosshair voxel (self.cursor) moved: the views follow it
    fillPreview = Signal(object)              # the pending fill-between preview (FillPreview) or None

    def __init__(self, parent=None, settings: Settings | None = None):
        super().__init__(parent)
        self.doc = Document(self)
        self.settings = settings or Settings.load()
        self.z = 0
        self.cursor_yx = (0, 0)                 # the crosshair's (y, x); with z the voxel all views show
        self.planes: dict = {}                  # name -> engine.data.planes.Plane of the open volume
        self.active_plane = ""                  # the reformatted plane the user last worked in ('' stored)
        self.ready_plane_slices: set = set()    # (plane, k, window key) of encoded reformatted slices
        self.model_window = None
        self.display_wl = (40.0, 400.0)
        self.session = None
        self.session_error: str | None = None
        self.ready_slices: set[tuple[int, str]] = set()
        self.live_updates = 0
        self.last_commit_ms = None
        self._seq = 0
        self._drag_seq0 = 0
        self._drawn_seq = 0
        self._doc_gen = 0                       # images opened so far: what a request was drawn on
        self._pending: dict[int, float] = {}    # commit/refine seq -> perf_counter at release
        self._pending_prompt: dict[int, tuple] = {}  # object value -> (z, box, points) of its newest refine
        self._commits_idle = threading.Event()  # set while nothing is pending (an open waits on it)
        self._commits_idle.set()
        self._dragging = False
        self.fingerprint: str | None = None     # content hash of the open image (autosave matches on it)
        self._snapshot_restored = None
        self._shut = False
        self._autosaved = False
        self.last_propagate_s = None
        self.last_stroke_ms = None              # slowest segment of the last brush stroke
        self.measurements: dict = {}            # object value -> engine.data.measure.Measurement
        self.confidence: dict = {}              # object value -> engine.inference.confidence.SliceConfidence
        self._measure_gen = 0                   # requests posted to the measure worker
        self._measured_gen = 0                  # the request whose results are shown
        self._measure_key = None
        self._labels_version = 0
        self._labels_copy_ref = (None, lambda: None)  # (key, weakref of the workers' shared copy)
        self.brush_mm = float(self.settings.brush_mm)   # brush radius
        self.brush_3d = False                           # a ball through neighbouring slices instead of a disc
        self.smooth_mm = 1.0                            # ball radius of Smooth
        self._stroke: dict | None = None                # the stroke being painted (see stroke_begin)
        self.preview: FillPreview | None = None         # an interpolation waiting for Accept/Discard
        self.doc.overlap_policy = self.settings.overlap

        self.precompute = PrecomputeThread()
        self.precompute.setObjectName("boxseg-precompute")
        self.infer = InferenceWorker(self.precompute)
        self.infer_thread = QThread()
        self.infer_thread.setObjectName("boxseg-inference")
        self.infer.moveToThread(self.infer_thread)
        self.io = JobWorker()
        self.io_thread = QThread()
        self.io_thread.setObjectName("boxseg-io")
        self.io.moveToThread(self.io_thread)
        self.autosaver = Autosaver()
        self.autosave_thread = QThread()
        self.autosave_thread.setObjectName("boxseg-autosave")
        self.autosaver.moveToThread(self.autosave_thread)
        self.measurer = LatestWorker()
        self.measure_thread = QThread()
        self.measure_thread.setObjectName("boxseg-measure")
        self.measurer.moveToThread(self.measure_thread)
        self.measurer.done.connect(self._on_measured)
        self.measurer.failed.connect(lambda _g, m: self.error.emit(f"measurements: {m}"))
        self._measure_timer = QTimer(self)
        self._measure_timer.setSingleShot(True)
        self._measure_timer.setInterval(0)  # several signals of one edit make one request
        self._measure_timer.timeout.connect(self._post_measure)

        self.infer.decoded.connect(self._on_decoded)
        self.infer.encoded.connect(self._on_encoded)
        self.infer.sessionReady.connect(self._on_session)
        self.infer.sessionFailed.connect(self._on_session_failed)
        self.jobs = JobQueue({"infer": Place(self.infer.post_job, lambda: self.precompute.pause("job"),
                                             lambda: self.precompute.resume("job")),
                              "io": Place(self.io.submit)}, [self.infer, self.io], self)
        self.jobs.started.connect(self.jobStarted)
        self.jobs.progress.connect(self.jobProgress)
        self.jobs.finished.connect(self.jobFinished)
        self.jobs.error.connect(self.error)
        self.jobs.message.connect(self.message)
        self.precompute.progress.connect(self.precomputeProgress)
        self.autosaver.failed.connect(self.error)
        self.doc.committed.connect(self._autosave)
        self.doc.labelsChanged.connect(self._labels_changed)
        self.doc.imageChanged.connect(self._labels_changed)
        self.doc.objectsChanged.connect(self._measure_timer.start)

        self.infer_thread.start()
        self.io_thread.start()
        self.autosave_thread.start()
        self.measure_thread.start()
        self.precompute.start(QThread.LowPriority)
        remove_stale_temps(autosave_dir())  # left by a killed BoxSeg; younger ones may be another's
        self.load_model()

    # --- model ----------------------------------------------------------------------------------
    def load_model(self, settings: Settings | None = None) -> None:
        if settings is not None:
            self.settings = settings
        s = self.settings
        self.doc.overlap_policy = s.overlap
        self.session = None
        self.ready_slices.clear()
        config = s.session_config()
        self.infer.post_session(lambda: shared_session(config))

    def _on_session(self, session) -> None:
        self.session = session
        self.session_error = None
        self.precompute.set_session(session)
        e = session.entry
        self.modelReady.emit(f"{e.name} ({e.precision}, {session.runtime.threads} threads)")
        self._request_current()

    def _on_session_failed(self, msg: str) -> None:
        self.session_error = msg
        self.error.emit(f"model could not be loaded: {msg}")

    # --- open / slices --------------------------------------------------------------------------
    @property
    def image(self):
        return self.doc.image

    def open_path(self, path, series: str | None = None) -> int:
        """Open an image (DICOM folder/file, NIfTI, 2D raster, .npz) on the I/O worker."""
        path = Path(path)
        window = self.model_window

        def fn(progress, should_stop):
            img = open_image(path, series=series, progress=progress, should_stop=should_stop)
            img.intensity_map(window)  # fit the model window once, off the GUI thread
            res = OpenResult(img, display_level_width(img, window), image_fingerprint(img))
            # boxes released on the open image are applied to it before it is replaced (see the module
            # docstring); bounded so that a stuck decoder cannot block opening for ever
            deadline = time.monotonic() + 60
            while not self._commits_idle.wait(0.05) and not should_stop() and time.monotonic() < deadline:
                pass
            return res

        return self._submit(f"Opening {path.name}", "io", fn, self._on_opened)

    def _on_opened(self, res: OpenResult) -> None:
        img = res.image
        self.display_wl = res.display_wl
        self._doc_gen += 1
        self._pending_prompt.clear()
        self.fingerprint = res.fingerprint
        # the planes and the crosshair first: the document's signals make the views draw the new image
        self.planes = planes_of(img.affine, img.shape) if img.is_volume and not img.is_rgb else {}
        self.z = img.depth // 2
        self.cursor_yx = (img.shape[1] // 2, img.shape[2] // 2)
        self.active_plane = ""
        self.doc.set_image(img)
        self.ready_slices.clear()
        self.ready_plane_slices.clear()
        self.infer.post_image(img, self.model_window)
        self.imageOpened.emit()
        self.sliceChanged.emit(self.z)
        self._request_current()
        for w in img.warnings:
            self.message.emit(f"note: {w}")
        if self._snapshot_restored is None:
            snap = find_snapshot(img.source, img.series_uid)
            if snap is not None:
                why = mismatch(snap, img, self.fingerprint)
                if why is None:
                    self.restoreAvailable.emit(snap)
                else:  # kept on disk, never applied: it belongs to another image
                    self.message.emit(f"autosaved work for this path is not offered: {why} (kept in {snap.path})")

    def set_slice(self, z: int) -> None:
        if self.image is None:
            return
        z = int(np.clip(z, 0, self.image.depth - 1))
        if z == self.z:
            return
        self.z = z
        self.sliceChanged.emit(z)
        self.cursorChanged.emit()
        self._request_current()

    # --- the crosshair and the reformatted planes -----------------------------------------------
    @property
    def cursor(self) -> tuple[int, int, int]:
        """The crosshair voxel (z, y, x) (array indices of ``image.voxels``): the slice every view shows."""
        return (self.z, *self.cursor_yx)

    def set_cursor(self, z: int, y: int, x: int) -> None:
        """Move the crosshair to voxel (z, y, x) (clamped): every view shows the slice through it."""
        if self.image is None:
            return
        _, ny, nx = self.image.shape
        yx = (int(np.clip(y, 0, ny - 1)), int(np.clip(x, 0, nx - 1)))
        moved = yx != self.cursor_yx
        self.cursor_yx = yx
        z = int(np.clip(z, 0, self.image.depth - 1))
        if z != self.z:
            self.set_slice(z)  # emits cursorChanged
        elif moved:
            self.cursorChanged.emit()
            if self.active_plane:
                self._request_current()

    def stored_plane(self) -> str:
        """The name of the plane of the stored slices ``voxels[z]`` ('' without reformatted planes)."""
        return next((n for n, p in self.planes.items() if p.is_stored), "")

    def plane_slice(self, name: str) -> int:
        """The slice of plane ``name`` through the crosshair (its index along the plane's normal)."""
        return int(self.cursor[self.planes[name].normal_axis])

    def set_plane_slice(self, name: str, k: int) -> None:
        """Show slice k of plane ``name`` (moves the crosshair along that plane's normal)."""
        if name not in self.planes:
            return
        zyx = list(self.cursor)
        zyx[self.planes[name].normal_axis] = int(k)
        self.set_cursor(*zyx)

    def set_active_plane(self, name: str) -> None:
        """The user works in plane ``name`` ('' or the stored plane: the stored slices): background encoding
        follows that plane's slices around the crosshair."""
        name = "" if not name or name not in self.planes or self.planes[name].is_stored else name
        if name != self.active_plane:
            self.active_plane = name
            self._request_current()

    def plane_slice_ready(self, name: str, k: int | None = None) -> bool:
        """Slice k (default: the crosshair's) of reformatted plane ``name`` is encoded."""
        if not name or self.planes.get(name) is None or self.planes[name].is_stored:
            return self.slice_ready(k)
        k = self.plane_slice(name) if k is None else k
        return (name, int(k), self._window_key()) in self.ready_plane_slices

    def _window_key(self) -> str | None:
        if self.image is None:
            return None
        try:
            return self.image.intensity_map(self.model_window).key
        except InputError:
            return None

    def slice_ready(self, z: int | None = None) -> bool:
        return ((self.z if z is None else z), self._window_key()) in self.ready_slices

    def _request_current(self) -> None:
        if self.image is None or self.session is None:
            return
        limit = self._precompute_limit()
        if self.active_plane:
            k = self.plane_slice(self.active_plane)
            self.infer.post_encode(k, self.active_plane)
            self.precompute.set_plan(self.image, self.model_window, k, limit, plane=self.active_plane)
            return
        self.infer.post_encode(self.z)
        self.precompute.set_plan(self.image, self.model_window, self.z, limit)

    def _precompute_limit(self) -> int:
        """How many slices the background encoder may fill: 80 % of the embedding cache's memory tier, plus its
        disk tier when it has one (an evicted slice comes back from disk in milliseconds), at the stored size
        of one slice (float16 embeddings: 2 MiB; float32: 4 MiB; LiteMedSAM's (1,256,64,64))."""
        cache = self.session.cache
        per_slice = (2 << 20) if cache.storage == "f16" else (4 << 20)
        budget = cache.max_bytes + ((cache.disk_max_bytes or (4 << 30)) if cache.disk_dir is not None else 0)
        return int(budget * 0.8 // per_slice)

    def set_model_window(self, spec) -> None:
        """Change the window the model sees (a preset, or None for the modality default)."""
        if self.image is None:
            self.model_window = spec
            return
        self.model_window = spec

        def fn(progress, should_stop, img=self.image):
            img.intensity_map(spec)
            return display_level_width(img, spec)

        def done(wl):
            self.display_wl = wl
            self.infer.post_image(self.image, spec)
            self.windowChanged.emit()
            self._request_current()

        self._submit("Applying window", "io", fn, done)

    def _on_encoded(self, z: int, key: str, hit: bool, ms: float, plane: str = "") -> None:
        if plane:
            self.ready_plane_slices.add((plane, z, key))
            self._emit_timings(encoder_ms=None if hit else ms)
            return
        self.ready_slices.add((z, key))
        self._emit_timings(encoder_ms=None if hit else ms)
        if z == self.z and key == self._window_key():
            self.sliceReady.emit(z)

    def _emit_timings(self, encoder_ms=None) -> None:
        s = self.session
        if s is None:
            return
        st = s.cache.stats
        t = s.timings
        self.timingsChanged.emit(f"encoder {t.encoder_ms:.0f} ms · decoder {t.decoder_ms:.0f} ms · "
                                 f"cache {st.hits} hits / {st.misses} misses")

    # --- drag / refine --------------------------------------------------------------------------
    def _request(self, z, box, points=(), purpose="live", value=0, plane: str = "") -> DecodeRequest:
        self._seq += 1
        return DecodeRequest(self._seq, int(z), tuple(float(v) for v in box), list(points), purpose, value,
                             image=self.image, window=self.model_window, doc_gen=self._doc_gen, plane=plane)

    def _prompt_slice(self, plane: str) -> int:
        """The slice a prompt in ``plane`` ('' the stored slices) is drawn on: the one its view shows."""
        return self.plane_slice(plane) if plane else self.z

    def _post_commit(self, req: DecodeRequest) -> None:
        self._pending[req.seq] = time.perf_counter()
        self._commits_idle.clear()
        self.infer.post_decode(req)

    @property
    def pending_commits(self) -> int:
        """Releases/refinements whose result has not been applied yet."""
        return len(self._pending)

    def begin_drag(self) -> None:
        self._dragging = True
        self._drag_seq0 = self._seq + 1
        self.live_updates = 0
        self.precompute.pause("drag")

    def drag_box(self, box, plane: str = "") -> None:
        """A live box (x0, y0, x1, y1 voxel indices of the current slice) during a drag; in a reformatted
        ``plane``: screen pixels (x = column, y = row) of the slice its view shows."""
        if self.image is None or not self._dragging:
            return
        self.infer.post_decode(self._request(self._prompt_slice(plane), box, plane=plane))

    def end_drag(self, box, plane: str = "") -> None:
        """Release: the mask of this box becomes a new object (never dropped, see the module docstring)."""
        self._dragging = False
        self.precompute.resume("drag")
        if self.image is None or box is None:
            self.liveMask.emit(None)
            return
        self._post_commit(self._request(self._prompt_slice(plane), box, purpose="commit", plane=plane))

    def cancel_drag(self) -> None:
        self._dragging = False
        self.precompute.resume("drag")
        self.liveMask.emit(None)

    def add_point(self, x: float, y: float, positive: bool, plane: str = "") -> bool:
        """Refine the selected object on the current slice with a positive/negative click at voxel (x, y);
        in a reformatted ``plane``: at screen pixel (x = column, y = row) of the slice its view shows."""
        obj = self.doc.object(self.doc.current)
        if obj is None or self.image is None:
            self.message.emit("select an object to refine first (or draw a box)")
            return False
        if obj.locked:
            self.message.emit(f"{obj.name} is locked (L unlocks it)")
            return False
        z = self._prompt_slice(plane)
        queued = self._pending_prompt.get(obj.value)
        if queued is not None and queued[0] == (plane, z):
            _, box, points = queued  # an earlier click is still decoding: build on its prompt
            points = list(points)
        elif obj.z == z and obj.plane == plane and obj.box is not None:
            box, points = obj.box, list(obj.points)
        else:
            shown = self.planes[plane].slice(self.doc.labels, z) if plane else self.doc.labels[z]
            ys, xs = np.nonzero(shown == obj.value)
            if not len(xs):
                self.message.emit(f"{obj.name} has no mask on this slice to refine; draw a box")
                return False
            box, points = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())), []
        points.append((float(x), float(y), 1 if positive else 0))
        self._pending_prompt[obj.value] = ((plane, z), box, list(points))
        self._post_commit(self._request(z, box, points, purpose="refine", value=obj.value, plane=plane))
        return True

    def _on_decoded(self, res: DecodeResult) -> None:
        req = res.request
        self._emit_timings()
        if req.purpose == "live":
            if res.error:
                self.error.emit(res.error)
            elif self._dragging and req.seq >= self._drag_seq0 and req.seq > self._drawn_seq:
                self._drawn_seq = req.seq
                self.live_updates += 1
                self.liveMask.emit(res)
            return
        t_release = self._pending.pop(req.seq, None)
        if not self._pending:
            self._commits_idle.set()
        if t_release is None:
            return
        if not self._dragging:
            self.liveMask.emit(None)
        if req.purpose == "refine":
            queued = self._pending_prompt.get(req.value)
            if queued is not None and queued[2] == req.points:
                del self._pending_prompt[req.value]  # the newest click has landed
        if res.error:
            self.error.emit(res.error)
            return
        plane = self.planes.get(req.plane) if req.plane else None
        depth = plane.n_slices if plane is not None else self.image.depth if self.image is not None else 0
        if req.doc_gen != self._doc_gen or self.image is None or req.z >= depth or (req.plane and plane is None):
            # the image it was drawn on is closed (an open finished within milliseconds of the release)
            self.error.emit("a box finished after another image was opened; it was not added to this one")
            return
        if req.purpose == "commit":
            if not res.mask.any():
                self.message.emit("the model found nothing in that box")
            value = self.doc.add_object(req.z, res.mask, iou=res.iou, box=req.box, plane=plane)
        else:
            value = req.value
            if self.doc.object(value) is None:
                self.message.emit("the object was deleted before its refinement arrived")
                return
            self.doc.set_object_slice(value, req.z, res.mask, iou=res.iou, box=req.box, points=req.points, plane=plane)
        self.last_commit_ms = (time.perf_counter() - t_release) * 1000
        self.maskCommitted.emit(value, self.last_commit_ms)

    # --- long jobs ------------------------------------------------------------------------------
    def _submit(self, title: str, where: str, fn, on_done, on_fail=None, cancellable: bool = True) -> int:
        return self.jobs.submit(title, where, fn, on_done, on_fail, cancellable)

    @property
    def busy(self) -> bool:
        return self.jobs.busy

    def cancel_job(self) -> None:
        self.jobs.cancel_all()

    # --- propagate ------------------------------------------------------------------------------
    def can_propagate(self, value: int | None = None) -> bool:
        obj = self.doc.object(self.doc.current if value is None else value)
        return (self.image is not None and self.image.is_volume and not self.image.is_rgb and obj is not None
                and obj.box is not None and obj.z is not None)

    def propagate(self, value: int | None = None, z_range: tuple[int, int] | None = None,
                  early_stop: int | None = 2) -> int | None:
        """Propagate object ``value`` (default: the selected one) up and down from the slice its box
        was drawn on, through ``z_range`` (inclusive; default the whole volume), stopping a
        direction after ``early_stop`` slices where the object has ended (empty, a speck, or a blob
        off the object: ``engine.inference.propagate.object_ended``). One undo step; runs on the inference worker."""
        if value is None:
            value = self.doc.current or (self.doc.objects[-1].value if self.doc.objects else 0)
        obj = self.doc.object(value)
        if not self.can_propagate(value):
            self.message.emit("propagation needs a volume and an object drawn with a box")
            return None
        if obj.locked:
            self.message.emit(f"{obj.name} is locked (L unlocks it)")
            return None
        if obj.plane:
            return self._propagate_in_plane(obj, early_stop)
        img, window, infer = self.image, self.model_window, self.infer
        z0, z1 = z_range if z_range is not None else (0, img.depth - 1)
        z0, z1 = max(0, min(z0, obj.z)), min(img.depth - 1, max(z1, obj.z))
        box3d = Box3D(obj.box[0], obj.box[1], z0, obj.box[2], obj.box[3], z1)
        keep_z, keep = obj.z, (self.doc.labels[obj.z] == value).copy()

        def fn(progress, should_stop):
            ious: dict = {}
            mask = propagate_object(infer.session, img, box3d, window=window, label_value=value,
                                    early_stop=early_stop, start=keep_z, progress=progress, should_stop=should_stop,
                                    ious=ious)
            mask[keep_z] = keep  # the drawn (maybe refined) slice stays as the user made it
            if obj.iou is not None:
                ious[keep_z] = float(obj.iou)  # the estimate of the mask kept there
            return _cropped(mask) + (ious, _gaps(mask))

        t0 = time.perf_counter()

        def done(res):
            mask, box, ious, gaps = res
            self.last_propagate_s = time.perf_counter() - t0
            self.doc.set_object_volume(value, mask, slice_iou=ious, where=box)
            self._emit_timings()
            if gaps:
                self.message.emit(f"{obj.name} is empty on {gaps} slice{'s' if gaps != 1 else ''} between its "
                                  "slices: Segment ▸ Fill between slices (Ctrl+I) interpolates them")

        return self._submit(f"Propagating {obj.name}", "infer", fn, done)

    def _propagate_in_plane(self, obj, early_stop: int | None) -> int | None:
        """Propagate an object boxed in a reformatted view along that plane's normal (the whole plane, each
        direction ending where the object ends); one undo step.

        The slices go to the model with their own pixel spacing (``square=False``): square pixels made
        propagation along a sagittal normal drift on the spleen CT (3D DSC 0.36 against 0.81,
        docs/planes.md), while a single box uses square pixels (better on one slice). For the same reason
        the start slice is predicted again in that frame from the object's box, and the neighbours are
        prompted from that prediction, not from the square-pixel mask the user sees (which gave 3D DSC 0.56
        instead of 0.80 on the spleen: docs/planes.md); the user's mask is then put back on its slice."""
        plane = self.planes.get(obj.plane)
        if plane is None or not (0 <= obj.z < plane.n_slices):
            self.message.emit(f"{obj.name} was drawn in a {obj.plane} view this image does not have")
            return None
        img, window, infer, value, k = self.image, self.model_window, self.infer, obj.value, obj.z
        keep = (plane.slice(self.doc.labels, k) == value).copy()

        def fn(progress, should_stop):
            mask = propagate_in_plane(infer.session, img, plane, obj.box, 0, plane.n_slices - 1, start=k,
                                      window=window, label_value=value, early_stop=early_stop, progress=progress,
                                      should_stop=should_stop, square=False)
            plane.slice(mask, k)[...] = keep  # the drawn (maybe refined) slice stays as the user made it
            return _cropped(mask) + (_gaps(plane.screen_volume(mask)),)

        t0 = time.perf_counter()

        def done(res):
            mask, box, gaps = res
            self.last_propagate_s = time.perf_counter() - t0
            self.doc.set_object_volume(value, mask, where=box)
            self._emit_timings()
            if gaps:
                self.message.emit(f"{obj.name} is empty on {gaps} {plane.name} slice{'s' if gaps != 1 else ''} "
                                  "between its slices")

        return self._submit(f"Propagating {obj.name} ({plane.name})", "infer", fn, done)

    def can_repropagate(self, value: int | None = None) -> bool:
        obj = self.doc.object(self.doc.current if value is None else value)
        return (self.image is not None and self.image.is_volume and not self.image.is_rgb and obj is not None
                and bool((self.doc.labels[self.z] == obj.value).any()))

    def repropagate_from_slice(self, value: int | None = None, early_stop: int | None = 2) -> int | None:
        """Re-box object ``value`` (default: the selected one) on the current slice from its mask there (as
        the user left it) and propagate it again from this slice outward: upward when this slice is
        above the slice its box was drawn on, downward when below, both ways on that slice. The
        object is replaced from this slice on in that direction (one undo step); the rest stays."""
        value = value or self.doc.current
        obj = self.doc.object(value)
        if obj is None or not self.can_repropagate(value):
            self.message.emit("re-propagation needs a volume and the selected object's mask on this slice")
            return None
        img, window, infer, z = self.image, self.model_window, self.infer, self.z
        keep = (self.doc.labels[z] == value).copy()
        ys, xs = np.nonzero(keep)
        ref = obj.z if obj.z is not None and not obj.plane else z  # a plane object's z is on another axis
        lo, hi = (z, img.depth - 1) if z > ref else (0, z) if z < ref else (0, img.depth - 1)
        box3d = Box3D(float(xs.min()), float(ys.min()), lo, float(xs.max()), float(ys.max()), hi)

        def fn(progress, should_stop):
            ious: dict = {}
            mask = propagate_object(infer.session, img, box3d, window=window, label_value=value,
                                    early_stop=early_stop, start=z, start_mask=keep, progress=progress,
                                    should_stop=should_stop, ious=ious)
            ious.pop(z, None)  # the user's mask: no model estimate of it
            return _cropped(mask) + (ious,)

        def done(res):
            mask, box, ious = res
            self.doc.set_object_volume(value, mask, text="Re-propagate", slice_iou=ious, z_range=(lo, hi), where=box)
            self._emit_timings()

        return self._submit(f"Re-propagating {obj.name} from slice {z}", "infer", fn, done)

    # --- label edits: brush, clean-up, fill between slices -------------------------------------
    def _editable(self, what: str):
        """The selected object if it may be edited, else None (with a message why)."""
        obj = self.doc.object(self.doc.current)
        if self.image is None or obj is None:
            self.message.emit(f"select an object to {what}")
            return None
        if obj.locked:
            self.message.emit(f"{obj.name} is locked (L unlocks it)")
            return None
        return obj

    def stroke_begin(self, x: float, y: float, erase: bool = False) -> bool:
        """Start a brush (or eraser) stroke on the current slice at voxel (x, y) (continuous, integers at
        voxel centres) and paint its first stamp. Paints the selected object; with nothing selected the
        brush starts a new object (added with the stroke's undo step)."""
        if self.image is None or self.image.is_rgb:
            return False
        self.discard_fill()
        obj = self.doc.object(self.doc.current)
        new = None
        if obj is None:
            if erase:
                self.message.emit("select an object to erase from")
                return False
            try:
                value = self.doc.next_value()
            except ValueError as e:
                self.message.emit(str(e))
                return False
            new = SegObject(value, f"Object {value}", default_color(value))
        elif obj.locked:
            self.message.emit(f"{obj.name} is locked (L unlocks it)")
            return False
        else:
            value = obj.value
        rz = int(math.ceil(self.brush_mm / self.image.spacing[0])) if self.brush_3d else 0
        z0, z1 = max(self.z - rz, 0), min(self.z + rz + 1, self.image.depth)
        self._stroke = {"value": value, "new": new, "erase": bool(erase), "sphere": self.brush_3d,
                        "radius": self.brush_mm, "z": self.z, "z0": z0, "slab": self.doc.labels[z0:z1].copy(),
                        "where": None, "last": (float(x), float(y)), "ms": 0.0}
        self._paint([(x, y, self.z)])
        return True

    def stroke_to(self, x: float, y: float) -> None:
        """Extend the stroke to voxel (x, y): the capsule from the last position is painted at once."""
        st = self._stroke
        if st is None:
            return
        lx, ly = st["last"]
        st["last"] = (float(x), float(y))
        self._paint([(lx, ly, st["z"]), (x, y, st["z"])])

    def _paint(self, centres) -> None:
        st = self._stroke
        t0 = time.perf_counter()
        edit = brush(self.doc.labels, st["value"], self.image.spacing, centres, st["radius"], sphere=st["sphere"],
                     erase=st["erase"], **self.doc.edit_rules())
        if edit is not None:
            edit.apply(self.doc.labels)
            w = edit.where
            old = st["where"]
            st["where"] = w if old is None else (min(old[0], w[0]), max(old[1], w[1]), min(old[2], w[2]),
                                                 max(old[3], w[3]), min(old[4], w[4]), max(old[5], w[5]))
            st["ms"] = max(st["ms"], (time.perf_counter() - t0) * 1000)
            self.strokePainted.emit(w[0], w[1] - 1)

    def stroke_end(self) -> None:
        """The stroke becomes one undo step (the label map already holds it)."""
        st, self._stroke = self._stroke, None
        if st is None or st["where"] is None:
            return
        self.last_stroke_ms = st["ms"]
        z0, z1, y0, y1, x0, x1 = st["where"]
        before = st["slab"][z0 - st["z0"]:z1 - st["z0"], y0:y1, x0:x1].copy()
        edit = LabelEdit(st["where"], self.doc.labels[z0:z1, y0:y1, x0:x1].copy())
        name = st["new"].name if st["new"] is not None else self.doc.object(st["value"]).name
        self.doc.apply_edit(f"{'Erase' if st['erase'] else 'Paint'} {name}", edit, st["value"], new_object=st["new"],
                            before=before)

    def stroke_cancel(self) -> None:
        """Esc during a stroke: the label map as it was before it."""
        st, self._stroke = self._stroke, None
        if st is not None and st["where"] is not None:
            z0, z1 = st["z0"], st["z0"] + len(st["slab"])
            self.doc.labels[z0:z1] = st["slab"]
            self.strokePainted.emit(z0, z1 - 1)

    @property
    def stroking(self) -> bool:
        return self._stroke is not None

    #: clean-up operations: kind -> (title, engine function of (labels, value, spacing, rules))
    CLEANUPS = {
        "fill-holes": ("Fill holes", lambda lab, v, sp, c, r: fill_object_holes(lab, v, **r)),
        "fill-holes-2d": ("Fill holes per slice", lambda lab, v, sp, c, r: fill_object_holes(lab, v, True, **r)),
        "keep-largest": ("Keep largest part", lambda lab, v, sp, c, r: keep_largest(lab, v, **r)),
        "smooth": ("Smooth", lambda lab, v, sp, c, r: smooth_object(lab, v, sp, c.smooth_mm, **r)),
    }

    def cleanup(self, kind: str) -> int | None:
        """Clean up the selected object (``CLEANUPS``: fill holes in 3D / per slice, keep the largest
        26-connected part, smooth) on the I/O worker; one undo step."""
        obj = self._editable("clean up")
        if obj is None:
            return None
        self.discard_fill()
        title, op = self.CLEANUPS[kind]
        img, value, labels, rules = self.image, obj.value, self.doc.labels.copy(), self.doc.edit_rules()
        gen = self.doc.undo_stack.index()

        def fn(progress, should_stop):
            return op(labels, value, img.spacing, self, rules)

        def done(edit):
            if edit is None:
                self.message.emit(f"{title}: nothing to change in {obj.name}")
            elif self.doc.image is not img or self.doc.undo_stack.index() != gen or self.stroking:
                self.message.emit(f"{title}: the segmentation changed meanwhile; run it again")
            else:
                self.doc.apply_edit(f"{title} of {obj.name}", edit, value)

        return self._submit(f"{title} of {obj.name}", "io", fn, done)

    def fill_between(self, z_range: tuple[int, int] | None = None) -> int | None:
        """Interpolate the selected object's empty slices between the slices where it is drawn (within
        z_range, inclusive) on the I/O worker; the result is a preview (:attr:`fillPreview`) until
        :meth:`accept_fill` or :meth:`discard_fill`."""
        obj = self._editable("fill between slices")
        if obj is None:
            return None
        self.discard_fill()
        img, value, labels, rules = self.image, obj.value, self.doc.labels.copy(), self.doc.edit_rules()
        gen = self.doc.undo_stack.index()

        def fn(progress, should_stop):
            return interpolate_object(labels, value, img.spacing, z_range, progress=progress,
                                      should_stop=should_stop, **rules)

        def done(res):
            edit, zs = res
            if edit is None:
                self.message.emit(f"{obj.name}: no empty slices between drawn slices to fill")
            elif self.doc.image is not img or self.doc.undo_stack.index() != gen:
                self.message.emit("fill between slices: the segmentation changed meanwhile; run it again")
            else:
                self.preview = FillPreview(edit, value, zs, gen, img)
                self.fillPreview.emit(self.preview)

        return self._submit(f"Filling between slices of {obj.name}", "io", fn, done)

    def accept_fill(self) -> bool:
        """Apply the previewed interpolation (one undo step), if the segmentation is still the one it was made on."""
        p, self.preview = self.preview, None
        if p is None:
            return False
        self.fillPreview.emit(None)
        if self.doc.image is not p.image or self.doc.undo_stack.index() != p.gen or self.doc.object(p.value) is None:
            self.message.emit("fill between slices: the segmentation changed meanwhile; run it again")
            return False
        n = len(p.slices)
        self.doc.apply_edit(f"Fill {n} slice{'s' if n != 1 else ''} of {self.doc.object(p.value).name}", p.edit,
                            p.value)
        return True

    def discard_fill(self) -> None:
        if self.preview is not None:
            self.preview = None
            self.fillPreview.emit(None)

    def set_locked(self, value: int, locked: bool) -> None:
        """Lock or unlock object ``value`` (one undo step)."""
        obj = self.doc.object(value)
        if obj is not None and obj.locked != bool(locked):
            self.doc.update_object(value, locked=bool(locked))

    # --- measurements ---------------------------------------------------------------------------
    def add_annotation(self, kind: str, points) -> None:
        """A ruler ('ruler': a line) or ROI ('roi': the ellipse in the box) on the current slice; points
        (x0, y0, x1, y1) continuous stored voxel indices (engine.data.roi). One undo step."""
        if self.image is not None:
            self.doc.add_annotation(kind, self.z, points)

    def _labels_changed(self, *_):
        self._labels_version += 1
        self._measure_timer.start()

    def _labels_copy(self) -> np.ndarray:
        """A read-only copy of the label map as it is now for the workers (measure, autosave, save), which
        must not see later edits: one copy per change while any worker still holds it (weakly referenced
        here, so none is kept after they are done)."""
        key = (self._doc_gen, self._labels_version)
        ref_key, ref = self._labels_copy_ref
        copy = ref() if ref_key == key else None
        if copy is None:
            copy = self.doc.labels.copy()
            copy.flags.writeable = False
            self._labels_copy_ref = (key, weakref.ref(copy))
        return copy

    def _post_measure(self) -> None:
        """Ask the measure worker for the figures of the label map as it is now (a copy: the GUI thread
        goes on editing); skipped when neither the labels nor the objects' names/prompts changed."""
        doc = self.doc
        if self.image is None or doc.labels is None:
            return
        key = (self._doc_gen, self._labels_version,
               tuple((o.value, o.name, o.z, o.slice_iou) for o in doc.objects))
        if key == self._measure_key:
            return
        self._measure_key = key
        self._measure_gen += 1
        img, labels, segments = self.image, self._labels_copy(), doc.segments()
        propagated = [(o.value, dict(o.slice_iou), o.z) for o in doc.objects if o.slice_iou is not None]
        self.measurer.post(self._measure_gen, lambda: compute_figures(img, labels, segments, propagated))

    def _on_measured(self, gen: int, result) -> None:
        if gen < self._measure_gen:
            return  # a newer request is on its way
        self._measured_gen = gen
        self.measurements, self.confidence = result
        self.measurementsChanged.emit()

    @property
    def measurements_current(self) -> bool:
        """The figures shown are those of the label map as it is now."""
        return not self._measure_timer.isActive() and self._measured_gen == self._measure_gen

    def export_measurements(self, path) -> int | None:
        """Write every object's ``boxseg stats`` row to ``path`` (CSV, atomically, on the I/O worker);
        computed afresh from the label map as it is now, so the file equals what ``boxseg stats --csv``
        gives for the saved label map."""
        if self.image is None:
            return None
        path, img = Path(path), self.image
        labels, segments = self.doc.labels.copy(), self.doc.segments()

        def fn(progress, should_stop):
            out = check_output(path, img)
            return write_text(out, to_csv([m.row() for m in measure(labels, img, segments)]))

        return self._submit(f"Exporting {path.name}", "io", fn, lambda out: self.message.emit(f"measurements: {out}"),
                            cancellable=False)

    # --- save / label maps ----------------------------------------------------------------------
    def default_save_name(self) -> str:
        img = self.image
        if img is None or img.source is None:
            return "segmentation.nii.gz"
        fmt = "png" if img.depth == 1 else "dicom-seg" if img.dicom else "nifti"
        return f"{stem(img.source.name)}_seg{LABELMAP_SUFFIXES[fmt][0]}"

    def save(self, path) -> int | None:
        """Write the label map (format by extension: .nii/.nii.gz + ITK-SNAP .label.txt, .dcm DICOM-SEG, .seg.nrrd,
        .png) atomically."""
        if self.image is None:
            return None
        path = Path(path)
        img = self.image
        labels = self._labels_copy()
        segments = self.doc.segments()
        z = self.z if img.depth > 1 else None
        entry = self.session.entry if self.session is not None else None
        name = entry.name if entry else "BoxSeg"
        version = entry.version if entry else ""
        gen = self.doc.undo_stack.index()
        propagated = [(o.value, o.name, dict(o.slice_iou), o.z) for o in self.doc.objects if o.slice_iou is not None]

        def fn(progress, should_stop):
            progress(0, 1)
            out = write_labelmap(path, labels, img, segments=segments, model_name=name, model_version=version, z=z)
            side = confidence_path(out)
            if propagated:
                objs = [{"label": v, "name": n, **slice_confidence(labels, ious, start, value=v).to_json()}
                        for v, n, ious, start in propagated]
                write_text(side, json.dumps({"format": CONFIDENCE_FORMAT, "labelmap": out.name, "model": name,
                                             "model_version": version, "objects": objs}, indent=1))
            else:
                side.unlink(missing_ok=True)  # an older sidecar would describe other masks
            progress(1, 1)
            return out

        def done(out):
            if self.doc.image is img and self.doc.undo_stack.index() == gen:
                self.doc.mark_saved(out)
                self.autosaver.remove(self._session_key())
            self.message.emit(f"saved {out}")

        return self._submit(f"Saving {path.name}", "io", fn, done, cancellable=False)

    def open_labelmap(self, path) -> int | None:
        """Continue from a saved label map (must match the open image's geometry)."""
        if self.image is None:
            self.error.emit("open an image first, then its label map")
            return None
        img, path = self.image, Path(path)

        def fn(progress, should_stop):
            return read_labelmap(path, img)

        def done(lm):
            if self.doc.image is img:
                self.doc.load_labelmap(lm)
                for w in lm.warnings:
                    self.message.emit(f"note: {w}")

        return self._submit(f"Reading {path.name}", "io", fn, done)

    # --- autosave / restore ---------------------------------------------------------------------
    def _session_key(self) -> str:
        img = self.image
        return session_key(img.source if img is not None else None, img.series_uid if img is not None else None)

    def _autosave(self) -> None:
        img = self.image
        if img is None or img.source is None:
            return
        snap = Snapshot(key=self._session_key(), source=str(Path(img.source).resolve()), series_uid=img.series_uid,
                        labels=self._labels_copy(), objects=[o.to_json() for o in self.doc.objects], z=self.z,
                        time=time.time(), fingerprint=self.fingerprint, affine=img.affine.tolist(),
                        annotations=[a.to_json() for a in self.doc.annotations])
        self._autosaved = True
        self.autosaver.write(snap)

    def restore(self, snap: Snapshot) -> None:
        """Put an autosaved session back (opening its image first if another one is open)."""
        self._snapshot_restored = snap

        def apply():
            img = self.image
            why = "no image is open" if img is None else mismatch(snap, img, self.fingerprint)
            if why is not None:
                self.error.emit(f"the autosaved segmentation was not restored: {why}; it is kept in {snap.path}")
                return
            objs = [SegObject.from_json(d) for d in snap.objects]
            anns = [Annotation.from_json(d) for d in snap.annotations or []]
            self.doc._push("Restore autosave", snap.labels.astype(np.uint8), objs, objs[-1].value if objs else 0,
                           anns)
            self.set_slice(snap.z)
            self.message.emit(f"restored {snap.describe()}")

        if self.image is not None and self._session_key() == snap.key:
            apply()
            return
        jid = self.open_path(snap.source, series=snap.series_uid)
        self.jobs.after(jid, apply)

    def discard_snapshot(self, snap: Snapshot) -> None:
        self.autosaver.remove(snap.key)

    # --- shutdown -------------------------------------------------------------------------------
    def shutdown(self, keep_autosave: bool | None = None) -> None:
        """Stop the workers (a running job is cancelled, then each thread is joined). The autosave
        of unsaved work stays for the next start; a saved or untouched session's is removed."""
        if self._shut:
            return
        self._shut = True
        self.jobs.close()
        self.precompute.stop()
        self._measure_timer.stop()
        threads = (self.infer_thread, self.io_thread, self.autosave_thread, self.measure_thread)
        for t in threads:
            t.quit()
        for t in threads:
            t.wait(60_000)
        self.precompute.wait(60_000)
        if self.image is not None and (keep_autosave is False or (keep_autosave is None and self._autosaved and not self.doc.dirty)):
            remove_snapshot(self._session_key())


__all__ = ["CONFIDENCE_FORMAT", "Controller", "FillPreview", "OpenResult", "WINDOW_PRESETS", "compute_figures",
           "confidence_path"]
