"""Compare NNCF INT8 configurations of the LiteMedSAM image encoder (speed and accuracy).

    python bench/quant_variants.py --variants default,transformer --subset 40 --out results.md

For every variant (see ``quantization.quantize.VARIANTS``) the encoder is quantized once into
``--work/<variant>@N`` by ``quantization.build.build_variant`` (reused on later runs unless ``--requantize``),
next to copies of the FP32 decoders and a manifest, so that the engine can load it like a shipped model.
Then:

* speed: the FP32 IR, every INT8 IR (and PyTorch eager FP32 with ``--torch``) are timed
  *interleaved* in one process (round-robin, ``--reps`` rounds) with the engine's compile
  settings (LATENCY, f32 inference precision, ``--threads``); medians, minima and the speed-up
  over the FP32 IR of the same run are reported;
* embedding fidelity: cosine similarity (per image, flattened) and max |difference| to the FP32
  IR's embedding on the 2D subset images plus the middle slice of every 3D case;
* accuracy: mean DSC/NSD of the engine on ``--subset`` 2D cases spread over the datasets, and with
  ``--full`` on all 2D cases, ``--full3d`` on all 3D cases (slow).

The report (markdown) records the CPU, its AVX512_BF16/AMX/VNNI flags, the OpenVINO and NNCF
versions and the thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHARED = REPO.parent / "shared" / "data"
F32_CONFIG = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}


def cpu_info() -> dict:
    info = {"model": platform.processor() or "unknown", "flags": [], "logical_cpus": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if line.startswith("model name") and info["model"] in ("unknown", "", platform.processor()):
            info["model"] = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            info["flags"] = sorted(f for f in flags if f in ("avx512_bf16", "amx_bf16", "amx_int8", "amx_tile",
                                                               "avx512_vnni", "avx_vnni", "avx512f", "avx2"))
            break
    return info


def dataset_of(path: Path) -> str:
    return "_".join(path.name.split("_")[:3])


def select_subset(eval_dir: Path, n: int) -> list[Path]:
    """``n`` 2D cases spread over the datasets: round-robin over datasets, evenly strided inside each."""
    by_ds: dict[str, list[Path]] = defaultdict(list)
    for p in sorted(eval_dir.glob("2DBox_*.npz")):
        by_ds[dataset_of(p)].append(p)
    per = -(-n // max(len(by_ds), 1))
    queues = {}
    for ds, files in sorted(by_ds.items()):
        k = min(per, len(files))
        idx = np.linspace(0, len(files) - 1, k).round().astype(int) if k > 1 else [len(files) // 2]
        queues[ds] = [files[i] for i in idx]
    out: list[Path] = []
    while len(out) < n and any(queues.values()):
        for ds in sorted(queues):
            if queues[ds] and len(out) < n:
                out.append(queues[ds].pop(0))
    return sorted(out)


def proxy_inputs(subset: list[Path], eval_dir: Path) -> list[tuple[str, np.ndarray]]:
    """Encoder inputs: the subset's 2D images + the middle slice of label 1 of every 3D case."""
    from engine.inference.transforms import preprocess

    out = []
    for p in subset:
        with np.load(p) as z:
            out.append((p.name, preprocess(z["imgs"])[0]))
    for p in sorted(eval_dir.glob("3DBox_*.npz")):
        with np.load(p) as z:
            imgs, boxes = z["imgs"], z["boxes"]
        zmid = int(boxes[0, 2] + (boxes[0, 5] - boxes[0, 2]) // 2)
        out.append((f"{p.name}[z={zmid}]", preprocess(imgs[zmid])[0]))
    return out


def build_base(work: Path, log) -> Path:
    """FP32 encoder + decoders in ``work/fp32`` (rebuilt when missing or from an older export layout)."""
    from quantization.build import build, graphs

    base = work / "fp32"
    man = base / "manifest.json"
    if not man.is_file() or json.loads(man.read_text())["models"][0]["graphs"] != graphs("fp32"):
        log(f"building FP32 models in {base} ...")
        build(base, int8=False, log=log)
    return base


def encoder_path(folder: Path) -> Path:
    from engine.inference.manifest import read_manifest

    return read_manifest(folder)[0].path("encoder")


def time_interleaved(models: dict, x: np.ndarray, reps: int, warmup: int = 3) -> dict[str, list[float]]:
    """models: name -> callable(x). Round-robin timing (ms) so that host noise hits every model alike."""
    for f in models.values():
        for _ in range(warmup):
            f(x)
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(reps):
        for k, f in models.items():
            t0 = time.perf_counter()
            f(x)
            times[k].append((time.perf_counter() - t0) * 1000)
    return times


def embedding_metrics(compiled, inputs, refs) -> dict:
    cos, mx = [], 0.0
    for (_, x), ref in zip(inputs, refs):
        e = np.asarray(compiled(x)[0], np.float32)
        a, b = e.ravel().astype(np.float64), ref.ravel().astype(np.float64)
        cos.append(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)))
        mx = max(mx, float(np.abs(e - ref).max()))
    return {"cos_mean": float(np.mean(cos)), "cos_min": float(np.min(cos)), "max_abs": mx}


def eval_cases(folder: Path, files: list[Path], threads: int) -> dict:
    from engine.eval.challenge import evaluate_case
    from engine.inference.manifest import read_manifest
    from engine.inference.session import Session, SessionConfig

    s = Session(SessionConfig(threads=threads), entry=read_manifest(folder)[0])
    rows = []
    for p in files:
        res, _ = evaluate_case(s, p)
        rows.append(res)
    per_dim = {}
    for dim in ("2D", "3D"):
        r = [x for x in rows if x.dim == dim]
        if r:
            per_dim[dim] = {"n": len(r), "dsc": float(np.mean([x.dsc for x in r])),
                            "nsd": float(np.mean([x.nsd for x in r]))}
    return {"per_dim": per_dim, "rows": [vars(x) for x in rows]}


def profile(path: Path, x: np.ndarray, threads: int, runs: int = 10) -> list[tuple[str, str, float, int]]:
    """PERF_COUNT per (layer type, exec type): (type, exec_type, ms per inference, count)."""
    import openvino as ov

    cfg = {**F32_CONFIG, "PERF_COUNT": True, "INFERENCE_NUM_THREADS": threads}
    req = ov.Core().compile_model(str(path), "CPU", cfg).create_infer_request()
    for _ in range(3):
        req.infer({0: x})
    agg: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    for _ in range(runs):
        req.infer({0: x})
        for pi in req.profiling_info:
            if pi.status.name != "EXECUTED":
                continue
            k = (pi.node_type, pi.exec_type)
            agg[k][0] += pi.real_time.total_seconds() * 1000 / runs
            agg[k][1] += 1
    return sorted(((t, e, v[0], v[1] // runs) for (t, e), v in agg.items()), key=lambda r: -r[2])


def main(argv=None) -> int:
    from quantization.build import build_variant
    from quantization.quantize import CHOSEN, DEFAULT_SUBSET, VARIANTS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help=f"comma-separated INT8 variants (default: all; chosen: {CHOSEN})")
    ap.add_argument("--calib", type=Path, default=SHARED / "calib")
    ap.add_argument("--eval", type=Path, default=SHARED / "eval")
    ap.add_argument("--subset", type=int, default=40, help="2D cases for the subset DSC (0: skip)")
    ap.add_argument("--full", default="", help="comma-separated variants of --variants (and/or 'fp32') for the full 2D eval")
    ap.add_argument("--full3d", default="", help="comma-separated variants (and/or 'fp32') run on all 3D cases (slow)")
    ap.add_argument("--reps", type=int, default=15, help="interleaved timing rounds")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--torch", action="store_true", help="also time PyTorch eager FP32 (interleaved)")
    ap.add_argument("--profile", default="", help="comma-separated variants to PERF_COUNT-profile")
    ap.add_argument("--work", type=Path, default=Path("/tmp/qv"), help="where the quantized models are kept")
    ap.add_argument("--requantize", action="store_true")
    ap.add_argument("--calib-subset", type=int, default=None,
                    help="calibration images per variant (default: quantization.quantize.DEFAULT_SUBSET); "
                         "a variant may also be given as NAME@N in --variants. Models are kept as "
                         "<work>/<variant>@N and named so in the table")
    ap.add_argument("--out", type=Path, default=Path("results.md"))
    args = ap.parse_args(argv)

    import nncf
    import openvino as ov

    log = lambda *a: print(*a, flush=True)  # noqa: E731
    variants = [v for v in args.variants.split(",") if v]
    args.work.mkdir(parents=True, exist_ok=True)
    base = build_base(args.work, log)
    folders = {"fp32": base}
    qmeta = {}
    for v in variants:
        name, _, n = v.partition("@")
        n = int(n) if n else (args.calib_subset or DEFAULT_SUBSET)
        key = f"{name}@{n}"
        folders[key] = build_variant(args.work, base, name, args.calib, n, args.requantize, log)
        qmeta[key] = json.loads((folders[key] / "quantize.json").read_text())

    subset = select_subset(args.eval, args.subset) if args.subset else []
    inputs = proxy_inputs(subset or select_subset(args.eval, 40), args.eval)
    core = ov.Core()
    cfg = {**F32_CONFIG, "INFERENCE_NUM_THREADS": args.threads}
    compiled = {k: core.compile_model(str(encoder_path(f)), "CPU", cfg) for k, f in folders.items()}

    log("embedding fidelity ...")
    refs = [np.asarray(compiled["fp32"](x)[0], np.float32) for _, x in inputs]
    fidelity = {k: embedding_metrics(c, inputs, refs) for k, c in compiled.items() if k != "fp32"}

    log("interleaved timing ...")
    x_time = inputs[0][1]
    runners = {k: (lambda x, c=c: c(x)) for k, c in compiled.items()}
    if args.torch:
        import torch

        from quantization.checkpoint import load_litemedsam

        torch.set_num_threads(args.threads)
        enc = load_litemedsam().image_encoder.eval()
        xt = torch.from_numpy(x_time)

        def run_torch(_x, enc=enc, xt=xt):
            with torch.inference_mode():
                return enc(xt)

        runners = {"torch-eager-fp32": run_torch, **runners}
    times = time_interleaved(runners, x_time, args.reps)
    f32_med = statistics.median(times["fp32"])

    evals = {}
    if subset:
        for k, f in folders.items():
            log(f"subset eval {k} ...")
            evals[k] = eval_cases(f, subset, args.threads)
    full = {}
    all2d = sorted(args.eval.glob("2DBox_*.npz"))
    all3d = sorted(args.eval.glob("3DBox_*.npz"))
    full2d = [v for v in args.full.split(",") if v]
    full3d = [v for v in args.full3d.split(",") if v]
    for k in dict.fromkeys(full2d + full3d):
        log(f"full eval {k} ...")
        full[k] = eval_cases(folders[k], (all2d if k in full2d else []) + (all3d if k in full3d else []),
                             args.threads)

    profiles = {k: profile(encoder_path(folders[k]), x_time, args.threads)
                for k in [v for v in args.profile.split(",") if v]}

    # ---------------------------------------------------------------- report
    cpu = cpu_info()
    L = []
    L.append("# INT8 variant comparison (bench/quant_variants.py)\n")
    L.append(f"- CPU: {cpu['model']} ({cpu['logical_cpus']} logical CPUs); flags: {', '.join(cpu['flags']) or 'none'}")
    L.append(f"- OpenVINO {ov.get_version()}, NNCF {nncf.__version__}, threads {args.threads}, "
             f"compile config {F32_CONFIG}")
    L.append(f"- timing: {args.reps} interleaved rounds on one preprocessed image; "
             f"speed-up = FP32 IR median / variant median (same run)")
    n3d = sum("3DBox_" in name for name, _ in inputs)
    L.append(f"- fidelity: {len(inputs)} encoder inputs ({len(inputs) - n3d} 2D images of the subset + "
             f"{n3d} 3D middle slices)")
    L.append(f"- subset DSC/NSD: {len(subset)} 2D cases\n")
    L.append("| variant | ms median | ms min | speed-up vs FP32 IR | cosine mean | cosine min | max abs | "
             "subset DSC | subset NSD | full 2D DSC | full 2D NSD | full 3D DSC | full 3D NSD | quantize s |")
    L.append("|---|" + "---:|" * 13)

    def fmt(v, spec=".4f"):
        return "" if v is None else format(v, spec)

    for k in times:
        t = times[k]
        med = statistics.median(t)
        fid = fidelity.get(k, {})
        ev = evals.get(k, {}).get("per_dim", {}).get("2D", {})
        fu = full.get(k, {}).get("per_dim", {})
        q = qmeta.get(k, {})
        L.append(f"| {k} | {med:.0f} | {min(t):.0f} | {f32_med / med:.2f}x | {fmt(fid.get('cos_mean'))} | "
                 f"{fmt(fid.get('cos_min'))} | {fmt(fid.get('max_abs'), '.3f')} | {fmt(ev.get('dsc'))} | "
                 f"{fmt(ev.get('nsd'))} | {fmt(fu.get('2D', {}).get('dsc'))} | {fmt(fu.get('2D', {}).get('nsd'))} | "
                 f"{fmt(fu.get('3D', {}).get('dsc'))} | {fmt(fu.get('3D', {}).get('nsd'))} | "
                 f"{fmt(q.get('quantize_seconds'), '.0f')} |")
    if subset:
        L.append("\nSubset cases: " + ", ".join(p.name[:-4] for p in subset))
    for k, rows in profiles.items():
        L.append(f"\n### PERF_COUNT profile: {k} (ms per inference, summed per layer type / exec type)\n")
        L.append("| layer type | exec type | ms | count |\n|---|---|---:|---:|")
        L += [f"| {t} | {e} | {ms:.1f} | {n} |" for t, e, ms, n in rows[:15]]
    if full:
        L.append("\n### Full evaluation per modality (DSC)\n")
        mods = sorted({(r["dim"], r["modality"]) for f in full.values() for r in f["rows"]})
        L.append("| variant | " + " | ".join(f"{d} {m}" for d, m in mods) + " |")
        L.append("|---|" + "---:|" * len(mods))
        for k, f in full.items():
            cells = []
            for d, m in mods:
                r = [x["dsc"] for x in f["rows"] if x["dim"] == d and x["modality"] == m]
                cells.append(f"{np.mean(r):.4f} ({len(r)})" if r else "")
            L.append(f"| {k} | " + " | ".join(cells) + " |")
    args.out.write_text("\n".join(L) + "\n", encoding="utf-8")
    raw = {"cpu": cpu, "times": times, "fidelity": fidelity, "quantize": qmeta,
           "subset": {k: v["per_dim"] for k, v in evals.items()},
           "full": {k: v for k, v in full.items()}, "profiles": profiles}
    args.out.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str), encoding="utf-8")
    log(f"wrote {args.out}")
    print("\n".join(L))
    return 0


if __name__ == "__main__":
    sys.exit(main())
