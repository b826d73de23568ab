"""The Swin-LiteMedSAM family through the engine, on IR built from the parity weights.

Accuracy is meaningless with synthetic weights; what is checked is that the engine feeds the
family correctly: three cached encoder outputs with exact byte accounting, generated box prompts
(deterministic), user clicks appended, B.6 propagation, and the challenge flow running end to end.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SPEC_TESTDATA, needs_shared, needs_torch
from tests.quantization.test_swin_parity import PARITY, _gen_weights

pytestmark = [needs_torch, needs_shared, pytest.mark.slow,
              pytest.mark.skipif(not (PARITY / "gen_weights.py").is_file(), reason="no parity reference")]


@pytest.fixture(scope="module")
def swin_session(tmp_path_factory):
    from engine.inference.session import Session, SessionConfig
    from quantization.parity import export_for_engine
    from quantization.swin_litemedsam import load_swin_litemedsam

    sd = _gen_weights().build_state_dict(PARITY / "keys.json", PARITY / "constants.npz")
    entry = export_for_engine(load_swin_litemedsam(sd), tmp_path_factory.mktemp("swin-ir"))
    return Session(SessionConfig(threads=2), entry=entry)


def test_cache_holds_all_encoder_outputs(swin_session):
    img = np.random.default_rng(0).integers(0, 255, (96, 128), dtype=np.uint8)
    before = swin_session.cache.nbytes
    p = swin_session.predictor()
    p.set_image(img)
    # 8 MiB: the three outputs (16 MiB as float32) are kept as float16 (SessionConfig.cache_storage)
    assert swin_session.cache.nbytes - before == 2 * (256 * 64 * 64 * 2 + 128 * 128 * 128)
    a = p.predict([20, 20, 90, 70])
    b = p.predict([20, 20, 90, 70])
    assert np.array_equal(a.low_res, b.low_res), "generated prompts must be deterministic per box and slice"
    c = p.predict([20, 20, 90, 70], points=[[40, 40]], point_labels=[0])
    assert not np.array_equal(a.low_res, c.low_res), "a user click must reach the decoder"


def test_challenge_flow_runs_end_to_end(swin_session):
    from engine.io.challenge_npz import load_case
    from engine.pipeline import segment_case

    for name in ("2DBox_Synth_0001", "3DBox_Synth_0001"):
        case = load_case(SPEC_TESTDATA / "imgs" / f"{name}.npz")
        segs = segment_case(swin_session, case)
        assert segs.shape == (case.imgs.shape if case.is_3d else case.imgs.shape[:2])
        if case.is_3d:
            # B.6 never segments z_min (1) and z_max (9) of the box [50,45,1,110,95,9]
            assert not segs[1].any() and not segs[9].any()


def test_build_installs_into_a_model_folder_and_keeps_others(tmp_path, monkeypatch):
    import torch

    from engine.inference.manifest import find_model, list_models
    from quantization.__main__ import main

    sd = _gen_weights().build_state_dict(PARITY / "keys.json", PARITY / "constants.npz")
    ckpt = tmp_path / "Swin_LiteMedSAM.pth"
    torch.save({"model": sd}, ckpt)
    out = tmp_path / "models"
    (out).mkdir()
    assert main(["build", "--arch", "swin-litemedsam", "--checkpoint", str(ckpt), "--out", str(out), "--no-int8"]) == 0
    assert main(["build", "--arch", "swin-litemedsam", "--out", str(out)]) == 2  # no checkpoint: clear error
    monkeypatch.setenv("BOXSEG_MODEL_PATH", str(out))
    m = find_model("swin-litemedsam")
    assert m.name == "swin-litemedsam-fp32" and m.check() == []
    assert {"litemedsam-fp32", "swin-litemedsam-fp32"} <= {e.name for e in list_models()}
