"""The committed accuracy report (``assets/models/ACCURACY.md``, written by ``python -m quantization report``) is
reproducible from the per-case CSVs beside it and keeps its per-group promise (quantization.report.PROMISE_DSC).
Needs no model run: only the CSVs and the official per-case results in shared/reference."""

from __future__ import annotations

import re

import pytest

from tests.conftest import EVAL, REPO, needs_shared

pytestmark = needs_shared


def test_shipped_accuracy_md_is_its_csvs_and_keeps_the_per_group_promise():
    """Every DSC/NSD of assets/models/ACCURACY.md is recomputed from the per-case CSVs beside it (and the official
    per-case results), and every model is within report.PROMISE_DSC of the official pipeline in every group."""
    from quantization import report

    ref = report.official_csv(EVAL)
    if not ref.is_file():
        pytest.skip(f"no official per-case results at {ref}")
    folder = REPO / "assets" / "models"
    text = (folder / "ACCURACY.md").read_text(encoding="utf-8")
    table = report.read_table(text)
    results = {m: report.read_cases(folder / f"accuracy-{m}.csv") for m in ("litemedsam-int8", "litemedsam-fp32")}
    names = {r["case"] for r in results["litemedsam-int8"]}
    results[report.OFFICIAL] = [r for r in report.read_cases(ref) if r["case"] in names]
    summaries = {m: report.summarise(rows) for m, rows in results.items()}
    for m, s in summaries.items():
        assert set(s) == set(table[m]), m
        for g, (n, dsc, nsd, _) in s.items():
            # the report averaged unrounded per-case values, the CSVs keep 4 decimals
            assert table[m][g][0] == n and table[m][g][1:3] == pytest.approx((dsc, nsd), abs=1.5e-4), (m, g)
    early = [m for m in table if "early-stop" in m]
    assert early and all("overall" not in table[m] for m in early), "early stop runs the 3D cases only"
    gaps = report.promise_gaps(summaries)
    assert set(gaps) == {"litemedsam-int8", "litemedsam-fp32"}
    for m, per_group in gaps.items():
        worst = max(per_group.items(), key=lambda kv: kv[1])
        assert worst[1] <= report.PROMISE_DSC, (m, worst)
        line = re.search(rf"^- {re.escape(m)}: overall ([-+.\d]+); largest group difference ([.\d]+) \((.+)\)$", text, re.M)
        assert line, m
        stated, group = float(line.group(2)), line.group(3)
        assert float(line.group(1)) == pytest.approx(summaries[m]["overall"][1] - summaries[report.OFFICIAL]["overall"][1],
                                                     abs=1.5e-4)
        assert stated == pytest.approx(worst[1], abs=1.5e-4) and per_group[group] == pytest.approx(worst[1], abs=1.5e-4)
