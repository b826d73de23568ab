"""Does an INT8 recipe's build depend on f32 rounding? Build it again with every calibration input multiplied by
(1 + eps * N(0, 1)) (docs/quantization.md, "INT8 without VNNI, and why two builds of one recipe differ").

    python bench/int8_build_noise.py [--recipe NAME] [--eps 0 1e-6] [--seed 0] [--fp32 ENCODER_FP32.xml]
                                     [--calib ../shared/data/calib] [--out-dir /tmp/int8-build-noise]
                                     [--out bench/results/int8-build-noise-<date>.md]

Two CPUs compute the same f32 network with different kernels (AVX2 vs AVX-512 blocking, FMA order), so their
activations differ by about 1e-6 relative; a 1e-6 perturbation of the calibration inputs moves the FP32 encoder's
activations by the same order (1e-5 relative L2 at the embedding, ``bench/int8_noise.py``). Building a recipe on
perturbed inputs on one CPU is therefore a stand-in for building it on another CPU. ``eps = 0`` rebuilds it
unperturbed (is the build deterministic on this CPU?).

For every build the report lists the widening step's decisions (each range's overflow ratio against the
recipe's threshold, :func:`quantization.quantize.widen_heavy_tailed_ranges`) and the sha256 of the weights; the
INT8 encoders land in ``--out-dir/eps<eps>-seed<seed>/encoder_int8.xml``, to compare with
``python bench/int8_builds.py OTHER.xml --shipped REFERENCE.xml`` (int8 weights and activation ranges). The
perturbation is applied by wrapping :func:`quantization.calibration.calibration_inputs` where the quantizer
calls it; the recipe code runs unchanged. Four minutes per build on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.int8_noise import perturb  # noqa: E402


def perturbed(calibration_inputs, eps: float, seed: int):
    """``calibration_inputs`` with each returned (1, 3, H, W) float32 image multiplied by (1 + eps * N(0, 1))."""
    def wrapped(*a, **kw):
        rng = np.random.default_rng(seed)
        out = calibration_inputs(*a, **kw)
        if eps == 0:
            return out
        return [perturb(x, rng, eps) for x in out]
    return wrapped


def main() -> int:
    import openvino as ov

    from engine.base.sysinfo import describe, markdown
    from quantization import export
    from quantization import quantize as qz

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default=qz.CHOSEN)
    p.add_argument("--eps", type=float, nargs="+", default=[0.0, 1e-6])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fp32", type=Path, default=REPO / "assets" / "models" / "litemedsam" / "encoder_fp32.xml")
    p.add_argument("--calib", type=Path, default=REPO.parent / "shared" / "data" / "calib")
    p.add_argument("--out-dir", type=Path, default=Path("/tmp/int8-build-noise"))
    p.add_argument("--out", type=Path,
                   default=REPO / "bench" / "results" / f"int8-build-noise-{dt.date.today().isoformat()}.md")
    args = p.parse_args()
    if not args.calib.is_dir():
        print(f"{args.calib}: no calibration folder (../shared/data/calib)", file=sys.stderr)
        return 2

    fp32 = ov.Core().read_model(args.fp32)
    real = qz.calibration_inputs
    lines = [f"# INT8 builds under perturbed calibration inputs ({dt.date.today().isoformat()})\n\n",
             markdown(describe()),
             f"\nRecipe `{args.recipe}`; FP32 encoder `{args.fp32}` (sha256 of .bin "
             f"{hashlib.sha256(args.fp32.with_suffix('.bin').read_bytes()).hexdigest()[:12]}…); calibration "
             f"`{args.calib}`; seed {args.seed}. Command: `python bench/int8_build_noise.py --recipe {args.recipe} "
             f"--eps {' '.join(str(e) for e in args.eps)} --seed {args.seed}`\n"]
    for eps in args.eps:
        decisions: list[str] = []
        qz.calibration_inputs = perturbed(real, eps, args.seed)
        try:
            q, note = qz.quantize_encoder(fp32.clone(), args.calib, variant=args.recipe, log=decisions.append)
        finally:
            qz.calibration_inputs = real
        dest = args.out_dir / f"eps{eps:g}-seed{args.seed}" / "encoder_int8.xml"
        dest.parent.mkdir(parents=True, exist_ok=True)
        export.save(q, dest)
        digest = hashlib.sha256(dest.with_suffix(".bin").read_bytes()).hexdigest()
        lines += [f"\n## eps = {eps:g}\n\n", f"`{dest}`; encoder_int8.bin sha256 `{digest}`; {note}\n\n",
                  *(f"- {d}\n" for d in decisions or ["(this recipe has no widening step)"])]
        print(f"eps {eps:g}: {digest[:12]} {len(decisions)} ranges considered", flush=True)
    args.out.write_text("".join(lines), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
