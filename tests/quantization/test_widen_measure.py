"""How the fc2 widening step measures its extremes (quantization.quantize.activation_extremes): through the quantized
network as exact INT8 arithmetic (recipe ``transformer-ign-stem-widenfc2``, shipped until 2026-12-07), or on float
activations (the shipped ``transformer-ign-stem-widenfc2-fa``). The point of the second: an INT8 network turns a 1e-6 change of the input into
quantization-sized noise (docs/quantization.md, "INT8 without VNNI" 4. and 5.), so extremes measured through it differ
between two CPUs' f32 rounding and the build with them; on float activations they do not. One real calibration
image through the shipped INT8 encoder, four times; about 20 s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.inference.manifest import bundled_models_dir
from tests.conftest import DATA, needs_shared

nncf = pytest.importorskip("nncf")
ov = pytest.importorskip("openvino")

from quantization import quantize as qz  # noqa: E402
from quantization.calibration import calibration_inputs  # noqa: E402

pytestmark = needs_shared

FC2 = r"\.mlp/aten::gelu/"


@pytest.fixture(scope="module")
def int8_encoder():
    path = bundled_models_dir() / "litemedsam" / "encoder_int8.xml"
    if not path.is_file():
        pytest.skip(f"no INT8 encoder IR at {path}")
    return ov.Core().read_model(str(path))


@pytest.fixture(scope="module")
def image_and_perturbed():
    calib = Path(DATA) / "calib"
    if not calib.is_dir():
        pytest.skip(f"no calibration images at {calib}")
    x = calibration_inputs(calib)[0]
    rng = np.random.default_rng(0)
    return [x], [(x * (1 + 1e-6 * rng.standard_normal(x.shape))).astype(np.float32)]


def _fc2_max(ext: dict) -> dict[str, float]:
    import re

    return {k: float(v[:, 1].max()) for k, v in ext.items() if re.search(FC2, k)}


def test_float_activation_extremes_do_not_move_with_a_1e6_change_and_quantized_ones_do(int8_encoder, image_and_perturbed):
    x, xp = image_and_perturbed
    before = [op.get_friendly_name() for op in int8_encoder.get_ordered_ops()]
    moved = {}
    for fa in (False, True):
        a = _fc2_max(qz.activation_extremes(int8_encoder, x, exact=True, float_activations=fa))
        b = _fc2_max(qz.activation_extremes(int8_encoder, xp, exact=True, float_activations=fa))
        assert len(a) == 10 and a.keys() == b.keys()  # the ten MLP fc2 inputs
        moved[fa] = max(abs(b[k] - a[k]) / abs(a[k]) for k in a)
    assert moved[True] < 1e-4, moved          # measured 1.4e-5 at most over 60 images
    assert moved[False] > 100 * moved[True], moved  # measured up to 0.18 through the quantized network
    # measuring works on a clone: the model's own graph is untouched
    assert [op.get_friendly_name() for op in int8_encoder.get_ordered_ops()] == before


def test_the_fa_variant_measures_on_float_activations_and_a_bad_measure_is_refused(int8_encoder, image_and_perturbed):
    kw = qz.variant_kwargs("transformer-ign-stem-widenfc2-fa", ov.Core().read_model(
        str(bundled_models_dir() / "litemedsam" / "encoder_fp32.xml")))
    assert kw["widen_heavy_tails"] == (1.25, FC2, "float")
    assert qz.CHOSEN == "transformer-ign-stem-widenfc2-fa" and qz.CHOSEN in qz.VARIANTS
    with pytest.raises(ValueError, match="measure must be"):
        qz.widen_heavy_tailed_ranges(int8_encoder.clone(), image_and_perturbed[0], 1.2, FC2, measure="int8")


def _range(fq) -> tuple[float, float]:
    return tuple(float(fq.input_value(i).get_node().get_data().ravel()[0]) for i in (1, 2))


def test_the_widening_logs_every_ratio_and_widens_exactly_the_ranges_it_logs_as_widened(int8_encoder,
                                                                                        image_and_perturbed):
    """The build log's decision lines (one per fc2 range, with its overflow ratio) are the decisions taken: at a
    threshold of 1.0 every range the image overflows is widened to its extremes and logged so, the others keep
    their limits and are logged as kept; at a threshold no ratio reaches, nothing is widened."""
    x = image_and_perturbed[0]
    model = int8_encoder.clone()
    before = {fq.get_friendly_name(): _range(fq) for fq in qz._activation_fake_quantizes(model)}
    lines: list[str] = []
    widened = qz.widen_heavy_tailed_ranges(model, x, 1.0, FC2, measure="float", log=lines.append)
    assert len(lines) == 10 and all(": overflow ratio " in ln for ln in lines)
    logged = {ln.split(": overflow ratio ")[0]: ln for ln in lines}
    assert set(widened) == {k for k, ln in logged.items() if "(widened," in ln}
    assert 0 < len(widened) < 10  # one image overflows some of NNCF's ranges (mean of 60 maxima), not all
    for fq in qz._activation_fake_quantizes(model):
        name = fq.get_friendly_name()
        if name in widened:
            lo, hi = _range(fq)
            assert lo <= before[name][0] and hi >= before[name][1] and (lo, hi) != before[name]
            ratio = float(logged[name].split(": overflow ratio ")[1].split()[0])
            assert ratio == pytest.approx(max(hi / before[name][1], lo / before[name][0]), rel=1e-4)
        else:
            assert _range(fq) == before[name]
    lines.clear()
    assert qz.widen_heavy_tailed_ranges(int8_encoder.clone(), x, 1e9, FC2, measure="float", log=lines.append) == []
    assert len(lines) == 10 and all("(kept," in ln for ln in lines)
