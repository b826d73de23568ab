"""Precision per CPU: encoder and decoder latency of the shipped INT8 model and the FP32 model at each
inference precision hint this CPU offers, side by side in one process (the evidence behind
``engine.inference.precision.AUTO_RULES``).

    python bench/precision_cpu.py [--eval ../shared/data/eval] [--runs 7] [--threads 2] [--out FILE]
    python bench/precision_cpu.py --models assets/models:litemedsam-int8 assets/models:litemedsam-fp32 \
        /tmp/recipe-minmax:litemedsam-int8 --runs 5 --out bench/results/recipe-speed-<date>.md

``--models`` (``FOLDER`` = its non-FP32 models, or ``FOLDER:NAME``, as ``python -m quantization validate``
takes them) times the given model folders instead of the installed INT8/FP32 pair: a candidate recipe built
with ``python -m quantization build --recipe NAME --out FOLDER`` side by side with the shipped models. The
first FP32 model given (else the first model) is the reference of the speed ratio and the mask comparison.

Configurations: ``int8@f32`` (INT8 model, f32 remainder) and ``fp32@f32`` everywhere; on a CPU whose OpenVINO
lists BF16 (AVX512_BF16/AMX) also ``int8@bf16`` and ``fp32@bf16``. Encoder: --runs interleaved rounds on one
real preprocessed slice (the 2D CT case of bench_engine.py);
decoder: 4x --runs interleaved box prompts after the slice's decoder prefix. Also the masks' agreement with
fp32@f32 on that slice (pixels of the 256x256 low-res mask). Writes bench/results/precision-<date>.md with
engine.base.sysinfo. About a minute on 2 cores; not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_engine import CASE_2D  # noqa: E402


def interleaved(fns: dict, runs: int, rounds: dict | None = None) -> dict:
    """name -> (wall ms median, min, max, CPU ms median): one warm-up each, then ``runs`` rounds in turn. The CPU
    time (all threads of this process) moves less than the wall time when other processes share the cores.
    Each round starts one model later than the one before, so no model always runs first (or right after
    the same neighbour). ``rounds``, if given, receives the per-round CPU ms lists (for paired ratios)."""
    for f in fns.values():
        f()
    names = list(fns)
    wall, cpu = {k: [] for k in fns}, {k: [] for k in fns}
    for r in range(runs):
        for k in names[r % len(names):] + names[:r % len(names)]:
            t, c = time.perf_counter(), time.process_time()
            fns[k]()
            wall[k].append((time.perf_counter() - t) * 1000)
            cpu[k].append((time.process_time() - c) * 1000)
    if rounds is not None:
        rounds.update(cpu)
    return {k: (float(np.median(wall[k])), float(np.min(wall[k])), float(np.max(wall[k])), float(np.median(cpu[k])))
            for k in fns}


def paired_ratio(rounds: dict, key: str, ref: str) -> tuple[float, float, float]:
    """Median, 25th and 75th percentile over rounds of key's CPU ms / ref's CPU ms in the same round: a slow
    spell of the host hits both models of a round alike, so the ratio moves less than either median."""
    r = np.asarray(rounds[key]) / np.asarray(rounds[ref])
    return float(np.median(r)), float(np.percentile(r, 25)), float(np.percentile(r, 75))


def _slice(eval_dir: Path):
    """(uint8 image, first box) of the benchmark slice (bench_engine.py's 2D CT case)."""
    from engine.io.challenge_npz import load_case

    path = eval_dir / f"{CASE_2D}.npz"
    if not path.is_file():
        raise SystemExit(f"no {path}: pass --eval DIR (shared/data/eval)")
    case = load_case(path)
    return case.imgs, case.boxes[0], CASE_2D


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--eval", type=Path, default=REPO.parent / "shared" / "data" / "eval")
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--int8", nargs="+", default=["auto"], choices=["auto", "native", "exact"],
                   help="how INT8 models run (engine.inference.precision.int8_mode); several: each INT8 model once "
                        "per mode, side by side (e.g. --int8 native exact on a CPU whose int8 kernels saturate)")
    p.add_argument("--models", nargs="+", default=None,
                   help="FOLDER or FOLDER:NAME model entries to time (default: the installed litemedsam-int8 and -fp32)")
    args = p.parse_args()

    from engine.base.sysinfo import describe, markdown
    from engine.inference.manifest import find_model
    from engine.inference.precision import AUTO_RULES, BF16_CPU, cpu_capability, resolve
    from engine.inference.session import Session, SessionConfig
    from engine.inference.transforms import box_to_model, preprocess
    from quantization.validate import candidate_entries

    cap = cpu_capability()
    hints = ["f32", "bf16"] if cap == BF16_CPU else ["f32"]
    if args.models:
        entries = candidate_entries(args.models)
        ids = {}
        for e in entries:  # a candidate built with --recipe has the shipped model's name: label by folder too
            ids[f"{e.root.name}/{e.name} ({e.model_id[:12]})"] = e
    else:
        ids = {m: find_model(f"litemedsam-{m}") for m in ("int8", "fp32")}
    # an INT8 model once per --int8 mode (labelled with it when there are several), an FP32 model once
    sessions = {f"{k}@{h}" + (f" int8 {mode}" if args.int8 != ["auto"] and e.precision == "int8" else ""):
                Session(SessionConfig(threads=args.threads, precision=h, int8=mode), entry=e)
                for h in hints for k, e in ids.items() for mode in (args.int8 if e.precision == "int8" else ["auto"])}
    ref_key = next((k for k, s in sessions.items() if s.entry.precision == "fp32" and k.endswith("@f32")),
                   next(iter(sessions)))
    first_key = next(iter(sessions))
    img, box0, source = _slice(args.eval)
    x, geom = preprocess(img)
    box = box_to_model(box0, geom)
    load0 = os.getloadavg()
    enc_rounds: dict = {}
    enc = interleaved({k: (lambda s=s: s.runtime.infer("encoder", {"image": x})) for k, s in sessions.items()},
                      args.runs, enc_rounds)
    outs = {k: s.runtime.infer("encoder", {"image": x}) for k, s in sessions.items()}
    state = {k: s.decoder_state(outs[k]) for k, s in sessions.items()}
    dec = interleaved({k: (lambda k=k, s=s: s.decode(state[k], box)) for k, s in sessions.items()}, args.runs * 4)
    pre = interleaved({k: (lambda k=k, s=s: s.runtime.infer("decoder_prefix", {"embedding": outs[k]["embedding"]}))
                       for k, s in sessions.items()}, args.runs)
    load1 = os.getloadavg()
    masks = {k: s.decode(state[k], box)[0] > 0 for k, s in sessions.items()}
    ref = masks[ref_key]

    info = describe()
    choice = resolve("auto")
    title = "Models side by side" if args.models else "Precision per CPU"
    lines = [f"# {title} ({dt.datetime.now():%Y-%m-%d %H:%M})\n\n", markdown(info),
             f"- OpenVINO capability class: {cap}; threads {args.threads}; encoder {args.runs} interleaved rounds, "
             f"decoder {args.runs * 4}, prefix {args.runs}; load average before {load0[0]:.2f}, after {load1[0]:.2f} "
             "(this process included)\n",
             f"- slice: {source} (box {np.asarray(box0).tolist()}); command: `python bench/precision_cpu.py "
             f"--runs {args.runs} --threads {args.threads}"
             + (f" --models {' '.join(args.models)}" if args.models else "")
             + (f" --int8 {' '.join(args.int8)}" if args.int8 != ["auto"] else "") + "`\n",
             f"- `--precision auto` on this CPU: {AUTO_RULES[cap].model_precision.upper()} model, hint {choice.hint}; "
             f"an INT8 model's layers run {choice.int8} ({choice.int8_reason})\n\n",
             "Wall ms: median / min / max; CPU ms: median CPU time of all this process's threads per call (less "
             "sensitive to other processes on the cores). Paired: median (25th-75th percentile) over rounds of the "
             f"encoder's CPU ms divided by the first model's ({first_key}) in the same round.\n\n"
             f"| configuration | OpenVINO precision | encoder wall ms | encoder CPU ms | encoder CPU paired vs first | vs {ref_key} (wall / CPU) | "
             "decoder per box wall ms | decoder CPU ms | decoder prefix wall ms (per slice) | "
             f"mask px differing from {ref_key} |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"]
    for k, s in sessions.items():
        e, d, pr = enc[k], dec[k], pre[k]
        pr_med, pr_lo, pr_hi = paired_ratio(enc_rounds, k, first_key)
        lines.append(f"| {k} | {s.runtime.precision} | {e[0]:.0f} / {e[1]:.0f} / {e[2]:.0f} | {e[3]:.0f} | "
                     f"{pr_med:.3f} ({pr_lo:.3f}-{pr_hi:.3f}) | "
                     f"{enc[ref_key][0] / e[0]:.2f}x / {enc[ref_key][3] / e[3]:.2f}x | "
                     f"{d[0]:.1f} / {d[1]:.1f} / {d[2]:.1f} | {d[3]:.1f} | {pr[0]:.1f} | "
                     f"{int((masks[k] != ref).sum())} of {ref.size} |\n")
    if cap != BF16_CPU:
        lines.append("\nNo BF16 on this CPU: the bf16 rows (INT8 with a bf16 remainder, BF16) need a CPU with "
                     "AVX512_BF16 or AMX; run this script there.\n")
    out = args.out or REPO / "bench" / "results" / f"precision-{dt.date.today()}.md"
    out.write_text("".join(lines), encoding="utf-8")
    print("".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
