"""Long jobs of the desktop app (open, propagate, save, read a label map): run on worker threads, one at a
time, with progress and Cancel.

* :class:`Job` — ``fn(progress, should_stop) -> result``, run on a worker thread; ``should_stop`` is
  backed by a ``threading.Event`` that Cancel sets.
* :class:`JobRunner` — runs jobs on the thread it lives on and reports through queued signals;
  :class:`JobWorker` is one for I/O jobs (the inference worker is another, for propagation).
* :class:`JobQueue` — lives on the GUI thread and serialises jobs: one runs at a time, the next
  starts when it ends, so "propagate, then save" saves the propagated result.
"""

from __future__ import annotations

import threading
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QTimer, Signal

from engine.base.errors import BoxSegError, Cancelled
from engine.base.heap import release_free_memory


@dataclass
class Job:
    """A long job: ``fn(progress, should_stop) -> result`` run on a worker thread."""

    id: int
    title: str
    fn: object
    cancel: threading.Event = field(default_factory=threading.Event)

    def should_stop(self) -> bool:
        return self.cancel.is_set()


class JobRunner(QObject):
    """Runs :class:`Job` objects on its thread and reports through signals."""

    jobProgress = Signal(int, int, int)       # job id, done, total
    jobDone = Signal(int, object)             # job id, result
    jobFailed = Signal(int, str, bool)        # job id, one-line message, cancelled

    def _run_job(self, job: Job) -> None:
        def progress(done, total):
            self.jobProgress.emit(job.id, int(done), int(total))
        try:
            result = job.fn(progress, job.should_stop)
        except Cancelled as e:
            self.jobFailed.emit(job.id, str(e), True)
        except BoxSegError as e:
            self.jobFailed.emit(job.id, str(e), False)
        except MemoryError:
            self.jobFailed.emit(job.id, "not enough memory for this job", False)
        except Exception as e:  # noqa: BLE001 - a worker must never die silently
            traceback.print_exc()
            self.jobFailed.emit(job.id, f"{type(e).__name__}: {e}", False)
        else:
            if job.should_stop():
                self.jobFailed.emit(job.id, "cancelled", True)
            else:
                self.jobDone.emit(job.id, result)
        finally:
            # a job (open, propagate, save) frees whole-volume temporaries: give the pages back now
            release_free_memory()


class JobWorker(JobRunner):
    """Long I/O jobs, one at a time, on its own thread (post with :meth:`submit`)."""

    _submit = Signal(object)

    def __init__(self):
        super().__init__()
        self._submit.connect(self._run_job)

    def submit(self, job: Job) -> None:
        self._submit.emit(job)  # queued: the job runs on the worker's thread


@dataclass
class Place:
    """Where a job runs: ``post(job)`` hands it to its runner; ``before()`` / ``after()`` are called
    on the GUI thread when it starts and ends (e.g. pausing background encoding)."""

    post: Callable[[Job], None]
    before: Callable[[], None] | None = None
    after: Callable[[], None] | None = None


class JobQueue(QObject):
    """Serialises long jobs over named places (see the module docstring). GUI thread only."""

    started = Signal(int, str, bool)       # id, title, cancellable
    progress = Signal(int, int, int)       # id, done, total
    finished = Signal(int, bool, str)      # id, ok, message
    error = Signal(str)
    message = Signal(str)

    def __init__(self, places: dict[str, Place], runners: list[JobRunner], parent=None):
        super().__init__(parent)
        self.places = places
        self._queue: deque = deque()
        self._current = None
        self._ids = 0
        self._closed = False
        for runner in runners:
            runner.jobProgress.connect(self._on_progress)
            runner.jobDone.connect(self._on_done)
            runner.jobFailed.connect(self._on_failed)

    def submit(self, title: str, where: str, fn, on_done, on_fail=None, cancellable: bool = True) -> int:
        """Queue ``fn(progress, should_stop)`` at place ``where``; ``on_done(result)`` runs on the GUI thread
        (``on_fail(message, cancelled)`` when it fails). Returns the job id."""
        self._ids += 1
        job = Job(self._ids, title, fn)
        self._queue.append((job, where, on_done, on_fail, cancellable))
        if self._current is None:
            self._start_next()
        return job.id

    def _start_next(self) -> None:
        if self._current is not None or not self._queue or self._closed:
            return
        self._current = self._queue.popleft()
        job, where, _, _, cancellable = self._current
        place = self.places[where]
        if place.before is not None:
            place.before()
        place.post(job)
        self.started.emit(job.id, job.title, cancellable)

    @property
    def busy(self) -> bool:
        return self._current is not None or bool(self._queue)

    @property
    def last_id(self) -> int:
        """The id of the job submitted last (0 before the first)."""
        return self._ids

    def cancel_all(self) -> None:
        """Cancel the running job and every queued one (each ends as cancelled)."""
        if self._current is not None:
            self._current[0].cancel.set()
        for job, *_ in self._queue:
            job.cancel.set()

    def close(self) -> None:
        """No job starts any more (shutdown); the running one is cancelled."""
        self._closed = True
        self.cancel_all()

    def after(self, jid: int, fn) -> None:
        """Call ``fn()`` once job ``jid`` has finished successfully."""
        def handler(done_id, ok, _msg):
            if done_id == jid:
                self.finished.disconnect(handler)
                if ok:
                    fn()
        self.finished.connect(handler)

    def _on_progress(self, jid: int, done: int, total: int) -> None:
        if self._current is not None and self._current[0].id == jid:
            self.progress.emit(jid, done, total)

    def _finish(self, jid: int):
        if self._current is None or self._current[0].id != jid:
            return None
        cur, self._current = self._current, None
        place = self.places[cur[1]]
        if place.after is not None:
            place.after()
        return cur

    def _on_done(self, jid: int, result) -> None:
        cur = self._finish(jid)
        if cur is None:
            return
        job, _, on_done, _, _ = cur
        try:
            on_done(result)
            self.finished.emit(jid, True, "")
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            self.finished.emit(jid, False, f"{job.title}: {e}")
            self.error.emit(f"{job.title}: {e}")
        QTimer.singleShot(0, self._start_next)

    def _on_failed(self, jid: int, msg: str, cancelled: bool) -> None:
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
        self.finished.emit(jid, False, "cancelled" if cancelled else msg)
        QTimer.singleShot(0, self._start_next)


__all__ = ["Job", "JobQueue", "JobRunner", "JobWorker", "Place"]
