"""Engine session, predictor, model verification and bad input — on the bundled models."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.base.errors import InputError, ModelError, PromptError
from engine.inference.manifest import bundled_models_dir, find_model, read_manifest, scan_models
from engine.inference.runtime import Runtime
from engine.inference.session import Session, SessionConfig
from tests.conftest import SPEC_TESTDATA, needs_shared


def test_bundled_manifest_lists_verified_models():
    models = read_manifest(bundled_models_dir())
    names = {m.name for m in models}
    assert "litemedsam-fp32" in names
    for m in models:
        assert m.check() == [], m.name
        assert m.source_checkpoint["sha256"].startswith("79d8c9dc")
        assert (m.root / m.attribution).is_file()
    assert find_model().default


def _copy_models(tmp_path: Path) -> Path:
    dst = tmp_path / "models"
    shutil.copytree(bundled_models_dir(), dst)
    return dst


def test_sha_mismatch_is_refused(tmp_path):
    root = _copy_models(tmp_path)
    entry = next(m for m in read_manifest(root) if m.name == "litemedsam-fp32")
    with open(root / (entry.graphs["decoder"][:-4] + ".bin"), "r+b") as f:
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(ModelError, match="sha256 does not match"):
        Session(entry=entry)


def test_missing_model_file_and_unknown_name(tmp_path):
    root = _copy_models(tmp_path)
    entry = next(m for m in read_manifest(root) if m.name == "litemedsam-fp32")
    (root / entry.graphs["encoder"]).unlink()
    with pytest.raises(ModelError, match="missing file"):
        Session(entry=entry)
    with pytest.raises(ModelError, match="not found"):
        find_model("no-such-model")
    with pytest.raises(ModelError, match="no models installed"):
        find_model(None, search_path=[tmp_path / "empty"])


def test_malformed_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1, "models": [{"name": "x"}]}))
    with pytest.raises(ModelError, match="malformed"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot read"):
        read_manifest(tmp_path)


def _fake_manifest(folder: Path, *names: str) -> Path:
    """A manifest of models whose files are listed but absent (listing needs no IR)."""
    folder.mkdir(parents=True, exist_ok=True)
    models = [{"name": n, "family": "litemedsam", "precision": "int8", "input_size": 256,
               "graphs": {"encoder": f"{n}/e.xml", "decoder": f"{n}/d.xml"},
               "files": [{"path": f"{n}/{f}", "sha256": "0" * 64} for f in ("e.xml", "e.bin", "d.xml", "d.bin")]}
              for n in names]
    (folder / "manifest.json").write_text(json.dumps({"format": 1, "models": models}))
    return folder / "manifest.json"


def test_bundled_name_is_not_replaced_by_a_model_on_the_path(tmp_path, monkeypatch, capsys):
    """A model on BOXSEG_MODEL_PATH (or in the user's folder) named like a bundled one is ignored, said out loud;
    its other models are used; between two non-bundled folders the first keeps the name, also said."""
    from app.cli.models import cmd_models

    first = _fake_manifest(tmp_path / "a", "litemedsam-int8", "my-model")
    second = _fake_manifest(tmp_path / "b", "my-model")
    monkeypatch.setenv("BOXSEG_MODEL_PATH", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    assert find_model("litemedsam-int8").root == bundled_models_dir()
    assert find_model("my-model").root == tmp_path / "a"
    scan = scan_models()
    assert sorted(m.name for m in scan.models) == ["litemedsam-fp32", "litemedsam-int8", "my-model"]
    assert scan.warnings == [
        f"ignored model 'litemedsam-int8' in {first}: the bundled model of that name is used; rename it in its "
        "manifest to use it",
        f"ignored model 'my-model' in {second}: {first} has a model of that name earlier on the search path; "
        "rename it in its manifest to use it"]
    assert cmd_models(None) == 0
    err = capsys.readouterr().err
    assert f"ignored model 'litemedsam-int8' in {first}" in err and f"ignored model 'my-model' in {second}" in err
    # the bundled folder itself on the path is no conflict
    monkeypatch.setenv("BOXSEG_MODEL_PATH", str(bundled_models_dir()))
    assert scan_models().warnings == []


def test_malformed_manifest_on_the_path_is_skipped_with_a_warning(tmp_path, monkeypatch, capsys, caplog):
    from app.cli.models import cmd_models

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{not json")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "manifest.json").write_text(json.dumps({"format": 7, "models": []}))
    ok = _fake_manifest(tmp_path / "ok", "my-model")
    monkeypatch.setenv("BOXSEG_MODEL_PATH", os.pathsep.join(str(tmp_path / d) for d in ("bad", "old", "ok")))
    scan = scan_models()
    assert sorted(m.name for m in scan.models) == ["litemedsam-fp32", "litemedsam-int8", "my-model"]
    assert len(scan.warnings) == 2
    assert str(tmp_path / "bad" / "manifest.json") in scan.warnings[0]
    assert str(tmp_path / "old" / "manifest.json") in scan.warnings[1] and "format 7" in scan.warnings[1]
    assert find_model().name == "litemedsam-int8" and find_model("my-model").root == ok.parent
    assert any(str(tmp_path / "bad" / "manifest.json") in r.getMessage() for r in caplog.records)
    assert cmd_models(None) == 0
    out = capsys.readouterr()
    assert "litemedsam-int8" in out.out and str(tmp_path / "bad" / "manifest.json") in out.err


def _copy_int8(tmp_path: Path) -> Path:
    """The bundled INT8 model's files and manifest (not the FP32 ones: listing does not need them)."""
    dst = tmp_path / "models"
    entry = find_model("litemedsam-int8")
    for f in entry.files:
        (dst / f["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(entry.root / f["path"], dst / f["path"])
    shutil.copy(entry.root / "manifest.json", dst / "manifest.json")
    return dst


def test_weights_changed_after_verification_are_never_compiled(tmp_path, session_int8):
    """The point decoder is compiled long after the model was verified: it is built from the verified bytes
    in memory, so replacing its .bin meanwhile changes nothing (it used to re-read the file)."""
    root = _copy_int8(tmp_path)
    entry = next(m for m in read_manifest(root) if m.name == "litemedsam-int8")
    tampered = Session(SessionConfig(threads=2), entry=entry)
    assert "decoder" not in tampered.runtime._compiled  # compiled when the first point arrives
    weights = root / entry.graph_files("decoder")[1]
    weights.write_bytes(bytes(weights.stat().st_size))  # same size, all zeros
    img = np.zeros((64, 64), np.uint8)
    img[16:48, 16:48] = 200
    got, want = tampered.predictor(), session_int8.predictor()
    for p in (got, want):
        p.set_image(img)
    a = got.predict([10, 10, 54, 54], points=[[32, 32]], point_labels=[1])
    b = want.predict([10, 10, 54, 54], points=[[32, 32]], point_labels=[1])
    np.testing.assert_array_equal(a.low_res, b.low_res)
    assert a.mask[24:40, 24:40].all()
    with pytest.raises(ModelError, match="sha256 does not match"):  # a new session reads the files again
        Session(SessionConfig(threads=2), entry=entry)


def test_read_file_checks_the_bytes_it_returns(tmp_path):
    root = _copy_int8(tmp_path)
    entry = next(m for m in read_manifest(root) if m.name == "litemedsam-int8")
    xml, weights = entry.graph_files("decoder_prefix")
    data = entry.read_file(weights)
    assert len(data) == (root / weights).stat().st_size
    with open(root / weights, "r+b") as f:
        f.seek(100)
        f.write(b"\x01\x02")
    with pytest.raises(ModelError, match=r"decoder_prefix_fp32\.bin: sha256 does not match"):
        entry.read_graph("decoder_prefix")
    assert entry.read_graph("decoder_prefix", verify=False)[1][100:102] == b"\x01\x02"
    (root / xml).unlink()
    with pytest.raises(ModelError, match="missing file"):
        entry.read_graph("decoder_prefix")


def test_precision_is_explicit(session):
    assert session.runtime.precision == "f32"
    assert session.runtime.threads == 2


def test_fewer_threads_than_cores_are_not_pinned(monkeypatch):
    """Batch workers run one thread each: pinned, they would all land on core 0."""
    from engine.inference import runtime

    monkeypatch.setattr(runtime, "available_cores", lambda: 4)
    rt = Runtime(find_model("litemedsam-int8"), threads=1)
    assert rt._compiled["encoder"].get_property("ENABLE_CPU_PINNING") is False
    monkeypatch.setattr(runtime, "available_cores", lambda: 1)
    rt = Runtime(find_model("litemedsam-int8"), threads=1)
    assert "ENABLE_CPU_PINNING" not in rt.config


def test_two_phase_predictor_and_cache(session):
    rng = np.random.default_rng(1)
    img = (rng.random((120, 160)) * 40).astype(np.uint8)
    img[30:80, 50:110] += 150
    p = session.predictor()
    runs = session.timings.encoder_runs
    assert p.set_image(img, slice_index=-1) is False
    assert session.timings.encoder_runs == runs + 1
    r1 = p.predict([45, 25, 115, 85])
    assert r1.mask.shape == (120, 160) and r1.mask.dtype == bool
    inside = r1.mask[30:80, 50:110].mean()
    assert inside > 0.9 and r1.mask.sum() < 1.3 * 50 * 60
    mask_copy = r1.mask.copy()
    r2 = p.predict([0, 0, 40, 40])
    assert np.array_equal(r1.mask, mask_copy), "a later prediction must not overwrite an earlier result"
    assert not np.array_equal(r1.low_res, r2.low_res)
    # same content again: the cache answers, the encoder does not run
    q = session.predictor()
    assert q.set_image(img.copy(), slice_index=-1) is True
    assert session.timings.encoder_runs == runs + 1
    assert np.array_equal(q.predict([45, 25, 115, 85]).mask, r1.mask)
    # a different window string is a different cache entry
    assert q.set_image(img, slice_index=-1, window="ct:40:400") is False


def test_decoder_prefix_runs_once_per_slice_and_box_only_graph_is_static(session):
    """The prefix (image-only decoder projections) runs at set_image, not per prompt; box-only
    prompts use the decoder compiled for 0 points; both give what the whole computation gives."""
    rt = session.runtime
    assert rt.prefix_outputs == ("t2i_k", "t2i_v", "i2t_q", "key_pe")
    assert rt._box_only == "decoder@box"
    assert rt._compiled["decoder@box"].input("points").get_partial_shape().is_static
    rng = np.random.default_rng(3)
    img = (rng.random((90, 140)) * 60).astype(np.uint8)
    img[20:70, 30:100] += 140
    p = session.predictor()
    before = session.timings.prefix_runs
    p.set_image(img)
    assert session.timings.prefix_runs == before + 1
    results = [p.predict(b) for b in ([25, 15, 105, 75], [0, 0, 50, 50], [28, 18, 100, 72])]
    assert session.timings.prefix_runs == before + 1, "prompts on the same slice must not rerun the prefix"
    # raw encoder outputs (no prefix) -> decode computes the prefix itself: same logits
    outputs, geom, _ = session.encode(img)
    from engine.inference.transforms import box_to_model

    box = box_to_model([25, 15, 105, 75], geom)
    low, iou = session.decode(outputs, box)
    assert np.array_equal(low, results[0].low_res) and iou == results[0].iou
    # the dynamic-shape decoder on the same feed: the static box-only graph computes the same
    state = session.decoder_state(outputs)
    feed = session.family.decoder_inputs(state, box, np.zeros((1, 0, 2), np.float32), np.zeros((1, 0), np.float32))
    feed.update({k: state[k] for k in rt.prefix_outputs})
    rt.compile("decoder")
    dyn = rt._requests["decoder"].infer(feed)
    dyn_low = np.array(dyn[rt._compiled["decoder"].output("logits")]).reshape(256, 256)
    # 8-bit decoder weights: OpenVINO picks different kernels for the static and the dynamic shape
    # (logits differ by up to ~0.05 here; f32 decoders agree to 1e-4)
    assert np.abs(dyn_low - low).max() < 0.2
    assert ((dyn_low > 0) != (low > 0)).sum() <= max(3, 0.002 * (low > 0).sum())


def test_dynamic_decoder_is_compiled_when_points_arrive():
    fresh = Session(SessionConfig("litemedsam-int8", threads=2))
    assert "decoder@box" in fresh.runtime._compiled and "decoder" not in fresh.runtime._compiled
    img = np.zeros((64, 64), np.uint8)
    img[16:48, 16:48] = 200
    p = fresh.predictor()
    p.set_image(img)
    p.predict([10, 10, 54, 54])
    assert "decoder" not in fresh.runtime._compiled, "box-only prompts use the static graph"
    t = fresh.runtime.compile_in_background("decoder")  # what the app does after loading a model
    p.predict([12, 12, 52, 52])  # box prompts go on meanwhile
    r = p.predict([10, 10, 54, 54], points=[[32, 32]], point_labels=[1])  # waits for the compile if needed
    t.join(timeout=60)
    assert not t.is_alive() and "decoder" in fresh.runtime._compiled and r.mask[24:40, 24:40].all()


def test_points_refine_the_mask(session):
    img = np.zeros((128, 128), np.uint8)
    img[20:60, 20:60] = 200
    img[60:100, 60:100] = 120
    p = session.predictor()
    p.set_image(img)
    base = p.predict([15, 15, 105, 105])
    neg = p.predict([15, 15, 105, 105], points=[[80, 80]], point_labels=[0])
    assert neg.mask[75:85, 75:85].mean() < base.mask[75:85, 75:85].mean() or neg.mask.sum() < base.mask.sum()
    with pytest.raises(PromptError):
        p.predict([15, 15, 105, 105], points=[[80, 80]], point_labels=[2])


@pytest.mark.parametrize("value", [0, 255])
def test_constant_slice_is_valid_input(session, value):
    p = session.predictor()
    p.set_image(np.full((64, 64), value, np.uint8))
    r = p.predict([10, 10, 50, 50])
    assert np.isfinite(r.low_res).all() and np.isfinite(r.iou)


def test_bad_prompts_and_images(session):
    p = session.predictor()
    with pytest.raises(RuntimeError):
        p.predict([0, 0, 10, 10])
    with pytest.raises(InputError):
        p.set_image(np.zeros((10, 10), np.int16))
    p.set_image(np.zeros((50, 60), np.uint8))
    with pytest.raises(PromptError, match="outside"):
        p.predict([100, 100, 120, 120])
    with pytest.raises(PromptError, match="zero or negative area"):
        p.predict([10, 10, 10, 30])


@needs_shared
@pytest.mark.parametrize("name", ["2DBox_Synth_0001", "3DBox_Synth_0001"])
def test_fp32_reproduces_official_outputs_exactly(session_fp32, name):
    """SPEC A.10 test 2: the official script's segs, bit for bit, with the FP32 IR."""
    from engine.io.challenge_npz import load_case
    from engine.pipeline import segment_case

    case = load_case(SPEC_TESTDATA / "imgs" / f"{name}.npz")
    ref = np.load(SPEC_TESTDATA / "segs" / f"{name}.npz")["segs"]
    segs = segment_case(session_fp32, case)
    assert segs.shape == ref.shape
    assert int((segs != ref).sum()) == 0


@needs_shared
@pytest.mark.parametrize("name", ["2DBox_Synth_0001", "3DBox_Synth_0001"])
def test_default_model_close_to_official_outputs(session, name):
    from engine.io.challenge_npz import load_case
    from engine.pipeline import segment_case

    case = load_case(SPEC_TESTDATA / "imgs" / f"{name}.npz")
    ref = np.load(SPEC_TESTDATA / "segs" / f"{name}.npz")["segs"] > 0
    segs = segment_case(session, case) > 0
    dice = 2 * (segs & ref).sum() / (segs.sum() + ref.sum())
    assert dice > 0.99


def test_precompute_fills_the_cache_and_can_be_cancelled(session):
    from engine.base.errors import Cancelled

    rng = np.random.default_rng(7)
    vol = rng.integers(0, 255, (5, 48, 40), dtype=np.uint8)
    seen = []
    n = session.precompute(vol, range(5), progress=lambda d, t: seen.append((d, t)))
    assert n == 5 and seen[-1] == (5, 5)
    runs = session.timings.encoder_runs
    p = session.predictor()
    for z in range(5):
        assert p.set_image(vol[z], slice_index=z) is True
    assert session.timings.encoder_runs == runs
    with pytest.raises(Cancelled):
        session.precompute(vol[::-1].copy(), range(5), should_stop=lambda: True)


def test_disk_cache_is_reused_by_a_new_session(tmp_path):
    img = np.random.default_rng(3).integers(0, 255, (40, 50), dtype=np.uint8)
    s1 = Session(SessionConfig("litemedsam-fp32", threads=2, disk_cache=tmp_path))
    s1.predictor().set_image(img)
    assert list(tmp_path.glob("*.npz"))
    s2 = Session(SessionConfig("litemedsam-fp32", threads=2, disk_cache=tmp_path))
    p = s2.predictor()
    assert p.set_image(img) is True and s2.timings.encoder_runs == 0
    assert s2.cache.stats.disk_hits == 1


def test_family_names_and_missing_swin_hint():
    assert find_model("litemedsam").family == "litemedsam"
    with pytest.raises(ModelError, match="quantization build --arch swin-litemedsam --checkpoint"):
        find_model("swin-litemedsam", search_path=[bundled_models_dir()])


def test_the_bundled_manifest_cannot_vouch_for_itself(tmp_path, monkeypatch):
    """Changed weights with a manifest rewritten to match them: the bundled folder refuses the model (its id is
    pinned in engine.inference.pins), the other bundled model still loads; an unchanged copy loads both."""
    import json

    from engine.inference import manifest as mf
    from engine.inference.pins import BUNDLED_MODEL_IDS

    assert BUNDLED_MODEL_IDS == {e.name: e.model_id for e in read_manifest(bundled_models_dir())}
    root = _copy_models(tmp_path)
    monkeypatch.setattr(mf, "bundled_models_dir", lambda: root)
    assert {e.name for e in scan_models([root]).models} == set(BUNDLED_MODEL_IDS)
    data = json.loads((root / "manifest.json").read_text())
    int8 = next(m for m in data["models"] if m["name"] == "litemedsam-int8")
    f = next(f for f in int8["files"] if f["path"].endswith("encoder_int8.bin"))
    with open(root / f["path"], "ab") as fh:
        fh.write(b"\0" * 64)
    f["sha256"], f["bytes"] = mf.sha256_file(root / f["path"]), f["bytes"] + 64
    (root / "manifest.json").write_text(json.dumps(data))
    entry = next(e for e in read_manifest(root) if e.name == "litemedsam-int8")
    assert entry.check() == []  # the manifest vouches for the changed file ...
    scan = scan_models([root])
    assert [e.name for e in scan.models] == ["litemedsam-fp32"]  # ... the pin does not
    assert any("litemedsam-int8" in w and "differ from the model this BoxSeg was built with" in w for w in scan.warnings)
    with pytest.raises(ModelError, match="litemedsam-int8"):
        find_model("litemedsam-int8", search_path=[root])


def test_write_pins_pins_what_the_folder_holds(tmp_path, monkeypatch):
    from engine.inference import pins
    from quantization.manifest import write_pins

    copy = tmp_path / "pins.py"
    copy.write_text(Path(pins.__file__).read_text())
    monkeypatch.setattr(pins, "__file__", str(copy))
    write_pins(bundled_models_dir())
    ns: dict = {}
    exec(copy.read_text(), ns)
    assert ns["BUNDLED_MODEL_IDS"] == {e.name: e.model_id for e in read_manifest(bundled_models_dir())}
    assert ns["__doc__"].startswith("The shipped models' identities")
