"""The candidate INT8 recipe ``transformer-ign-stem-minmax`` as the quantization CLI builds it, without building it.

What ``nncf.quantize`` receives for the recipe (model type, ignored scope, range estimators, calibration subset) is
checked against what docs/quantization.md states, by intercepting the call on the shipped FP32 encoder IR with
made-up calibration inputs; and ``python -m quantization build --recipe`` is checked to hand the recipe to the
build (and to refuse a non-shipped recipe in assets/models). The full build path is tests/quantization/test_build.py.
A few seconds (reading the FP32 IR).
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.inference.manifest import bundled_models_dir
from tests.conftest import REPO

nncf = pytest.importorskip("nncf")
ov = pytest.importorskip("openvino")

from nncf.quantization.range_estimator import RangeEstimatorParametersSet  # noqa: E402

from quantization import __main__ as cli  # noqa: E402
from quantization import build as build_mod  # noqa: E402
from quantization import quantize as qz  # noqa: E402

RECIPE = "transformer-ign-stem-minmax"
#: the recipe as docs/quantization.md states it (section "Candidate recipe")
DOC_LINE = ("`transformer-ign-stem-minmax`: `model_type=TRANSFORMER` (MIXED preset, SmoothQuant alpha 0.95 on the "
            "MatMuls, FastBiasCorrection), the two `patch_embed` convolutions ignored (f32), activation ranges "
            "`RangeEstimatorParametersSet.MINMAX` (global min/max over the calibration images), weight ranges NNCF's "
            "default, no fc2 widening, 60 calibration images evenly spread over the sorted `shared/data/calib` files")


@pytest.fixture(scope="module")
def fp32_encoder():
    path = bundled_models_dir() / "litemedsam" / "encoder_fp32.xml"
    if not path.is_file():
        pytest.skip(f"no FP32 encoder IR at {path}")
    return ov.Core().read_model(str(path))


def _consumers(model, names):
    """Friendly name of what each ignored node feeds: the folded-BatchNorm Add, which keeps the PyTorch module name
    (OpenVINO renames the convolution itself to ``Multiply_NNN``)."""
    ops = {op.get_friendly_name(): op for op in model.get_ops()}
    out = []
    for n in names:
        assert ops[n].get_type_name() == "Convolution", n
        (consumer,) = [t.get_node() for t in ops[n].output(0).get_target_inputs()]
        out.append(consumer.get_friendly_name())
    return sorted(out)


def test_the_recipe_is_what_the_docs_say(fp32_encoder, monkeypatch):
    calls = {}

    def fake_quantize(model, dataset, **kw):
        calls["kw"] = kw
        calls["items"] = list(dataset.get_inference_data())
        return model

    images = [np.full((1, 3, 256, 256), i, np.float32) for i in range(181)]
    monkeypatch.setattr(qz, "calibration_inputs", lambda calib: images)
    monkeypatch.setattr(qz.nncf, "quantize", fake_quantize)
    _, note = qz.quantize_encoder(fp32_encoder, REPO, variant=RECIPE)
    kw = calls["kw"]
    assert set(kw) == {"subset_size", "model_type", "ignored_scope", "advanced_parameters"}
    assert kw["model_type"] == nncf.ModelType.TRANSFORMER
    assert "preset" not in kw  # TRANSFORMER implies MIXED
    # ignored: exactly the two patch_embed convolutions (3->32, 32->64 channels), by their graph names
    names = kw["ignored_scope"].names
    assert len(names) == 2 and not kw["ignored_scope"].types and not kw["ignored_scope"].patterns
    consumers = _consumers(fp32_encoder, names)
    assert [c.split("/aten::")[0].split(".enc.")[-1] for c in consumers] == \
        ["patch_embed.seq.0.bn", "patch_embed.seq.2.bn"], consumers
    ops = {op.get_friendly_name(): op for op in fp32_encoder.get_ops()}
    assert sorted(int(ops[n].input(1).get_partial_shape()[0].get_length()) for n in names) == [32, 64]
    adv = kw["advanced_parameters"]
    assert adv.activations_range_estimator_params == RangeEstimatorParametersSet.MINMAX
    assert adv.weights_range_estimator_params == nncf.quantization.advanced_parameters.RangeEstimatorParameters()
    assert adv.smooth_quant_alphas == nncf.AdvancedSmoothQuantParameters()  # NNCF's (0.95 on MatMuls)
    # 60 calibration images evenly spread over the 181 sorted files: first, last, and the spread between
    assert qz.DEFAULT_SUBSET == 60 and kw["subset_size"] == 60 and len(calls["items"]) == 60
    picked = [int(x[0, 0, 0, 0]) for x in calls["items"]]
    assert picked[0] == 0 and picked[-1] == 180 and picked[30] == 92
    assert f"'{RECIPE}', 60 calibration images" in note and "widened" not in note
    doc = " ".join((REPO / "docs" / "quantization.md").read_text(encoding="utf-8").split())
    assert DOC_LINE in doc


def test_build_cli_hands_the_recipe_to_the_build_and_keeps_it_out_of_assets_models(monkeypatch, tmp_path, capsys):
    seen = {}
    monkeypatch.setattr(build_mod, "build", lambda out, calib, **kw: seen.update(out=out, **kw) or [])
    assert cli.main(["build", "--recipe", RECIPE, "--out", str(tmp_path), "--no-report", "--calib-subset", "30"]) == 0
    assert seen == {"out": tmp_path, "int8": True, "recipe": RECIPE, "subset_size": 30}
    seen.clear()
    assert cli.main(["build", "--no-report"]) == 0  # the shipped recipe, into assets/models
    assert seen == {"out": build_mod.DEFAULT_OUT, "int8": True, "recipe": None, "subset_size": None}
    seen.clear()
    assert qz.CHOSEN != RECIPE  # shipped for a few hours on 2026-12-07, withdrawn (docs/quantization.md)
    assert cli.main(["build", "--recipe", RECIPE, "--no-report"]) == 2
    assert not seen and "not the shipped one" in capsys.readouterr().err
    assert cli.main(["build", "--recipe", "no-such-recipe", "--out", str(tmp_path)]) == 2
    assert not seen
