"""How well do the confidence strip's per-slice flags find the bad slices of a propagation?

    python bench/eval_confidence.py [--threads 2] [--data shared/data/eval] [--out bench/results]

On every 3D case of the eval set (with ground truth), each box is propagated as the desktop app does
it: drawn on the box's middle slice, "until the object ends" (whole volume, early stop 2,
``engine.pipeline.propagate_object``), collecting the model's IoU estimate of every kept slice. Each
slice of the predicted object's span gets its figures (``engine.inference.confidence``) and its true
DSC against the ground truth of that box's label. A slice is *bad* when its DSC < 0.5 (a predicted
slice where the object is absent has DSC 0). For a grid of thresholds the script reports precision
and recall of "flagged" against "bad", per criterion and combined, writes the per-slice figures
(CSV) and a markdown report with engine.base.sysinfo. The model runs once; the grid is evaluated on
the recorded figures. Slices of the object the propagation never reached (outside the predicted span)
cannot be flagged; the report counts them apart.

Exits 0 with "skipped: ..." when the eval data (``../shared/data/eval`` of the checkout) is absent.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import itertools
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.base.sysinfo import describe, markdown  # noqa: E402
from engine.data.geometry import raster_affine  # noqa: E402
from engine.data.image import Image  # noqa: E402
from engine.inference.confidence import Thresholds, count_blobs, flag_slices  # noqa: E402
from engine.inference.propagate import Box3D  # noqa: E402
from engine.inference.session import Session, SessionConfig  # noqa: E402
from engine.io.challenge_npz import load_case  # noqa: E402
from engine.pipeline import propagate_object  # noqa: E402

BAD_DSC = 0.5
IOU_GRID = (0.0, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)
AREA_GRID = (0.3, 0.4, 0.5, 0.6, 0.8, 2.0)   # 2.0: the criterion off (changes are 0..1)
BLOB_GRID = (1, 2, 10**9)                    # 10**9: off


def default_data() -> Path:
    for base in (REPO.parent / "shared" / "data" / "eval", REPO / "shared" / "data" / "eval"):
        if base.is_dir():
            return base
    return REPO.parent / "shared" / "data" / "eval"


def case_slices(session: Session, path: Path) -> list[dict]:
    """Per-slice figures and true DSC of every object of one 3D case."""
    case = load_case(path, with_gt=True)
    vol = case.imgs
    img = Image(voxels=vol, affine=raster_affine(), modality=case.modality, units="u8")
    rows = []
    for k, b in enumerate(case.boxes, start=1):
        b3 = Box3D.from_array(b)
        start = b3.z_mid
        box = Box3D(b3.x_min, b3.y_min, 0, b3.x_max, b3.y_max, vol.shape[0] - 1)
        ious: dict = {}
        mask = propagate_object(session, img, box, volume=(vol, "u8"), label_value=k, early_stop=2, start=start,
                                ious=ious)
        gt = case.gts == k
        areas = mask.reshape(mask.shape[0], -1).sum(axis=1)
        zs = np.flatnonzero(areas)
        gt_z = set(np.flatnonzero(gt.reshape(gt.shape[0], -1).any(axis=1)).tolist())
        span = range(int(zs[0]), int(zs[-1]) + 1) if len(zs) else range(0)
        for z in span:
            ref = areas[z - 1] if z > start else areas[z + 1] if z < start else 0
            big = max(areas[z], ref)
            change = float("nan") if z == start else (abs(int(areas[z]) - int(ref)) / big if big else 0.0)
            inter = int(np.count_nonzero(mask[z] & gt[z]))
            tot = int(areas[z]) + int(np.count_nonzero(gt[z]))
            rows.append({"case": case.name, "label": k, "z": z, "start": int(z == start),
                         "iou": ious.get(z, float("nan")), "area": int(areas[z]), "area_change": change,
                         "blobs": count_blobs(mask[z]), "dsc": 2 * inter / tot if tot else 1.0,
                         "gt_slices_outside_span": 0})
        missed = len([z for z in gt_z if z not in span])
        if rows:
            rows[-1]["gt_slices_outside_span"] = missed
    return rows


def score(rows: list[dict], t: Thresholds) -> tuple[float, float, int, int]:
    """(precision, recall, flagged, bad) of the flags under ``t``; the start slice (the user's) excluded."""
    r = [x for x in rows if not x["start"]]
    flags = flag_slices(np.array([x["iou"] for x in r], float), np.array([x["area_change"] for x in r], float),
                        np.array([x["blobs"] for x in r]), t) != 0
    bad = np.array([x["dsc"] < BAD_DSC for x in r])
    tp = int(np.count_nonzero(flags & bad))
    prec = tp / max(int(flags.sum()), 1)
    rec = tp / max(int(bad.sum()), 1)
    return prec, rec, int(flags.sum()), int(bad.sum())


def best_thresholds(rows: list[dict]) -> tuple[float, Thresholds]:
    """The grid's thresholds with the highest F1 on ``rows`` (ties: the first in grid order), and that F1."""
    best = (-1.0, Thresholds())
    for iou_min, area_jump, max_blobs in itertools.product(IOU_GRID, AREA_GRID, BLOB_GRID):
        t = Thresholds(iou_min=iou_min, area_jump=area_jump, max_blobs=max_blobs)
        p, r, _, _ = score(rows, t)
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        if f1 > best[0]:
            best = (f1, t)
    return best


def leave_one_case_out(rows: list[dict]) -> tuple[float, float, int, int, dict[tuple, int]]:
    """Held-out figures: for each case, thresholds chosen (best F1) on the other cases only, applied to it;
    flags pooled over all cases. Returns (precision, recall, flagged, bad, how often each choice was made)."""
    tp = nf = nb = 0
    chosen: dict[tuple, int] = {}
    for case in sorted({x["case"] for x in rows}):
        _, t = best_thresholds([x for x in rows if x["case"] != case])
        key = (t.iou_min, t.area_jump, t.max_blobs)
        chosen[key] = chosen.get(key, 0) + 1
        held = [x for x in rows if x["case"] == case]
        p, r, f, b = score(held, t)
        tp += round(p * f) if f else 0
        nf += f
        nb += b
    return tp / max(nf, 1), tp / max(nb, 1), nf, nb, chosen


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="folder of challenge cases (default ../shared/data/eval)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--from-csv", type=Path, default=None, help="re-score recorded per-slice figures (no model run)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.from_csv:
        with open(args.from_csv, newline="") as f:
            rows = [{k: (float(v) if k in ("iou", "area_change", "dsc") else v if k == "case" else int(v))
                     for k, v in r.items()} for r in csv.DictReader(f)]
        n_cases = len({r["case"] for r in rows})
    else:
        data = args.data or default_data()
        cases = sorted(data.glob("3DBox_*.npz")) if data.is_dir() else []
        if not cases:
            print(f"skipped: no 3D challenge cases in {data} (the shared eval data is not here)")
            return 0
        session = Session(SessionConfig(threads=args.threads, cache_bytes=1 << 30))
        rows = []
        for p in cases:
            t = time.perf_counter()
            rows += case_slices(session, p)
            session.cache.clear()
            print(f"{p.name}: {time.perf_counter() - t:.1f} s", file=sys.stderr)
        n_cases = len(cases)
    date = dt.date.today().isoformat()
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = args.out / f"confidence-{date}.csv"
    if not args.from_csv:
        with open(csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    grid = []
    for iou_min, area_jump, max_blobs in itertools.product(IOU_GRID, AREA_GRID, BLOB_GRID):
        p, r, nf, nb = score(rows, Thresholds(iou_min=iou_min, area_jump=area_jump, max_blobs=max_blobs))
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        grid.append((f1, p, r, nf, iou_min, area_jump, max_blobs))
    grid.sort(key=lambda g: -g[0])
    n_bad = score(rows, Thresholds())[3]
    n = len([x for x in rows if not x["start"]])
    missed = sum(int(x["gt_slices_outside_span"]) for x in rows)

    def fmt(v, off):
        return "off" if v == off else f"{v:g}"

    lines = [f"# Confidence flags against ground truth ({date})", "", markdown(describe()),
             f"{n_cases} 3D cases, {len({(x['case'], x['label']) for x in rows})} objects, {n} propagated slices "
             f"(start slices excluded), {n_bad} bad (DSC < {BAD_DSC}); {missed} ground-truth slices lay outside the "
             f"predicted spans (not flaggable). Model: default (INT8), {args.threads} threads, early stop 2, whole "
             f"volume from the box's middle slice. " + (f"Re-scored from {args.from_csv.name} (no model run)."
                                                           if args.from_csv else
                                                           f"{time.perf_counter() - t0:.0f} s."), "",
             "Single criteria:", "", "| criterion | threshold | flagged | precision | recall |", "|---|---:|---:|---:|---:|"]
    for name, make, values in (("IoU estimate <", lambda v: Thresholds(iou_min=v, area_jump=2.0, max_blobs=10**9),
                                IOU_GRID[1:]),
                               ("area change >", lambda v: Thresholds(iou_min=0.0, area_jump=v, max_blobs=10**9),
                                AREA_GRID[:-1]),
                               ("pieces >", lambda v: Thresholds(iou_min=0.0, area_jump=2.0, max_blobs=v),
                                BLOB_GRID[:-1])):
        for v in values:
            p, r, nf, _ = score(rows, make(v))
            lines.append(f"| {name} | {v:g} | {nf} | {p:.3f} | {r:.3f} |")
    lines += ["", "Combined (any flag), best 12 by F1:", "",
              "| IoU below | area change above | pieces above | flagged | precision | recall | F1 |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for f1, p, r, nf, iou_min, area_jump, max_blobs in grid[:12]:
        lines.append(f"| {fmt(iou_min, 0.0)} | {fmt(area_jump, 2.0)} | {fmt(max_blobs, 10**9)} | {nf} | {p:.3f} | "
                     f"{r:.3f} | {f1:.3f} |")
    p, r, nf, nb, chosen = leave_one_case_out(rows)
    lines += ["", "Held out (leave one case out: the thresholds of best F1 on the other cases, applied to the case "
                  "left out; flags pooled):", "",
              f"flagged {nf}, precision {p:.3f}, recall {r:.3f} of {nb} bad slices; choices made: " +
              "; ".join(f"IoU < {fmt(k[0], 0.0)}, area > {fmt(k[1], 2.0)}, pieces > {fmt(k[2], 10**9)} ({v}x)"
                        for k, v in sorted(chosen.items(), key=lambda kv: -kv[1]))]
    d = Thresholds()
    p, r, nf, _ = score(rows, d)
    lines += ["", f"Engine default (engine.inference.confidence.DEFAULT: IoU < {d.iou_min}, area change > "
                  f"{d.area_jump}, pieces > {d.max_blobs}): flagged {nf}, precision {p:.3f}, recall {r:.3f}.", ""]
    text = "\n".join(lines)
    (args.out / f"confidence-{date}.md").write_text(text + "\n")
    print(text)
    print(f"per-slice figures: {args.from_csv or csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
