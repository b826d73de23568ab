"""JPEG-LS / JPEG 2000 pixel data decoded in a child process with a time limit (engine.io.decoder_process).

The corrupt stream the fuzzing campaign found (CharLS spends 7-9 s of CPU on it, holding the GIL) must give a
one-line InputError naming the file through the timeout path — from the engine, the CLI, a thread, a daemonic
process (Dask's workers) and the frozen app's launcher — and valid files must decode to exactly what pydicom
gives in process.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine.base.errors import Cancelled, InputError
from engine.io import decoder_process as dp
from engine.io.dicom import read_dicom, read_dicom_file
from tests.conftest import REPO
from tests.engine.io import crafted

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("jpeg_ls")

SLOW = REPO / "tests" / "data" / "fuzz" / "dicom" / "fixed_slow_jpegls_charls.bin"
#: the CPU limit (s) of its 100x100 RGB frame, as the error message writes it
SLOW_LIMIT = dp.frame_seconds(100 * 100 * 3)
SLOW_TEXT = f"took longer than {SLOW_LIMIT:.1f} s"
TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
JLS = TEST_FILES / "MR_small_jpeg_ls_lossless.dcm"
#: pydicom's JPEG-LS and JPEG 2000 test files (grey, RGB, near-lossless, 8 and 16 bit)
VALID = ["MR_small_jpeg_ls_lossless.dcm", "JPEGLSNearLossless_16.dcm", "SC_rgb_jls_lossy_line.dcm",
         "MR_small_jp2klossless.dcm", "693_J2KI.dcm", "GDCMJ2K_TextGBR.dcm"]


@pytest.fixture(autouse=True)
def _pool_stays_isolating():
    yield
    assert not dp._pool.broken, "a test left the decoder pool in its in-process fallback"


def _in_process(path: Path) -> np.ndarray:
    """What the reader gives with every transfer syntax decoded in this process (the pre-isolation path)."""
    saved = dp._pool.broken
    dp._pool.broken = True
    try:
        return read_dicom_file(path).voxels
    finally:
        dp._pool.broken = saved


def _slow_copy(folder: Path) -> Path:
    return Path(shutil.copy(SLOW, folder / "scan.dcm"))


def _children(monkeypatch) -> list:
    """Every decoder child started from now on."""
    started = []
    init = dp._Child.__init__

    def spy(self):
        init(self)
        started.append(self)

    monkeypatch.setattr(dp._Child, "__init__", spy)
    return started


def _multiframe_jls(path: Path, frames: int = 4) -> tuple[Path, np.ndarray]:
    from pydicom.uid import JPEGLSLossless

    ds = crafted._ct_dataset(rows=24, cols=20)
    arr = (np.arange(frames * 24 * 20, dtype=np.int16).reshape(frames, 24, 20) * 7 % 3000) - 1000
    ds.NumberOfFrames = frames
    ds.PixelData = arr.tobytes()
    del ds.ImagePositionPatient  # frames kept in stored order
    ds.compress(JPEGLSLossless, arr)
    ds.save_as(path, enforce_file_format=True)
    return path, arr


def test_the_corrupt_jpegls_stream_stops_at_the_time_limit(tmp_path):
    """The fuzzing campaign's hang: stopped after FRAME_SECONDS, a one-line InputError naming the file, and the
    next file decodes in a fresh child."""
    cpu0 = dp.child_cpu_seconds()
    t0 = time.monotonic()
    with pytest.raises(InputError) as e:
        read_dicom_file(_slow_copy(tmp_path))
    wall = time.monotonic() - t0
    msg = str(e.value)
    assert msg.startswith(f"scan.dcm: decoding frame 1 of 1 {SLOW_TEXT}") and "\n" not in msg, msg
    # the timeout path: the child was stopped once it had used the limit in CPU time
    assert SLOW_LIMIT <= dp.child_cpu_seconds() - cpu0 < SLOW_LIMIT + 1
    assert wall < 30, wall  # generous bound (stopped after 1 s of CPU; in process it took 7-9 s of CPU)
    assert np.array_equal(read_dicom_file(JLS).voxels, _in_process(JLS))


def test_a_dicom_seg_with_the_corrupt_stream_is_refused_before_highdicom_decodes_it(tmp_path):
    """highdicom decodes a SEG's frames in process: its JPEG-LS frames are tried in the child first."""
    from pydicom.dataset import Dataset

    from engine.io.dicomseg import read_dicom_seg
    from engine.io.formats import SEG_SOP_CLASS

    ds = pydicom.dcmread(SLOW, force=True)
    ds.SOPClassUID = SEG_SOP_CLASS
    ds.Modality = "SEG"
    ds.SegmentSequence = [Dataset()]
    ds.SegmentSequence[0].SegmentNumber = 1
    ds.save_as(tmp_path / "seg.dcm")
    cpu0 = dp.child_cpu_seconds()
    with pytest.raises(InputError, match=rf"^seg\.dcm: decoding frame 1 of 1 {SLOW_TEXT}"):
        read_dicom_seg(tmp_path / "seg.dcm")
    assert dp.child_cpu_seconds() - cpu0 >= SLOW_LIMIT


def test_probe_decodes_every_frame_and_keeps_none(tmp_path):
    path, _ = _multiframe_jls(tmp_path / "mf.dcm", frames=3)
    ds = pydicom.dcmread(path)
    assert dp.probe(ds, "mf.dcm") is None
    ds.NumberOfFrames = 4  # one frame more than the data holds
    with pytest.raises((InputError, ValueError)):
        dp.probe(ds, "mf.dcm")


@pytest.mark.parametrize("name", VALID)
def test_valid_files_decode_as_in_process(name):
    out = read_dicom_file(TEST_FILES / name).voxels
    ref = _in_process(TEST_FILES / name)
    assert out.dtype == ref.dtype and np.array_equal(out, ref)


def _jls_series(folder: Path, n: int = 3) -> Path:
    from pydicom.uid import JPEGLSLossless

    folder.mkdir()
    for z in range(n):
        ds = crafted._ct_dataset(rows=16, cols=16, z=2.0 * z, inst=z + 1,
                                 pixels=np.full((16, 16), 100 * z, np.int16))
        ds.compress(JPEGLSLossless)
        ds.save_as(folder / f"{z}.dcm", enforce_file_format=True)
    return folder


def test_files_and_series_reuse_the_children(tmp_path, monkeypatch):
    """A series keeps two children busy (the next slice is sent while one decodes); later reads start none."""
    dp._pool.close()
    started = _children(monkeypatch)
    path, arr = _multiframe_jls(tmp_path / "mf.dcm")
    img = read_dicom_file(path)
    assert np.array_equal(img.voxels, arr - 1024)  # RescaleIntercept -1024
    series = _jls_series(tmp_path / "series", 4)
    for _ in range(2):
        vol = read_dicom(series).voxels
        assert vol.shape == (4, 16, 16) and [int(v) for v in vol[:, 0, 0]] == [-1024, -924, -824, -724]
    assert np.array_equal(read_dicom_file(path).voxels, arr - 1024)
    assert len(started) == 2 and len(dp._pool.idle) == 2


def test_a_corrupt_slice_in_a_series_names_it_and_leaves_the_pool_working(tmp_path):
    series = _jls_series(tmp_path / "series", 4)
    data = bytearray((series / "1.dcm").read_bytes())
    data[-60:] = b"\xff" * 60
    (series / "1.dcm").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"^1\.dcm: "):
        read_dicom(series)
    (series / "1.dcm").unlink()
    assert read_dicom(series).voxels.shape == (3, 16, 16)


def test_the_limit_is_cpu_time_not_a_busy_machines_wall_clock(monkeypatch):
    """A child that gets no CPU for longer than the limit (here: stopped, as on an overloaded machine) is waited
    for; the result is the right one."""
    dp._pool.close()
    dp.warm()
    child = dp._pool.idle[0]
    assert child.wait_ready() is None
    os.kill(child.proc.pid, signal.SIGSTOP)
    resume = threading.Timer(1.5 * dp.FRAME_SECONDS, os.kill, (child.proc.pid, signal.SIGCONT))
    resume.start()
    t0 = time.monotonic()
    out = read_dicom_file(JLS).voxels
    assert time.monotonic() - t0 > 1.5 * dp.FRAME_SECONDS
    resume.join()
    assert np.array_equal(out, _in_process(JLS))


def test_a_blocked_child_is_stopped_by_the_wall_clock_backstop(tmp_path, monkeypatch):
    monkeypatch.setattr(dp, "WALL_FACTOR", 1.5)
    dp._pool.close()
    dp.warm()
    child = dp._pool.idle[0]
    assert child.wait_ready() is None
    os.kill(child.proc.pid, signal.SIGSTOP)  # never resumed: killed by the backstop
    t0 = time.monotonic()
    with pytest.raises(InputError, match="took longer than"):
        read_dicom_file(JLS)
    assert 1.5 * dp.FRAME_SECONDS <= time.monotonic() - t0 < 30
    assert child.proc.poll() is not None


def test_cancel_stops_between_frames(tmp_path):
    path, _ = _multiframe_jls(tmp_path / "mf.dcm", frames=5)
    with pytest.raises(Cancelled, match=r"^decoding mf\.dcm stopped after 1 of 5 frames$"):
        read_dicom_file(path, should_stop=lambda: True)
    assert np.array_equal(read_dicom_file(JLS).voxels, _in_process(JLS))  # the next request: a fresh child


def test_a_decoder_error_reads_as_in_process(tmp_path):
    """A corrupt stream that fails fast: the same one-line message with and without the child."""
    data = bytearray(JLS.read_bytes())
    data[-200:] = b"\xff" * 200  # the end of the JPEG-LS stream
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError) as out:
        read_dicom_file(bad)
    with pytest.raises(InputError) as ref:
        _in_process(bad)
    assert str(out.value) == str(ref.value) and str(out.value).startswith("bad.dcm: "), (out.value, ref.value)


def test_a_decoder_that_dies_is_an_input_error_and_is_replaced(tmp_path, monkeypatch):
    dp._pool.close()
    started = _children(monkeypatch)
    dp.warm()
    assert dp._pool.idle[0].wait_ready() is None
    killer = threading.Timer(0.3, lambda: started[0].proc.kill())  # while it decodes (1 s of CPU before the limit)
    killer.start()
    with pytest.raises(InputError, match=r"^scan\.dcm: the JPEG-LS .* decoder crashed"):
        read_dicom_file(_slow_copy(tmp_path))
    killer.join()
    assert np.array_equal(read_dicom_file(JLS).voxels, _in_process(JLS))
    assert len(started) == 2


def test_a_child_killed_while_idle_is_replaced(monkeypatch):
    dp._pool.close()
    dp.warm()
    idle = dp._pool.idle[0]
    assert idle.wait_ready() is None
    idle.proc.kill()
    idle.proc.wait(10)
    started = _children(monkeypatch)
    assert np.array_equal(read_dicom_file(JLS).voxels, _in_process(JLS))
    assert len(started) == 1 and started[0] is not idle


def test_threads_decode_at_once(tmp_path):
    """The app decodes on its I/O worker thread while, e.g., a batch reads on another."""
    results, errors = {}, []

    def read(name):
        try:
            results[name] = read_dicom_file(TEST_FILES / name).voxels
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=read, args=(n,)) for n in VALID[:3]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for n in VALID[:3]:
        assert np.array_equal(results[n], _in_process(TEST_FILES / n))


def _read_in_daemon(paths: list[str], q) -> None:
    for path in paths:
        try:
            v = read_dicom_file(Path(path)).voxels
            q.put(("ok", int(v.astype(np.int64).sum()), multiprocessing.current_process().daemon))
        except Exception as e:  # noqa: BLE001 - the parent asserts on it
            q.put(("error", f"{type(e).__name__}: {e}", multiprocessing.current_process().daemon))


def test_a_daemonic_process_decodes_with_its_own_child(tmp_path):
    """Dask's worker processes are daemonic: they cannot start multiprocessing children, a subprocess they can."""
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_read_in_daemon, args=([str(JLS), str(_slow_copy(tmp_path))], q), daemon=True)
    p.start()
    valid, slow = q.get(timeout=120), q.get(timeout=120)
    p.join(30)
    assert valid == ("ok", int(_in_process(JLS).astype(np.int64).sum()), True), valid
    assert slow[0] == "error" and "took longer than" in slow[1] and slow[2] is True, slow


def test_the_frozen_app_starts_its_own_executable_as_the_decoder(tmp_path, monkeypatch):
    """In the PyInstaller bundle sys.executable is BoxSeg itself: the launcher serves the child on CHILD_FLAG."""
    exe = tmp_path / "BoxSeg"
    exe.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} {REPO / 'packaging' / 'boxseg_launcher.py'} "
                   '"$@"\n')
    exe.chmod(0o755)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(exe))
    monkeypatch.setattr(dp, "_pool", dp._Pool())
    started = _children(monkeypatch)
    try:
        out = read_dicom_file(JLS).voxels
        assert dp.child_command() == [str(exe), dp.CHILD_FLAG]
        cmdline = Path(f"/proc/{started[0].proc.pid}/cmdline").read_bytes().split(b"\0")
        assert dp.CHILD_FLAG.encode() in cmdline and b"boxseg_launcher.py" in b" ".join(cmdline)
    finally:
        dp._pool.close()
    monkeypatch.undo()
    assert np.array_equal(out, _in_process(JLS))


def test_no_child_falls_back_to_decoding_in_process(monkeypatch, caplog):
    monkeypatch.setattr(dp, "_pool", dp._Pool())
    monkeypatch.setattr(dp, "child_command", lambda: [str(REPO / "no-such-executable")])
    with caplog.at_level("WARNING", logger="engine.io.decoder_process"):
        out = read_dicom_file(JLS).voxels
    assert "cannot start the pixel decoder process" in caplog.text
    assert not dp.isolated("1.2.840.10008.1.2.4.80")
    monkeypatch.undo()
    assert np.array_equal(out, _in_process(JLS))


def test_the_cli_refuses_the_corrupt_stream_in_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "app.cli.main", "info", str(_slow_copy(tmp_path))], capture_output=True,
                       text=True, cwd=REPO, env=env, timeout=120)
    wall = time.monotonic() - t0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert f"scan.dcm: decoding frame 1 of 1 {SLOW_TEXT}" in lines[0]
    assert wall < 30, wall
