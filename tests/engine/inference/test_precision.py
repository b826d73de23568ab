"""``--precision auto``: the table of engine.inference.precision and what a session compiles with
(where the choice is shown: tests/app/cli/test_precision_auto.py, tests/app/gui/test_about_precision.py)."""

from __future__ import annotations

import re

import openvino as ov
import pytest

from engine.inference import precision as pr
from engine.inference.int8_arithmetic import int8_overflows
from engine.inference import manifest as manifest_module
from engine.inference.manifest import find_model
from engine.inference.runtime import PRECISIONS
from engine.inference.session import Session, SessionConfig, configured_model
from tests.conftest import REPO

AVX2 = ("FP32", "INT8", "BIN", "EXPORT_IMPORT")  # what OpenVINO lists on an AVX2-only Zen 3
SAPPHIRE_RAPIDS = ("FP32", "BF16", "INT8", "BIN", "EXPORT_IMPORT")


def test_the_table_has_a_row_per_capability_and_each_row_cites_evidence_that_exists():
    assert set(pr.AUTO_RULES) == {pr.BF16_CPU, pr.NO_BF16_CPU, pr.NO_VNNI_CPU}
    for cap, rule in pr.AUTO_RULES.items():
        assert rule.capability == cap and rule.hint in PRECISIONS and rule.model_precision in ("int8", "fp32")
        cited = re.findall(r"bench/results/[\w.-]+\.md", rule.reason)
        assert cited, rule.reason
        for path in cited:
            assert (REPO / path).is_file(), path
    # no LiteMedSAM bf16 measurement exists: the BF16 row must say so and keep the measured f32 remainder
    assert "unmeasured" in pr.AUTO_RULES[pr.BF16_CPU].reason and pr.AUTO_RULES[pr.BF16_CPU].hint == "f32"


@pytest.mark.parametrize("caps, overflows, cap, model", [
    (AVX2, True, pr.NO_VNNI_CPU, "fp32"),        # AVX2 without VNNI: int8 kernels saturate
    (AVX2, False, pr.NO_BF16_CPU, "int8"),       # VNNI without BF16 (Ice Lake, Alder Lake)
    (SAPPHIRE_RAPIDS, False, pr.BF16_CPU, "int8"),
    ((), False, pr.NO_BF16_CPU, "int8")])
def test_auto_resolves_by_capability(caps, overflows, cap, model):
    c = pr.resolve("auto", caps, int8_overflows=overflows)
    assert (c.capability, c.hint, c.model_precision, c.reason) == (cap, "f32", model, pr.AUTO_RULES[cap].reason)
    assert c.int8 == ("exact" if overflows else "native")


def test_explain_names_the_int8_arithmetic_only_for_a_model_that_has_int8_layers():
    c = pr.resolve("auto", AVX2, int8_overflows=True)
    first, why = c.explain(find_model("litemedsam-fp32"))
    assert first.endswith("model litemedsam-fp32, inference precision f32, no int8 layers") and "int8:" not in why
    # the installers ship only INT8: there the same row runs it as exact INT8 arithmetic, and says so
    first, why = c.explain(find_model("litemedsam-int8"))
    assert first.endswith("int8 layers as exact f32 arithmetic") and why.endswith(pr.EXACT_REASON)


def test_explicit_precisions_are_kept_and_unknown_ones_refused():
    c = pr.resolve("bf16", AVX2)
    assert (c.hint, c.model_precision) == ("bf16", None) and "--precision bf16" in c.reason
    with pytest.raises(ValueError, match="precision must be one of"):
        pr.resolve("f16", AVX2)


def test_capability_is_what_openvino_and_the_int8_probe_report_on_this_cpu():
    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    expected = pr.BF16_CPU if "BF16" in caps else pr.NO_VNNI_CPU if int8_overflows() else pr.NO_BF16_CPU
    assert pr.cpu_capability() == expected


def test_auto_session_sets_the_hint_explicitly_and_runs_the_rule_s_model():
    assert SessionConfig().precision == "auto"
    s = Session(SessionConfig(threads=1))
    want = pr.AUTO_RULES[pr.cpu_capability()].model_precision
    assert s.entry.name == f"litemedsam-{want}" and s.entry.precision == want
    assert s.runtime.config["INFERENCE_PRECISION_HINT"] == s.precision_choice.hint == "f32"
    assert s.runtime.precision == "f32"  # what OpenVINO compiled, read back from the compiled encoder
    assert s.precision_choice.reason == pr.AUTO_RULES[pr.cpu_capability()].reason
    # a named model is never swapped by the rule
    assert configured_model(SessionConfig("litemedsam-fp32")).name == "litemedsam-fp32"


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_rule_preferring_a_precision_picks_that_model_of_the_default_family(monkeypatch, precision):
    rule = pr.AUTO_RULES[pr.cpu_capability()]
    monkeypatch.setitem(pr.AUTO_RULES, rule.capability, pr.AutoRule(rule.capability, precision, "f32", "test"))
    assert configured_model(SessionConfig()).name == f"litemedsam-{precision}"
    assert configured_model(SessionConfig(precision="f32")).name == find_model().name  # explicit: the default


def test_a_rule_preferring_a_model_that_is_not_installed_keeps_the_default(monkeypatch, tmp_path):
    """The installers ship only the INT8 model: a CPU whose row prefers FP32 then runs INT8."""
    import json
    import shutil

    src = REPO / "assets" / "models"
    manifest = json.loads((src / "manifest.json").read_text())
    int8 = next(m for m in manifest["models"] if m["precision"] == "int8")
    for f in int8["files"]:
        (tmp_path / f["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / f["path"], tmp_path / f["path"])
    (tmp_path / "manifest.json").write_text(json.dumps(dict(manifest, models=[int8])))
    monkeypatch.setattr(manifest_module, "model_search_path", lambda: [tmp_path])
    rule = pr.AUTO_RULES[pr.cpu_capability()]
    monkeypatch.setitem(pr.AUTO_RULES, rule.capability, pr.AutoRule(rule.capability, "fp32", "f32", "test"))
    assert configured_model(SessionConfig()).name == "litemedsam-int8"
