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


def test_shipped_accuracy_md_has_the_held_out_section_of_its_csvs():
    """ACCURACY.md ends with the held-out protocol's section (issue 17 item 4), exactly as
    quantization.report.held_out_section computes it from the per-case CSVs beside it, and that section keeps the
    one-sided goals (no held-out dataset or modality more than 0.01 below FP32, overall 0.005, no case 0.05)."""
    from quantization import report, validate

    folder = REPO / "assets" / "models"
    text = (folder / "ACCURACY.md").read_text(encoding="utf-8")
    results = {m: report.read_cases(folder / f"accuracy-{m}.csv") for m in ("litemedsam-int8", "litemedsam-fp32")}
    section = report.held_out_section(results, "litemedsam-fp32")
    assert text.endswith("\n\n" + section), "rerun `python -m quantization report --held-out-section`"
    by_case = {m: {r["case"]: r for r in rows} for m, rows in results.items()}
    split = validate.split_datasets(f"{c}.npz" for c in by_case["litemedsam-fp32"])
    assert len(split.test) >= 6 and not split.test & split.dev
    assert validate.goals_met(by_case["litemedsam-int8"], by_case["litemedsam-fp32"], split) == []
    assert "- no worse than FP32: **all goals met**" in section


def test_the_held_out_section_is_rewritten_in_place_and_the_table_still_reads(tmp_path):
    """write_held_out_section keeps the report above the section byte for byte, replaces an old section instead of
    adding a second one, and read_table reads only the report's first table."""
    import shutil

    from quantization import report

    src = REPO / "assets" / "models"
    for name in ("ACCURACY.md", "manifest.json", "accuracy-litemedsam-int8.csv", "accuracy-litemedsam-fp32.csv"):
        shutil.copy(src / name, tmp_path / name)
    text = (src / "ACCURACY.md").read_text(encoding="utf-8")
    head = text.split(f"\n{report.HELD_OUT_TITLE}\n")[0]
    (tmp_path / "ACCURACY.md").write_text(head + f"\n\n{report.HELD_OUT_TITLE}\n\nstale\n", encoding="utf-8")
    report.write_held_out_section(tmp_path)
    again = (tmp_path / "ACCURACY.md").read_text(encoding="utf-8")
    assert again == text and again.count(report.HELD_OUT_TITLE) == 1 and "stale" not in again
    assert set(report.read_table(again)) == {"litemedsam-int8", "litemedsam-int8 early-stop 2", "litemedsam-fp32",
                                             report.OFFICIAL}
