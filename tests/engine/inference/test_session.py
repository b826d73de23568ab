"""Engine session, predictor, model verification and bad input — on the bundled models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.base.errors import InputError, ModelError, PromptError
from engine.inference.manifest import bundled_models_dir, find_model, list_models, read_manifest
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


def test_user_models_shadow_bundled(tmp_path, monkeypatch):
    root = _copy_models(tmp_path)
    monkeypatch.setenv("BOXSEG_MODEL_PATH", str(root))
    assert find_model("litemedsam-fp32").root == root
    assert len({m.name for m in list_models()}) == len(list_models())


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
