"""The window's controller: document + workers + settings, and the data flow of one drag. No widgets.

Data flow of one drag (see ARCHITECTURE.md): the slice view reports the box in voxel indices
(:meth:`Controller.drag_box`) -> a :class:`~app.gui.workers.DecodeRequest` with the next sequence
number goes to the inference worker's mailbox (an older request still waiting is dropped) ->
the worker decodes (the embedding is cached) -> :meth:`_on_decoded` on the GUI thread draws the
result only if it is newer than the last one drawn for this drag (stale results are dropped) ->
on release the result of the release box becomes an object (one undo step) and is autosaved.

Long jobs (open, propagate, save, read a label map) are serialised: one runs at a time, the next
starts when it ends, so "propagate, then save" saves the propagated result. Each reports
progress and can be cancelled; they run on the I/O worker or (propagation, which needs the
predictor's session) on the inference worker.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QSettings, QThread, QTimer, Signal

from engine.base.errors import InputError

from app.autosave import Snapshot, find_snapshot, session_key
from app.gui.document import Document, SegObject
from app.gui.workers import Autosaver, DecodeRequest, DecodeResult, InferenceWorker, Job, JobWorker, PrecomputeThread

#: model-window choices offered in the View menu: (label, engine window spec)
WINDOW_PRESETS = [("Auto (modality default)", None), ("CT soft tissue (W400 L40)", "soft-tissue"),
                  ("CT lung (W1500 L-600)", "lung"), ("CT bone (W1800 L400)", "bone"),
                  ("CT brain (W80 L40)", "brain"), ("MR auto (percentiles)", "percentile")]

_SESSIONS: dict = {}
_SESSIONS_LOCK = threading.Lock()


@dataclass
class Settings:
    """Persistent settings (QSettings 'BoxSeg'): model name ('' = default), precision, threads
    (0 = OpenVINO's choice), embedding cache size in MiB, overlay opacity and style."""

    model: str = ""
    precision: str = "f32"
    threads: int = 0
    cache_mb: int = 1024

    @classmethod
    def load(cls) -> "Settings":
        q = QSettings("BoxSeg", "BoxSeg")
        d = cls()
        try:
            return cls(model=str(q.value("model", d.model) or ""), precision=str(q.value("precision", d.precision)),
                       threads=int(q.value("threads", d.threads)), cache_mb=int(q.value("cache_mb", d.cache_mb)))
        except (TypeError, ValueError):
            return d

    def save(self) -> None:
        q = QSettings("BoxSeg", "BoxSeg")
        for k in ("model", "precision", "threads", "cache_mb"):
            q.setValue(k, getattr(self, k))
        q.sync()

    def key(self) -> tuple:
        return (self.model or None, self.precision, self.threads or None, self.cache_mb)


def shared_session(settings: Settings):
    """One engine Session per settings in this process (windows and tests share it)."""
    from engine.inference.predictor import Session

    k = settings.key()
    with _SESSIONS_LOCK:
        s = _SESSIONS.get(k)
        if s is None:
            s = _SESSIONS[k] = Session(k[0], threads=k[2], precision=k[1], cache_bytes=k[3] << 20)
        return s


@dataclass
class OpenResult:
    image: object
    display_wl: tuple[float, float]
    labels: np.ndarray | None = None
    objects: list | None = None


def display_defaults(image, window_spec=None) -> tuple[float, float]:
    """(level, width) for showing an image: the model window for CT, percentiles otherwise."""
    from engine.data.window import CT_PRESETS, default_window, parse_window

    w = parse_window(window_spec) if window_spec else default_window(image)
    if w.kind == "ct":
        return float(w.params[0]), float(w.params[1])
    v = image.voxels
    if image.is_rgb or v.dtype == np.uint8:
        return 127.5, 255.0
    if image.modality == "CT" and w.kind != "pct":
        return CT_PRESETS["soft-tissue"]
    sample = v[:: max(1, v.shape[0] // 16)].reshape(-1)
    if sample.size > 2_000_000:
        sample = sample[:: sample.size // 2_000_000]
    sample = sample[np.isfinite(sample)]
    fg = sample[sample > 0] if (sample > 0).any() else sample
    lo, hi = (float(x) for x in np.percentile(fg, [0.5, 99.5])) if fg.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return (lo + hi) / 2, hi - lo


def _atomic_labelmap(path: Path, labels, image, segments, model_name, model_version, z) -> Path:
    """write_labelmap to a temporary name in the same folder, then rename: the file only ever
    appears complete."""
    from engine.data.labelmap import write_labelmap

    path = Path(path)
    name = path.name
    ext = ".nii.gz" if name.lower().endswith(".nii.gz") else path.suffix
    tmp = path.with_name(f".{name[: len(name) - len(ext)]}.boxseg-tmp-{os.getpid()}{ext}")
    try:
        write_labelmap(tmp, labels, image, segments=segments, model_name=model_name, model_version=model_version,
                       z=z)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink(missing_ok=True)
    return path


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

    def __init__(self, parent=None, settings: Settings | None = None):
        super().__init__(parent)
        self.doc = Document(self)
        self.settings = settings or Settings.load()
        self.z = 0
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
        self._commit_seq = None
        self._release_t = 0.0
        self._dragging = False
        self._jobs: deque = deque()
        self._job = None
        self._job_ids = 0
        self._snapshot_restored = None
        self._shut = False
        self._autosaved = False
        self.last_propagate_s = None

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

        self.infer.decoded.connect(self._on_decoded)
        self.infer.encoded.connect(self._on_encoded)
        self.infer.sessionReady.connect(self._on_session)
        self.infer.sessionFailed.connect(self._on_session_failed)
        for runner in (self.infer, self.io):
            runner.jobProgress.connect(self._on_job_progress)
            runner.jobDone.connect(self._on_job_done)
            runner.jobFailed.connect(self._on_job_failed)
        self.precompute.progress.connect(self.precomputeProgress)
        self.autosaver.failed.connect(self.error)
        self.doc.committed.connect(self._autosave)

        self.infer_thread.start()
        self.io_thread.start()
        self.autosave_thread.start()
        self.precompute.start(QThread.LowPriority)
        self.load_model()

    # --- model ----------------------------------------------------------------------------------
    def load_model(self, settings: Settings | None = None) -> None:
        if settings is not None:
            self.settings = settings
        s = self.settings
        self.session = None
        self.ready_slices.clear()
        self.infer.post_session(lambda: shared_session(s))

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
            from engine.io.dispatch import open_image

            img = open_image(path, series=series, progress=progress, should_stop=should_stop)
            img.intensity_map(window)  # fit the model window once, off the GUI thread
            return OpenResult(img, display_defaults(img, window))

        return self._submit(f"Opening {path.name}", "io", fn, self._on_opened)

    def _on_opened(self, res: OpenResult) -> None:
        img = res.image
        self.display_wl = res.display_wl
        self.doc.set_image(img)
        self.ready_slices.clear()
        self.z = img.depth // 2
        self.infer.post_image(img, self.model_window)
        self.imageOpened.emit()
        self.sliceChanged.emit(self.z)
        self._request_current()
        for w in img.warnings:
            self.message.emit(f"note: {w}")
        if self._snapshot_restored is None:
            snap = find_snapshot(img.source, img.series_uid)
            if snap is not None and tuple(snap.labels.shape) == img.shape:
                self.restoreAvailable.emit(snap)

    def set_slice(self, z: int) -> None:
        if self.image is None:
            return
        z = int(np.clip(z, 0, self.image.depth - 1))
        if z == self.z:
            return
        self.z = z
        self.sliceChanged.emit(z)
        self._request_current()

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
        self.infer.post_encode(self.z)
        limit = int(self.session.cache.max_bytes * 0.8 // (5 << 20))
        self.precompute.set_plan(self.image, self.model_window, self.z, limit)

    def set_model_window(self, spec) -> None:
        """Change the window the model sees (a preset, or None for the modality default)."""
        if self.image is None:
            self.model_window = spec
            return
        self.model_window = spec

        def fn(progress, should_stop, img=self.image):
            img.intensity_map(spec)
            return display_defaults(img, spec)

        def done(wl):
            self.display_wl = wl
            self.infer.post_image(self.image, spec)
            self.windowChanged.emit()
            self._request_current()

        self._submit("Applying window", "io", fn, done)

    def _on_encoded(self, z: int, key: str, hit: bool, ms: float) -> None:
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
    def begin_drag(self) -> None:
        self._dragging = True
        self._drag_seq0 = self._seq + 1
        self.live_updates = 0
        self._commit_seq = None
        self.precompute.pause("drag")

    def drag_box(self, box) -> None:
        """A live box (x0, y0, x1, y1 voxel indices) during a drag."""
        if self.image is None or not self._dragging:
            return
        self._seq += 1
        self.infer.post_decode(DecodeRequest(self._seq, self.z, tuple(float(v) for v in box), purpose="live"))

    def end_drag(self, box) -> None:
        """Release: the mask of this box becomes a new object."""
        self._dragging = False
        self.precompute.resume("drag")
        if self.image is None or box is None:
            self.liveMask.emit(None)
            return
        self._seq += 1
        self._commit_seq = self._seq
        self._release_t = time.perf_counter()
        self.infer.post_decode(DecodeRequest(self._seq, self.z, tuple(float(v) for v in box), purpose="commit"))

    def cancel_drag(self) -> None:
        self._dragging = False
        self._commit_seq = None
        self.precompute.resume("drag")
        self.liveMask.emit(None)

    def add_point(self, x: float, y: float, positive: bool) -> bool:
        """Refine the selected object on the current slice with a positive/negative click."""
        obj = self.doc.object(self.doc.current)
        if obj is None or self.image is None:
            self.message.emit("select an object to refine first (or draw a box)")
            return False
        if obj.z == self.z and obj.box is not None:
            box, points = obj.box, list(obj.points)
        else:
            ys, xs = np.nonzero(self.doc.labels[self.z] == obj.value)
            if not len(xs):
                self.message.emit(f"{obj.name} has no mask on this slice to refine; draw a box")
                return False
            box, points = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())), []
        points.append((float(x), float(y), 1 if positive else 0))
        self._seq += 1
        self._commit_seq = self._seq
        self._release_t = time.perf_counter()
        self.infer.post_decode(DecodeRequest(self._seq, self.z, box, points, purpose="refine", value=obj.value))
        return True

    def _on_decoded(self, res: DecodeResult) -> None:
        req = res.request
        self._emit_timings()
        if res.error:
            if req.seq == self._commit_seq:
                self._commit_seq = None
                self.liveMask.emit(None)
            self.error.emit(res.error)
            return
        if req.purpose == "live":
            if self._dragging and req.seq >= self._drag_seq0 and req.seq > self._drawn_seq:
                self._drawn_seq = req.seq
                self.live_updates += 1
                self.liveMask.emit(res)
            return
        if req.seq != self._commit_seq:
            return  # superseded
        self._commit_seq = None
        self._drawn_seq = req.seq
        self.liveMask.emit(None)
        if self.image is None or req.z >= self.image.depth:
            return
        if req.purpose == "commit":
            if not res.mask.any():
                self.message.emit("the model found nothing in that box")
            value = self.doc.add_object(req.z, res.mask, iou=res.iou, box=req.box)
        else:
            value = req.value
            self.doc.set_object_slice(value, req.z, res.mask, iou=res.iou, box=req.box, points=req.points)
        self.last_commit_ms = (time.perf_counter() - self._release_t) * 1000
        self.maskCommitted.emit(value, self.last_commit_ms)

    # --- long jobs ------------------------------------------------------------------------------
    def _submit(self, title: str, where: str, fn, on_done, on_fail=None, cancellable: bool = True) -> int:
        self._job_ids += 1
        job = Job(self._job_ids, title, fn)
        self._jobs.append((job, where, on_done, on_fail, cancellable))
        if self._job is None:
            self._start_next()
        return job.id

    def _start_next(self) -> None:
        if self._job is not None or not self._jobs or self._shut:
            return
        self._job = self._jobs.popleft()
        job, where, _, _, cancellable = self._job
        if where == "infer":
            self.precompute.pause("job")
            self.infer.post_job(job)
        else:
            self.io.submit(job)
        self.jobStarted.emit(job.id, job.title, cancellable)

    @property
    def busy(self) -> bool:
        return self._job is not None or bool(self._jobs)

    def cancel_job(self) -> None:
        if self._job is not None:
            self._job[0].cancel.set()
        for job, *_ in self._jobs:
            job.cancel.set()

    def _on_job_progress(self, jid: int, done: int, total: int) -> None:
        if self._job is not None and self._job[0].id == jid:
            self.jobProgress.emit(jid, done, total)

    def _finish(self, jid: int):
        if self._job is None or self._job[0].id != jid:
            return None
        cur, self._job = self._job, None
        if cur[1] == "infer":
            self.precompute.resume("job")
        return cur

    def _on_job_done(self, jid: int, result) -> None:
        cur = self._finish(jid)
        if cur is None:
            return
        job, _, on_done, _, _ = cur
        try:
            on_done(result)
            self.jobFinished.emit(jid, True, "")
        except Exception as e:  # noqa: BLE001
            import traceback

            traceback.print_exc()
            self.jobFinished.emit(jid, False, f"{job.title}: {e}")
            self.error.emit(f"{job.title}: {e}")
        QTimer.singleShot(0, self._start_next)

    def _on_job_failed(self, jid: int, msg: str, cancelled: bool) -> None:
        cur = self._finish(jid)
        if cur is None:
            return
        job, _, _, on_fail, _ = cur
        if on_fail is not None:
            on_fail(msg, cancelled)
        if cancelled:
            self.message.emit(f"{job.title}: cancelled")
        else:
            self.error.emit(f"{job.title}: {msg}")
        self.jobFinished.emit(jid, False, "cancelled" if cancelled else msg)
        QTimer.singleShot(0, self._start_next)

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
        from engine.inference.propagate import Box3D, propagate_box

        if value is None:
            value = self.doc.current or (self.doc.objects[-1].value if self.doc.objects else 0)
        obj = self.doc.object(value)
        if not self.can_propagate(value):
            self.message.emit("propagation needs a volume and an object drawn with a box")
            return None
        img, window, infer = self.image, self.model_window, self.infer
        z0, z1 = z_range if z_range is not None else (0, img.depth - 1)
        z0, z1 = max(0, min(z0, obj.z)), min(img.depth - 1, max(z1, obj.z))
        box3d = Box3D(obj.box[0], obj.box[1], z0, obj.box[2], obj.box[3], z1)
        keep_z, keep = obj.z, (self.doc.labels[obj.z] == value).copy()

        def fn(progress, should_stop):
            vol, key = img.model_volume(window, should_stop=should_stop)
            mask = propagate_box(infer.session, vol, box3d, label_value=value, window=key, early_stop=early_stop,
                                 progress=progress, should_stop=should_stop, start=keep_z)
            mask[keep_z] = keep  # the drawn (maybe refined) slice stays as the user made it
            return mask

        t0 = time.perf_counter()

        def done(mask):
            self.last_propagate_s = time.perf_counter() - t0
            self.doc.set_object_volume(value, mask)
            self._emit_timings()

        return self._submit(f"Propagating {obj.name}", "infer", fn, done)

    # --- save / label maps ----------------------------------------------------------------------
    def default_save_name(self) -> str:
        img = self.image
        if img is None or img.source is None:
            return "segmentation.nii.gz"
        stem = img.source.name
        for ext in (".nii.gz", ".nii", ".dcm", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npz"):
            if stem.lower().endswith(ext):
                stem = stem[: -len(ext)]
                break
        if img.depth == 1:
            return f"{stem}_seg.png"
        return f"{stem}_seg.dcm" if img.dicom else f"{stem}_seg.nii.gz"

    def save(self, path) -> int | None:
        """Write the label map (format by extension: .nii/.nii.gz, .dcm DICOM-SEG, .png) atomically."""
        if self.image is None:
            return None
        path = Path(path)
        img = self.image
        labels = self.doc.labels.copy()
        segments = self.doc.segments()
        z = self.z if img.depth > 1 else None
        entry = self.session.entry if self.session is not None else None
        name = entry.name if entry else "BoxSeg"
        version = f"{entry.precision} sha256:{entry.model_id[:16]}" if entry else ""
        gen = self.doc.undo_stack.index()

        def fn(progress, should_stop):
            progress(0, 1)
            out = _atomic_labelmap(path, labels, img, segments, name, version, z)
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
            from engine.data.labelmap import read_labelmap

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
                        labels=self.doc.labels.copy(), objects=[o.to_json() for o in self.doc.objects], z=self.z,
                        time=time.time())
        self._autosaved = True
        self.autosaver.write(snap)

    def restore(self, snap: Snapshot) -> None:
        """Put an autosaved session back (opening its image first if another one is open)."""
        self._snapshot_restored = snap

        def apply():
            img = self.image
            if img is None or tuple(snap.labels.shape) != img.shape:
                self.error.emit("the autosaved segmentation does not fit this image")
                return
            objs = [SegObject.from_json(d) for d in snap.objects]
            self.doc._push("Restore autosave", snap.labels.astype(np.uint8), objs, objs[-1].value if objs else 0)
            self.set_slice(snap.z)
            self.message.emit(f"restored {snap.describe()}")

        if self.image is not None and self._session_key() == snap.key:
            apply()
            return
        jid = self.open_path(snap.source, series=snap.series_uid)
        self._after_job(jid, apply)

    def discard_snapshot(self, snap: Snapshot) -> None:
        self.autosaver.remove(snap.key)

    def _after_job(self, jid: int, fn) -> None:
        def handler(done_id, ok, _msg):
            if done_id == jid:
                self.jobFinished.disconnect(handler)
                if ok:
                    fn()
        self.jobFinished.connect(handler)

    # --- shutdown -------------------------------------------------------------------------------
    def shutdown(self, keep_autosave: bool | None = None) -> None:
        """Stop the workers (a running job is cancelled, then each thread is joined). The autosave
        of unsaved work stays for the next start; a saved or untouched session's is removed."""
        if self._shut:
            return
        self._shut = True
        self.cancel_job()
        self.precompute.stop()
        for t in (self.infer_thread, self.io_thread, self.autosave_thread):
            t.quit()
        for t in (self.infer_thread, self.io_thread, self.autosave_thread):
            t.wait(60_000)
        self.precompute.wait(60_000)
        if self.image is not None and (keep_autosave is False or (keep_autosave is None and self._autosaved and not self.doc.dirty)):
            from app.autosave import remove_snapshot

            remove_snapshot(self._session_key())


__all__ = ["Controller", "OpenResult", "Settings", "WINDOW_PRESETS", "display_defaults", "shared_session"]
