"""``boxseg batch``: many studies from a manifest -> label maps, resumable, on this machine or a Dask cluster."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from app.cli.common import PRECISION_HELP, Progress
from engine.base.errors import InputError
from engine.batch.records import FORMATS
from engine.batch.run import BatchOptions, run_batch
from engine.inference.precision import REQUESTS


def cmd_batch(args) -> int:
    """Many studies -> label maps (report.csv + summary line); sequential, local cluster or --scheduler."""
    for opt in ("workers", "threads_per_worker"):
        v = getattr(args, opt)
        if v is not None and (v < 0 or (v == 0 and opt != "workers")):
            raise InputError(f"--{opt.replace('_', '-')} must be {'>= 0' if opt == 'workers' else '>= 1'}, got {v}")
    if args.scheduler and args.workers is not None:
        raise InputError("--workers sizes the embedded cluster; with --scheduler the cluster's own workers run the "
                         "studies (start them with `dask worker ADDRESS --nthreads 1`)")
    tls_args = (args.tls_ca_file, args.tls_cert, args.tls_key)
    if any(tls_args) and not all(tls_args):
        raise InputError("TLS needs all three of --tls-ca-file, --tls-cert and --tls-key")
    if any(tls_args) and not args.scheduler:
        raise InputError("--tls-* options are for --scheduler tls://HOST:PORT (the embedded cluster is local only)")
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

    config = replace(BatchOptions().config, model=args.model, threads=args.threads_per_worker,
                     precision=args.precision)
    options = BatchOptions(config=config, workers=args.workers, scheduler=args.scheduler, resume=args.resume,
                           fmt=args.format, tls=tls_args if all(tls_args) else None, stats=args.stats)
    res = run_batch(args.manifest, args.out, options, progress=progress,
                    log=lambda s: print(f"boxseg: {s}", file=sys.stderr))
    for r in res.rows:
        if r["status"] == "failed":
            print(f"boxseg: {r['study']}: {r['error']}", file=sys.stderr)
    print(res.summary())
    print(f"report: {Path(args.out) / 'report.csv'}")
    if args.stats:
        print(f"measurements: {Path(args.out) / 'stats.csv'}")
    return 1 if res.failed else 0


def add_parser(sub) -> None:
    b = sub.add_parser(
        "batch", help="segment many studies from a manifest (resumable; local cluster or a Dask scheduler)",
        description="MANIFEST: a .csv or .jsonl file with one object per row (columns image, box, and optional "
                    "series, study, object, slice, window; box x0,y0,x1,y1 on 'slice' or x0,y0,z0,x1,y1,z1 "
                    "propagated from its middle slice), or a folder of challenge 2D*/3D* .npz cases. Each study "
                    "becomes OUTDIR/<study>.nii.gz (+ <study>.label.txt, ITK-SNAP names and colours)|.dcm|.png|"
                    ".seg.nrrd (a challenge case: OUTDIR/<name>.npz with 'segs'), "
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
    b.add_argument("--tls-ca-file", default=None, metavar="PEM",
                   help="with --scheduler tls://HOST:PORT: the CA certificate the cluster's certificates are signed "
                        "with (use TLS whenever the scheduler is reachable from other machines: Dask's RPC is "
                        "otherwise unauthenticated; docs/batch.md)")
    b.add_argument("--tls-cert", default=None, metavar="PEM", help="this client's TLS certificate")
    b.add_argument("--tls-key", default=None, metavar="PEM", help="this client's TLS private key")
    b.add_argument("--model", default=None, help="model name (default: the manifest's default model)")
    b.add_argument("--precision", choices=REQUESTS, default="auto", help=PRECISION_HELP)
    b.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="skip studies whose output is up to date (default); --no-resume redoes every study")
    b.add_argument("--format", choices=FORMATS, default="auto",
                   help="label map format for manifest studies (default auto: DICOM -> DICOM-SEG .dcm, NIfTI -> "
                        ".nii.gz, 2D raster -> .png; seg-nrrd: 3D Slicer .seg.nrrd for any input); challenge cases "
                        "always give .npz")
    b.add_argument("--stats", action="store_true",
                   help="also measure every object (the rows `boxseg stats` gives: mL, HU, Feret, RECIST) into "
                        "OUTDIR/stats.csv, one row per object with its study")
    b.set_defaults(func=cmd_batch)


__all__ = ["add_parser", "cmd_batch"]
