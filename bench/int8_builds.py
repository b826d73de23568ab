"""How two INT8 encoders of one recipe differ, and whether the attention's i8 x i8 MatMuls are exact on this CPU
(docs/quantization.md, "INT8 without VNNI, and why two builds of one recipe differ").

    python bench/int8_builds.py OTHER.xml [--shipped assets/models/litemedsam/encoder_int8.xml]
                                [--calib ../shared/data/calib] [--out bench/results/int8-builds-<date>.md]

OTHER.xml: an INT8 encoder built by ``python -m quantization build --out DIR`` (``DIR/litemedsam/encoder_int8.xml``).

1. **Build difference.** Both graphs' constants are compared in graph order (the build is deterministic in
   structure: the same recipe gives the same ops in the same order). For the int8 weight tensors: how many values
   differ and by how many quantization steps. For every activation FakeQuantize: its input range
   (input_low, input_high) in both builds, and the change of each limit as a fraction of the shipped range's
   width; ranges equal to 1e-5 (relative) are counted, not listed.
2. **Attention.** The attention's q @ k^T multiplies two quantized activations, which OpenVINO runs as an
   i8 x i8 MatMul inside ScaledDotProductAttention. For the shipped encoder as compiled (this CPU's int8
   kernels) and folded to exact f32 arithmetic (:func:`engine.inference.int8_arithmetic.exact_f32`), each
   attention's output is compared with numpy's attention (float64) on the same q, k, v, on ``--images``
   calibration images evenly spread over the sorted files (calibration data, not eval data): relative error
   max |y - y_numpy| / max |y_numpy|, max over the images, per attention block.

A minute or two on 2 cores; not a test (the overflow itself is asserted by
tests/engine/inference/test_int8_arithmetic.py).
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

SHIPPED = REPO / "assets" / "models" / "litemedsam" / "encoder_int8.xml"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def constants(model) -> list:
    return [op for op in model.get_ordered_ops() if op.get_type_name() == "Constant"]


def weight_difference(a, b) -> tuple[int, int, int, int]:
    """(int8 values differing, int8 values in all, tensors with a difference, largest difference in steps)."""
    changed = total = tensors = largest = 0
    for ca, cb in zip(constants(a), constants(b)):
        x, y = ca.get_data(), cb.get_data()
        if x.dtype != np.int8:
            continue
        if x.shape != y.shape or y.dtype != np.int8:
            raise SystemExit(f"the two graphs differ in structure at {ca.get_friendly_name()}: not one recipe")
        d = np.abs(x.astype(np.int16) - y.astype(np.int16))
        total += x.size
        if d.any():
            changed += int((d != 0).sum())
            tensors += 1
            largest = max(largest, int(d.max()))
    return changed, total, tensors, largest


def activation_ranges(model) -> list[tuple[str, float, float]]:
    """(name, input_low, input_high) of every activation FakeQuantize, in graph order (per-tensor ranges: the
    min of input_low and the max of input_high where they are per channel)."""
    from engine.inference.int8_arithmetic import is_activation_fake_quantize

    out = []
    for op in model.get_ordered_ops():
        if is_activation_fake_quantize(op):
            lo, hi = (op.input_value(i).get_node().get_data() for i in (1, 2))
            out.append((op.get_friendly_name(), float(np.min(lo)), float(np.max(hi))))
    return out


def attention_errors(core, model, data, threads: int) -> np.ndarray:
    """(images, attention blocks) relative error of OpenVINO's attention against numpy's on the same q, k, v."""
    sdpa = [op for op in model.get_ordered_ops() if op.get_type_name() == "ScaledDotProductAttention"]
    model.add_outputs([op.input_value(i) for op in sdpa for i in range(3)] + [op.output(0) for op in sdpa])
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads})

    def value(result, port):
        o = next(o for o in compiled.outputs if o.get_names() & port.get_names())
        return np.asarray(result[o], np.float64)

    errors = np.zeros((len(data), len(sdpa)))
    for i, x in enumerate(data):
        r = compiled(x)
        for j, op in enumerate(sdpa):
            q, k, v = (value(r, op.input_value(n)) for n in range(3))
            y = value(r, op.output(0))
            mask = op.input_value(3).get_node().get_data().astype(np.float64)
            scale = float(op.input_value(4).get_node().get_data().ravel()[0])
            s = q @ np.swapaxes(k, -1, -2) * scale + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            exact = s @ v
            errors[i, j] = np.abs(y - exact).max() / np.abs(exact).max()
    return errors


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("other", type=Path, help="the other build's encoder_int8.xml")
    p.add_argument("--shipped", type=Path, default=SHIPPED)
    p.add_argument("--calib", type=Path, default=REPO.parent / "shared" / "data" / "calib")
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / f"int8-builds-{dt.date.today()}.md")
    args = p.parse_args()

    import openvino as ov

    from engine.base.sysinfo import describe, markdown
    from engine.inference.int8_arithmetic import exact_f32, probe_error
    from quantization.calibration import calibration_inputs

    for path in (args.other, args.shipped):
        if not path.is_file() or not path.with_suffix(".bin").is_file():
            raise SystemExit(f"{path}: no such INT8 encoder (.xml with its .bin)")
    if not args.calib.is_dir():
        raise SystemExit(f"no calibration folder at {args.calib}: pass --calib DIR (shared/data/calib)")
    core = ov.Core()
    a, b = core.read_model(str(args.shipped)), core.read_model(str(args.other))
    changed, total, tensors, largest = weight_difference(a, b)
    ra, rb = activation_ranges(a), activation_ranges(b)
    if len(ra) != len(rb):
        raise SystemExit("the two graphs have different activation quantizers: not one recipe")

    lines = [f"# Two INT8 builds of one recipe, and the attention on this CPU ({dt.datetime.now():%Y-%m-%d %H:%M})\n\n",
             markdown(describe()),
             f"- int8 probe (relative error of one u8 x i8 MatMul against numpy): {probe_error():.3f}\n",
             f"- command: `python bench/int8_builds.py {args.other} --images {args.images}`\n",
             f"- A (shipped): `{args.shipped.relative_to(REPO) if args.shipped.is_relative_to(REPO) else args.shipped}` "
             f"(.bin sha256 `{sha256(args.shipped.with_suffix('.bin'))[:16]}…`)\n",
             f"- B (other): `{args.other}` (.bin sha256 `{sha256(args.other.with_suffix('.bin'))[:16]}…`)\n\n",
             "## 1. Build difference\n\n",
             f"- int8 weights: {changed} of {total} differ, in {tensors} tensors, by at most {largest} step(s)\n"]
    same, listed = 0, []
    for (name, lo_a, hi_a), (_, lo_b, hi_b) in zip(ra, rb):
        if np.isclose(lo_a, lo_b, rtol=1e-5, atol=1e-7) and np.isclose(hi_a, hi_b, rtol=1e-5, atol=1e-7):
            same += 1
            continue
        width = hi_a - lo_a
        listed.append(f"| `{name}` | [{lo_a:.4f}, {hi_a:.4f}] | [{lo_b:.4f}, {hi_b:.4f}] | "
                      f"{(lo_b - lo_a) / width:+.4f} | {(hi_b - hi_a) / width:+.4f} |\n")
    lines.append(f"- activation ranges: {same} of {len(ra)} equal to 1e-5 (relative); the others:\n\n")
    if listed:
        lines += ["| activation FakeQuantize | A range | B range | low moved / A width | high moved / A width |\n",
                  "|---|---|---|---:|---:|\n", *listed]

    data = calibration_inputs(args.calib)
    data = [data[i] for i in np.linspace(0, len(data) - 1, min(args.images, len(data))).round().astype(int)]
    native = attention_errors(core, core.read_model(str(args.shipped)), data, args.threads)
    folded, _ = exact_f32(core.read_model(str(args.shipped)))
    exact = attention_errors(core, folded, data, args.threads)
    lines += ["\n## 2. Attention of the shipped encoder against numpy (float64) on the same q, k, v\n\n",
              f"Relative error, max over {len(data)} calibration images, per attention block in graph order.\n\n",
              "| compiled as | " + " | ".join(f"block {j}" for j in range(native.shape[1])) + " |\n",
              "|---|" + "---:|" * native.shape[1] + "\n",
              "| this CPU's int8 kernels | " + " | ".join(f"{e:.5f}" for e in native.max(0)) + " |\n",
              "| exact f32 arithmetic (`exact_f32`) | " + " | ".join(f"{e:.5f}" for e in exact.max(0)) + " |\n"]
    args.out.write_text("".join(lines), encoding="utf-8")
    print("".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
