"""The README's demo as numbers: box around the pons on axial slice 50 of the bundled MNI sample, propagated over
slices 47..53 from that slice's mask, pixels per slice for each model (the engine call the app makes,
``engine.pipeline.propagate_object`` with ``start_mask``). ``tests/app/gui/test_view.py`` holds the shipped model to
400-1000 px per slice through the real GUI; this prints the counts side by side for model folders.

    python bench/sample_pons.py --models assets/models:litemedsam-fp32 assets/models:litemedsam-int8 OTHER:litemedsam-int8

Data: assets/sample/mni_icbm152_t1_2009a.nii.gz (bundled; outside shared/data, used by no quantization choice).
Writes bench/results/sample-pons-<date>.md with engine.base.sysinfo. Seconds; not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SAMPLE = REPO / "assets" / "sample" / "mni_icbm152_t1_2009a.nii.gz"
PONS = (78, 90, 118, 124)  # x0, y0, x1, y1 on the stored axial slice (assets/sample/README.md)
PONS_Z, HALF = 50, 3


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["assets/models:litemedsam-fp32", "assets/models:litemedsam-int8"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()

    from engine.base.sysinfo import describe, markdown
    from engine.inference.propagate import Box3D
    from engine.inference.session import Session, SessionConfig
    from engine.io.dispatch import open_image
    from engine.pipeline import propagate_object
    from quantization.validate import candidate_entries

    img = open_image(SAMPLE)
    vol, key = img.model_volume(None)
    zs = list(range(PONS_Z - HALF, PONS_Z + HALF + 1))
    lines = [f"# The sample's pons, propagated ({dt.datetime.now():%Y-%m-%d %H:%M})\n\n", markdown(describe()),
             f"- box {list(PONS)} on slice {PONS_Z} of {SAMPLE.name}, propagated over slices {zs[0]}..{zs[-1]}; "
             f"OpenVINO inference precision f32, {args.threads} threads; command: `python bench/sample_pons.py "
             f"--models {' '.join(args.models)}`\n\n",
             "| model | " + " | ".join(str(z) for z in zs) + " |\n|---|" + "---:|" * len(zs) + "\n"]
    for e in candidate_entries(args.models):
        s = Session(SessionConfig(threads=args.threads, precision="f32"), entry=e)
        pred = s.predictor()
        pred.set_image(vol[PONS_Z])
        start = pred.predict(np.asarray(PONS, float)).mask
        box = Box3D(PONS[0], PONS[1], zs[0], PONS[2], PONS[3], zs[-1])
        mask = propagate_object(s, img, box, volume=(vol, key), start=PONS_Z, start_mask=start)
        counts = mask.reshape(mask.shape[0], -1).sum(axis=1)
        lines.append(f"| {e.root.name}/{e.name} ({e.model_id[:12]}) | " + " | ".join(str(int(counts[z])) for z in zs) + " |\n")
    text = "".join(lines)
    print(text)
    out = args.out or REPO / "bench" / "results" / f"sample-pons-{dt.date.today()}.md"
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
