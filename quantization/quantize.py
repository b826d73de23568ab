"""NNCF post-training INT8 quantization of the image encoder (OpenVINO IR in, OpenVINO IR out).

The chosen configuration and the evidence for it (speed and accuracy per variant) are in
``docs/quantization.md``; :data:`VARIANTS` holds every configuration that was compared so that
``bench/quant_variants.py`` can rerun the comparison.

A variant is a name; :func:`variant_kwargs` turns it into keyword arguments for ``nncf.quantize``
(plus one private key, ``accuracy_control``). Some ignored scopes need the
node names of the FP32 IR (OpenVINO renames BatchNorm-fused convolutions to ``Multiply_NNN``), so
they are resolved from the model's graph.
"""

from __future__ import annotations

import re
from pathlib import Path

import nncf
import numpy as np
import openvino as ov

from .calibration import calibration_inputs

#: every compared configuration (docs/quantization.md has the table); each was measured with 60
#: calibration images, "default" and "transformer" also with all 181
VARIANTS = [
    "default",                 # nncf.quantize defaults (preset PERFORMANCE, no model_type)
    "mixed",                   # preset MIXED (asymmetric activations)
    "transformer",             # model_type TRANSFORMER (implies MIXED; SmoothQuant alpha 0.95 on MatMuls)
    "transformer-mixed",       # identical to "transformer" (same IR)
    "transformer-nosq",        # TRANSFORMER without SmoothQuant
    "transformer-sq0.5",       # SmoothQuant alpha 0.5
    "transformer-nobc",        # no bias correction at all
    "transformer-ign-stem",    # patch_embed convs in f32  <- CHOSEN
    "transformer-ac",          # quantize_with_accuracy_control (label-free cosine metric), from TRANSFORMER
]

#: defined (variant_kwargs knows them) but not measured yet: candidates for a later comparison
EXTRA_VARIANTS = [
    "transformer-sq0.8",
    "transformer-ign-sdpa",    # attention q@k / attn@v (ScaledDotProductAttention inputs) in f32
    "transformer-ign-neck",    # the two neck convs in f32
    "transformer-ign-mvn",     # no quantizers in front of LayerNorm (MVN)
    "transformer-ign-fc2",     # the 10 MLP fc2 MatMuls (input after GELU) in f32
    "transformer-mixed-ign-stem",
    "transformer-fbc-off",     # full BiasCorrection instead of FastBiasCorrection (slow to quantize)
]

CHOSEN = "transformer-ign-stem"

#: calibration images used by default, evenly spread over the sorted calibration files (60 gave the
#: same embedding fidelity as all 181: docs/quantization.md); quantizing takes a third of the time
DEFAULT_SUBSET = 60

_ADD_SUFFIX = "/aten::batch_norm/BatchNormInference"


def _conv_names(model: ov.Model, module_regex: str) -> list[str]:
    """Names of the (Group)Convolution nodes of the PyTorch modules matching ``module_regex``.

    After BatchNorm folding a Conv2d_BN's convolution is called ``Multiply_NNN``; the module name
    survives on the Add that carries the folded BN bias, so walk from there.
    """
    rx = re.compile(module_regex)
    names = []
    for op in model.get_ops():
        name = op.get_friendly_name()
        if op.get_type_name() in ("Convolution", "GroupConvolution") and rx.search(name):
            names.append(name)
        elif op.get_type_name() == "Add" and name.endswith(_ADD_SUFFIX) and rx.search(name):
            src = op.input(0).get_source_output().get_node()
            if src.get_type_name() in ("Convolution", "GroupConvolution"):
                names.append(src.get_friendly_name())
    return sorted(set(names))


def _matmul_names(model: ov.Model, module_regex: str) -> list[str]:
    rx = re.compile(module_regex)
    return sorted(op.get_friendly_name() for op in model.get_ops()
                  if op.get_type_name() == "MatMul" and rx.search(op.get_friendly_name()))


def variant_kwargs(name: str, model: ov.Model | None = None) -> dict:
    """Keyword arguments for ``nncf.quantize`` of variant ``name``.

    ``model`` (the FP32 IR) is needed by variants whose ignored scope lists node names. Private
    key: ``accuracy_control`` (True: use ``nncf.quantize_with_accuracy_control``).
    """
    adv = nncf.AdvancedQuantizationParameters
    sq = nncf.AdvancedSmoothQuantParameters
    tr = {"model_type": nncf.ModelType.TRANSFORMER}
    if name == "default":
        return {}
    if name == "mixed":
        return {"preset": nncf.QuantizationPreset.MIXED}
    if name == "transformer":
        return dict(tr)
    if name == "transformer-mixed":
        return {**tr, "preset": nncf.QuantizationPreset.MIXED}
    if name == "transformer-nosq":
        return {**tr, "advanced_parameters": adv(smooth_quant_alphas=sq(matmul=-1))}
    if name.startswith("transformer-sq"):
        return {**tr, "advanced_parameters": adv(smooth_quant_alphas=sq(matmul=float(name[len("transformer-sq"):])))}
    if name == "transformer-ign-sdpa":
        return {**tr, "ignored_scope": nncf.IgnoredScope(types=["ScaledDotProductAttention"])}
    if name in ("transformer-ign-neck", "transformer-ign-stem"):
        if model is None:
            raise ValueError(f"variant {name!r} needs the FP32 model to resolve node names")
        rx = r"\.neck\." if name.endswith("neck") else r"\.patch_embed\."
        return {**tr, "ignored_scope": nncf.IgnoredScope(names=_conv_names(model, rx))}
    if name == "transformer-ign-mvn":
        return {**tr, "ignored_scope": nncf.IgnoredScope(types=["MVN"])}
    if name == "transformer-ign-fc2":
        if model is None:
            raise ValueError(f"variant {name!r} needs the FP32 model to resolve node names")
        return {**tr, "ignored_scope": nncf.IgnoredScope(names=_matmul_names(model, r"\.mlp\.fc2/"))}
    if name == "transformer-mixed-ign-stem":
        return {**variant_kwargs("transformer-ign-stem", model), "preset": nncf.QuantizationPreset.MIXED}
    if name == "transformer-nobc":
        return {**tr, "advanced_parameters": adv(disable_bias_correction=True)}
    if name == "transformer-fbc-off":
        return {**tr, "fast_bias_correction": False}
    if name == "transformer-ac":
        return {**tr, "accuracy_control": True}
    raise KeyError(f"unknown quantization variant {name!r} (known: {', '.join(VARIANTS + EXTRA_VARIANTS)})")


def _cosine_validation(fp32: ov.Model, images: list[np.ndarray]):
    """Validation set + function for accuracy control: per-image cosine to the FP32 embedding.

    Label-free (no evaluation data is used to pick the model): the metric of the FP32 model is 1.0.
    """
    core = ov.Core()
    ref_model = core.compile_model(fp32, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
    items = [(x, np.asarray(ref_model(x)[0], np.float32).ravel()) for x in images]

    def validate(compiled: ov.CompiledModel, data) -> tuple[float, list[float]]:
        vals = []
        for x, ref in data:
            e = np.asarray(compiled(x)[0], np.float32).ravel()
            vals.append(float(e @ ref / (np.linalg.norm(e) * np.linalg.norm(ref) + 1e-12)))
        return float(np.mean(vals)), vals

    return nncf.Dataset(items), validate


def quantize_encoder(fp32: ov.Model, calib: Path, variant: str = CHOSEN, subset_size: int | None = None
                     ) -> tuple[ov.Model, str]:
    """INT8 encoder; returns (model, a one-line note for the manifest).

    ``subset_size`` calibration images (default :data:`DEFAULT_SUBSET`; at most all of them),
    evenly spread over the sorted file list, i.e. over the modalities.
    """
    data = calibration_inputs(calib)
    kwargs = variant_kwargs(variant, fp32)
    n = min(subset_size or DEFAULT_SUBSET, len(data))
    if n < len(data):  # spread over the sorted (modality-grouped) file list, not the first n
        data = [data[i] for i in np.linspace(0, len(data) - 1, n).round().astype(int)]
    if kwargs.pop("accuracy_control", False):
        # validation: every 6th image of the calibration subset (10 of 60); ranking on all 10
        val_ds, val_fn = _cosine_validation(fp32, data[::6])
        advq = kwargs.pop("advanced_parameters", None)
        q = nncf.quantize_with_accuracy_control(
            fp32, nncf.Dataset(data), val_ds, val_fn, max_drop=0.005, subset_size=n,
            advanced_quantization_parameters=advq,
            advanced_accuracy_restorer_parameters=nncf.AdvancedAccuracyRestorerParameters(
                ranking_subset_size=10, num_ranking_workers=1, max_num_iterations=20),
            **kwargs)
    else:
        q = nncf.quantize(fp32, nncf.Dataset(data), subset_size=n, **kwargs)
    return q, f"NNCF {nncf.__version__} PTQ variant '{variant}', {n} calibration images"
