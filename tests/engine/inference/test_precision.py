"""``--precision auto``: the table of engine.inference.precision and what a session compiles with
(where the choice is shown: tests/app/cli/test_precision_auto.py, tests/app/gui/test_about_precision.py)."""

from __future__ import annotations

import re

import openvino as ov
import pytest

from engine.inference import precision as pr
from engine.inference.manifest import find_model
from engine.inference.runtime import PRECISIONS
from engine.inference.session import Session, SessionConfig, configured_model
from tests.conftest import REPO

AVX2 = ("FP32", "INT8", "BIN", "EXPORT_IMPORT")  # what OpenVINO lists on an AVX2-only Zen 3
SAPPHIRE_RAPIDS = ("FP32", "BF16", "INT8", "BIN", "EXPORT_IMPORT")


def test_the_table_has_a_row_per_capability_and_each_row_cites_evidence_that_exists():
    assert set(pr.AUTO_RULES) == {pr.BF16_CPU, pr.NO_BF16_CPU}
    for cap, rule in pr.AUTO_RULES.items():
        assert rule.capability == cap and rule.hint in PRECISIONS and rule.model_precision == "int8"
        cited = re.findall(r"bench/results/[\w.-]+\.md", rule.reason)
        assert cited, rule.reason
        for path in cited:
            assert (REPO / path).is_file(), path
    # no LiteMedSAM bf16 measurement exists: the BF16 row must say so and keep the measured f32 remainder
    assert "unmeasured" in pr.AUTO_RULES[pr.BF16_CPU].reason and pr.AUTO_RULES[pr.BF16_CPU].hint == "f32"


@pytest.mark.parametrize("caps, cap", [(AVX2, pr.NO_BF16_CPU), (SAPPHIRE_RAPIDS, pr.BF16_CPU), ((), pr.NO_BF16_CPU)])
def test_auto_resolves_by_capability(caps, cap):
    c = pr.resolve("auto", caps)
    assert (c.capability, c.hint, c.model_precision, c.reason) == (cap, "f32", "int8", pr.AUTO_RULES[cap].reason)


def test_explicit_precisions_are_kept_and_unknown_ones_refused():
    c = pr.resolve("bf16", AVX2)
    assert (c.hint, c.model_precision) == ("bf16", None) and "--precision bf16" in c.reason
    with pytest.raises(ValueError, match="precision must be one of"):
        pr.resolve("f16", AVX2)


def test_capability_is_what_openvino_reports_on_this_cpu():
    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert pr.cpu_capability() == (pr.BF16_CPU if "BF16" in caps else pr.NO_BF16_CPU)


def test_auto_session_sets_the_hint_explicitly_and_runs_the_int8_model():
    assert SessionConfig().precision == "auto"
    s = Session(SessionConfig(threads=1))
    assert s.entry.name == "litemedsam-int8" and s.entry.precision == "int8"
    assert s.runtime.config["INFERENCE_PRECISION_HINT"] == s.precision_choice.hint == "f32"
    assert s.runtime.precision == "f32"  # what OpenVINO compiled, read back from the compiled encoder
    assert s.precision_choice.reason == pr.AUTO_RULES[pr.cpu_capability()].reason
    # a named model is never swapped by the rule
    assert configured_model(SessionConfig("litemedsam-fp32")).name == "litemedsam-fp32"


def test_a_rule_preferring_another_precision_picks_that_model_of_the_default_family(monkeypatch):
    rule = pr.AUTO_RULES[pr.cpu_capability()]
    monkeypatch.setitem(pr.AUTO_RULES, rule.capability, pr.AutoRule(rule.capability, "fp32", "f32", "test"))
    assert configured_model(SessionConfig()).name == "litemedsam-fp32"
    assert configured_model(SessionConfig(precision="f32")).name == find_model().name  # explicit: the default
