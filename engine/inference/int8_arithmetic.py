"""Whether this CPU's INT8 kernels compute INT8 arithmetic exactly, and the exact f32 form of an INT8 graph.

On CPUs without VNNI (AVX2 only: AMD Zen 1-3, Intel before Ice Lake / Alder Lake; AVX-512 without VNNI)
OpenVINO's u8 x i8 layers multiply with ``vpmaddubsw``, which adds two u8*i8 products into a *saturating*
int16: where an activation is near the top of its quantization range the sum overflows (255 * 127 * 2 >
32767) and the layer's output is clipped. Measured on an AVX2 Zen 3 (2026-12-07): a 640-channel MatMul
with inputs near the top of their range off by up to 25 % of its output scale, the shipped INT8 encoder's
embeddings 0.20 (relative L2) from FP32 instead of 0.17, and on the held-out datasets of ``python -m
quantization validate`` 2D Microscopy -0.017 DSC below FP32 instead of -0.005 (docs/quantization.md,
"INT8 without VNNI"). VNNI/AMX accumulate in int32 and are exact, so one model gave different masks on
different laptops.

Where the kernels overflow, :func:`exact_f32` turns an INT8 graph into one OpenVINO runs in f32 with the
same quantization: every int8 weight (``Constant(i8) -> Convert -> [Subtract] -> Multiply``, the form NNCF
saves) becomes an f32 constant of the same dequantized values (:func:`fold_int8_weights`), and every
activation FakeQuantize is written out as the f32 operations that define it (:func:`decompose_fake_quantizes`;
needed for the attention's q @ k^T, two quantized activations that OpenVINO would otherwise multiply in
i8). No int8 kernel is left; the result equals exact INT8 arithmetic up to f32 rounding (speed:
bench/results/int8-exact-2026-12-07.md).

:func:`int8_overflows` asks the CPU, not a table of flags (which would need /proc/cpuinfo, absent on
Windows and macOS): it runs one small u8 x i8 MatMul whose inputs sit at the top of their range and
compares it with the exact integer result.
"""

from __future__ import annotations

import functools

import numpy as np

_INT_TYPES = ("i8", "u8", "i4", "u4")

#: relative error of the probe (max |OpenVINO - exact| over the exact output's max) above which the CPU's
#: int8 kernels count as overflowing; exact kernels give ~1e-3 (single FakeQuantize rounding steps at .5
#: boundaries, f32 vs f64), the saturating ones of an AVX2 Zen 3 0.33
OVERFLOW_TOLERANCE = 0.02


def _const(node) -> np.ndarray | None:
    return node.get_data() if node.get_type_name() == "Constant" else None


def _dequantized_weight(mul) -> np.ndarray | None:
    """The f32 values of ``Multiply(Convert(Constant int) [- zero point], scale)``, or None where ``mul`` is
    not such a weight decompression."""
    if mul.get_type_name() != "Multiply":
        return None
    scale = _const(mul.input_value(1).get_node())
    src = mul.input_value(0).get_node()
    if scale is None:
        return None
    zero = np.float32(0)
    if src.get_type_name() == "Subtract":
        zp_node = src.input_value(1).get_node()
        if zp_node.get_type_name() == "Convert":
            zp_node = zp_node.input_value(0).get_node()
        zp = _const(zp_node)
        if zp is None:
            return None
        zero = zp.astype(np.float32)
        src = src.input_value(0).get_node()
    if src.get_type_name() != "Convert":
        return None
    w = src.input_value(0).get_node()
    if w.get_type_name() != "Constant" or w.get_element_type().get_type_name() not in _INT_TYPES:
        return None
    return ((w.get_data().astype(np.float32) - zero) * scale.astype(np.float32)).astype(np.float32)


def is_activation_fake_quantize(op) -> bool:
    """True for a FakeQuantize on an activation (not on a weight constant, nor on its Convert)."""
    return op.get_type_name() == "FakeQuantize" and \
        op.input_value(0).get_node().get_type_name() not in ("Constant", "Convert")


def has_quantized_activations(model) -> bool:
    """True where ``model`` (an ``openvino.Model``) has a FakeQuantize on an activation, i.e. runs u8/i8
    kernels; a weight-only compressed graph (activations in float) has none and needs no rewriting."""
    return any(is_activation_fake_quantize(op) for op in model.get_ops())


def _rewrite(model, replacement) -> tuple[object, int]:
    """Replace, in place and in graph order, every op of ``model`` for which ``replacement(op)`` returns a node
    (given the op's name, so outputs keep theirs); returns (model, number replaced)."""
    n = 0
    for op in model.get_ordered_ops():
        new = replacement(op)
        if new is None:
            continue
        new.set_friendly_name(op.get_friendly_name())
        for target in list(op.output(0).get_target_inputs()):
            target.replace_source_output(new.output(0))
        n += 1
    if n:
        model.validate_nodes_and_infer_types()
    return model, n


def fold_int8_weights(model) -> tuple[object, int]:
    """``model`` (an ``openvino.Model``, changed in place) with every int8 weight decompression replaced by
    an f32 constant of the same values (module docstring); inputs, outputs and every activation
    FakeQuantize unchanged. Returns (model, number of weights folded); 0: nothing to fold."""
    from openvino import opset13 as ops

    def constant(op):
        w = _dequantized_weight(op)
        return None if w is None else ops.constant(w)

    return _rewrite(model, constant)


def decompose_fake_quantizes(model) -> tuple[object, int]:
    """``model`` (changed in place) with every activation FakeQuantize written out as f32 operations of the same
    definition (clamp to [input_low, input_high], scale to ``levels - 1`` steps, round half to even, scale to
    [output_low, output_high]). Folding the weights is not enough: the attention's q @ k^T takes two quantized
    *activations* (no weight to fold), and OpenVINO still runs it as an i8 x i8 MatMul, which saturates too
    (up to 14 % of one attention block's output on the shipped encoder, AVX2 Zen 3). Without a FakeQuantize no
    int8 kernel is left. Returns (model, number of FakeQuantizes written out)."""
    from openvino import opset13 as ops

    def written_out(fq):
        if not is_activation_fake_quantize(fq):
            return None
        x, il, ih, ol, oh = (fq.input_value(i) for i in range(5))
        steps = ops.constant(np.float32(int(fq.get_attributes()["levels"]) - 1))
        q = ops.round(ops.divide(ops.multiply(ops.subtract(ops.minimum(ops.maximum(x, il), ih), il), steps),
                                 ops.subtract(ih, il)), "half_to_even")
        return ops.add(ops.divide(ops.multiply(q, ops.subtract(oh, ol)), steps), ol)

    return _rewrite(model, written_out)


def exact_f32(model) -> tuple[object, int]:
    """``model`` (changed in place) as exact INT8 arithmetic in f32: :func:`fold_int8_weights` then
    :func:`decompose_fake_quantizes`, so OpenVINO finds no int8 kernel to run. Returns (model, number of
    weights and FakeQuantizes rewritten); 0: an FP32 or weight-only graph (no quantized activations: nothing
    runs on int8 kernels), unchanged."""
    if not has_quantized_activations(model):
        return model, 0
    model, weights = fold_int8_weights(model)
    model, fqs = decompose_fake_quantizes(model)
    return model, weights + fqs


def _probe_model(w: np.ndarray, scale: np.ndarray, lo: float, hi: float, tokens: int):
    import openvino as ov
    from openvino import opset13 as ops

    x = ops.parameter([1, tokens, w.shape[1]], np.float32, name="x")
    c = lambda v: ops.constant(np.float32(v))  # noqa: E731
    fq = ops.fake_quantize(x, c(lo), c(hi), c(lo), c(hi), 256)
    wf = ops.multiply(ops.convert(ops.constant(w), np.float32), ops.constant(scale))
    return ov.Model([ops.matmul(fq, wf, False, True)], [x])


@functools.lru_cache(maxsize=1)
def probe_error() -> float:
    """Relative error of this CPU's int8 MatMul on inputs near the top of their range (module docstring):
    ~1e-3 where the kernels are exact, 0.33 on the saturating kernels of an AVX2 Zen 3. Compiled and run
    once per process (~0.1 s)."""
    import openvino as ov

    rng = np.random.default_rng(0)
    k, n, tokens, lo, hi = 256, 32, 64, -0.2, 1.2
    w = rng.integers(-127, 128, size=(n, k)).astype(np.int8)
    scale = (rng.uniform(0.5, 1.5, size=(n, 1)) / 127).astype(np.float32)
    x = rng.uniform(0.9, 1.2, size=(1, tokens, k)).astype(np.float32)
    compiled = ov.Core().compile_model(_probe_model(w, scale, lo, hi, tokens), "CPU",
                                       {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1})
    step = (hi - lo) / 255
    xq = np.clip(np.round((x.astype(np.float64) - lo) / step), 0, 255) * step + lo
    exact = xq @ (w.astype(np.float64) * scale).T
    return float(np.abs(compiled(x)[0] - exact).max() / np.abs(exact).max())


def int8_overflows() -> bool:
    """True where this CPU's int8 kernels saturate (no VNNI/AMX), so INT8 graphs are run folded."""
    return probe_error() > OVERFLOW_TOLERANCE


__all__ = ["OVERFLOW_TOLERANCE", "decompose_fake_quantizes", "exact_f32", "fold_int8_weights", "is_activation_fake_quantize", "has_quantized_activations", "int8_overflows", "probe_error"]
