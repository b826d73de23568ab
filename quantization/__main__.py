"""``python -m quantization build|report`` — offline model tooling (needs the ``quantize`` extra)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from .build import DEFAULT_OUT, REPO

    shared = REPO.parent / "shared" / "data"
    p = argparse.ArgumentParser(prog="python -m quantization")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="export FP32 IR, quantize the encoder to INT8, write manifest + accuracy report")
    b.add_argument("--out", type=Path, default=DEFAULT_OUT)
    b.add_argument("--calib", type=Path, default=shared / "calib")
    b.add_argument("--eval", type=Path, default=shared / "eval", help="eval folder for the accuracy report")
    b.add_argument("--no-int8", action="store_true")
    b.add_argument("--no-report", action="store_true")
    r = sub.add_parser("report", help="accuracy report (FP32 vs INT8) of the models in --out")
    r.add_argument("--out", type=Path, default=DEFAULT_OUT)
    r.add_argument("--eval", type=Path, default=shared / "eval")
    args = p.parse_args(argv)
    if args.cmd == "build":
        from .build import build

        build(args.out, args.calib, int8=not args.no_int8)
        if args.no_report:
            return 0
    from .report import accuracy_report

    if not Path(args.eval).is_dir():
        print(f"no eval folder at {args.eval}; skipping the accuracy report", file=sys.stderr)
        return 0
    accuracy_report(args.out, args.eval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
