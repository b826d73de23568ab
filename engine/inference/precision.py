"""``--precision auto``: which model and which inference precision each CPU gets, and why.

One table, :data:`AUTO_RULES`, keyed by the CPU's capability class; :func:`resolve` turns a requested
precision ("auto", "f32", "bf16") into a :class:`PrecisionChoice` that :class:`~engine.inference.runtime.Runtime`
compiles with and that ``boxseg models`` and the app's About show (its ``reason``).

The capability comes from OpenVINO itself (``OPTIMIZATION_CAPABILITIES`` of the CPU plugin lists "BF16" on
CPUs with AVX512_BF16 or AMX): that is the same test by which OpenVINO would silently run an f32 IR in bf16,
so the hint is always set explicitly, whatever the row.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.base.sysinfo import describe
from engine.inference.int8_arithmetic import int8_overflows

if TYPE_CHECKING:
    from engine.inference.manifest import ModelEntry

#: inference precision hints a user may request for the layers that are not INT8 ("auto" = the table)
REQUESTS = ("auto", "f32", "bf16")
#: how INT8 layers may run (:func:`int8_mode`): "auto" = "exact" where the CPU's int8 kernels saturate, else "native"
INT8_MODES = ("auto", "native", "exact")
EXACT_REASON = ("this CPU's int8 kernels saturate (no VNNI: two u8*i8 products are added in int16), so the INT8 "
                "model's weights are unpacked to f32 and run as exact INT8 arithmetic, as a VNNI CPU computes it; "
                "so run, no held-out dataset is more than 0.004 DSC below FP32 (bench/results/validate-2026-12-07-fa.md), "
                "while the saturating kernels put the previous INT8 build 0.017 below FP32 on held-out 2D Microscopy "
                "(exact: 0.005, bench/results/validate-2026-12-07-auto.md); encoder CPU time 0.94x the saturating "
                "kernels' (interquartile 0.90-0.97, AVX2 Zen 3, bench/results/int8-exact-2026-12-07.md)")
#: capability classes (keys of :data:`AUTO_RULES`), tested in this order by :func:`cpu_capability`
BF16_CPU = "bf16"        # AVX512_BF16 or AMX: OpenVINO lists "BF16" in OPTIMIZATION_CAPABILITIES (all have VNNI)
NO_VNNI_CPU = "no-vnni"  # int8 kernels saturate (the start-up probe): AVX2-only laptops, AMD Zen 1-3, Intel before Ice Lake
NO_BF16_CPU = "no-bf16"  # exact int8 kernels (VNNI), no BF16: e.g. Ice Lake, Tiger Lake, Alder Lake (AVX-VNNI)


@dataclass(frozen=True)
class AutoRule:
    """One row of the auto table: on CPUs of ``capability`` run the family's ``model_precision`` model
    ("int8": the shipped INT8 model) with ``hint`` as INFERENCE_PRECISION_HINT for its non-INT8 layers."""

    capability: str
    model_precision: str
    hint: str
    reason: str


#: capability -> (model, inference precision hint, why). Each row is backed by a measurement or says it is not.
AUTO_RULES: dict[str, AutoRule] = {
    NO_VNNI_CPU: AutoRule(
        NO_VNNI_CPU, "fp32", "f32",
        "CPU whose int8 kernels saturate (no VNNI): the FP32 model where it is installed, because there it is both "
        "the faster encoder and exactly FP32 (the official pipeline, case by case): encoder CPU time 0.94x the "
        "shipped INT8 model's as exact INT8 arithmetic (interquartile 0.92-0.97 over 40 paired rounds; wall 803 vs "
        "847 ms, decoder 41.3 vs 44.4 ms per box; AVX2 Zen 3, bench/results/recipe-speed-2026-12-07-fa-shipped.md; "
        "the previous INT8 build: the same, bench/results/fp32-vs-exact-2026-12-07.md); the installers ship "
        "only the INT8 model, which then runs as exact INT8 arithmetic, held out 0.8882 vs FP32 0.8874, no held-out "
        "dataset more than 0.004 below FP32 (bench/results/validate-2026-12-07-fa.md)"),
    NO_BF16_CPU: AutoRule(
        NO_BF16_CPU, "int8", "f32",
        "CPU with exact int8 kernels (VNNI) and no BF16: the INT8 model with an f32 remainder, 2.2x faster than "
        "FP32 with VNNI (the previous INT8 build, the same ops, bench/results/engine-2026-11-27.md); held out 0.8882 "
        "vs FP32 0.8874, no held-out dataset more than 0.004 below FP32, measured as exact INT8 arithmetic, which is "
        "what VNNI computes (bench/results/validate-2026-12-07-fa.md)"),
    BF16_CPU: AutoRule(
        BF16_CPU, "int8", "f32",
        "CPU with BF16 (AVX512_BF16/AMX): unmeasured here, INT8 + f32 remainder until measured: a bf16 remainder "
        "(or BF16) was never measured for LiteMedSAM, in speed or held-out accuracy (the only bf16 figures are "
        "Swin-LiteMedSAM with synthetic weights, bench/results/swin-2026-11-27.md); INT8 at f32 ran 2.2x FP32 on "
        "such a CPU (bench/results/engine-2026-11-27.md)"),
}


@dataclass(frozen=True)
class PrecisionChoice:
    """What a session runs with: ``hint`` ("f32"/"bf16") for OpenVINO, ``model_precision`` the model
    precision preferred when no model is named (None: whatever the default is), and why."""

    requested: str
    capability: str
    hint: str
    model_precision: str | None
    reason: str
    #: how INT8 layers run (:data:`INT8_MODES`): "native" (this CPU's int8 kernels) or "exact" (folded to f32
    #: arithmetic of the same quantization, where the CPU's int8 kernels saturate)
    int8: str = "native"
    int8_reason: str = ""

    def explain(self, model: ModelEntry | None) -> list[str]:
        """Two lines for ``boxseg models`` and the app's About: on which CPU, which ``model`` (the entry the
        session would load; None: none installed), hint and INT8 arithmetic were chosen, and why."""
        info = describe()
        first = (f"precision {self.requested} on this CPU ({info['cpu']}; {', '.join(info['flags']) or 'no listed ISA flags'}; "
                 f"capability {self.capability}): model {model.name if model else 'none installed'}, "
                 f"inference precision {self.hint}")
        if model is not None and model.precision == "fp32":
            return [f"{first}, no int8 layers", f"why: {self.reason}"]
        return [f"{first}, int8 layers {int8_wording(self.int8)}",
                f"why: {self.reason}" + (f"; int8: {self.int8_reason}" if self.int8_reason else "")]


@functools.lru_cache(maxsize=1)
def _openvino_capabilities() -> tuple[str, ...]:
    import openvino as ov

    try:
        return tuple(str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except RuntimeError:
        return ()


def cpu_capability(capabilities: tuple[str, ...] | None = None, overflows: bool | None = None) -> str:
    """The capability class of this CPU: :data:`BF16_CPU` where OpenVINO lists BF16, else :data:`NO_VNNI_CPU`
    where its int8 kernels saturate (:func:`engine.inference.int8_arithmetic.int8_overflows`, a probe run once
    per process), else :data:`NO_BF16_CPU`. ``capabilities`` overrides OpenVINO's OPTIMIZATION_CAPABILITIES
    list and ``overflows`` the probe (tests)."""
    caps = _openvino_capabilities() if capabilities is None else capabilities
    if "BF16" in caps:
        return BF16_CPU
    if overflows is None:
        overflows = int8_overflows()
    return NO_VNNI_CPU if overflows else NO_BF16_CPU


def int8_wording(mode: str) -> str:
    """How INT8 layers run, in words, for a mode of :func:`int8_mode` ("exact" or "native")."""
    return "as exact f32 arithmetic" if mode == "exact" else "on int8 kernels"


def int8_mode(requested: str = "auto", overflows: bool | None = None) -> tuple[str, str]:
    """(mode, why) for INT8 layers: "auto" folds them to exact f32 arithmetic where this CPU's int8 kernels
    saturate (:func:`engine.inference.int8_arithmetic.int8_overflows`, a probe run once per process;
    ``overflows`` overrides it in tests) and keeps the int8 kernels elsewhere; "native"/"exact" are explicit
    (benchmarks and ``python -m quantization validate --int8``)."""
    if requested not in INT8_MODES:
        raise ValueError(f"int8 arithmetic must be one of {INT8_MODES}, got {requested!r}")
    if requested != "auto":
        return requested, f"set explicitly (int8 {requested})"
    if overflows is None:
        overflows = int8_overflows()
    if overflows:
        return "exact", EXACT_REASON
    return "native", "this CPU's int8 kernels are exact (VNNI/AMX or equivalent: the overflow probe passed)"


def resolve(requested: str = "auto", capabilities: tuple[str, ...] | None = None, int8: str = "auto",
            int8_overflows: bool | None = None) -> PrecisionChoice:
    """The precision a request means on this CPU. "auto" looks up :data:`AUTO_RULES`; "f32"/"bf16" are
    the user's explicit hint (bf16 on a CPU without it: OpenVINO falls back to f32, which
    :attr:`Runtime.precision <engine.inference.runtime.Runtime.precision>` reports). ``int8``: how INT8
    layers run (:func:`int8_mode`), whatever the hint."""
    if requested not in REQUESTS:
        raise ValueError(f"precision must be one of {REQUESTS}, got {requested!r}")
    cap = cpu_capability(capabilities, int8_overflows)
    mode, why = int8_mode(int8, int8_overflows)
    if requested == "auto":
        rule = AUTO_RULES[cap]
        return PrecisionChoice("auto", cap, rule.hint, rule.model_precision, rule.reason, mode, why)
    return PrecisionChoice(requested, cap, requested, None, f"set explicitly (--precision {requested})", mode, why)


__all__ = ["AUTO_RULES", "BF16_CPU", "EXACT_REASON", "INT8_MODES", "NO_BF16_CPU", "NO_VNNI_CPU", "REQUESTS", "AutoRule",
           "PrecisionChoice", "cpu_capability", "int8_mode", "int8_wording", "resolve"]
