"""Render the linked views into docs/app-views-1x3.png and docs/app-views-2x2.png (real model, real mouse events).

    QT_QPA_PLATFORM=xcb xvfb-run -s "-screen 0 1600x1000x24" python docs/screenshots_views.py [--out docs]

On the bundled brain MR volume: the pons boxed in the axial view (slice 50), propagated through the volume,
the crosshair put on its centre (so that the coronal and sagittal views cut through it), then the 1x3 layout
and the 2x2 layout with the 3D view. The 3D view needs OpenGL: run it on a display (Xvfb with Mesa is
enough); offscreen, the 2x2 shot shows the three planes and the 3D view's "unavailable" sentence instead.
Autosaves and settings go to a temporary folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "docs"))
from screenshots import offscreen_session, pons_window  # noqa: E402  (docs/screenshots.py, beside this script)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "docs"))
    args = ap.parse_args(argv)
    offscreen_session()

    from PySide6.QtWidgets import QApplication

    from app.gui.smoke import _pump, _wait

    app = QApplication.instance() or QApplication(["boxseg"])  # noqa: F841
    out = Path(args.out)
    win, _ = pons_window(1560, 820, "1x3")
    c = win.c
    done = {}
    c.jobFinished.connect(lambda i, ok, m: done.update(ok=ok))
    win.a_propagate.trigger()
    _wait(lambda: "ok" in done, 600, "propagation")
    zs, ys, xs = np.nonzero(c.doc.labels == 1)
    c.set_cursor(int(np.median(zs)), int(np.median(ys)), int(np.median(xs)))
    _pump(500)
    _wait(lambda: c.measurements_current, 60, "the objects panel's figures")
    _pump(300)
    win.grab().save(str(out / "app-views-1x3.png"))
    win.set_layout("2x2")
    v3 = win.views.view3d
    _pump(500)
    if v3.available:
        _wait(lambda: not v3.pending, 120, "the 3D surfaces")
        _pump(500)
    win.grab().save(str(out / "app-views-2x2.png"))
    n = int((c.doc.labels == 1).sum())
    print(f"pons: {n} voxels on {len(set(zs.tolist()))} slices; 3D view "
          f"{'drawn' if v3.available else 'unavailable: ' + v3.reason}; wrote {out}/app-views-1x3.png, app-views-2x2.png")
    win.set_layout("single")
    win.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
