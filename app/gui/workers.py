"""Worker threads of the desktop app. The GUI thread never runs inference or reads a whole series.

* :class:`InferenceWorker` (a QObject moved to its own QThread) owns the engine
  :class:`~engine.inference.predictor.Predictor` of the window. Requests go into a mailbox guarded by a lock
  and a queued ``wake`` signal starts the loop on the worker thread. Live requests (during a drag) are
  a mailbox: only the **newest** is kept (older ones are dropped before they run). Commits (release of a
  box) and refinements (a click) are a queue: never dropped, served in order, each on the image and
  window it was drawn on (the request carries them), so a box released just before another image
  opens is decoded on its own image. Every result carries its request's sequence number so that the
  controller draws only the newest live one. Order of service: model (re)load, commits/refinements,
  the live request, encode of the current slice, long jobs (propagation).
* :class:`PrecomputeThread` encodes the slices around the current one into the session's
  embedding cache, outward from it (z+1, z-1, z+2, ...), one slice at a time; it yields to the
  inference worker (``hold``) and pauses while the user drags or a propagation runs. The engine
  keeps one infer request per graph behind a lock and its cache is thread-safe, so the decoder
  runs while a background encode is in flight.
* long I/O jobs (open, save, read a label map) run on a :class:`~app.gui.jobs.JobWorker`.
* :class:`Autosaver` writes autosave snapshots on its thread (newest only).
* :class:`LatestWorker` computes what the panels show of the whole label map (measurements, the
  confidence of propagated objects) after each change, on its thread: newest request only.

All results reach the GUI thread through queued signals; long jobs take a ``should_stop``
callback backed by a ``threading.Event`` the Cancel button sets.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.autosave import remove_snapshot, write_snapshot
from app.gui.jobs import Job, JobRunner
from engine.base.errors import BoxSegError, Cancelled
from engine.data.planes import planes_of
from engine.data.square import ModelFrame


def model_input(image, window, z: int, plane: str = "") -> tuple[np.ndarray, str, str]:
    """What the encoder gets for slice z of ``image``: (uint8 pixels, window key, cache plane).

    plane '': the stored slice ``voxels[z]``; 'axial'/'coronal'/'sagittal': slice z of that reformatted
    plane, windowed alone and resampled to square pixels (:class:`~engine.data.square.ModelFrame`); when
    that plane is the stored one this is the stored slice again (the same cache entries)."""
    if not plane:
        u8, key = image.model_slice(z, window)
        return u8, key, ""
    frame = plane_frame(image, plane)
    u8, key = frame.slice_pixels(image, z, window)
    return u8, key, frame.cache_plane


def plane_frame(image, plane: str) -> ModelFrame:
    """The model frame of a reformatted plane of ``image`` (square pixels, screen orientation)."""
    return ModelFrame.for_plane(planes_of(image.affine, image.shape)[plane])


@dataclass
class DecodeRequest:
    """A box (and points) on slice z; ``purpose`` is 'live' (during a drag), 'commit' (release)
    or 'refine' (points added to object ``value``). ``image``/``window``: what it was drawn on (None: the
    worker's current image and window); ``doc_gen``: the controller's count of opened images at the
    time, so that a result is never applied to another image. ``plane``: '' for a stored slice
    ``voxels[z]`` (box/points in its voxel indices x, y; the result mask (Y,X)), or a reformatted plane's
    name (z its slice index, box/points in its screen pixels x = column, y = row; the mask (rows, cols) on
    its screen grid)."""

    seq: int
    z: int
    box: tuple[float, float, float, float]
    points: list = field(default_factory=list)  # [(x, y, 1|0)]
    purpose: str = "live"
    value: int = 0
    image: object = None
    window: object = None
    doc_gen: int = 0
    plane: str = ""


@dataclass
class DecodeResult:
    request: DecodeRequest
    mask: np.ndarray | None
    iou: float
    decoder_ms: float
    encoder_ms: float | None  # None: embedding came from the cache
    error: str | None = None


class InferenceWorker(JobRunner):
    """Owns the session's predictor; see the module docstring for the mailbox rules."""

    decoded = Signal(object)                  # DecodeResult
    encoded = Signal(int, str, bool, float, str)   # z, window key, cache hit, encoder ms, plane ('' stored)
    sessionReady = Signal(object)             # engine Session
    sessionFailed = Signal(str)
    _wake = Signal()

    def __init__(self, precompute: "PrecomputeThread"):
        super().__init__()
        self.precompute = precompute
        self._lock = threading.Lock()
        self._session_factory = None
        self._live: DecodeRequest | None = None
        self._commits: deque[DecodeRequest] = deque()
        self._encode: int | None = None
        self._jobs: deque[Job] = deque()
        self._image = None
        self._window = None
        self.session = None
        self.predictor = None
        self._current = None  # (image, window key, z) the predictor holds
        self.dropped = 0      # live decode requests replaced before they ran
        self._wake.connect(self._loop)

    # --- posting (any thread) -----------------------------------------------------------------
    def post_session(self, factory) -> None:
        with self._lock:
            self._session_factory = factory
        self._wake.emit()

    def post_image(self, image, window) -> None:
        with self._lock:
            self._image, self._window = image, window
            self._live, self._encode = None, None  # commits stay: each carries its own image
        self._wake.emit()

    def post_decode(self, req: DecodeRequest) -> None:
        with self._lock:
            if req.purpose != "live":
                self._commits.append(req)
            else:
                if self._live is not None:
                    self.dropped += 1
                self._live = req
        self._wake.emit()

    def post_encode(self, z: int, plane: str = "") -> None:
        """Encode slice z (of a reformatted ``plane``, '' the stored slices) when nothing else waits."""
        with self._lock:
            self._encode = (int(z), plane)
        self._wake.emit()

    def post_job(self, job: Job) -> None:
        with self._lock:
            self._jobs.append(job)
        self._wake.emit()

    # --- worker thread --------------------------------------------------------------------------
    @Slot()
    def _loop(self) -> None:
        while True:
            with self._lock:
                factory, self._session_factory = self._session_factory, None
                if factory is None and self.session is None:
                    return  # nothing runs before a model is loaded
                item = None
                if factory is not None:
                    kind = "session"
                elif self._commits:
                    kind, item = "decode", self._commits.popleft()
                elif self._live is not None:
                    kind, item, self._live = "decode", self._live, None
                elif self._encode is not None:
                    kind, item, self._encode = "encode", self._encode, None
                elif self._jobs:
                    kind, item = "job", self._jobs.popleft()
                else:
                    return
                image, window = self._image, self._window
            if kind == "session":
                self._load_session(factory)
            elif kind == "decode":
                self._run_decode(item, image, window)
            elif kind == "encode":
                self._run_encode(item, image, window)
            else:
                self._run_job(item)

    def _load_session(self, factory) -> None:
        try:
            self.session = factory()
            # the decoder for prompts with points is compiled on first use; do it now, off this thread,
            # so that the first click does not wait ~0.5 s for it
            self.session.runtime.compile_in_background("decoder")
            self.predictor = self.session.predictor()
            self._current = None
        except BoxSegError as e:
            self.sessionFailed.emit(str(e))
            return
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            self.sessionFailed.emit(f"{type(e).__name__}: {e}")
            return
        self.sessionReady.emit(self.session)

    def _set_slice(self, image, window, z, plane: str = "") -> tuple[bool, float | None, str]:
        """Make the predictor hold slice z of ``image`` (of ``plane``, see :func:`model_input`); returns
        (cache hit, encoder ms or None, window key)."""
        key = image.intensity_map(window).key  # the key model_input gives, known before any pixel is made
        cur = self._current
        if cur is not None and cur[0] is image and cur[1:] == (key, z, plane):
            return True, None, key  # held: a live drag does not window (or resample) its slice again
        slice_u8, key, cache_plane = model_input(image, window, z, plane)
        self.precompute.hold()
        try:
            t0 = time.perf_counter()
            hit = self.predictor.set_image(slice_u8, slice_index=z, window=key, plane=cache_plane)
            ms = (time.perf_counter() - t0) * 1000
        finally:
            self.precompute.release()
        self._current = (image, key, z, plane)
        if image is self._image:
            self.encoded.emit(z, key, hit, ms, plane)
        return hit, (None if hit else ms), key

    def _run_encode(self, item, image, window) -> None:
        if image is None:
            return
        z, plane = item
        try:
            self._set_slice(image, window, z, plane)
        except BoxSegError:
            pass

    def _run_decode(self, req: DecodeRequest, image, window) -> None:
        if req.image is not None:
            image, window = req.image, req.window
        if image is None:
            return
        try:
            _, enc_ms, _ = self._set_slice(image, window, req.z, req.plane)
            frame = plane_frame(image, req.plane) if req.plane else None
            pts = lab = None
            if req.points:
                pts = np.asarray([(p[0], p[1]) for p in req.points], np.float32)
                lab = np.asarray([p[2] for p in req.points], np.float32)
                if frame is not None:
                    pts = frame.points_to_model(pts).astype(np.float32)
            box = frame.box_to_model(req.box) if frame is not None else req.box
            t0 = time.perf_counter()
            pred = self.predictor.predict(box, pts, lab)
            mask = frame.mask_to_screen(pred.mask).astype(bool) if frame is not None else pred.mask
            ms = (time.perf_counter() - t0) * 1000
            self.decoded.emit(DecodeResult(req, mask, float(pred.iou), ms, enc_ms))
        except BoxSegError as e:
            self.decoded.emit(DecodeResult(req, None, 0.0, 0.0, None, error=str(e)))
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            self.decoded.emit(DecodeResult(req, None, 0.0, 0.0, None, error=f"{type(e).__name__}: {e}"))


class PrecomputeThread(QThread):
    """Background encoder: slices outward from the current one (see the module docstring)."""

    progress = Signal(int, int)  # done, total of the current plan (total 0 = idle)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._cv = threading.Condition()
        self._plan: list[int] = []
        self._plan_total = 0
        self._done = 0
        self._image = None
        self._window = None
        self._session = None
        self._pause: set[str] = set()
        self._holds = 0
        self._stop = False
        self._busy = False
        self._gen = 0

    def set_session(self, session) -> None:
        with self._cv:
            self._session = session
            self._cv.notify_all()

    def set_plan(self, image, window, z: int, limit: int | None = None, plane: str = "") -> None:
        """Encode the slices of ``image`` outward from z (z itself is the inference worker's), along the
        normal of ``plane`` ('' the stored slices; a reformatted plane's name: its slices, the plane the
        user works in, see :func:`model_input`)."""
        order = []
        if image is not None and image.depth > 1:
            d = image.depth if not plane else planes_of(image.affine, image.shape)[plane].n_slices
            for k in range(1, d):
                for zz in (z + k, z - k):
                    if 0 <= zz < d:
                        order.append((zz, plane))
            if limit is not None:
                order = order[:max(0, limit)]
        with self._cv:
            self._image, self._window = image, window
            self._plan, self._plan_total, self._done = order, len(order), 0
            self._gen += 1
            self._cv.notify_all()

    def pause(self, reason: str) -> None:
        with self._cv:
            self._pause.add(reason)

    def resume(self, reason: str) -> None:
        with self._cv:
            self._pause.discard(reason)
            self._cv.notify_all()

    def hold(self) -> None:
        """The current slice needs the encoder: the in-flight background slice is cancelled (and
        redone later); hold until :meth:`release`."""
        with self._cv:
            self._holds += 1
            while self._busy:
                self._cv.wait(0.05)

    def release(self) -> None:
        with self._cv:
            self._holds -= 1
            self._cv.notify_all()

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()

    def _interrupted(self, gen: int) -> bool:
        """Should the in-flight background encode stop (OpenVINO cancels it within ~10 ms)?"""
        return bool(self._stop or self._pause or self._holds or gen != self._gen)

    def run(self) -> None:  # noqa: D401 - QThread entry
        while True:
            with self._cv:
                while not self._stop and (not self._plan or self._session is None or self._pause or self._holds):
                    self._cv.wait(0.5)
                if self._stop:
                    return
                item = self._plan.pop(0)
                image, window, session, gen = self._image, self._window, self._session, self._gen
                self._busy = True
            finished = False
            z, plane = item
            try:
                slice_u8, key, cache_plane = model_input(image, window, z, plane)
                session.encode(slice_u8, slice_index=z, window=key, plane=cache_plane,
                               should_stop=lambda: self._interrupted(gen))
                finished = True
            except Cancelled:
                pass
            except Exception:  # noqa: BLE001 - background work must not kill the thread
                finished = True
            with self._cv:
                self._busy = False
                same = gen == self._gen
                if same and not finished:
                    self._plan.insert(0, item)  # interrupted: do it again when the user is done
                elif same:
                    self._done += 1
                done, total = self._done, self._plan_total
                self._cv.notify_all()
            if same and finished:
                self.progress.emit(done, total)


class Autosaver(QObject):
    """Writes autosave snapshots (newest only) and removes them, in order, on its own thread."""

    saved = Signal(str)
    failed = Signal(str)
    _write = Signal(object)
    _remove = Signal(str)

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()
        self._latest: dict[str, int] = {}
        self._counter = 0
        self._write.connect(self._do_write)
        self._remove.connect(self._do_remove)

    def write(self, snapshot) -> None:
        with self._lock:
            self._counter += 1
            snapshot.gen = self._latest[snapshot.key] = self._counter
        self._write.emit(snapshot)

    def remove(self, key: str) -> None:
        with self._lock:
            self._counter += 1
            self._latest[key] = self._counter  # drops writes queued before the removal
        self._remove.emit(key)

    @Slot(object)
    def _do_write(self, snap) -> None:
        with self._lock:
            if snap.gen < self._latest.get(snap.key, 0):
                return  # a newer snapshot (or a removal) is queued
        try:
            path = write_snapshot(snap)
            self.saved.emit(str(path))
        except OSError as e:
            self.failed.emit(f"autosave failed: {e}")

    @Slot(str)
    def _do_remove(self, key: str) -> None:
        remove_snapshot(key)


class LatestWorker(QObject):
    """Runs ``fn()`` of the newest posted request on its thread; a request posted while one runs replaces
    any that waits (stale ones never run). ``done(gen, result)`` / ``failed(gen, message)`` by queued
    signal; the caller keeps ``gen`` (increasing) to ignore a result older than what it shows."""

    done = Signal(int, object)
    failed = Signal(int, str)
    _wake = Signal()

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()
        self._next = None
        self._wake.connect(self._run)

    def post(self, gen: int, fn) -> None:
        with self._lock:
            self._next = (gen, fn)
        self._wake.emit()

    @Slot()
    def _run(self) -> None:
        with self._lock:
            item, self._next = self._next, None
        if item is None:
            return
        gen, fn = item
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - a panel's figures must never kill the worker
            traceback.print_exc()
            self.failed.emit(gen, f"{type(e).__name__}: {e}")
            return
        self.done.emit(gen, result)


__all__ = ["Autosaver", "LatestWorker", "DecodeRequest", "DecodeResult", "InferenceWorker", "PrecomputeThread"]
