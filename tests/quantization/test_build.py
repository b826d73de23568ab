"""The INT8 build path of ``python -m quantization build`` (export, NNCF quantization, decoder weight compression,
manifest, accuracy report) on a small calibration subset, into a temporary folder, and the committed
``assets/models/ACCURACY.md`` held to its per-case CSVs and to the report's promise.

The build runs once per module: 5 calibration images, one per modality (``shared/data/calib``), and 4
single-object 2D eval cases of 4 modalities for the masks (2 of them for the report). About 2 minutes of CPU
(7.4 min wall on the 2-core development machine at load average ~10, with the report on all 4 cases).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import openvino as ov
import pytest

from engine.inference import pins
from engine.inference.manifest import bundled_models_dir, read_manifest
from tests.conftest import DATA, EVAL, REPO, needs_checkpoint, needs_shared, needs_torch

CALIB_MODALITIES = ("CT", "MR", "US", "Endoscopy", "Microscopy")
CASES = ("2DBox_CT_MedScribble-BTCV_0763890-Image", "2DBox_MR_MedScribble-ACDC_patient017",
         "2DBox_US_MedScribble-CAMUS_train-patient0286", "2DBox_Microscopy_WBC-Dataset1_001")
#: the accuracy report runs on the first two (it evaluates every case with both models again)
REPORT_CASES = CASES[:2]
#: INT8 (5 calibration images) vs FP32 mask agreement: every object >= this DSC (measured 0.96-0.99 with a
#: 6-image calibration; a broken quantizer or calibration gives far less)
MASK_DSC_MIN = 0.9

pytestmark = [needs_checkpoint, needs_torch, needs_shared, pytest.mark.slow]


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    calib_src = DATA / "calib"
    if not calib_src.is_dir():
        pytest.skip(f"no calibration images at {calib_src} (shared/data is only on CI and developer machines)")
    missing = [c for c in CASES if not (EVAL / f"{c}.npz").is_file()]
    if missing:
        pytest.skip(f"eval cases missing from {EVAL}: {missing}")
    from quantization.build import build

    root = tmp_path_factory.mktemp("build")
    calib = root / "calib"
    calib.mkdir()
    for m in CALIB_MODALITIES:
        first = sorted(calib_src.glob(f"calib_{m}_*.npz"))[0]
        (calib / first.name).symlink_to(first)
    pins_text = Path(pins.__file__).read_text(encoding="utf-8")
    records = build(root / "models", calib, log=lambda *a: None)
    assert Path(pins.__file__).read_text(encoding="utf-8") == pins_text, "a build elsewhere must not re-pin"
    return root, records


@pytest.fixture(scope="module")
def sessions(built):
    from engine.inference.session import Session, SessionConfig

    root, _ = built
    return {e.name: Session(SessionConfig(threads=2, precision="f32"), entry=e) for e in read_manifest(root / "models")}


def test_manifest_lists_every_file_with_its_sha256_and_the_ir_loads(built, sessions):
    root, records = built
    out = root / "models"
    entries = {e.name: e for e in read_manifest(out)}
    assert list(entries) == [r["name"] for r in records] == ["litemedsam-int8", "litemedsam-fp32"]
    assert entries["litemedsam-int8"].default and not entries["litemedsam-fp32"].default
    for rec in records:
        e = entries[rec["name"]]
        listed = {f["path"] for f in rec["files"]}
        assert listed == {p for g in e.graphs for p in e.graph_files(g)}
        for f in rec["files"]:
            p = out / f["path"]
            assert p.stat().st_size == f["bytes"] and _sha(p) == f["sha256"], f["path"]
        assert e.check() == []
        assert "notes" not in rec or "NNCF" in rec["notes"]
    # every graph compiled in the sessions (OpenVINO read the verified bytes); INT8 really is INT8
    core = ov.Core()
    enc8 = core.read_model(out / entries["litemedsam-int8"].graphs["encoder"])
    enc32 = core.read_model(out / entries["litemedsam-fp32"].graphs["encoder"])
    fq = lambda m: sum(op.get_type_name() == "FakeQuantize" for op in m.get_ops())  # noqa: E731
    assert fq(enc8) > 50 and fq(enc32) == 0  # 87 FakeQuantizes with this recipe
    assert "5 calibration images" in records[0]["notes"]
    assert {s.runtime.precision for s in sessions.values()} == {"f32"}


def test_the_fp32_export_and_the_decoder_weights_are_the_shipped_bytes(built):
    """Export and weight compression are deterministic: the FP32 model built here is the shipped one (the same
    weight bytes, the same graphs op by op), and so are the INT8 decoder's compressed weights; only the
    calibrated encoder differs. The .xml files are not compared byte for byte: the shipped ones were saved before
    ``export.save`` numbered OpenVINO's generated node names by graph order (process-wide counters then), so their
    names differ from any build's; once ``assets/models`` is rebuilt they can be (tests/quantization/test_generated_names.py
    holds the numbering itself)."""
    root, _ = built
    new = {e.name: e for e in read_manifest(root / "models")}
    shipped = {e.name: e for e in read_manifest(bundled_models_dir())}
    fp32_new = {f["path"]: f["sha256"] for f in new["litemedsam-fp32"].files}
    fp32_shipped = {f["path"]: f["sha256"] for f in shipped["litemedsam-fp32"].files}
    assert set(fp32_new) == set(fp32_shipped)
    core = ov.Core()
    for path, digest in fp32_shipped.items():
        if path.endswith(".bin"):
            assert fp32_new[path] == digest, path
        elif path.endswith(".xml"):
            ops = [[(op.get_type_name(), [str(o.get_partial_shape()) for o in op.outputs()])
                    for op in core.read_model(r / path).get_ordered_ops()] for r in (root / "models", bundled_models_dir())]
            assert ops[0] == ops[1], path
    int8_new = {f["path"]: f["sha256"] for f in new["litemedsam-int8"].files}
    int8_shipped = {f["path"]: f["sha256"] for f in shipped["litemedsam-int8"].files}
    assert int8_new["litemedsam/decoder_int8w.bin"] == int8_shipped["litemedsam/decoder_int8w.bin"]
    assert int8_new["litemedsam/encoder_int8.bin"] != int8_shipped["litemedsam/encoder_int8.bin"]  # 5 vs 60 images
    for e in shipped.values():  # the shipped manifest vouches for its files, the pins for the manifest
        assert e.check() == [] and pins.BUNDLED_MODEL_IDS[e.name] == e.model_id


def test_int8_masks_agree_with_fp32(sessions):
    from engine.eval.challenge import evaluate_case
    from engine.eval.metrics import compute_dice_coefficient

    for c in CASES:
        (r8, m8), (r32, m32) = (evaluate_case(sessions[n], EVAL / f"{c}.npz")
                                for n in ("litemedsam-int8", "litemedsam-fp32"))
        labels = [int(v) for v in np.unique(m32) if v]
        assert labels, c
        agree = [compute_dice_coefficient(m8 == v, m32 == v) for v in labels]
        assert min(agree) >= MASK_DSC_MIN, (c, agree)
        assert abs(r8.dsc - r32.dsc) <= 0.05, (c, r8.dsc, r32.dsc)


def test_the_report_is_its_csvs_and_fp32_is_the_official_pipeline(built):
    from quantization import report

    root, _ = built
    ev = root / "data" / "eval"
    ev.mkdir(parents=True)
    for c in REPORT_CASES:
        (ev / f"{c}.npz").symlink_to(EVAL / f"{c}.npz")
    ref = report.official_csv(EVAL)
    if not ref.is_file():
        pytest.skip(f"no official per-case results at {ref}")
    (root / "reference").mkdir()
    (root / "reference" / ref.name).symlink_to(ref)
    md = report.accuracy_report(root / "models", ev, log=lambda *a: None)
    table = report.read_table(md.read_text(encoding="utf-8"))
    assert list(table) == ["litemedsam-int8", "litemedsam-fp32", report.OFFICIAL]
    rows = {m: report.read_cases(root / "models" / f"accuracy-{m}.csv") for m in table if m != report.OFFICIAL}
    for m, cases in rows.items():
        assert sorted(r["case"] for r in cases) == sorted(REPORT_CASES)
        for g, (n, dsc, nsd, _) in report.summarise(cases).items():
            assert table[m][g][:3] == (n, round(dsc, 4), round(nsd, 4)), (m, g)
    official = {r["case"]: r for r in report.read_cases(ref)}
    for r in rows["litemedsam-fp32"]:  # the FP32 IR is the official pipeline, case by case
        assert r["dsc"] == pytest.approx(official[r["case"]]["dsc"], abs=2e-4), r["case"]
    assert "promise: within 0.01" in md.read_text(encoding="utf-8")


def test_the_report_reuses_the_protocols_per_case_results(built, monkeypatch):
    """With a cache (the held-out protocol's per-case CSV) the report evaluates each model's cases once: a second
    report reads them back (no evaluation at all) and writes the same per-case results."""
    import quantization.validate as validate_mod
    from quantization import report

    root, _ = built
    ev = root / "cached" / "eval"
    ev.mkdir(parents=True)
    for c in REPORT_CASES:
        (ev / f"{c}.npz").symlink_to(EVAL / f"{c}.npz")
    cache = root / "cached" / "validate-cases.csv"
    report.accuracy_report(root / "models", ev, log=lambda *a: None, cache=cache)
    first = {m: report.read_cases(root / "models" / f"accuracy-{m}.csv") for m in ("litemedsam-int8", "litemedsam-fp32")}
    cached = validate_mod.load_cache(cache)
    ids = {e.name: e.model_id for e in read_manifest(root / "models")}
    assert {(k[0], k[2]) for k in cached} == {(ids[m], c) for m in first for c in REPORT_CASES}

    def no_evaluation(*a, **k):
        raise AssertionError("a cached case was evaluated again")

    monkeypatch.setattr(validate_mod, "evaluate_case", no_evaluation)
    monkeypatch.setattr(report, "evaluate_case", no_evaluation)  # 2D cases only: no early-stop run either
    report.accuracy_report(root / "models", ev, log=lambda *a: None, cache=cache)
    for m, rows in first.items():
        again = report.read_cases(root / "models" / f"accuracy-{m}.csv")
        assert [(r["case"], r["modality"], r["dim"]) for r in again] == [(r["case"], r["modality"], r["dim"]) for r in rows]
        for a, b in zip(again, rows):
            assert a["dsc"] == pytest.approx(b["dsc"], abs=1e-4) and a["nsd"] == pytest.approx(b["nsd"], abs=1e-4)
