"""How far the INT8 encoder's embedding is from FP32's on this CPU's int8 kernels and as exact INT8 arithmetic, and
how much a 1e-6 change of the input moves each (docs/quantization.md, "INT8 without VNNI").

    python bench/int8_noise.py [--calib ../shared/data/calib] [--images 60] [--out bench/results/int8-noise-<date>.md]

Inputs: the shipped INT8 and FP32 encoders; ``--images`` calibration images evenly spread over the sorted files
(calibration data, not eval data). For each image: relative L2 distance of the embedding to FP32's for the INT8
encoder on this CPU's int8 kernels ("native") and folded to exact f32 arithmetic
(:func:`engine.inference.int8_arithmetic.exact_f32`); then, on the first ``--perturbed`` images, the distance
between the embedding of x and of x * (1 + 1e-6 * N(0,1)) for FP32, native and folded; and for the folded encoder the
same distance at every activation FakeQuantize output (where the perturbation grows). A few minutes on 2 cores;
not a test.

``--fc2-extremes``: also what the same perturbation, applied to every one of the ``--images`` images, does to the
ten MLP fc2 input maxima that the recipe's widening step measures (:func:`quantization.quantize.activation_extremes`;
per range, the maximum over the images, relative change), measured through the quantized network as exact INT8
arithmetic (the previous recipe's way) and on float activations (``-fa``, the shipped recipe's way). Four more
minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def perturb(x: np.ndarray, rng: np.random.Generator, eps: float = 1e-6) -> np.ndarray:
    """``x * (1 + eps * N(0, 1))`` elementwise, in ``x``'s dtype: a change of the size by which two CPUs' f32 kernels
    round differently."""
    return (x * (1 + eps * rng.standard_normal(x.shape))).astype(x.dtype)


def fc2_extremes_section(int8_model, data: list) -> list[str]:
    """Markdown lines: per fc2 input range, the relative change of its maximum over ``data`` when every image is
    multiplied by (1 + 1e-6 N(0,1)), measured through the quantized network (exact) and on float activations."""
    import re

    from quantization.quantize import FC2_INPUTS, activation_extremes

    rng = np.random.default_rng(1)
    perturbed = [perturb(x, rng) for x in data]
    moved = {}
    for mode, fa in (("quantized network (exact)", False), ("float activations", True)):
        a = activation_extremes(int8_model, data, exact=True, float_activations=fa)
        b = activation_extremes(int8_model, perturbed, exact=True, float_activations=fa)
        moved[mode] = {k: abs(b[k][:, 1].max() - a[k][:, 1].max()) / abs(a[k][:, 1].max())
                       for k in a if re.search(FC2_INPUTS, k)}
    lines = [f"\n## The widening step's fc2 maxima under the same perturbation ({len(data)} images, every one "
             "perturbed; relative change of the maximum over the images)\n\n",
             "| fc2 input of | " + " | ".join(moved) + " |\n|---|" + "---:|" * len(moved) + "\n"]
    for k in next(iter(moved.values())):
        block = re.search(r"layers\.\d\.blocks\.\d", k).group(0)
        lines.append(f"| {block} | " + " | ".join(f"{m[k]:.1e}" for m in moved.values()) + " |\n")
    lines.append("| **largest** | " + " | ".join(f"**{max(m.values()):.1e}**" for m in moved.values()) + " |\n")
    return lines


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--calib", type=Path, default=REPO.parent / "shared" / "data" / "calib")
    p.add_argument("--images", type=int, default=60)
    p.add_argument("--perturbed", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fc2-extremes", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / f"int8-noise-{dt.date.today()}.md")
    args = p.parse_args()

    import openvino as ov

    from engine.base.sysinfo import describe, markdown
    from engine.inference.int8_arithmetic import exact_f32, is_activation_fake_quantize, probe_error
    from engine.inference.manifest import find_model
    from quantization.calibration import calibration_inputs

    if not args.calib.is_dir():
        raise SystemExit(f"no calibration folder at {args.calib}: pass --calib DIR (shared/data/calib)")
    data = calibration_inputs(args.calib)
    data = [data[i] for i in np.linspace(0, len(data) - 1, min(args.images, len(data))).round().astype(int)]
    core = ov.Core()
    cfg = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": args.threads}
    int8_path = str(find_model("litemedsam-int8").path("encoder"))
    folded = core.read_model(int8_path)
    fqs = [op for op in folded.get_ordered_ops() if is_activation_fake_quantize(op)]
    folded.add_outputs([fq.input_value(0) for fq in fqs])  # each quantizer's input: its tensor survives exact_f32
    folded, n_folded = exact_f32(folded)
    models = {"fp32": core.compile_model(str(find_model("litemedsam-fp32").path("encoder")), "CPU", cfg),
              "int8 native": core.compile_model(int8_path, "CPU", cfg),
              "int8 folded": core.compile_model(folded, "CPU", cfg)}
    port = {}
    for o in models["int8 folded"].outputs[1:]:
        for name in o.get_names():
            port[name] = o

    to_fp32 = {k: [] for k in models if k != "fp32"}
    for x in data:
        ref = models["fp32"](x)[0]
        for k in to_fp32:
            to_fp32[k].append(rel(models[k](x)[0], ref))

    rng = np.random.default_rng(0)
    moved = {k: [] for k in models}
    trace = {fq.get_friendly_name(): [] for fq in fqs}
    for x in data[:args.perturbed]:
        xp = perturb(x, rng)
        for k, m in models.items():
            a, b = m(x), m(xp)
            moved[k].append(rel(b[0], a[0]))
            if k == "int8 folded":
                for fq in fqs:
                    o = port[next(iter(fq.input_value(0).get_names()))]
                    trace[fq.get_friendly_name()].append(rel(b[o], a[o]))

    lines = [f"# INT8 embedding noise ({dt.datetime.now():%Y-%m-%d %H:%M})\n\n", markdown(describe()),
             f"- int8 overflow probe on this CPU: relative error {probe_error():.3g} (exact kernels ~1e-3, saturating "
             f"ones 0.33 on an AVX2 Zen 3); {n_folded} int8 weights and FakeQuantizes written as f32; {len(data)} calibration images from {args.calib.name}/, "
             f"{args.perturbed} of them perturbed; command: `python bench/int8_noise.py --images {args.images} "
             f"--perturbed {args.perturbed}{' --fc2-extremes' if args.fc2_extremes else ''}`; INT8 encoder "
             f"`{int8_path}`\n\n",
             "## Embedding distance to FP32 (relative L2, per image)\n\n",
             "| encoder | mean | median | max | images closer to FP32 than the other INT8 |\n|---|---:|---:|---:|---:|\n"]
    a, b = np.asarray(to_fp32["int8 native"]), np.asarray(to_fp32["int8 folded"])
    for k, v in to_fp32.items():
        v = np.asarray(v)
        closer = int(((a < b) if k == "int8 native" else (b < a)).sum())
        lines.append(f"| {k} | {v.mean():.4f} | {np.median(v):.4f} | {v.max():.4f} | {closer} of {len(v)} |\n")
    lines += ["\n## What x * (1 + 1e-6 noise) does to the embedding (relative L2)\n\n",
              "| encoder | median | min | max |\n|---|---:|---:|---:|\n"]
    for k, v in moved.items():
        lines.append(f"| {k} | {np.median(v):.2e} | {np.min(v):.2e} | {np.max(v):.2e} |\n")
    lines += ["\n## Where it grows: the folded INT8 encoder at each activation FakeQuantize input (median over the "
              "perturbed images)\n\n", "| # | FakeQuantize | relative L2 change |\n|---:|---|---:|\n"]
    for i, fq in enumerate(fqs):
        lines.append(f"| {i} | `{fq.get_friendly_name()}` | {np.median(trace[fq.get_friendly_name()]):.1e} |\n")
    if args.fc2_extremes:
        lines += fc2_extremes_section(core.read_model(int8_path), data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(lines), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
