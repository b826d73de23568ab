"""``boxseg eval`` and ``boxseg infer``: the CVPR 2024 challenge's cases, scored or segmented."""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

from app.cli.common import Progress, add_model_args, load_session
from engine.base.atomic import write_text
from engine.base.errors import BoxSegError, InputError
from engine.eval.challenge import evaluate_case
from engine.io.challenge_npz import load_case, write_segs
from engine.io.outputs import check_output
from engine.pipeline import segment_case


def _case_files(folder: Path, pattern: str, limit: int | None) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    files = sorted(folder.rglob(pattern))
    files = [f for f in files if f.name.startswith(("2D", "3D"))]
    if limit:
        files = files[:limit]
    if not files:
        raise InputError(f"{folder}: no challenge cases ({pattern}, names starting with 2D/3D)")
    return files


def cmd_eval(args) -> int:
    files = _case_files(Path(args.dir), args.pattern, args.limit)
    session = load_session(args)
    print(f"model {session.entry.name} ({session.entry.precision}), OpenVINO precision {session.runtime.precision}, "
          f"{session.runtime.threads} threads, {len(files)} cases", file=sys.stderr)
    rows, failures = [], []
    bar = Progress(len(files), "eval")
    try:
        for i, f in enumerate(files, start=1):
            try:
                res, _ = evaluate_case(session, f, early_stop=args.early_stop)
                rows.append(res)
            except BoxSegError as e:
                failures.append((f.name, str(e)))
                print(f"\nboxseg: {f.name}: {e}", file=sys.stderr)
            bar.update(i, f.name[:40])
    finally:
        if args.csv:  # the cases done so far, also after Ctrl+C; one atomic write
            write_text(Path(args.csv), _results_csv(rows))
    print_summary(rows)
    if failures:
        print(f"{len(failures)} case(s) failed", file=sys.stderr)
        return 1
    return 0


def _results_csv(rows) -> str:
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["case", "modality", "dim", "dsc", "nsd", "seconds", "objects"])
    for r in rows:
        w.writerow([r.case, r.modality, r.dim, f"{r.dsc:.4f}", f"{r.nsd:.4f}", f"{r.seconds:.3f}", r.n_objects])
    return buf.getvalue()


def _mean(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else float("nan")


def print_summary(rows) -> None:
    """Means overall, per 2D/3D and per modality (DSC, NSD, seconds per case)."""
    groups = defaultdict(list)
    for r in rows:
        groups["overall"].append(r)
        groups[r.dim].append(r)
        groups[f"{r.dim} {r.modality}"].append(r)
    print(f"{'group':<22} {'cases':>5} {'DSC':>7} {'NSD':>7} {'s/case':>8}")
    for name in sorted(groups, key=lambda g: (g != "overall", len(g.split()), g)):
        g = groups[name]
        print(f"{name:<22} {len(g):>5} {_mean([r.dsc for r in g]):7.4f} {_mean([r.nsd for r in g]):7.4f} "
              f"{_mean([r.seconds for r in g]):8.3f}")


def cmd_infer(args) -> int:
    """The challenge's inference: every case in DIR -> OUT/<same name>.npz holding ``segs``."""
    files = _case_files(Path(args.dir), args.pattern, args.limit)
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    session = load_session(args)
    bar = Progress(len(files), "infer")
    failures = 0
    for i, f in enumerate(files, start=1):
        try:
            t0 = time.perf_counter()
            case = load_case(f, with_gt=False)
            segs = segment_case(session, case, early_stop=args.early_stop)
            write_segs(check_output(outdir / f.name, None, f), segs)
            bar.update(i, f"{f.name[:40]} {time.perf_counter() - t0:.1f}s")
        except BoxSegError as e:
            failures += 1
            print(f"\nboxseg: {f.name}: {e}", file=sys.stderr)
    return 1 if failures else 0


def add_parser(sub) -> None:
    e = sub.add_parser("eval", help="segment challenge-format .npz cases with ground truth and score DSC/NSD")
    e.add_argument("dir", help="folder of 2DBox_*/3DBox_* .npz files holding imgs, boxes, gts (and spacing for 3D)")
    e.add_argument("--csv", help="write per-case results (case,modality,dim,dsc,nsd,seconds,objects) here")
    e.add_argument("--pattern", default="*.npz")
    e.add_argument("--limit", type=int, default=None, help="only the first N cases (sorted by name)")
    e.add_argument("--early-stop", type=int, default=None, metavar="N",
                   help="3D: stop a propagation pass after N consecutive slices where the object has ended (empty, "
                        "a speck or a blob off the object; default: challenge rule, no early stop)")
    add_model_args(e)
    e.set_defaults(func=cmd_eval)

    i = sub.add_parser("infer", help="challenge inference: each case in DIR -> OUT/<name>.npz with 'segs'")
    i.add_argument("dir")
    i.add_argument("-o", "--out", required=True)
    i.add_argument("--pattern", default="*.npz")
    i.add_argument("--limit", type=int, default=None)
    i.add_argument("--early-stop", type=int, default=None, metavar="N")
    add_model_args(i)
    i.set_defaults(func=cmd_infer)


__all__ = ["add_parser", "cmd_eval", "cmd_infer", "print_summary"]
