"""The linked views (issue 15): scrolling each view with all masks drawn, and the first mask of a box per plane.

    python bench/bench_views.py [--slices 60] [--drags 3] [--out FILE]

A synthetic int16 CT-like volume of 512 x 512 x 300 voxels (0.7 x 0.7 x 5 mm, written as NIfTI to a
temporary folder) with three labelled ellipsoid "organs" is opened in the real main window (offscreen Qt),
in the 1x3 layout (axialView, coronalView, sagittalView). Measured, per view:

* **scroll**: slices per second while the view steps through ``--slices`` consecutive slices, each step
  one ``set_plane_slice`` and the events that redraw it (the image with its window, the three objects'
  masks and outlines, the crosshair in the other views); goal >= 30 slices/s;
* **first mask**: a box dragged with real mouse events (QTest) on a slice whose embedding is already cached
  (encoded first, as the background encoder does near the cursor): milliseconds from the press to the first
  live mask drawn, median of ``--drags`` boxes (goal: the sagittal and coronal views as fast as the axial one).

The reformatting itself is bench/bench_planes.py's. Writes bench/results/views-<date>.md with
engine.base.sysinfo. Takes a few minutes on 2 cores (the encoder runs once per plane and drag).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SHAPE = (300, 512, 512)  # (Z, Y, X)
MM_XYZ = (0.7, 0.7, 5.0)


def synthetic_ct(folder: Path) -> tuple[Path, np.ndarray]:
    """The CT (NIfTI) and its three-organ label map (uint8 (Z,Y,X))."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
    labels = np.zeros(SHAPE, np.uint8)
    vox = rng.normal(-50, 30, SHAPE).astype(np.int16)
    for value, (cz, cy, cx, rz, ry, rx, hu) in enumerate(
            [(150, 250, 180, 40, 90, 70, 60), (120, 220, 360, 30, 60, 50, 140), (200, 330, 256, 25, 40, 40, 250)], 1):
        inside = ((z - cz) / rz) ** 2 + ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1
        labels[inside] = value
        vox[inside] += hu
    path = folder / "ct512x300.nii.gz"
    nib.save(nib.Nifti1Image(np.transpose(vox, (2, 1, 0)), np.diag([*MM_XYZ, 1.0])), str(path))
    return path, labels


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slices", type=int, default=60)
    ap.add_argument("--drags", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    from app.gui.launch import wait_open
    from app.gui.main_window import MainWindow
    from app.gui.smoke import box_to_viewport, drag
    from engine.base.atomic import write_text
    from engine.base.sysinfo import describe, markdown
    from engine.data.labelmap import LabelMap

    tmp = tempfile.TemporaryDirectory(prefix="boxseg-bench-views-")
    os.environ["BOXSEG_AUTOSAVE_DIR"] = str(Path(tmp.name) / "autosave")
    path, labels = synthetic_ct(Path(tmp.name))
    app = QApplication.instance() or QApplication([])  # noqa: F841
    win = MainWindow()
    win.views.set_layout("1x3", persist=False)
    win.resize(1500, 800)
    win.show()
    c = win.c
    rows = []
    try:
        wait_open(win, win.open_path(path), timeout=600)
        c.doc.load_labelmap(LabelMap(labels, c.image.affine))

        def pump(until=None, timeout=120.0):
            t0 = time.perf_counter()
            while True:
                QCoreApplication.processEvents()
                if until is None or until() or time.perf_counter() - t0 > timeout:
                    return
                time.sleep(0.005)

        for name, v in win.views.views.items():
            n = v.n_slices()
            k0 = max(0, n // 2 - args.slices // 2)
            v.set_k(k0)
            pump()
            t0 = time.perf_counter()
            for k in range(k0 + 1, min(n, k0 + 1 + args.slices)):
                v.set_k(k)
                pump()
            steps = min(n, k0 + 1 + args.slices) - k0 - 1
            rate = steps / (time.perf_counter() - t0)
            firsts = []
            for i in range(args.drags):
                v.set_k(v.k + 3)
                plane = v.prompt_plane
                c.set_active_plane(plane)
                pump(lambda: c.plane_slice_ready(plane or c.stored_plane(), None) if plane else c.slice_ready(),
                     timeout=120)
                r, cc = v.screen_shape()
                if v.reformatted:
                    box = (int(cc * 0.3), int(r * 0.3), int(cc * 0.6), int(r * 0.6))
                else:
                    box = (150, 150, 300, 300)
                first = {}
                c.liveMask.connect(lambda res, f=first: res is not None and f.setdefault("t", time.perf_counter()))
                p0, p1 = box_to_viewport(v, box)
                t_press = time.perf_counter()
                drag(v, p0, p1, steps=8, step_ms=40)
                pump(lambda: not c.pending_commits, timeout=120)
                if "t" in first:
                    firsts.append((first["t"] - t_press) * 1000)
                c.doc.undo_stack.undo()
                pump()
            rows.append((name, v.reformatted, n, rate, statistics.median(firsts) if firsts else float("nan"),
                         len(firsts)))
            print(f"{name}: {rate:.1f} slices/s, first mask {rows[-1][4]:.0f} ms", flush=True)
    finally:
        c.shutdown(keep_autosave=False)
        win.close()
        tmp.cleanup()
    info = describe()
    lines = ["# Linked views: scrolling and first mask per plane (bench/bench_views.py)", "",
             f"{dt.date.today()}; synthetic int16 CT 512 x 512 x 300 (0.7 x 0.7 x 5 mm) with 3 labelled objects, "
             "main window offscreen in the 1x3 layout.", "",
             "| view | reformatted | slices | scroll (slices/s, all masks drawn) | first mask after press (ms, median) | drags |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {n} | {'yes' if ref else 'no (stored slices)'} | {k} | {rate:.1f} | {fm:.0f} | {d} |"
              for n, ref, k, rate, fm, d in rows]
    lines += ["", markdown(info), ""]
    out = args.out or REPO / "bench" / "results" / f"views-{dt.date.today()}.md"
    write_text(out, "\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
