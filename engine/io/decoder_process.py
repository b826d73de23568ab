"""Compressed pixel data that can hang a decoder, decoded in a child process with a time limit (issue 18).

CharLS (pyjpegls) spent 7-9 s of CPU holding the GIL on one corrupt 100x100 JPEG-LS stream, and OpenJPEG has
a history of such inputs; a thread cannot stop native code, a process can. Pixel data in a transfer syntax of
:data:`ISOLATED` is decoded by a persistent child process, reused across frames and files (starting one costs
~0.3 s of imports, so a 300-slice series pays it once): each frame has :func:`frame_seconds` of the child's CPU
time, and a child that overruns it is killed (and a fresh one started for the next request), the read failing
with an :class:`InputError` naming the file. Native and the other compressed syntaxes stay in process.

* The limit is CPU time, read from ``/proc/<pid>/stat`` (or psutil where installed), so that a busy shared
  machine does not refuse valid files (a 2048x2048 JPEG 2000 frame measured 0.56 s of CPU, 2.8 s of wall clock
  at a load of 5 on 2 cores); a child that does not use the CPU (blocked) is stopped after
  :data:`WALL_FACTOR` times the limit in wall clock. Without a way to read a child's CPU time, the limit is
  wall clock. On an idle machine both are the same.

* Only what decoding needs crosses to the child: group 0028 (image pixel description), group 7FE0 (pixel data,
  offset tables) and the transfer syntax — never patient attributes, so nothing the child says can quote
  them. The child limits its own address space to what the frame may need (:func:`_memory_allowance`).
* The child is ``python -m engine.io.decoder_process`` (``PYTHONPATH`` pointing at this source tree), or, in
  the PyInstaller bundle (``sys.frozen``), the bundle's executable with :data:`CHILD_FLAG`, which
  ``packaging/boxseg_launcher.py`` recognises before anything else. It is a ``subprocess`` (not
  ``multiprocessing``), so it starts from daemonic processes (Dask's workers) and from any thread.
* Messages are length-prefixed pickles over the child's stdin/stdout (its own stdout is redirected to
  stderr, itself discarded: a library that prints cannot break the stream); a reader thread per child
  turns them into a queue, so the wait has a timeout on every platform (Windows pipes have no ``select``).
* A child that cannot be started (no Python beside ``sys.executable``, a locked-down system) makes the
  process fall back to in-process decoding, logged once.
* Several threads may decode at once: each takes an idle child or starts one; at most :data:`IDLE_KEPT` idle
  children are kept. A series reader :func:`submit`-s slice z+1 before collecting slice z (two children
  alternate: parsing and decoding overlap). A process forked with a pool (``multiprocessing``'s fork) starts
  its own children.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from engine.base.callbacks import StopFn
from engine.base.errors import Cancelled, InputError

log = logging.getLogger(__name__)

#: transfer syntaxes decoded out of process: JPEG-LS (CharLS) and JPEG 2000 / HTJ2K (OpenJPEG)
ISOLATED = frozenset({
    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203",
})
#: the argument that makes the frozen app's executable serve as the decoder child
CHILD_FLAG = "--boxseg-pixel-decoder"
#: CPU seconds one frame may take: FRAME_SECONDS plus a second per FRAME_BYTES_PER_SECOND decoded bytes (a 512x512
#: CT slice decodes in ~10 ms, a 2048x2048 16-bit JPEG 2000 frame in ~0.6 s: limits of 1.1 and 3 s)
FRAME_SECONDS = 1.0
FRAME_BYTES_PER_SECOND = 4 << 20
#: a child that has not finished a frame after this many times its limit in wall clock is stopped however
#: little CPU it used (blocked, or a machine too busy to tell)
WALL_FACTOR = 10.0
#: seconds a starting child may take to import its decoders (a busy machine, a cold disk)
START_SECONDS = 60.0
IDLE_KEPT = 2

_HEADER = struct.Struct("<Q")


def isolated(transfer_syntax) -> bool:
    """True when pixel data of this transfer syntax UID is decoded out of process (and that is possible)."""
    return str(transfer_syntax or "") in ISOLATED and not _pool.broken


def frame_seconds(frame_bytes: int) -> float:
    """CPU-time limit (s) for decoding one frame of ``frame_bytes`` decoded bytes."""
    return FRAME_SECONDS + frame_bytes / FRAME_BYTES_PER_SECOND


def child_command() -> list[str]:
    """The command line of a decoder child (the frozen bundle's executable with :data:`CHILD_FLAG`)."""
    if getattr(sys, "frozen", False):
        return [sys.executable, CHILD_FLAG]
    return [sys.executable, "-m", "engine.io.decoder_process"]


# --- the parent's side ----------------------------------------------------------------------------------


class _Child:
    """One decoder process and the thread that reads its messages into ``inbox``."""

    def __init__(self):
        env = dict(os.environ)
        if not getattr(sys, "frozen", False):
            src = str(Path(__file__).resolve().parents[2])  # the folder holding the ``engine`` package
            env["PYTHONPATH"] = os.pathsep.join([src, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
            env.setdefault(var, "1")
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # Windows: no console window for the child
        self.proc = subprocess.Popen(child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env, creationflags=flags)
        self.inbox: queue.Queue = queue.Queue()
        self.ready = False
        self.cpu = 0.0  # the child's CPU seconds at its last message
        threading.Thread(target=self._read, name="pixel-decoder-reader", daemon=True).start()

    def _read(self):
        out = self.proc.stdout
        try:
            while True:
                head = out.read(_HEADER.size)
                if len(head) < _HEADER.size:
                    break
                body = out.read(_HEADER.unpack(head)[0])
                self.inbox.put(pickle.loads(body))
        except Exception as e:  # noqa: BLE001 - a broken stream ends this child like EOF
            log.debug("pixel decoder stream: %s", e)
        self.inbox.put(("eof",))

    def send(self, message) -> None:
        body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.proc.stdin.write(_HEADER.pack(len(body)) + body)
        self.proc.stdin.flush()

    def receive(self, seconds: float):
        """The next message, or None after ``seconds``; ("eof",) when the child is gone."""
        try:
            return self.inbox.get(timeout=seconds)
        except queue.Empty:
            return None

    def wait_ready(self) -> str | None:
        """None once the child has imported its decoders, else why it did not."""
        if not self.ready:
            msg = self.receive(START_SECONDS)
            self.ready = msg is not None and msg[0] == "ready"
            if self.ready:
                self.cpu = msg[-1]  # its imports are not any file's decoding time
            if not self.ready:
                return f"the pixel decoder process did not start within {START_SECONDS:g} s" if msg is None else \
                    f"the pixel decoder process exited while starting (exit code {self.proc.poll()})"
        return None

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(5)
        except Exception:  # noqa: BLE001 - already gone
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except Exception:  # noqa: BLE001 - a broken pipe is closed anyway
                pass


class _Pool:
    def __init__(self):
        self.lock = threading.Lock()
        self.idle: list[_Child] = []
        self.pid = os.getpid()
        self.broken = False
        self.cpu_seconds = 0.0  # CPU (and timed-out wall) seconds children spent for this process

    def _forked(self) -> None:
        if os.getpid() != self.pid:  # inherited from the process we were forked from: its children, not ours
            self.idle, self.pid, self.lock = [], os.getpid(), threading.Lock()

    def take(self) -> _Child | None:
        with self.lock:
            self._forked()
            while self.idle:
                child = self.idle.pop()
                if child.proc.poll() is None:
                    return child
                child.kill()  # died while idle (killed from outside): its pipes are closed, a fresh one serves
        try:
            return _Child()
        except OSError as e:
            self._fail(f"cannot start the pixel decoder process ({e})")
            return None

    def give(self, child: _Child) -> None:
        with self.lock:
            self._forked()
            if child.proc.poll() is None and len(self.idle) < IDLE_KEPT:
                self.idle.append(child)
                return
        child.kill()

    def _fail(self, why: str) -> None:
        if not self.broken:
            log.warning("%s: JPEG-LS and JPEG 2000 pixel data will be decoded in this process, without a time limit",
                        why)
        self.broken = True

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for c in idle:
            c.kill()


_pool = _Pool()
atexit.register(_pool.close)


def warm() -> None:
    """Start a decoder child now (in the background) so that the first frame does not wait for its imports."""
    if _pool.broken:
        return
    with _pool.lock:
        _pool._forked()
        if _pool.idle:
            return
    child = _pool.take()
    if child is not None:
        _pool.give(child)


def child_cpu_seconds() -> float:
    """CPU seconds decoder children spent on this process's requests so far (a stopped child: what it used on the
    frame it was stopped on) — for callers that budget CPU time (the fuzzing oracle)."""
    return _pool.cpu_seconds


def _pixel_part(ds):
    """A dataset with only what decoding needs: file meta (transfer syntax), groups 0028 and 7FE0."""
    from pydicom.dataset import Dataset, FileMetaDataset

    part = Dataset()
    for tag in list(ds.keys()):  # tags only: the other elements are never converted from their raw bytes
        if tag.group in (0x0028, 0x7FE0):
            part.add(ds[tag])
    part.file_meta = FileMetaDataset()
    part.file_meta.TransferSyntaxUID = ds.file_meta.TransferSyntaxUID
    return part


def _frame_bytes(ds) -> int:
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    return int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0) * spp * max(1, bits // 8)


#: exception types the child reports that are re-raised as themselves (``engine.io.dicom._decode`` sorts them)
_BUILTIN = {c.__name__: c for c in (RuntimeError, NotImplementedError, ValueError, EOFError, OSError, KeyError,
                                    AttributeError, TypeError, IndexError)}


def pixel_array(ds, name: str, *, should_stop: StopFn | None = None) -> np.ndarray:
    """``ds.pixel_array``, decoded by a child process, one frame at a time, each within :func:`frame_seconds`.

    ds: a full dataset (pixel data read); name: the file as the user sees it. Returns what pydicom returns:
    (rows, cols[, 3]) for one frame, (frames, rows, cols[, 3]) for several. A decoder error is re-raised as
    its builtin type (RuntimeError, ValueError, ...; others as RuntimeError naming the type); an overrun,
    a crash of the decoder or its memory limit is an :class:`InputError` naming ``name``. Falls back to
    ``ds.pixel_array`` in process when no child can be started.
    """
    job = submit(ds, name)
    out = job.result(should_stop)
    return ds.pixel_array if job.fallback else out


def probe(ds, name: str) -> None:
    """Decode every frame of ``ds`` in the child, within the limits of :func:`pixel_array`, and keep none: for a
    reader that decodes in process afterwards (highdicom, one DICOM-SEG segment at a time), so that a stream
    that would hang it is refused first. Raises what :func:`pixel_array` raises; a no-op without a child."""
    submit(ds, name, keep=False).result()


def submit(ds, name: str, *, keep: bool = True) -> Job:
    """Send ``ds``'s pixel data to a decoder child now and return at once; :meth:`Job.result` collects the frames.
    A reader of a series submits slice z+1 before collecting slice z, so that parsing the next file and decoding
    overlap (two children then alternate). ``job.fallback`` is True when no child could be started: the caller
    decodes in process."""
    return Job(ds, name, keep)


class Job:
    """One request to a decoder child: sent on creation, collected by :meth:`result`, or :meth:`abandon`-ed (the
    child, whose state is then unknown, is killed). Not thread-safe: one thread submits and collects."""

    def __init__(self, ds, name: str, keep: bool):
        self.name, self.keep = name, keep
        self.frames = int(ds.get("NumberOfFrames", 1) or 1)
        self.limit = frame_seconds(_frame_bytes(ds))
        self.ts_name = _ts_name(ds)
        self.fallback = False
        self.child = _pool.take()
        if self.child is None:
            self.fallback = True
            return
        why = self.child.wait_ready()
        if why is not None:
            self.child.kill()
            self.child = None
            _pool._fail(why)
            self.fallback = True
            return
        try:
            self.child.send(("decode", _pixel_part(ds), _memory_allowance(_frame_bytes(ds)), keep))
        except BaseException:
            self.abandon()
            raise

    def abandon(self) -> None:
        """Give up on the request (an error elsewhere, Cancel): its child is killed, a fresh one serves the next."""
        if self.child is not None:
            self.child.kill()
            self.child = None

    def result(self, should_stop: StopFn | None = None) -> np.ndarray | None:
        """The frames as pydicom returns them ((rows, cols[, 3]) for one frame, else (frames, ...)); None when
        ``keep`` is False or for a fallback job. Raises as :func:`pixel_array` describes."""
        if self.fallback:
            return None
        child, name, frames, ts = self.child, self.name, self.frames, self.ts_name
        if child is None:
            raise RuntimeError("the decoder job was already collected or abandoned")
        done = False
        got = 0
        try:
            out = None
            for i in range(frames + 1):
                msg, used = _wait(child, self.limit)
                if msg is None:
                    _pool.cpu_seconds += used
                    raise InputError(f"{name}: decoding frame {i + 1} of {frames} took longer than {self.limit:.1f} s; "
                                     f"the {ts} data is corrupt or crafted (decoder stopped)")
                if msg[0] == "eof":
                    raise InputError(f"{name}: the {ts} decoder crashed on this pixel data (corrupt?)")
                _pool.cpu_seconds += max(0.0, msg[-1] - child.cpu)
                child.cpu = msg[-1]
                if msg[0] == "error":
                    kind, text = msg[1], msg[2]
                    done = True  # the child finished this request; it can serve the next
                    if kind == "MemoryError":
                        raise InputError(f"{name}: decoding the {ts} pixel data needs more memory than its header "
                                         "declares (corrupt or crafted)")
                    raise _BUILTIN.get(kind, RuntimeError)(text if kind in _BUILTIN else f"{kind}: {text}")
                if msg[0] == "done":
                    done = True
                    break
                got += 1
                if got > frames:
                    raise InputError(f"{name}: the {ts} pixel data holds more frames than its header declares")
                if self.keep:
                    frame = msg[1]
                    if out is None:
                        out = np.empty((frames, *frame.shape), frame.dtype)
                    if frame.shape != out.shape[1:] or frame.dtype != out.dtype:
                        raise InputError(f"{name}: the {ts} frames differ in size or type (corrupt)")
                    out[i] = frame
                if should_stop is not None and should_stop():
                    raise Cancelled(f"decoding {name} stopped after {i + 1} of {frames} frames")
            if got != frames:
                raise InputError(f"{name}: the {ts} pixel data holds {got} of the {frames} frame(s) its header "
                                 "declares")
            return None if not self.keep else out[0] if frames == 1 else out
        finally:
            self.child = None
            if done:
                _pool.give(child)
            else:  # mid-request (overrun, crash, cancel, a bad frame): its state is unknown
                child.kill()


def _wait(child: _Child, limit: float):
    """(the child's next message, None) or (None, seconds it used) once it has used ``limit`` seconds of CPU
    (or waited WALL_FACTOR x limit of wall clock) without one."""
    t0, c0 = time.monotonic(), _cpu_seconds(child.proc.pid)
    wait = limit
    while True:
        msg = child.receive(wait)
        if msg is not None:
            return msg, 0.0
        wall = time.monotonic() - t0
        c1 = _cpu_seconds(child.proc.pid) if c0 is not None else None
        used = c1 - c0 if c1 is not None else wall
        if used >= limit or wall >= WALL_FACTOR * limit:
            return None, used
        wait = max(0.05, limit - used)


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") and "SC_CLK_TCK" in os.sysconf_names else 100


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid``, None when this platform cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15 of proc(5))
    except (OSError, IndexError, ValueError):
        pass
    try:
        import psutil

        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except Exception:  # noqa: BLE001 - no psutil, or the process is gone: wall clock instead
        return None


def _ts_name(ds) -> str:
    ts = ds.file_meta.get("TransferSyntaxUID")
    return getattr(ts, "name", str(ts))


def _memory_allowance(frame_bytes: int) -> int:
    """Bytes the child may map beyond its baseline for one request: the decoded frame a few times over
    (codec buffers, pydicom's conversions) plus a fixed margin."""
    return 4 * frame_bytes + (256 << 20)


# --- the child's side ---------------------------------------------------------------------------------------


def serve() -> None:
    """The decoder child's loop: requests on stdin, one message per frame then ("done", cpu) on stdout."""
    import warnings

    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr (discarded by the parent), not into the stream
    sys.stdout = sys.stderr
    proto_in = os.fdopen(os.dup(0), "rb")
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    from pydicom.pixels import iter_pixels  # noqa: F401 - imported before "ready": the first frame waits less

    for plugin in ("jpeg_ls", "openjpeg", "pylibjpeg"):  # likewise the decoders (their imports are not decoding time)
        try:
            __import__(plugin)
        except ImportError:
            pass

    def send(message):
        body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        proto_out.write(_HEADER.pack(len(body)) + body)
        proto_out.flush()

    send(("ready", time.process_time()))
    while True:
        head = proto_in.read(_HEADER.size)
        if len(head) < _HEADER.size:
            return  # the parent closed the pipe (or exited)
        request = pickle.loads(proto_in.read(_HEADER.unpack(head)[0]))
        _decode_request(request, send)


def _decode_request(request, send) -> None:
    from pydicom.pixels import iter_pixels

    _, part, allowance, keep = request
    try:
        with _address_space(allowance):
            frames = int(part.get("NumberOfFrames", 1) or 1)
            if frames == 1:
                arr = part.pixel_array  # exactly what the in-process path does
                if arr.ndim == (3 if int(part.get("SamplesPerPixel", 1) or 1) == 3 else 2):
                    arr = arr[None]
                for f in arr:
                    send(("frame", np.ascontiguousarray(f) if keep else None, time.process_time()))
            else:
                for f in iter_pixels(part):
                    send(("frame", np.ascontiguousarray(f) if keep else None, time.process_time()))
    except BaseException as e:  # noqa: BLE001 - every decoder failure (pyo3 panics too) is reported, not raised
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        send(("error", type(e).__name__, str(e)[:4000], time.process_time()))
        return
    send(("done", time.process_time()))


class _address_space:
    """Limit this process's address space to what it maps now plus ``extra`` bytes (POSIX; a no-op elsewhere)."""

    def __init__(self, extra: int):
        self.extra = extra
        self.saved = None

    def __enter__(self):
        try:
            import resource

            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            with open("/proc/self/statm") as f:
                mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            limit = mapped + self.extra
            if hard != resource.RLIM_INFINITY:
                limit = min(limit, hard)
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
            self.saved = (resource, soft, hard)
        except (ImportError, OSError, ValueError):
            self.saved = None  # not Linux: no limit (the parent's size gate still applies)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            resource, soft, hard = self.saved
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        return False


if __name__ == "__main__":
    serve()


__all__ = ["CHILD_FLAG", "ISOLATED", "child_command", "child_cpu_seconds", "frame_seconds", "isolated",
           "Job", "pixel_array", "probe", "serve", "submit", "warm"]
