"""NNCF post-training INT8 quantization of the image encoder (OpenVINO IR in, OpenVINO IR out).

The chosen configuration and the evidence for it (speed and accuracy per variant) are in
``docs/quantization.md``; :data:`VARIANTS` holds every configuration that was compared so that
``bench/quant_variants.py`` can rerun the comparison.

A variant is a name; :func:`variant_kwargs` turns it into keyword arguments for ``nncf.quantize``
(plus private keys ``accuracy_control`` and ``widen_heavy_tails``). Some ignored scopes need the
node names of the FP32 IR (OpenVINO renames BatchNorm-fused convolutions to ``Multiply_NNN``), so
they are resolved from the model's graph.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import nncf
import numpy as np
import openvino as ov
from nncf.quantization.advanced_parameters import OverflowFix
from nncf.quantization.range_estimator import RangeEstimatorParametersSet

from engine.inference.int8_arithmetic import exact_f32, is_activation_fake_quantize

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
    "transformer-ign-stem",    # patch_embed convs in f32 (CHOSEN is its "-widenfc2-fa" form)
    "transformer-ac",          # quantize_with_accuracy_control (label-free cosine metric), from TRANSFORMER
    "transformer-ign-stem-widenfc2",     # shipped 2026-11-27 .. 2026-12-07
    "transformer-ign-stem-widenfc2-fa",  # CHOSEN: fc2 ranges widened on float-activation extremes
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
    "transformer-ign-stem-fc2",      # stem + the 10 MLP fc2 MatMuls in f32
    "transformer-ign-stem-fc2late",  # stem + the 5 fc2 with the widest calibration spread
    "transformer-ign-stem-fc2last",  # stem + the last block's fc2
    "transformer-ign-stem-widen1.2",  # stem + activation ranges overflowed >1.2x by calibration images widened
    "transformer-ign-stem-minmax",   # activation ranges: global min/max over the calibration images
    "transformer-ign-stem-quantile",  # ... mean of per-image 0.01%/99.99% quantiles
    "transformer-ign-stem-hist",      # ... histogram (MSE-optimal) ranges
    "transformer-ign-stem-widenfc2-of",  # "-widenfc2" with 7-bit weights everywhere (no int16 overflow without VNNI)
]

CHOSEN = "transformer-ign-stem-widenfc2-fa"

#: MLP fc2 MatMuls kept in f32 (with the stem). Their input (GELU output, SmoothQuant-scaled) is the
#: most heavy-tailed activation of the encoder: on the calibration images themselves the largest
#: per-image value exceeds NNCF's range (mean of per-image maxima) by 1.2-2.2x in these five blocks
#: (layers.2.blocks.3-5, layers.3.blocks.0-1) and by <1.2x elsewhere; clipped, a wide-range CT slice
#: lost a whole object (docs/quantization.md)
_FC2_SCOPES = {
    "transformer-ign-stem-fc2": r"\.mlp\.fc2/",
    "transformer-ign-stem-fc2late": r"layers\.(2\.blocks\.[345]|3\.blocks\.[01])\.mlp\.fc2/",
    "transformer-ign-stem-fc2last": r"layers\.3\.blocks\.1\.mlp\.fc2/",
}

#: the MLP fc2 inputs' activation FakeQuantizes (GELU output after SmoothQuant), the ranges the "-widenfc2"
#: recipes may widen (:func:`widen_heavy_tailed_ranges` ``only``)
FC2_INPUTS = r"\.mlp/aten::gelu/"

#: activation range estimators selectable as ``transformer-ign-stem-<key>``
_RANGE_ESTIMATORS = {"minmax": "MINMAX", "quantile": "MEAN_QUANTILE", "median": "MEDIAN_MINMAX",
                     "nooutliers": "MEAN_NO_OUTLIERS_MINMAX", "hist": "HISTOGRAM"}

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
    if name.endswith("-of"):
        # any variant with NNCF's overflow fix in every layer: 7-bit weights, so that two u8*i8 products fit
        # the int16 that CPUs without VNNI add them in (quantization/emulate.py); the default fixes the first
        # layer only
        kw = variant_kwargs(name[:-len("-of")], model)
        kw["advanced_parameters"] = dataclasses.replace(kw.get("advanced_parameters") or adv(),
                                                        overflow_fix=OverflowFix.ENABLE)
        return kw
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
    if name == "transformer-ign-stem-widenfc2":
        # only the MLP fc2 inputs (GELU output after SmoothQuant) among the overflowed ranges
        return {**variant_kwargs("transformer-ign-stem", model), "widen_heavy_tails": (1.2, FC2_INPUTS)}
    if name == "transformer-ign-stem-widenfc2-fa":
        # the same ranges, their extremes measured with every activation quantizer bypassed: the quantized
        # network turns a 1e-6 change into quantization-sized noise (docs/quantization.md), so extremes measured
        # through it differ between two CPUs' f32 rounding; through float activations they move by ~1e-5.
        # Threshold 1.25, not 1.2: measured this way the ten ratios are 1.05-1.20 and 1.34, 1.58, and
        # layers.2.blocks.5 sits at 1.198, 0.002 below 1.2, while a build on inputs perturbed by 1e-6 (a
        # stand-in for another CPU's rounding) moves the ratios by up to 0.0034 (two seeds,
        # bench/results/int8-build-noise-2026-12-07.md); 1.25 lies in the gap, more than 0.05 from every ratio,
        # and widens the same two ranges
        return {**variant_kwargs("transformer-ign-stem", model),
                "widen_heavy_tails": (1.25, FC2_INPUTS, "float")}
    if name.startswith("transformer-ign-stem-widen"):
        # e.g. transformer-ign-stem-widen1.2: ranges overflowed >1.2x by calibration images widened
        return {**variant_kwargs("transformer-ign-stem", model),
                "widen_heavy_tails": (float(name[len("transformer-ign-stem-widen"):] or 1.2), None)}
    if name in _FC2_SCOPES:
        kw = variant_kwargs("transformer-ign-stem", model)
        names = kw["ignored_scope"].names + _matmul_names(model, _FC2_SCOPES[name])
        return {**kw, "ignored_scope": nncf.IgnoredScope(names=names)}
    if name == "transformer-mixed-ign-stem":
        return {**variant_kwargs("transformer-ign-stem", model), "preset": nncf.QuantizationPreset.MIXED}
    if name == "transformer-nobc":
        return {**tr, "advanced_parameters": adv(disable_bias_correction=True)}
    if name == "transformer-fbc-off":
        return {**tr, "fast_bias_correction": False}
    if name.startswith("transformer-ign-stem-") and name.rsplit("-", 1)[1] in _RANGE_ESTIMATORS:
        # activation ranges: NNCF's default MEAN_MINMAX averages the per-image extremes, so an image
        # with a wider range than the average calibration image is clipped; MINMAX keeps all of it
        est = getattr(RangeEstimatorParametersSet, _RANGE_ESTIMATORS[name.rsplit("-", 1)[1]])
        kw = variant_kwargs("transformer-ign-stem", model)
        return {**kw, "advanced_parameters": adv(activations_range_estimator_params=est)}
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


def quantize_encoder(fp32: ov.Model, calib: Path, variant: str = CHOSEN, subset_size: int | None = None,
                     log: Callable[[str], None] | None = None) -> tuple[ov.Model, str]:
    """INT8 encoder; returns (model, a one-line note for the manifest).

    ``subset_size`` calibration images (default :data:`DEFAULT_SUBSET`; at most all of them),
    evenly spread over the sorted file list, i.e. over the modalities. ``log``: receives the widening step's
    decisions, one line per range (:func:`widen_heavy_tailed_ranges`).
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
        widen = kwargs.pop("widen_heavy_tails", None)
        q = nncf.quantize(fp32, nncf.Dataset(data), subset_size=n, **kwargs)
        if widen:
            widened = widen_heavy_tailed_ranges(q, data, *widen, log=log)
            on = " of float activations" if widen[2:] == ("float",) else ""
            return q, (f"NNCF {nncf.__version__} PTQ variant '{variant}', {n} calibration images, "
                       f"{len(widened)} heavy-tailed activation ranges widened to the calibration min/max{on}")
    return q, f"NNCF {nncf.__version__} PTQ variant '{variant}', {n} calibration images"


def compress_decoder_weights(fp32: ov.Model) -> tuple[ov.Model, str]:
    """The INT8 model's decoder: 8-bit asymmetric per-channel weights, activations in float.

    Compared on the 207 eval cases with the INT8 encoder (docs/quantization.md, "Decoder"): full
    NNCF INT8 (activations too, 362 calibration prompts) ran 21 vs 32.5 ms per prompt but moved
    3D CT by +0.023 DSC from the official pipeline; weight-only INT8 runs 28 ms, keeps every group
    within 0.0026 of the f32 decoder and shrinks the file from 14.2 to 3.6 MB.
    """
    q = nncf.compress_weights(fp32.clone(), mode=nncf.CompressWeightsMode.INT8_ASYM)
    return q, f"decoder: NNCF {nncf.__version__} weight compression INT8_ASYM (per-channel), activations f32"


def _activation_fake_quantizes(model: ov.Model) -> list:
    """Per-tensor FakeQuantize nodes on activations (not on weight constants)."""
    out = []
    for op in model.get_ordered_ops():
        if not is_activation_fake_quantize(op):
            continue
        if all(op.input_value(i).get_node().get_type_name() == "Constant" for i in (1, 2, 3, 4)) and \
                op.input_value(1).get_node().get_data().size == 1:
            out.append(op)
    return out


def activation_extremes(model: ov.Model, images: list[np.ndarray], exact: bool = False,
                        float_activations: bool = False) -> dict[str, np.ndarray]:
    """friendly name of each activation FakeQuantize -> (n_images, 2) per-image [min, max] of its input.

    Runs a clone of ``model`` with the FakeQuantizes' inputs as extra outputs (f32 precision); ``exact``: the
    clone as exact INT8 arithmetic (:func:`engine.inference.int8_arithmetic.exact_f32`), not this CPU's int8
    kernels; ``float_activations``: every activation FakeQuantize bypassed, so the tensors are those of the
    int8-weight network on float activations, a smooth function of the input (OpenVINO decompresses the int8
    weights to f32: within 4e-6 of the same graph with the weights folded by
    :func:`engine.inference.int8_arithmetic.fold_int8_weights`, AVX2 Zen 3; ``exact`` has no quantized activation
    left to rewrite then).
    """
    clone = model.clone()
    fqs = _activation_fake_quantizes(clone)
    clone.add_outputs([fq.input_value(0) for fq in fqs])
    if float_activations:
        for op in [op for op in clone.get_ordered_ops() if is_activation_fake_quantize(op)]:
            for target in list(op.output(0).get_target_inputs()):
                target.replace_source_output(op.input_value(0))
        clone.validate_nodes_and_infer_types()
    if exact:
        exact_f32(clone)  # the extra outputs are the FakeQuantizes' input tensors, which stay
    compiled = ov.Core().compile_model(clone, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    # add_outputs deduplicates tensors feeding several FakeQuantizes: look outputs up by tensor
    extra = {}
    for o in compiled.outputs[1:]:
        for name in o.get_names():
            extra[name] = o
    stats = {fq.get_friendly_name(): [] for fq in fqs}
    for x in images:
        r = compiled(x)
        for fq in fqs:
            t = r[extra[next(iter(fq.input_value(0).get_names()))]]
            stats[fq.get_friendly_name()].append((float(t.min()), float(t.max())))
    return {k: np.asarray(v) for k, v in stats.items()}


def widen_heavy_tailed_ranges(model: ov.Model, images: list[np.ndarray], ratio: float,
                              only: str | None = None, measure: str = "exact",
                              log: Callable[[str], None] | None = None) -> list[str]:
    """Widen, in place, activation ranges that the calibration images themselves overflow.

    NNCF's activation range (MEAN_MINMAX) is the *mean* over images of each image's min/max. For most
    tensors that is close to the extremes; for a few heavy-tailed ones (the MLP fc2 inputs after
    GELU) the largest calibration image exceeds it by up to 2.2x, and an unseen image with a wider
    range (a 512x512 CT slice) is clipped hard enough to lose an object. Where the calibration
    extremes exceed the range by more than ``ratio``, the range becomes the calibration min/max
    (what MINMAX would give), keeping int8 everywhere; the other ranges keep MEAN_MINMAX's finer
    steps (MINMAX on every tensor costs embedding fidelity: docs/quantization.md). ``only``: a
    regex on FakeQuantize names restricting which ranges may be widened. ``measure``: "exact" (the quantized
    network as exact INT8 arithmetic) or "float" (activation quantizers bypassed, :func:`activation_extremes`
    ``float_activations``). Returns the names of the widened FakeQuantizes. ``log``: one line per range
    considered, with its overflow ratio (calibration extreme / NNCF's limit, the larger side), so a build's log
    shows how far each decision lies from ``ratio``: a ratio near it is a decision another CPU's f32 rounding
    could flip.

    The extremes are measured with exact INT8 arithmetic (:func:`activation_extremes` ``exact=True``), not
    by this CPU's int8 kernels: without VNNI those saturate on large activations, which are exactly the
    tails measured here, and the ranges (so the build) would depend on the CPU that quantized the
    model (up to 15 % apart between an AVX2 Zen 3 and a VNNI Zen 4, docs/quantization.md).
    """
    from openvino import opset13 as ops

    if measure not in ("exact", "float"):
        raise ValueError(f"measure must be 'exact' or 'float', got {measure!r}")
    ext = activation_extremes(model, images, exact=True, float_activations=measure == "float")
    widened = []
    for fq in _activation_fake_quantizes(model):
        if only and not re.search(only, fq.get_friendly_name()):
            continue
        lo = float(fq.input_value(1).get_node().get_data().ravel()[0])
        hi = float(fq.input_value(2).get_node().get_data().ravel()[0])
        e = ext[fq.get_friendly_name()]
        new_lo, new_hi = min(lo, float(e[:, 0].min())), max(hi, float(e[:, 1].max()))
        over = max(new_hi / hi if hi > 0 else 1.0, new_lo / lo if lo < 0 else 1.0)
        if log:
            log(f"{fq.get_friendly_name()}: overflow ratio {over:.5f} "
                f"({'widened' if over > ratio else 'kept'}, threshold {ratio})")
        if over <= ratio:
            continue
        for i, v in ((1, new_lo), (2, new_hi), (3, new_lo), (4, new_hi)):
            old = fq.input_value(i).get_node()
            c = ops.constant(np.full(old.get_data().shape, v, dtype=old.get_data().dtype))
            fq.input(i).replace_source_output(c.output(0))
        widened.append(fq.get_friendly_name())
    model.validate_nodes_and_infer_types()
    return widened
