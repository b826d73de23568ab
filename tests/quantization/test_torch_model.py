"""Our PyTorch LiteMedSAM with the real checkpoint reproduces SPEC A.10's reference tensors."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import needs_checkpoint

pytestmark = needs_checkpoint


@pytest.fixture(scope="module")
def model():
    from quantization.checkpoint import load_litemedsam

    return load_litemedsam()


def _disc_image():
    x = np.arange(256)
    xx, yy = np.meshgrid(x, x)
    img = np.where((xx - 128) ** 2 + (yy - 128) ** 2 <= 2500, 0.8, 0.2 + 0.001 * xx)
    img = (img - img.min()) / (img.max() - img.min())
    return np.stack([img] * 3)[None].astype(np.float32)


def test_checkpoint_file_is_verified():
    from quantization.checkpoint import LITEMEDSAM_BYTES, find_litemedsam_checkpoint, sha256_file

    p = find_litemedsam_checkpoint()
    assert p.stat().st_size == LITEMEDSAM_BYTES
    assert sha256_file(p).startswith("79d8c9dc") and sha256_file(p).endswith("ce76")


def test_strict_loading_reports_key_problems(model):
    import torch

    from quantization.checkpoint import CheckpointError, load_state_dict, find_litemedsam_checkpoint, load_strict
    from quantization.litemedsam import LiteMedSAM

    sd = load_state_dict(find_litemedsam_checkpoint())
    assert len(sd) == 435
    bad = dict(sd)
    bad.pop("mask_decoder.iou_token.weight")
    bad["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="1 missing .*iou_token.*1 unexpected .*extra.weight"):
        load_strict(LiteMedSAM(), bad)


def test_spec_a10_reference_tensors(model):
    import torch

    x = torch.from_numpy(_disc_image())
    box = torch.tensor([[70.0, 70.0, 186.0, 186.0]])
    with torch.no_grad():
        emb = model.image_encoder(x)
        sparse, _ = model.prompt_encoder(None, box, None)
        pe = model.prompt_encoder.get_dense_pe()
        logits, iou = model.decode(emb, box)
        _, iou3 = model.decode(emb, box, multimask_output=True)
    e = emb.numpy()
    assert e.mean() == pytest.approx(-0.002023, abs=2e-6)
    assert e.std(ddof=1) == pytest.approx(0.104590, abs=2e-6)
    assert e[0, 0, 0, 0] == pytest.approx(-0.018806, abs=2e-6)
    assert e[0, 100, 10, 20] == pytest.approx(0.077148, abs=2e-6)
    assert e[0, 255, 63, 63] == pytest.approx(0.047726, abs=2e-6)
    assert sparse[0, 0, :3].numpy() == pytest.approx([0.239476, 0.582554, -0.995137], abs=2e-6)
    assert pe[0, 0, 0, 0].item() == pytest.approx(0.141064, abs=2e-6)
    assert pe[0, 128, 5, 7].item() == pytest.approx(0.608242, abs=2e-6)
    lo = logits.numpy()
    assert lo.mean() == pytest.approx(-22.47688, abs=1e-4)
    assert lo.min() == pytest.approx(-41.39178, abs=1e-4)
    assert lo.max() == pytest.approx(15.02422, abs=1e-4)
    assert iou.item() == pytest.approx(0.97568, abs=1e-5)
    assert int((lo > 0).sum()) == 7863
    assert iou3[0].numpy() == pytest.approx([0.2677, 0.2877, 0.2659], abs=1e-4)


def test_regrouped_qkv_is_the_same_function(model):
    import copy

    import torch

    from quantization.litemedsam import regroup_qkv_for_export

    x = torch.from_numpy(_disc_image())
    enc2 = regroup_qkv_for_export(copy.deepcopy(model.image_encoder))
    with torch.no_grad():
        assert torch.allclose(model.image_encoder(x), enc2(x), atol=1e-5)


@pytest.mark.slow
def test_reference_flow_reproduces_official_outputs(model):
    """Our PyTorch re-implementation of the official flow gives the official segs exactly."""
    from engine.io.challenge_npz import load_case
    from quantization.reference_flow import segment_case_torch
    from tests.conftest import SPEC_TESTDATA, SHARED

    if not SHARED.is_dir():
        pytest.skip("shared/ not available")
    for name in ("2DBox_Synth_0001", "3DBox_Synth_0001"):
        case = load_case(SPEC_TESTDATA / "imgs" / f"{name}.npz")
        ref = np.load(SPEC_TESTDATA / "segs" / f"{name}.npz")["segs"]
        assert int((segment_case_torch(model, case) != ref).sum()) == 0, name
