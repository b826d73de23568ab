"""Engine benchmark: PyTorch FP32 eager vs OpenVINO FP32 vs OpenVINO INT8, side by side.

    python bench/bench_engine.py [--eval ../shared/data/eval] [--runs 15] [--threads 2] [--out FILE]

Measures, interleaved in one process so that host noise hits every backend alike:
* encoder ms and decoder ms (median, min, max over --runs) on a real preprocessed slice;
* end to end seconds per case (as `boxseg eval` counts them: load + segment) for one 2D case, a
  single-object 3D case and a multi-object 3D case: the challenge flow in PyTorch (re-encodes every
  slice for every box) vs the engine (each slice encoded once per session, cache shared by objects);
* peak RSS of each backend running the 3D cases, each in its own subprocess.
Needs the `quantize` extra (torch) and ../shared/data. Writes a markdown table (default
bench/results/engine-<date>.md). Not a test: run it when nothing else is running.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CASE_2D = "2DBox_CT_SAM-Med2D_s0114-111"          # 15 boxes
CASE_3D_SINGLE = "3DBox_CT_MSD-Spleen_spleen2"    # 1 object, 20 slices
CASE_3D_MULTI = "3DBox_CT_dcmqi_ct-3slice"        # 3 objects sharing 3 slices
CASE_3D_BIG = "3DBox_MR_BraTS2015-deepmedic_pat0002"  # 1 object, 61 slices


def stats(ts):
    a = np.asarray(ts) * 1000
    return float(np.median(a)), float(a.min()), float(a.max())


def interleaved(fns: dict, runs: int) -> dict:
    for f in fns.values():
        f()  # warm-up
    times = {k: [] for k in fns}
    for _ in range(runs):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: stats(v) for k, v in times.items()}


def rss_worker(backend: str, eval_dir: Path, threads: int) -> None:
    from engine.io.challenge_npz import load_case
    from engine.pipeline import segment_case

    cases = [load_case(eval_dir / f"{n}.npz") for n in (CASE_3D_SINGLE, CASE_3D_MULTI)]
    if backend == "torch":
        import torch

        from quantization.checkpoint import load_litemedsam
        from quantization.reference_flow import segment_case_torch

        torch.set_num_threads(threads)
        m = load_litemedsam()
        for c in cases:
            segment_case_torch(m, c)
    else:
        from engine.inference.session import Session, SessionConfig

        s = Session(SessionConfig(backend, threads=threads))
        for c in cases:
            segment_case(s, c)
    print(json.dumps({"maxrss_mib": peak_rss_mib()}))


def peak_rss_mib() -> float:
    """Peak RSS of this process. VmHWM, not ru_maxrss: after fork+exec ru_maxrss still carries the
    parent's peak (the benchmark's own 1.4 GiB), VmHWM belongs to the new address space."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--eval", type=Path, default=REPO.parent / "shared" / "data" / "eval")
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--skip-big", action="store_true", help="skip the 61-slice MR case end to end")
    p.add_argument("--rss-worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rss_worker:
        rss_worker(args.rss_worker, args.eval, args.threads)
        return 0

    import torch

    from engine.base.sysinfo import describe, markdown
    from engine.eval.challenge import evaluate_case
    from engine.io.challenge_npz import load_case
    from engine.eval.metrics import compute_case_metrics
    from engine.inference.precision import int8_wording
    from engine.inference.session import Session, SessionConfig, configured_model
    from engine.inference.transforms import box_to_model, preprocess
    from quantization.checkpoint import load_litemedsam
    from quantization.reference_flow import segment_case_torch

    torch.set_num_threads(args.threads)
    info = describe()
    model = load_litemedsam()
    sessions = {"ov-fp32": Session(SessionConfig("litemedsam-fp32", threads=args.threads)),
                "ov-int8": Session(SessionConfig("litemedsam-int8", threads=args.threads))}
    case2d = load_case(args.eval / f"{CASE_2D}.npz")
    x, geom = preprocess(case2d.imgs)
    xt = torch.from_numpy(x)
    box = box_to_model(case2d.boxes[0], geom)
    lines = [f"# Engine benchmark ({dt.datetime.now():%Y-%m-%d %H:%M})\n", markdown(info),
             f"- threads: {args.threads} (torch.set_num_threads and OpenVINO INFERENCE_NUM_THREADS); "
             f"OpenVINO inference precision: {sessions['ov-int8'].runtime.precision}; runs: {args.runs}, interleaved\n",
             f"- `--precision auto` on this CPU runs {configured_model(SessionConfig()).name} "
             f"(capability {sessions['ov-int8'].precision_choice.capability}); ov-int8's layers run "
             f"{int8_wording(sessions['ov-int8'].precision_choice.int8)} (engine.inference.precision)\n"]

    with torch.no_grad():
        enc = interleaved({
            "torch-fp32": lambda: model.image_encoder(xt),
            "ov-fp32": lambda: sessions["ov-fp32"].runtime.infer("encoder", {"image": x}),
            "ov-int8": lambda: sessions["ov-int8"].runtime.infer("encoder", {"image": x}),
        }, args.runs)
        emb = sessions["ov-fp32"].runtime.infer("encoder", {"image": x})
        embt = torch.from_numpy(emb["embedding"])
        boxt = torch.from_numpy(box)
        # per prompt: what a predictor runs after set_image (the decoder prefix ran once per slice)
        state = {k: s.decoder_state(emb) for k, s in sessions.items()}
        dec = interleaved({
            "torch-fp32": lambda: model.decode(embt, boxt),
            "ov-fp32": lambda: sessions["ov-fp32"].decode(state["ov-fp32"], box),
            "ov-int8": lambda: sessions["ov-int8"].decode(state["ov-int8"], box),
        }, args.runs * 2)
        pre = interleaved({k: (lambda s=s: s.runtime.infer("decoder_prefix", {"embedding": emb["embedding"]}))
                           for k, s in sessions.items() if s.runtime.prefix_outputs}, args.runs)
    lines.append("\n## Encoder and decoder (ms: median / min / max)\n\n"
                 "decoder = one prompt on a selected slice (box only); decoder prefix = the decoder's image-only "
                 "projections, run once per slice when it is selected (torch runs the whole decoder per prompt).\n\n"
                 "| backend | encoder | speed-up vs torch | decoder | decoder prefix (per slice) |\n|---|---|---|---|---|\n")
    for k in enc:
        e, d = enc[k], dec[k]
        p = f"{pre[k][0]:.1f} / {pre[k][1]:.1f} / {pre[k][2]:.1f}" if k in pre else "-"
        lines.append(f"| {k} | {e[0]:.0f} / {e[1]:.0f} / {e[2]:.0f} | {enc['torch-fp32'][0] / e[0]:.2f}x | "
                     f"{d[0]:.1f} / {d[1]:.1f} / {d[2]:.1f} | {p} |\n")

    cases = [CASE_2D, CASE_3D_SINGLE, CASE_3D_MULTI] + ([] if args.skip_big else [CASE_3D_BIG])
    lines.append("\n## End to end, seconds per case (load + segment, fresh embedding cache) and DSC\n\n"
                 "| case | objects | torch challenge flow | ov-fp32 engine | ov-int8 engine | speed-up int8 vs torch |\n|---|---|---|---|---|---|\n")
    for name in cases:
        path = args.eval / f"{name}.npz"
        t = time.perf_counter()
        c = load_case(path)
        segs = segment_case_torch(model, c)
        t_torch = time.perf_counter() - t
        d_torch, _ = compute_case_metrics(c.gts, segs, spacing=c.spacing, is_3d=c.is_3d)
        row = {}
        for k, s in sessions.items():
            s.cache.clear()
            res, _ = evaluate_case(s, path)
            row[k] = res
        lines.append(f"| {name} | {len(c.boxes)} | {t_torch:.2f} s (DSC {d_torch:.4f}) | "
                     f"{row['ov-fp32'].seconds:.2f} s ({row['ov-fp32'].dsc:.4f}) | "
                     f"{row['ov-int8'].seconds:.2f} s ({row['ov-int8'].dsc:.4f}) | {t_torch / row['ov-int8'].seconds:.1f}x |\n")
        print(lines[-1], end="", flush=True)

    lines.append("\n## Peak RSS running the two small 3D cases (separate processes)\n\n| backend | peak RSS MiB |\n|---|---|\n")
    for backend in ("torch", "litemedsam-fp32", "litemedsam-int8"):
        r = subprocess.run([sys.executable, __file__, "--rss-worker", backend, "--eval", str(args.eval),
                            "--threads", str(args.threads)], capture_output=True, text=True, cwd=REPO)
        rss = json.loads(r.stdout.strip().splitlines()[-1])["maxrss_mib"] if r.returncode == 0 else float("nan")
        lines.append(f"| {backend} | {rss:.0f} |\n")

    text = "".join(lines)
    print(text)
    out = args.out or REPO / "bench" / "results" / f"engine-{dt.date.today()}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
