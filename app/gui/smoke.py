"""``boxseg app --smoke-test PATH``: the whole app, end to end, with real Qt mouse events.

Opens PATH in the main window, drags a box over ``sliceView`` (around the brightest blob of the
slice shown, or ``--box``) in 10 mouse-move steps, waits for the committed mask, propagates it
if PATH is a volume, saves a label map into a temporary folder and reads it back, then prints one
JSON line: ``open_ms`` (open until the image is shown), ``first_mask_ms`` (press until the first
mask is drawn), ``live_updates`` (masks drawn during the drag), ``mask_pixels`` (of the committed
mask on its slice), ``propagate_s`` (null for 2D), ``saved`` (the label map reloaded equal), ``layout`` (the
views shown: ``--layout 1x3`` shows the three linked planes, the box is then dragged in the axial view).
Exit 0, or 1 with the reason on stderr. Autosaves and the embedding cache's disk tier go to a temporary
folder, never the user's.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QCoreApplication, QEventLoop, QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.gui.launch import wait_open
from app.gui.main_window import MainWindow
from engine.inference.imgproc import label_components
from engine.inference.transforms import Geometry, validate_box
from engine.io.dispatch import read_labelmap


class SmokeError(Exception):
    pass


def _blur5(g: np.ndarray) -> np.ndarray:
    """5x5 Gaussian blur of a uint8 (H,W) slice: binomial [1 4 6 4 1]/16 (what OpenCV uses for a
    5x5 kernel with sigma 0), mirrored borders; float32 (H,W)."""
    k = np.array([1, 4, 6, 4, 1], np.float32) / 16
    h, w = g.shape
    p = np.pad(g.astype(np.float32), 2, mode="reflect" if min(h, w) > 2 else "edge")
    rows = sum(k[i] * p[i:i + h] for i in range(5))
    return sum(k[i] * rows[:, i:i + w] for i in range(5))


def brightest_blob_box(slice_u8: np.ndarray, pad: int = 4) -> tuple[int, int, int, int]:
    """A box (x0, y0, x1, y1) around the largest bright connected blob of a uint8 slice."""
    g = slice_u8 if slice_u8.ndim == 2 else slice_u8.mean(axis=2).astype(np.uint8)
    h, w = g.shape
    blur = np.rint(_blur5(g))
    thr = max(float(np.percentile(blur, 95)), 1.0)
    lab, n = label_components(blur >= thr, connectivity=8)
    ys, xs = np.nonzero(lab)
    ids = lab[ys, xs]
    area = np.bincount(ids, minlength=n + 1)
    x0, y0 = np.full(n + 1, w), np.full(n + 1, h)
    x1, y1 = np.full(n + 1, -1), np.full(n + 1, -1)
    np.minimum.at(x0, ids, xs)
    np.minimum.at(y0, ids, ys)
    np.maximum.at(x1, ids, xs)
    np.maximum.at(y1, ids, ys)
    best = None
    for i in range(1, n + 1):
        bw, bh = x1[i] - x0[i] + 1, y1[i] - y0[i] + 1
        if area[i] < 12 or (bw >= w - 2 and bh >= h - 2):
            continue
        if best is None or area[i] > area[best]:
            best = i
    if best is None:
        return w // 4, h // 4, 3 * w // 4, 3 * h // 4
    return (max(0, int(x0[best]) - pad), max(0, int(y0[best]) - pad), min(w - 1, int(x1[best]) + pad),
            min(h - 1, int(y1[best]) + pad))


def _wait(cond, timeout: float, what: str) -> None:
    t_end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > t_end:
            raise SmokeError(f"timed out after {timeout:.0f} s waiting for {what}")
        QCoreApplication.processEvents(QEventLoop.AllEvents, 20)
        time.sleep(0.002)


def _pump(ms: float) -> None:
    _wait(lambda t=time.monotonic() + ms / 1000: time.monotonic() >= t, ms / 1000 + 5, "events")


def box_to_viewport(view, box):
    """Voxel box (x0,y0,x1,y1) -> the two viewport points (QPoint) of its corners; for a view of a
    reformatted plane the box is in its screen pixels (col0, row0, col1, row1), as its prompts are."""
    if getattr(view, "reformatted", False):
        (c0, r0), (c1, r1) = (box[0] + 0.5, box[1] + 0.5), (box[2] + 0.5, box[3] + 0.5)
    else:
        c0, r0 = view.index_to_screen(box[0], box[1])
        c1, r1 = view.index_to_screen(box[2], box[3])
    pts = []
    for c, r in ((min(c0, c1) - 0.4, min(r0, r1) - 0.4), (max(c0, c1) + 0.4, max(r0, r1) + 0.4)):
        pts.append(view.mapFromScene(view.image_item.mapToScene(QPointF(c, r))))
    return pts


def drag(view, p0, p1, steps: int = 10, step_ms: float = 60.0) -> None:
    """Press at p0, move to p1 in ``steps`` mouse moves (events processed between), release."""
    vp = view.viewport()
    QTest.mousePress(vp, Qt.LeftButton, Qt.NoModifier, p0)
    for i in range(1, steps + 1):
        t = i / steps
        p = QPoint(round(p0.x() + (p1.x() - p0.x()) * t), round(p0.y() + (p1.y() - p0.y()) * t))
        QTest.mouseMove(vp, p)
        _pump(step_ms)
    QTest.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, p1)


def run_smoke_test(path: str, box=None, series: str | None = None, out=sys.stdout, layout: str | None = None) -> int:
    try:
        result = _smoke(path, box, series, layout)
    except Exception as e:  # noqa: BLE001 - any failure is a non-zero exit with the reason
        print(f"boxseg: smoke test failed: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result), file=out, flush=True)
    return 0


def _smoke(path: str, box, series, layout: str | None = None) -> dict:
    if not os.environ.get("QT_QPA_PLATFORM") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    tmp = tempfile.TemporaryDirectory(prefix="boxseg-smoke-")
    os.environ["BOXSEG_AUTOSAVE_DIR"] = str(Path(tmp.name) / "autosave")
    os.environ["BOXSEG_CACHE_DIR"] = str(Path(tmp.name) / "embeddings")  # the disk tier too
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "boxseg"])  # noqa: F841
    win = MainWindow()
    win.views.set_layout(layout or "single", persist=False)  # the user's own choice is not changed
    win.resize(1100 if (layout or "single") == "single" else 1500, 800)
    win.show()
    c = win.c
    try:
        shown = {}
        c.imageOpened.connect(lambda: shown.setdefault("t", time.perf_counter()))
        t0 = time.perf_counter()
        wait_open(win, win.open_path(path, series), timeout=600)
        open_ms = (shown.get("t", time.perf_counter()) - t0) * 1000
        img, z = c.image, c.z
        # the single view, or the linked view of the stored slices (axial for an axial CT), where the box is in voxels
        view = next((v for v in win.views.visible_views() if not v.reformatted), win.view)
        if box is None:
            box = brightest_blob_box(img.model_slice(z, c.model_window)[0])
        box = [int(round(v)) for v in box]
        validate_box(box, Geometry(img.shape[1], img.shape[2]))
        p0, p1 = box_to_viewport(view, box)
        first = {}
        c.liveMask.connect(lambda r: r is not None and first.setdefault("t", time.perf_counter()))
        committed = {}
        c.maskCommitted.connect(lambda v, ms: committed.update(value=v, t=time.perf_counter()))
        t_press = time.perf_counter()
        drag(view, p0, p1)
        live = c.live_updates
        _wait(lambda: "value" in committed, 120, "the committed mask")
        first_t = first.get("t", committed["t"])
        value = committed["value"]
        mask_pixels = int((c.doc.labels[z] == value).sum())
        if mask_pixels == 0:
            raise SmokeError(f"the model found nothing in box {box} on slice {z}")
        propagate_s = None
        if img.is_volume and not img.is_rgb:
            done = {}
            c.jobFinished.connect(lambda jid, ok, msg: done.update(ok=ok, msg=msg))
            t1 = time.perf_counter()
            win.panel.propagate.click()
            _wait(lambda: "ok" in done, 600, "propagation")
            if not done["ok"]:
                raise SmokeError(f"propagation failed: {done['msg']}")
            propagate_s = round(time.perf_counter() - t1, 3)
        out = Path(tmp.name) / ("seg.nii.gz" if img.is_volume or not img.dicom and img.source.suffix.lower()
                                in (".nii", ".gz") else "seg.png")
        done = {}
        c.jobFinished.connect(lambda jid, ok, msg: done.update(ok=ok, msg=msg))
        c.save(out)
        _wait(lambda: "ok" in done, 300, "saving")
        if not done["ok"]:
            raise SmokeError(f"saving failed: {done['msg']}")
        back = read_labelmap(out, img).labels
        # slice by slice: whole-volume temporaries here would be the smoke test's memory, not the app's
        ours = c.doc.labels
        saved = back.shape == ours.shape and any(back[k].any() for k in range(len(back))) and all(
            np.array_equal(back[k] > 0, ours[k] > 0) for k in range(len(back)))
        del back
        if not saved:
            raise SmokeError(f"{out.name}: the reloaded label map differs from the segmentation")
        return {"open_ms": round(open_ms, 1), "first_mask_ms": round((first_t - t_press) * 1000, 1),
                "live_updates": int(live), "mask_pixels": mask_pixels, "propagate_s": propagate_s,
                "saved": saved, "layout": win.views.shown}
    finally:
        win.c.shutdown(keep_autosave=False)
        win.close()
        tmp.cleanup()


__all__ = ["box_to_viewport", "brightest_blob_box", "drag", "run_smoke_test"]
