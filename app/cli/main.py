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

from engine.base.errors import BoxSegError

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
    from engine.inference.predictor import Session

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
    from engine.inference.manifest import list_models

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
    from engine.base.errors import InputError

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
    from engine.io.challenge_npz import evaluate_case

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

    from engine.io.challenge_npz import load_case, segment_case

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


def _read_progress(label: str):
    """A progress callback for reading a series: a bar per phase (scan, read), only where it helps
    (a terminal, or a large series), so that short runs print nothing but their result."""
    state = {"bar": None, "total": None}

    def cb(done: int, total: int) -> None:
        if state["total"] != total:
            state["total"] = total
            show = sys.stderr.isatty() or total >= 200
            state["bar"] = Progress(total, label) if show else None
        if state["bar"] is not None:
            state["bar"].update(done)

    return cb


def _open(path: str, series: str | None):
    from engine.io.dispatch import open_image

    return open_image(Path(path), series=series, progress=_read_progress("read"))


def _warn(lines) -> None:
    for w in lines:
        print(f"boxseg: warning: {w}", file=sys.stderr)


def _parse_box(values: list[str]) -> list[float]:
    """``--box X0 Y0 X1 Y1`` or the comma form ``--box X0,Y0,X1,Y1`` -> 4 floats."""
    from engine.base.errors import PromptError

    parts = [p for v in values for p in v.replace(",", " ").split()]
    try:
        box = [float(v) for v in parts]
    except ValueError:
        box = []
    if len(box) != 4:
        raise PromptError(f"--box must be X_MIN Y_MIN X_MAX Y_MAX (or x_min,y_min,x_max,y_max) in voxel indices, "
                          f"got {' '.join(values)!r}")
    return box


LABEL_EXTS = (".png", ".nii", ".nii.gz", ".dcm", ".tif", ".tiff")


def _out_kind(out: Path) -> str:
    from engine.base.errors import InputError

    name = out.name.lower()
    for ext in (".nii.gz", ".nii", ".dcm", ".png", ".tif", ".tiff"):
        if name.endswith(ext):
            return {".nii.gz": "nifti", ".nii": "nifti", ".dcm": "dicom-seg"}.get(ext, "png")
    raise InputError(f"{out.name}: output format from its extension must be .nii/.nii.gz (NIfTI label map), "
                     f".dcm (DICOM-SEG) or .png (2D mask)")


def cmd_segment(args) -> int:
    """Segment an image or volume with a box; write the mask as NIfTI, DICOM-SEG or PNG (by extension)."""
    import numpy as np

    from engine.base.errors import InputError, PromptError
    from engine.data.labelmap import Segment, default_color, write_labelmap
    from engine.inference.predictor import Predictor
    from engine.inference.propagate import Box3D, propagate_box
    from engine.io.raster import write_overlay_png
    from engine.inference.transforms import Geometry, validate_box
    from engine.data.window import parse_window

    if args.image is None and len(args.box) > 1:
        # `segment --box X0 Y0 X1 Y1 IMAGE`: argparse gives the image to the open-ended --box
        args.image = args.box.pop()
    if args.image is None:
        raise InputError("segment needs an IMAGE (a DICOM folder or file, NIfTI, PNG/JPEG/BMP/TIFF or .npz)")
    box = _parse_box(args.box)
    out = Path(args.out)
    kind = _out_kind(out)
    if args.window is not None:
        parse_window(args.window)  # a bad spec is refused before any reading
    img = _open(args.image, args.series)
    z_range = None
    if args.z_range is not None:
        z0, z1 = args.z_range
        if z1 < z0:
            raise PromptError(f"--z-range {z0} {z1}: the first slice must not be after the last")
        img.check_slice(z0)
        img.check_slice(z1)
        z_range = (z0, z1)
        z = z0 + (z1 - z0) // 2
    elif args.slice is not None:
        z = img.check_slice(args.slice)
    elif img.depth == 1:
        z = 0
    else:
        raise PromptError(f"this image is a volume of {img.depth} slices: give --slice Z (0..{img.depth - 1}) "
                          f"or --z-range Z0 Z1")
    validate_box(box, Geometry(img.shape[1], img.shape[2]))
    if kind == "dicom-seg" and not img.dicom:
        raise InputError(f"{out.name}: a DICOM-SEG needs a DICOM input; this is {img.description.split(',')[0]} "
                         "(write .nii.gz or .png)")
    if kind == "png" and z_range is not None and img.depth > 1:
        raise InputError(f"{out.name}: a PNG holds one slice; write .nii.gz or .dcm for --z-range")
    if z_range is not None and img.is_rgb:
        raise InputError("--z-range propagates through grey volumes; this one is RGB (segment one --slice)")
    img.intensity_map(args.window)  # a zero-range image is refused before the model loads
    _warn(img.warnings)

    t0 = time.perf_counter()
    session = _session(args)
    t_load = time.perf_counter() - t0
    labels = np.zeros(img.shape, np.uint8)
    if z_range is None:
        slice_u8, key = img.model_slice(z, args.window)
        pred = Predictor(session)
        pred.set_image(slice_u8, slice_index=z, window=key)
        result = pred.predict(box)
        labels[z] = result.mask
        iou = f", model IoU estimate {result.iou:.3f}"
    else:
        vol_u8, key = img.model_volume(args.window)
        slice_u8 = vol_u8[z]
        bar = Progress(z_range[1] - z_range[0] + 1, "propagate")
        mask = propagate_box(session, vol_u8, Box3D(box[0], box[1], z_range[0], box[2], box[3], z_range[1]),
                             label_value=1, window=key, progress=lambda d, t: bar.update(d))
        labels[mask] = 1
        iou = ""
    entry = session.entry
    seg = Segment(1, args.name, default_color(1))
    write_labelmap(out, labels, img, segments=[seg], model_name=entry.name,
                   model_version=f"{entry.precision} sha256:{entry.model_id[:16]}", z=z)
    if args.overlay:
        # oriented as the app's slice view shows the plane (radiological, engine.data.image.Display), not
        # in stored voxel order (a NIfTI's stored rows often run posterior -> anterior); not
        # resampled for anisotropic pixels
        disp = img.display
        shape_yx = labels.shape[1:]
        write_overlay_png(Path(args.overlay), np.ascontiguousarray(disp.to_screen(slice_u8)),
                          np.ascontiguousarray(disp.to_screen(labels[z])), disp.box_to_screen(box, shape_yx))
    zs = np.flatnonzero(labels.reshape(img.depth, -1).any(axis=1))
    where = f"slice {z}" if z_range is None else f"slices {z_range[0]}..{z_range[1]} ({len(zs)} non-empty)"
    zt, yt, xt = img.shape
    print(f"{args.image}: {img.description}; {xt}x{yt} px x {zt} slice(s); window {key}")
    print(f"mask: {int(labels.astype(bool).sum())} voxels on {where}{iou} -> {out}")
    print(f"model {entry.name}: load {t_load * 1000:.0f} ms, encoder {session.timings.encoder_ms:.0f} ms "
          f"(x{session.timings.encoder_runs}), decoder {session.timings.decoder_ms:.1f} ms "
          f"({session.runtime.precision}, {session.runtime.threads} threads)")
    return 0


def cmd_info(args) -> int:
    """Series found (for a folder), shape, spacing, orientation, modality, intensity range."""
    from engine.io.dicom import scan_folder

    p = Path(args.image)
    if p.is_dir():
        found = scan_folder(p, progress=_read_progress("scan"))
        print(f"{p}: {len(found)} DICOM series")
        for i, s in enumerate(found, 1):
            print(f"  {s.line(i)}")
    img = _open(args.image, args.series)
    print(f"{img.source}:")
    for line in img.summary():
        print(f"  {line}")
    for w in img.warnings:
        print(f"  warning: {w}")
    return 0


def _is_dicom_seg(path: Path) -> bool:
    if not path.is_file() or path.name.lower().endswith((".nii", ".nii.gz", ".png", ".npz")):
        return False
    from engine.io.dicom import _read_header

    ds = _read_header(path)
    return ds is not None and str(ds.get("SOPClassUID", "")) == "1.2.840.10008.5.1.4.1.1.66.4"


def cmd_convert(args) -> int:
    """Label map <-> DICOM-SEG (aligned to --reference), or a DICOM image -> NIfTI."""
    from engine.base.errors import InputError
    from engine.data.image import Image
    from engine.data.labelmap import read_labelmap, write_labelmap
    from engine.io.nifti import is_nifti, write_nifti_image
    from engine.io.raster import is_raster

    src, out = Path(args.input), Path(args.out)
    kind = _out_kind(out)
    if not src.exists():
        raise InputError(f"{src}: no such file or folder")
    ref = _open(args.reference, args.series) if args.reference else None
    if ref is not None:
        _warn(ref.warnings)
    if _is_dicom_seg(src) or ((is_nifti(src) or is_raster(src)) and ref is not None):
        lm = read_labelmap(src, ref)
        _warn(lm.warnings)
        if ref is None:
            if kind == "dicom-seg":
                raise InputError(f"{out.name}: writing a DICOM-SEG needs --reference (the DICOM series it belongs to)")
            ref = Image(voxels=lm.labels, affine=lm.affine, description="label map grid")
        write_labelmap(out, lm.labels, ref, segments=lm.segments, model_name="convert",
                       model_version="boxseg convert", z=0 if ref.depth == 1 else None)
        values = ", ".join(f"{s.value}={s.name}" for s in lm.segments) or "empty"
        print(f"{src.name} -> {out}: {ref.shape[2]}x{ref.shape[1]}x{ref.shape[0]} label map ({values})")
        return 0
    if is_nifti(src) or is_raster(src):
        raise InputError(f"{src.name}: converting a label map needs --reference IMAGE (the image it was drawn on)")
    img = _open(args.input, args.series)
    if kind != "nifti":
        raise InputError(f"{src.name} is an image; it converts to NIfTI only (-o NAME.nii.gz)")
    _warn(img.warnings)
    write_nifti_image(out, img)
    print(f"{src.name} -> {out}: {img.description}; {img.shape[2]}x{img.shape[1]}x{img.shape[0]}, "
          f"orientation {img.orientation}")
    return 0


def cmd_app(args) -> int:
    """The desktop app (PySide6, imported only here), or its end-to-end ``--smoke-test``."""
    import importlib.util

    from engine.base.errors import InputError

    if importlib.util.find_spec("PySide6") is None:
        raise InputError("the desktop app needs PySide6: pip install 'boxseg[app]' (or PySide6-Essentials)")
    box = _parse_box(args.box) if args.box else None
    if args.smoke_test:
        if args.path is None:
            raise InputError("--smoke-test needs a PATH (a DICOM folder or file, NIfTI or 2D image)")
        if not Path(args.path).exists():
            raise InputError(f"{args.path}: no such file or folder")
        from app.gui.smoke import run_smoke_test

        return run_smoke_test(args.path, box=box, series=args.series)
    from app import run_app

    return run_app(args.path, series=args.series)


def cmd_batch(args) -> int:
    """Many studies -> label maps (report.csv + summary line); sequential, local cluster or --scheduler."""
    from engine.batch.run import run_batch
    from engine.base.errors import InputError

    for opt in ("workers", "threads_per_worker"):
        v = getattr(args, opt)
        if v is not None and (v < 0 or (v == 0 and opt != "workers")):
            raise InputError(f"--{opt.replace('_', '-')} must be {'>= 0' if opt == 'workers' else '>= 1'}, got {v}")
    if args.scheduler and args.workers is not None:
        raise InputError("--workers sizes the embedded cluster; with --scheduler the cluster's own workers run the "
                         "studies (start them with `dask worker ADDRESS --nthreads 1`)")
    state = {"bar": None, "skip": 0}

    def progress(done: int, total: int, extra: str) -> None:
        if state["bar"] is None:  # first call: studies already up to date or failed in the manifest
            state["skip"] = done
            if done < total:
                state["bar"] = Progress(total - done, "batch")
                if done:
                    print(f"boxseg: {done} of {total} studies need no work (up to date or bad rows)", file=sys.stderr)
            return
        state["bar"].update(done - state["skip"], extra)

    res = run_batch(args.manifest, args.out, workers=args.workers, threads=args.threads_per_worker,
                    scheduler=args.scheduler, model=args.model, precision=args.precision, resume=args.resume,
                    fmt=args.format, progress=progress, log=lambda s: print(f"boxseg: {s}", file=sys.stderr))
    for r in res.rows:
        if r["status"] == "failed":
            print(f"boxseg: {r['study']}: {r['error']}", file=sys.stderr)
    print(res.summary())
    print(f"report: {Path(args.out) / 'report.csv'}")
    return 1 if res.failed else 0


def _add_batch_parser(sub) -> None:
    b = sub.add_parser(
        "batch", help="segment many studies from a manifest (resumable; local cluster or a Dask scheduler)",
        description="MANIFEST: a .csv or .jsonl file with one object per row (columns image, box, and optional "
                    "series, study, object, slice, window; box x0,y0,x1,y1 on 'slice' or x0,y0,z0,x1,y1,z1 "
                    "propagated from its middle slice), or a folder of challenge 2D*/3D* .npz cases. Each study "
                    "becomes OUTDIR/<study>.nii.gz|.dcm|.png (a challenge case: OUTDIR/<name>.npz with 'segs'), "
                    "plus OUTDIR/report.csv. Studies whose output was made from the same input files and model "
                    "are skipped (--no-resume redoes them). See docs/batch.md.")
    b.add_argument("manifest", help="a .csv/.jsonl manifest or a folder of challenge .npz cases")
    b.add_argument("-o", "--out", required=True, metavar="OUTDIR", help="output folder (shared storage on a cluster)")
    b.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes of the embedded Dask cluster, one study at a time each (default: sized to "
                        "this machine, workers x threads <= cores; 0: run in this process, no cluster)")
    b.add_argument("--threads-per-worker", type=int, default=None, metavar="T",
                   help="OpenVINO inference threads of each worker (default: cores / workers; with --scheduler: "
                        "OpenVINO's choice on each machine)")
    b.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on an existing Dask cluster, e.g. tcp://10.0.0.5:8786 (workers started with "
                        "`dask worker ADDRESS --nthreads 1` on machines that see the inputs and OUTDIR at the same paths)")
    b.add_argument("--model", default=None, help="model name (default: the manifest's default model)")
    b.add_argument("--precision", choices=("f32", "bf16"), default="f32",
                   help="inference precision for non-INT8 layers (default f32: identical results on every CPU)")
    b.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="skip studies whose output is up to date (default); --no-resume redoes every study")
    b.add_argument("--format", choices=("auto", "nifti", "dicom-seg", "png"), default="auto",
                   help="label map format for manifest studies (default auto: DICOM -> DICOM-SEG .dcm, NIfTI -> "
                        ".nii.gz, 2D raster -> .png); challenge cases always give .npz")
    b.set_defaults(func=cmd_batch)


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
                   help="3D: stop a propagation pass after N consecutive slices where the object has ended (empty, "
                        "a speck or a blob off the object; default: challenge rule, no early stop)")
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

    s = sub.add_parser("segment", help="segment an image or volume with a box; write NIfTI, DICOM-SEG or PNG",
                       description="Coordinates are voxel indices as stored in the file: X is the first in-plane "
                                   "index (NIfTI i, DICOM column), Y the second (NIfTI j, DICOM row), Z the slice "
                                   "(NIfTI k; DICOM slices sorted by position along the slice normal).")
    s.add_argument("image", nargs="?", help="DICOM folder or file, NIfTI .nii/.nii.gz, PNG/JPEG/BMP/TIFF, or "
                                            "challenge .npz")
    s.add_argument("--box", required=True, nargs="+", metavar="X",
                   help="X0 Y0 X1 Y1 (or x0,y0,x1,y1): the box in voxel indices of the slice")
    zs = s.add_mutually_exclusive_group()
    zs.add_argument("--slice", type=int, default=None, metavar="Z", help="segment slice Z (needed for a volume)")
    zs.add_argument("--z-range", type=int, nargs=2, default=None, metavar=("Z0", "Z1"),
                    help="propagate the box (drawn on the middle slice Z0+(Z1-Z0)//2) through slices Z0..Z1")
    s.add_argument("--series", default=None, help="DICOM folder: series UID or its number in `boxseg info` "
                                                 "(default: the series with the most slices)")
    s.add_argument("--window", default=None,
                   help="intensity window: soft-tissue|lung|bone|brain, WIDTH,LEVEL in HU (e.g. 400,40; or W400,L40), "
                        "percentile, minmax (default: soft-tissue for CT, percentile for MR, as-is for 8-bit)")
    s.add_argument("-o", "--out", default="mask.png",
                   help="output by extension: .nii/.nii.gz label map in the input's geometry, .dcm DICOM-SEG "
                        "(DICOM input), .png mask of the slice (default mask.png)")
    s.add_argument("--overlay", default=None,
                   help="also write an overlay PNG of the box slice (image + mask + box), oriented as the app shows it")
    s.add_argument("--name", default="BoxSeg object", help="object name stored in a DICOM-SEG segment")
    _add_model_args(s)
    s.set_defaults(func=cmd_segment)

    n = sub.add_parser("info", help="describe an image: series found, shape, spacing, orientation, modality, range")
    n.add_argument("image", help="DICOM folder or file, NIfTI, PNG/JPEG/BMP/TIFF, or challenge .npz")
    n.add_argument("--series", default=None, help="DICOM folder: the series to describe (UID or number)")
    n.set_defaults(func=cmd_info)

    c = sub.add_parser("convert", help="label map <-> DICOM-SEG (aligned to --reference), or DICOM image -> NIfTI")
    c.add_argument("input", help="DICOM-SEG .dcm, NIfTI/PNG label map (with --reference), or a DICOM image/folder")
    c.add_argument("-o", "--out", required=True, help=".nii/.nii.gz, .dcm (DICOM-SEG) or .png, by extension")
    c.add_argument("--reference", default=None,
                   help="the image the label map belongs to (a DICOM series folder for DICOM-SEG output); the "
                        "label map's geometry must match it")
    c.add_argument("--series", default=None, help="series of a DICOM folder given as input or --reference")
    c.set_defaults(func=cmd_convert)

    a = sub.add_parser("app", help="the desktop app (also what `boxseg` alone starts)")
    a.add_argument("path", nargs="?", default=None, help="DICOM folder or file, NIfTI, PNG/JPEG/BMP/TIFF to open")
    a.add_argument("--series", default=None, help="DICOM folder: series UID or its number in `boxseg info`")
    a.add_argument("--smoke-test", action="store_true",
                   help="open PATH, drag a box with real mouse events, propagate, save and reload; print one "
                        "JSON line (open_ms, first_mask_ms, live_updates, mask_pixels, propagate_s, saved)")
    a.add_argument("--box", nargs="+", default=None, metavar="X",
                   help="with --smoke-test: X0 Y0 X1 Y1 voxel box (default: around the brightest blob)")
    a.set_defaults(func=cmd_app)
    _add_batch_parser(sub)
    return p


def _quiet_libraries() -> None:
    """pydicom/highdicom/nibabel warnings can quote header values (a patient's name among them) and
    would break the one-line error contract: the CLI shows its own messages only."""
    import logging
    import warnings

    warnings.simplefilter("ignore")
    for name in ("pydicom", "highdicom", "nibabel"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if not argv:
        argv = ["app"]  # `boxseg` alone starts the desktop app
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_libraries()
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
