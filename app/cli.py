"""``boxseg`` command line. Never imports Qt (the desktop app is started lazily by its subcommand).

Exit codes: 0 success, 1 some cases failed (eval/infer), 2 bad input or usage (one-line error,
no traceback).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

from engine.errors import BoxSegError

EXIT_BAD_INPUT = 2


class Progress:
    """A dependency-free progress bar on stderr: done/total, rate and ETA."""

    def __init__(self, total: int, label: str, stream=None):
        self.total, self.label = max(total, 1), label
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self._last = -1.0

    def update(self, done: int, extra: str = "") -> None:
        now = time.perf_counter()
        if not self.tty and done < self.total and now - self._last < 10:
            return  # logs (CI) get a line every 10 s, terminals a live bar
        self._last = now
        el = now - self.t0
        rate = done / el if el > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        width = 24
        fill = int(width * done / self.total)
        eta_s = f"{eta:5.0f}s" if math.isfinite(eta) else "    ?"
        line = f"{self.label} [{'#' * fill}{'.' * (width - fill)}] {done}/{self.total} {rate:5.2f}/s ETA {eta_s} {extra}"
        self.stream.write(("\r" + line[:150]) if self.tty else (line + "\n"))
        if self.tty and done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def _session(args):
    from engine.predictor import Session

    return Session(args.model, threads=args.threads, precision=args.precision,
                   disk_cache=bool(getattr(args, "disk_cache", False)))


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model name (default: the manifest's default model); see `boxseg models`")
    p.add_argument("--threads", type=int, default=None, help="OpenVINO inference threads (default: OpenVINO's choice)")
    p.add_argument("--precision", choices=("f32", "bf16"), default="f32",
                   help="inference precision for non-INT8 layers (default f32: identical results on every CPU)")
    p.add_argument("--disk-cache", action="store_true",
                   help="also keep slice embeddings in the user cache folder (reused by later runs)")


def cmd_models(args) -> int:
    from engine.models import list_models

    models = list_models()
    if not models:
        print("no models installed; build them with `python -m quantization build`")
        return 0
    print(f"{'name':<20} {'family':<16} {'precision':<9} {'status':<8} {'sha256 (encoder)':<18} location")
    for m in models:
        problems = m.check()
        enc = next((f["sha256"][:16] for f in m.files if f["path"] == m.graphs.get("encoder", "")[:-4] + ".bin"), "?")
        status = "ok" if not problems else "BROKEN"
        flag = " (default)" if m.default else ""
        print(f"{m.name:<20} {m.family:<16} {m.precision:<9} {status:<8} {enc:<18} {m.root}{flag}")
        for p in problems:
            print(f"    ! {p}")
    return 0


def _case_files(folder: Path, pattern: str, limit: int | None) -> list[Path]:
    from engine.errors import InputError

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
    from engine.challenge import evaluate_case

    files = _case_files(Path(args.dir), args.pattern, args.limit)
    session = _session(args)
    print(f"model {session.entry.name} ({session.entry.precision}), OpenVINO precision {session.runtime.precision}, "
          f"{session.runtime.threads} threads, {len(files)} cases", file=sys.stderr)
    rows, failures = [], []
    bar = Progress(len(files), "eval")
    writer = None
    out = open(args.csv, "w", newline="") if args.csv else None
    try:
        for i, f in enumerate(files, start=1):
            try:
                res, _ = evaluate_case(session, f, early_stop=args.early_stop)
                rows.append(res)
                if out is not None:
                    if writer is None:
                        writer = csv.writer(out)
                        writer.writerow(["case", "modality", "dim", "dsc", "nsd", "seconds", "objects"])
                    writer.writerow([res.case, res.modality, res.dim, f"{res.dsc:.4f}", f"{res.nsd:.4f}",
                                     f"{res.seconds:.3f}", res.n_objects])
                    out.flush()
            except BoxSegError as e:
                failures.append((f.name, str(e)))
                print(f"\nboxseg: {f.name}: {e}", file=sys.stderr)
            bar.update(i, f.name[:40])
    finally:
        if out is not None:
            out.close()
    print_summary(rows)
    if failures:
        print(f"{len(failures)} case(s) failed", file=sys.stderr)
        return 1
    return 0


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
    import numpy as np

    from engine.challenge import load_case, segment_case

    files = _case_files(Path(args.dir), args.pattern, args.limit)
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    session = _session(args)
    bar = Progress(len(files), "infer")
    failures = 0
    for i, f in enumerate(files, start=1):
        try:
            t0 = time.perf_counter()
            case = load_case(f, with_gt=False)
            segs = segment_case(session, case, early_stop=args.early_stop)
            tmp = outdir / f".{f.name}.part.npz"
            np.savez_compressed(tmp, segs=segs)
            os.replace(tmp, outdir / f.name)
            bar.update(i, f"{f.name[:40]} {time.perf_counter() - t0:.1f}s")
        except BoxSegError as e:
            failures += 1
            print(f"\nboxseg: {f.name}: {e}", file=sys.stderr)
    return 1 if failures else 0


def cmd_segment(args) -> int:
    """Segment one 2D image (PNG/JPEG/BMP/TIFF, single-frame DICOM, or a 2D challenge .npz) with a box."""
    import numpy as np

    from engine.imageio import read_2d, write_mask_png, write_overlay_png
    from engine.predictor import Predictor

    img = read_2d(Path(args.image), window=args.window)
    try:
        box = [float(v) for v in args.box.split(",")]
    except ValueError:
        box = []
    if len(box) != 4:
        from engine.errors import PromptError

        raise PromptError(f"--box must be x_min,y_min,x_max,y_max in pixels, got {args.box!r}")
    t0 = time.perf_counter()
    session = _session(args)
    t_load = time.perf_counter() - t0
    pred = Predictor(session)
    pred.set_image(img.pixels)
    t_enc = session.timings.encoder_ms
    result = pred.predict(box)
    out = Path(args.out)
    write_mask_png(out, result.mask)
    if args.overlay:
        write_overlay_png(Path(args.overlay), img.pixels, result.mask, box)
    print(f"{args.image}: {img.description}; {img.pixels.shape[1]}x{img.pixels.shape[0]} px")
    print(f"mask: {int(result.mask.sum())} px, model IoU estimate {result.iou:.3f} -> {out}")
    print(f"model {session.entry.name}: load {t_load * 1000:.0f} ms, encoder {t_enc:.0f} ms, "
          f"decoder {session.timings.decoder_ms:.1f} ms ({session.runtime.precision}, {session.runtime.threads} threads)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from engine import __version__

    p = argparse.ArgumentParser(prog="boxseg", description="Box-prompted medical image segmentation on the CPU.")
    p.add_argument("--version", action="version", version=f"boxseg {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    m = sub.add_parser("models", help="list installed models (name, precision, sha256, status)")
    m.set_defaults(func=cmd_models)

    e = sub.add_parser("eval", help="segment challenge-format .npz cases with ground truth and score DSC/NSD")
    e.add_argument("dir", help="folder of 2DBox_*/3DBox_* .npz files holding imgs, boxes, gts (and spacing for 3D)")
    e.add_argument("--csv", help="write per-case results (case,modality,dim,dsc,nsd,seconds,objects) here")
    e.add_argument("--pattern", default="*.npz")
    e.add_argument("--limit", type=int, default=None, help="only the first N cases (sorted by name)")
    e.add_argument("--early-stop", type=int, default=None, metavar="N",
                   help="3D: stop a propagation pass after N consecutive empty slices (default: challenge rule, no early stop)")
    _add_model_args(e)
    e.set_defaults(func=cmd_eval)

    i = sub.add_parser("infer", help="challenge inference: each case in DIR -> OUT/<name>.npz with 'segs'")
    i.add_argument("dir")
    i.add_argument("-o", "--out", required=True)
    i.add_argument("--pattern", default="*.npz")
    i.add_argument("--limit", type=int, default=None)
    i.add_argument("--early-stop", type=int, default=None, metavar="N")
    _add_model_args(i)
    i.set_defaults(func=cmd_infer)

    s = sub.add_parser("segment", help="segment one 2D image with a box and write the mask as PNG")
    s.add_argument("image", help="PNG/JPEG/BMP/TIFF, single-frame DICOM, or 2D challenge .npz")
    s.add_argument("--box", required=True, help="x_min,y_min,x_max,y_max in pixels of the image")
    s.add_argument("-o", "--out", default="mask.png", help="mask PNG (0/255)")
    s.add_argument("--overlay", default=None, help="also write an overlay PNG (image + mask outline + box)")
    s.add_argument("--window", default=None, help="CT window 'level,width' in HU (default: soft tissue 40,400)")
    _add_model_args(s)
    s.set_defaults(func=cmd_segment)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BoxSegError as e:
        print(f"boxseg: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("boxseg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
