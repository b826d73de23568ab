"""What the model should get for a coronal/sagittal slice: DSC of a tight box per slice on the MSD spleen CT.

    python bench/eval_plane_input.py [--step 4] [--planes coronal sagittal] [--out FILE]

Needs shared/data (raw/ivadomed-spleen: 164 x 166 x 26 voxels, 0.79 x 0.79 x 5 mm) and the bundled model.
For every ``--step``-th coronal and sagittal slice whose ground truth covers >= 100 pixels, the tight box
of the ground truth on that slice is given to the model in each of :data:`VARIANTS` (the slice as shown,
radiological, superior up, resampled to square pixels — ``engine.data.square.ModelFrame`` — optionally
flipped; or the shown slice with its anisotropic pixels as they are, 5 mm rows squashed 6.3x), and the
mask, mapped back onto the slice's pixels, is scored against the ground truth on the slice.

With ``--propagate``, also propagates a box from the middle slice of the spleen's extent along each
plane's normal (``engine.pipeline.propagate_in_plane``, early stop 2, as the app does) and scores the
3D mask against the ground truth (DSC, share of the ground truth's slices reached).

Writes bench/results/plane-input-<date>.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.base.atomic import write_text  # noqa: E402
from engine.base.sysinfo import describe, markdown  # noqa: E402
from engine.data.planes import planes_of  # noqa: E402
from engine.data.square import ModelFrame  # noqa: E402
from engine.inference.session import Session, SessionConfig  # noqa: E402
from engine.io.dispatch import open_image, read_labelmap  # noqa: E402
from engine.pipeline import propagate_in_plane  # noqa: E402

RAW = REPO.parent / "shared" / "data" / "raw" / "ivadomed-spleen"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


VARIANTS = {  # name -> ModelFrame flip (None: the screen slice with its anisotropic pixels, not resampled)
    "square (ModelFrame default)": (False, False),
    "square, rows flipped (superior down)": (True, False),
    "square, turned 180 deg": (True, True),
    "as shown, not resampled": None,
}


def run(session, plane, vol, key, gt, step) -> dict[str, list[float]]:
    frames = {v: ModelFrame.for_plane(plane, f) for v, f in VARIANTS.items() if f is not None}
    pred = session.predictor()
    out: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for k in range(0, plane.n_slices, step):
        truth = plane.slice(gt, k)
        if truth.sum() < 100:
            continue
        ys, xs = np.nonzero(truth)
        box = [xs.min(), ys.min(), xs.max(), ys.max()]
        for variant, frame in frames.items():
            pred.set_image(frame.pixels(vol, k), slice_index=k, window=key, plane=frame.cache_plane)
            out[variant].append(dice(frame.mask_to_screen(pred.predict(frame.box_to_model(box)).mask), truth))
        pred.set_image(plane.slice(vol, k, copy=True), slice_index=k, window=key, plane=plane.name + ":raw")
        out["as shown, not resampled"].append(dice(pred.predict(box).mask, truth))
    return out


def propagate(session, image, plane, vol, key, gt) -> str:
    areas = np.array([plane.slice(gt, k).sum() for k in range(plane.n_slices)])
    ks = np.flatnonzero(areas)
    start = int(ks[len(ks) // 2])
    truth = plane.slice(gt, start)
    ys, xs = np.nonzero(truth)
    mask = propagate_in_plane(session, image, plane, [xs.min(), ys.min(), xs.max(), ys.max()], 0,
                              plane.n_slices - 1, start=start, volume=(vol, key), early_stop=2)
    reached = np.array([plane.slice(mask, k).any() for k in ks])
    return (f"| {plane.name} | {start} | {ks[0]}..{ks[-1]} | {dice(mask, gt):.3f} | "
            f"{reached.mean():.2f} |")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--step", type=int, default=4)
    ap.add_argument("--planes", nargs="+", default=["coronal", "sagittal"], choices=["coronal", "sagittal"])
    ap.add_argument("--propagate", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    image = open_image(RAW / "sub-spleen2_ct.nii.gz")
    gt = read_labelmap(RAW / "sub-spleen2_ct_seg-manual.nii.gz", image).labels > 0
    vol, key = image.model_volume()
    session = Session(SessionConfig(threads=2))
    lines = ["| plane | slices | input | mean DSC | min DSC |", "|---|---|---|---|---|"]
    for name in args.planes:
        plane = planes_of(image.affine, image.shape)[name]
        res = run(session, plane, vol, key, gt, args.step)
        for variant, d in res.items():
            if d:
                lines.append(f"| {name} | {len(d)} | {variant} | {statistics.mean(d):.3f} | {min(d):.3f} |")
    if args.propagate:
        lines += ["", "| propagated along | start slice | ground-truth slices | 3D DSC | share of GT slices reached |",
                  "|---|---|---|---|---|"]
        lines += [propagate(session, image, planes_of(image.affine, image.shape)[name], vol, key, gt)
                  for name in args.planes]
    text = (f"# Model input for coronal/sagittal slices ({dt.date.today()})\n\n{markdown(describe())}\n"
            f"MSD spleen CT crop (164 x 166 x 26 voxels, 0.79 x 0.79 x 5 mm), model {session.entry.name}, window "
            f"{key}; every {args.step}th coronal/sagittal slice with >= 100 ground-truth pixels, tight box of "
            "the ground truth on that slice, DSC on the slice's pixels (see bench/eval_plane_input.py).\n\n"
            + "\n".join(lines) + "\n")
    print(text)
    write_text(args.out or REPO / "bench" / "results" / f"plane-input-{dt.date.today()}.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
