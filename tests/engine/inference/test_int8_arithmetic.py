"""INT8 layers on CPUs whose int8 kernels saturate (engine.inference.int8_arithmetic): the overflow, the probe that
detects it, the folding that avoids it, and that a session runs the shipped INT8 model folded exactly where the
probe says so.

A one-layer INT8 model in the form NNCF saves (FakeQuantize on the activations, ``Constant(i8) -> Convert ->
Multiply`` weights) is run by OpenVINO and compared with numpy's exact integer arithmetic, with activations near
the zero point and near the top of their range. Seconds, plus one session of the shipped INT8 model.
"""

from __future__ import annotations

import numpy as np
import openvino as ov
import pydicom
import pytest
from openvino import opset13 as ops

from engine.base.sysinfo import describe
from engine.inference import int8_arithmetic as ia
from engine.inference import precision as pr
from engine.inference.manifest import find_model
from engine.inference.session import Session, SessionConfig
from engine.inference.transforms import preprocess
from tests.conftest import REPO

K, N, M = 640, 96, 1024  # a LiteMedSAM MLP fc2 is 640 -> 160 over 4096 tokens; smaller keeps it fast
LO, HI = -0.2, 1.2       # an asymmetric (u8) activation range, like a GELU output's
VNNI = {"avx512_vnni", "avx_vnni", "amx_int8"}


@pytest.fixture(scope="module")
def layer():
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, size=(N, K)).astype(np.int8)
    scale = (rng.uniform(0.5, 1.5, size=(N, 1)) / 127).astype(np.float32)
    return w, scale


def model_of(w, scale):
    x = ops.parameter([1, M, K], np.float32, name="x")
    c = lambda v: ops.constant(np.float32(v))  # noqa: E731
    fq = ops.fake_quantize(x, c(LO), c(HI), c(LO), c(HI), 256)
    wf = ops.multiply(ops.convert(ops.constant(w), np.float32), ops.constant(scale))
    return ov.Model([ops.matmul(fq, wf, False, True)], [x])


def exact(x, w, scale):
    s = (HI - LO) / 255
    xq = np.clip(np.round((x.astype(np.float64) - LO) / s), 0, 255) * s + LO
    return xq @ (w.astype(np.float64) * scale).T


def max_error(model, x, ref):
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return float(np.abs(compiled(x)[0] - ref).max() / np.abs(ref).max())


def inputs():
    rng = np.random.default_rng(1)
    near_zero_point = rng.normal(0.05, 0.1, size=(1, M, K)).astype(np.float32)
    near_top = rng.uniform(0.9, 1.2, size=(1, M, K)).astype(np.float32)
    return near_zero_point, near_top


def test_folded_layer_computes_the_exact_int8_result_where_the_int8_kernel_may_overflow(layer):
    w, scale = layer
    model = model_of(w, scale)
    assert ia.has_quantized_activations(model)
    folded, n = ia.exact_f32(model)
    assert n == 2 and ia.exact_f32(folded)[1] == 0  # one weight, one FakeQuantize; nothing left after
    for x in inputs():
        # FakeQuantize rounding at .5 boundaries (f32 vs f64) moves single steps: 1e-3 of the output scale
        assert max_error(folded, x, exact(x, w, scale)) < 2e-3


def test_int8_kernel_overflows_near_the_top_of_the_range_exactly_where_the_probe_says_so(layer):
    w, scale = layer
    near_zero_point, near_top = inputs()
    assert max_error(model_of(w, scale), near_zero_point, exact(near_zero_point, w, scale)) < 2e-3
    err = max_error(model_of(w, scale), near_top, exact(near_top, w, scale))
    # 2026-12-07, AVX2 Zen 3 (no VNNI: vpmaddubsw's int16 saturates): 0.25 of the output scale
    assert (err > 0.05) == ia.int8_overflows(), (err, ia.probe_error())
    assert ia.probe_error() < 2e-3 or ia.probe_error() > 0.05  # never in between: the threshold is not a guess
    if VNNI & set(describe()["flags"]):
        assert not ia.int8_overflows(), "a VNNI CPU accumulates u8*i8 in int32"


def test_weight_only_compressed_and_float_graphs_are_left_alone():
    entry = find_model("litemedsam-int8")
    core = ov.Core()
    assert ia.has_quantized_activations(core.read_model(str(entry.path("encoder"))))
    for graph in ("decoder", "decoder_prefix"):  # 8-bit weights, activations in float: nothing saturates
        assert not ia.has_quantized_activations(core.read_model(str(entry.path(graph))))
    assert not ia.has_quantized_activations(core.read_model(str(find_model("litemedsam-fp32").path("encoder"))))


def test_int8_mode_follows_the_probe_and_explicit_modes_are_kept():
    assert pr.int8_mode("auto", overflows=True) == ("exact", pr.EXACT_REASON)
    assert pr.int8_mode("auto", overflows=False)[0] == "native"
    assert pr.int8_mode("native", overflows=True)[0] == "native"
    assert pr.int8_mode("exact", overflows=False)[0] == "exact"
    with pytest.raises(ValueError, match="int8 arithmetic must be one of"):
        pr.int8_mode("fast")
    c = pr.resolve("auto", int8_overflows=True)
    int8 = find_model("litemedsam-int8")
    first, why = c.explain(int8)
    assert "int8 layers as exact f32 arithmetic" in first and pr.EXACT_REASON in why
    assert "int8 layers on int8 kernels" in pr.resolve("f32", int8_overflows=False).explain(int8)[0]


def _int8_kernels(session: Session) -> list[str]:
    """Compute layers of the compiled encoder that run on u8/i8 data (moving u8 data, e.g. a Transpose, is exact)."""
    rt = session.runtime.compile("encoder").get_runtime_model()
    return [op.get_friendly_name() for op in rt.get_ops()
            if op.get_rt_info()["runtimePrecision"].astype(str) in ("u8", "i8") and
            op.get_rt_info()["layerType"].astype(str) in ("FullyConnected", "MatMul", "Convolution", "Deconvolution")]


def test_session_runs_the_int8_model_folded_where_the_kernels_overflow_and_on_int8_kernels_elsewhere():
    auto = Session(SessionConfig("litemedsam-int8", threads=1))
    assert auto.precision_choice.int8 == ("exact" if ia.int8_overflows() else "native")
    native = Session(SessionConfig("litemedsam-int8", threads=1, int8="native"))
    folded = Session(SessionConfig("litemedsam-int8", threads=1, int8="exact"))
    assert _int8_kernels(native) and not _int8_kernels(folded)
    assert bool(_int8_kernels(auto)) == (not ia.int8_overflows())
    # a real slice: the bundled CT sample, windowed to uint8 the simple way (min-max)
    ct = pydicom.dcmread(str(REPO / "assets" / "sample" / "CT_small.dcm")).pixel_array.astype(np.float32)
    img = np.repeat(((ct - ct.min()) / (ct.max() - ct.min()) * 255).astype(np.uint8)[..., None], 3, axis=2)
    emb = {k: s.encode(img)[0]["embedding"].astype(np.float32) for k, s in (("native", native), ("folded", folded))}
    fp32 = Session(SessionConfig("litemedsam-fp32", threads=1)).encode(img)[0]["embedding"].astype(np.float32)
    err = {k: float(np.linalg.norm(e - fp32) / np.linalg.norm(fp32)) for k, e in emb.items()}
    # both quantized: near FP32 but not equal (0.16-0.19 on the calibration images, bench/results/int8-noise-*)
    assert all(0.01 < e < 0.4 for e in err.values()), err
    # the folded session runs exactly the exact_f32 graph (compiled here independently, same settings)
    core = ov.Core()
    graph, n = ia.exact_f32(core.read_model(str(find_model("litemedsam-int8").path("encoder"))))
    assert n > 0
    x = folded.runtime.infer("encoder", {"image": preprocess(img)[0]})["embedding"]
    y = core.compile_model(graph, "CPU", folded.runtime.config)({"image": preprocess(img)[0]})["embedding"]
    assert np.allclose(x, y, rtol=0, atol=1e-5 * np.abs(y).max())
