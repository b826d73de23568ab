"""The held-out protocol of ``python -m quantization validate`` (quantization/validate.py).

The selection logic is checked on made-up per-case results where the right answer is known; one small
real run (FP32 and the shipped INT8 model on four 2D cases of four datasets) checks the FP32 figures
against the official PyTorch pipeline's per-case results and that the cache saves every second run.
"""

from __future__ import annotations

import csv
import hashlib

import pytest

from quantization import validate as v
from tests.conftest import EVAL, SHARED, needs_shared


def _names(spec):
    return [f"{dim}Box_{mod}_{ds}_{i}.npz" for dim, mod, ds, n in spec for i in range(n)]


def test_case_keys_and_bad_names():
    assert v.case_keys("3DBox_MR_BraTS2015-deepmedic_3.npz") == ("3D", "MR", "BraTS2015-deepmedic")
    assert v.case_keys("2DBox_US_HC18_000-HC") == ("2D", "US", "HC18")
    with pytest.raises(ValueError, match="calib_CT_x_1.npz"):
        v.case_keys("calib_CT_x_1.npz")


def test_split_holds_out_the_smallest_hash_per_group_and_keeps_singles_in_development():
    names = _names([("2D", "US", "HC18", 3), ("2D", "US", "CAMUS", 2), ("2D", "XRay", "A", 1),
                    ("2D", "XRay", "B", 1), ("2D", "XRay", "C", 1), ("2D", "Dermoscopy", "PH2", 4),
                    ("3D", "US", "HC18", 1)])
    s = v.split_datasets(names)
    h = lambda d: hashlib.sha256(d.encode()).hexdigest()  # noqa: E731
    assert ("2D", "US", min(["HC18", "CAMUS"], key=h)) in s.test
    assert ("2D", "XRay", min("ABC", key=h)) in s.test
    held = {k[2] for k in s.test}
    assert len(held) == 2 and len(s.test) + len(s.dev) == 7 and not (s.test & s.dev)
    assert not any(k[2] in held for k in s.dev), "a held-out dataset is held out in every group"
    assert set(s.single) == {"2D Dermoscopy", "3D US"}
    # the rule looks at names only: the same names in another order give the same split
    assert v.split_datasets(reversed(names)) == s


def _results(deltas: dict[str, dict[str, float]], cases_per_ds=2):
    """reference 'ref' at DSC 0.8 everywhere; each candidate at 0.8 + its delta for that dataset."""
    datasets = sorted({d for c in deltas.values() for d in c})
    cases = [f"2DBox_X_{d}_{i}" for d in datasets for i in range(cases_per_ds)]
    out = {"ref": {c: {"dsc": 0.8, "nsd": 0.8} for c in cases}}
    for name, per in deltas.items():
        out[name] = {c: {"dsc": 0.8 + per[v.case_keys(c)[2]], "nsd": 0.8} for c in cases}
    return out


def test_score_is_dataset_balanced_and_choose_takes_the_best():
    r = _results({"a": {"D1": -0.02, "D2": 0.0}, "b": {"D1": 0.0, "D2": -0.01}})
    r["ref"]["2DBox_X_D1_9"] = {"dsc": 0.8, "nsd": 0.8}  # a third D1 case does not weigh D1 more
    r["a"]["2DBox_X_D1_9"] = {"dsc": 0.8 - 0.02, "nsd": 0.8}
    r["b"]["2DBox_X_D1_9"] = {"dsc": 0.8, "nsd": 0.8}
    both = {("2D", "X", "D1"), ("2D", "X", "D2")}
    assert v.score(r["a"], r["ref"], both) == pytest.approx(-0.01)
    assert v.score(r["b"], r["ref"], both) == pytest.approx(-0.005)
    assert v.choose(r, "ref", both) == ("b", pytest.approx(-0.005))
    assert v.choose(r, "ref", {("2D", "X", "D2")})[0] == "a"


def test_leave_one_dataset_out_reports_the_choice_made_without_the_dataset():
    # 'a' is best on D2 and D3 together but worst on D1; without D1 'a' wins and loses 0.05 there
    r = _results({"a": {"D1": -0.05, "D2": 0.01, "D3": 0.01}, "b": {"D1": 0.0, "D2": 0.0, "D3": 0.0}})
    dev = {("2D", "X", d) for d in ("D1", "D2", "D3")}
    out = dict((d[2], (n, s)) for d, n, s in v.leave_one_dataset_out(r, "ref", dev))
    assert out["D1"] == ("a", pytest.approx(-0.05))
    assert out["D2"][0] == "b" and out["D3"][0] == "b"


def test_report_shows_only_held_out_datasets_in_the_final_table():
    r = _results({"a": {"D1": -0.05, "D2": 0.01, "D3": 0.02}})
    split = v.Split(dev=frozenset({("2D", "X", "D1"), ("2D", "X", "D2")}), test=frozenset({("2D", "X", "D3")}),
                    single=())
    text = v.report(r, "ref", split, {"ref": "FP32", "a": "INT8-a"})
    final = text.split("## Held-out datasets")[1]
    assert "2D X D3" in final and "D1" not in final.split("Worst")[0]
    assert "| 2D X D3 | 2 | 0.8000 | 0.8000 | 0.8200 | 0.8000 |" in final


def test_goals_are_checked_per_held_out_dataset_modality_overall_and_case():
    # held out: D3 and D4 (modality X), E1 (modality Y); 2 cases each at reference DSC 0.8
    r = _results({"a": {"D1": -0.2, "D3": 0.0, "D4": -0.012, "E1": 0.0}})
    for c in [c for c in r["ref"] if "_D4_" not in c and "_D1_" not in c and "_D3_" not in c]:
        r["ref"][c.replace("_X_", "_Y_")] = r["ref"].pop(c)
        r["a"][c.replace("_X_", "_Y_")] = r["a"].pop(c)
    test = frozenset({("2D", "X", "D3"), ("2D", "X", "D4"), ("2D", "Y", "E1")})
    split = v.Split(dev=frozenset({("2D", "X", "D1")}), test=test, single=())
    rows = {label: (n, round(c - ref, 6), goal) for label, n, ref, c, goal in v.goal_rows(r["a"], r["ref"], split)}
    assert rows == {"2D X D3": (2, 0.0, 0.01), "2D X D4": (2, -0.012, 0.01), "2D Y E1": (2, 0.0, 0.01),
                    "**2D X**": (4, -0.006, 0.01), "**2D Y**": (2, 0.0, 0.01), "**overall**": (6, -0.004, 0.005)}
    assert v.goals_met(r["a"], r["ref"], split) == ["2D X D4 -0.0120 < -0.01"]  # the dev dataset D1 is not judged
    r["a"]["2DBox_Y_E1_0"]["dsc"] = 0.8 - 0.06  # one case 0.06 below: the case goal, and E1/Y/overall drop
    missed = v.goals_met(r["a"], r["ref"], split)
    assert missed[-1] == "case 2DBox_Y_E1_0 -0.0600 < -0.05" and "**overall** -0.0140 < -0.005" in missed
    assert v.worst_cases(r["a"], r["ref"], split, n=1) == [(pytest.approx(-0.06), "2DBox_Y_E1_0")]
    text = v.goals_report(r, "ref", split, {"ref": "FP32 (x)", "a": "INT8-a"})
    assert "| 2D X D4 | 2 | 0.8000 | 0.7880 | -0.0120 | 0.01 | **no** | **no** |" in text
    assert "- no worse than FP32: **missed**: 2D X D4 -0.0120 < -0.01;" in text
    # read literally ("within"), a group far above FP32 misses too; the case goal stays one-sided
    r["a"]["2DBox_Y_E1_0"]["dsc"] = 0.8
    r["a"]["2DBox_X_D3_0"]["dsc"] = 0.8 + 0.03
    assert v.goals_met(r["a"], r["ref"], split) == ["2D X D4 -0.0120 < -0.01"]
    assert v.goals_met(r["a"], r["ref"], split, two_sided=True) == ["2D X D3 +0.0150 > +0.01", "2D X D4 -0.0120 < -0.01"]


def test_a_candidate_run_on_held_out_cases_only_is_reported_but_not_chosen():
    r = _results({"a": {"D1": -0.01, "D2": 0.0, "D3": 0.02}, "b": {"D1": 0.0, "D2": 0.0, "D3": -0.03}})
    r["b"] = {c: x for c, x in r["b"].items() if "_D3_" in c}  # b has no development case: it cannot be chosen
    split = v.Split(dev=frozenset({("2D", "X", "D1"), ("2D", "X", "D2")}), test=frozenset({("2D", "X", "D3")}),
                    single=())
    text = v.report(r, "ref", split, {"ref": "FP32", "a": "INT8-a", "b": "INT8-b"})
    assert "Chosen: **INT8-a** (-0.0050)." in text
    assert "| INT8-b | not run on the development datasets" in text
    assert "| 2D X D3 | 2 | 0.8000 | 0.8000 | 0.8200 | 0.8000 | 0.7700 | 0.8000 |" in text
    assert v.goals_met(r["b"], r["ref"], split)[0] == "2D X D3 -0.0300 < -0.01"


@needs_shared
def test_a_small_real_run_matches_the_official_pipeline_and_is_cached(tmp_path, monkeypatch):
    picks = ["2DBox_XRay_imlab-CXR_1", "2DBox_XRay_MedScribble-HipXRay_", "2DBox_US_HC18_000-HC",
             "2DBox_US_MedScribble-CAMUS_"]
    folder = tmp_path / "eval"
    folder.mkdir()
    for p in picks:
        src = sorted(EVAL.glob(p + "*.npz"))[0]
        (folder / src.name).symlink_to(src)
    cache, out = tmp_path / "cases.csv", tmp_path / "report.md"
    from quantization.build import DEFAULT_OUT

    v.validate(folder, [str(DEFAULT_OUT)], f"{DEFAULT_OUT}:litemedsam-fp32", cache, out, log=lambda *_: None)
    with open(SHARED / "reference" / "litemedsam_official_eval.csv") as f:
        official = {r["case"]: float(r["dsc"]) for r in csv.DictReader(f)}
    rows = list(csv.DictReader(open(cache)))
    assert len(rows) == 8  # 4 cases x (FP32, INT8)
    fp32_id = v.candidate_entries([f"{DEFAULT_OUT}:litemedsam-fp32"])[0].model_id
    for r in rows:
        if r["model_id"] == fp32_id:  # FP32 = the official pipeline (to its 4-digit rounding)
            assert abs(float(r["dsc"]) - official[r["case"]]) <= 5e-5, r
    text = out.read_text()
    assert text.count("Held out: ") == 1 and "litemedsam-int8" in text
    # a second run reads every case from the cache: the model is never run
    monkeypatch.setattr(v, "evaluate_case", lambda *a, **k: pytest.fail("a cached case was evaluated again"))
    v.validate(folder, [str(DEFAULT_OUT)], f"{DEFAULT_OUT}:litemedsam-fp32", cache, out, log=lambda *_: None)
