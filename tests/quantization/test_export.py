"""Exported OpenVINO IR (f32 inference precision) equals our PyTorch model."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import needs_checkpoint

pytestmark = [needs_checkpoint, pytest.mark.slow]


@pytest.fixture(scope="module")
def model():
    from quantization.checkpoint import load_litemedsam

    return load_litemedsam()


def test_encoder_and_decoders_match_torch(model):
    import torch

    from quantization import export as ex

    rng = np.random.default_rng(0)
    x = rng.random((1, 3, 256, 256), dtype=np.float32)
    with torch.no_grad():
        emb = model.image_encoder(torch.from_numpy(x))
    enc = ex.compile_f32(ex.convert_encoder(model))
    (emb_ov,) = ex.run(enc, x)
    assert np.abs(emb_ov - emb.numpy()).max() < 1e-4

    box = np.array([[60, 50, 200, 170]], np.float32)
    none_p, none_l = np.zeros((1, 0, 2), np.float32), np.zeros((1, 0), np.float32)
    with torch.no_grad():
        lo, iou = model.decode(emb, torch.from_numpy(box))
    dec = ex.compile_f32(ex.convert_decoder(model))
    lo_ov, iou_ov = ex.run(dec, emb.numpy(), box, none_p, none_l)
    assert np.abs(lo_ov - lo.numpy()).max() < 1e-3 and abs(float(iou_ov.reshape(-1)[0]) - iou.item()) < 1e-4

    pts = np.array([[[100, 100], [150, 120], [90, 160]]], np.float32)
    lab = np.array([[1, 0, 1]], np.float32)
    with torch.no_grad():
        lo_p, _ = model.decode(emb, torch.from_numpy(box), points=(torch.from_numpy(pts), torch.from_numpy(lab)))
    lo_p_ov, _ = ex.run(dec, emb.numpy(), box, pts, lab)
    assert np.abs(lo_p_ov - lo_p.numpy()).max() < 1e-3
    assert np.abs(lo_p_ov - lo_ov).max() > 0.1, "points must change the prediction"
    lo_1, _ = ex.run(dec, emb.numpy(), box, pts[:, :1], lab[:, :1])  # the point count is dynamic
    assert lo_1.shape == (1, 1, 256, 256)


def test_split_decoder_with_prefix_matches_torch(model):
    """The shipped pair: prefix once per image + split decoder per prompt == the whole decoder."""
    import torch

    from quantization import export as ex

    rng = np.random.default_rng(1)
    with torch.no_grad():
        emb = model.image_encoder(torch.from_numpy(rng.random((1, 3, 256, 256), dtype=np.float32)))
    prefix = ex.compile_f32(ex.convert_decoder_prefix(model))
    dec = ex.compile_f32(ex.convert_decoder(model, split=True))
    assert [o.get_any_name() for o in prefix.outputs] == ex.PREFIX_OUTPUTS
    # compiled, a fused input port may carry extra names; the IR names are among them
    names = ["embedding", *ex.PREFIX_OUTPUTS, "box", "points", "labels"]
    assert all(n in i.get_names() for n, i in zip(names, dec.inputs)) and len(dec.inputs) == len(names)
    pre = ex.run(prefix, emb.numpy())
    assert all(p.shape == (1, 4096, 128) for p in pre[:3]) and pre[3].shape == (1, 4096, 256)
    box = np.array([[30, 70, 140, 220]], np.float32)
    for pts, lab in [(np.zeros((1, 0, 2), np.float32), np.zeros((1, 0), np.float32)),
                     (np.array([[[80, 120], [100, 200]]], np.float32), np.array([[1, 0]], np.float32))]:
        with torch.no_grad():
            lo, iou = model.decode(emb, torch.from_numpy(box),
                                   points=(torch.from_numpy(pts), torch.from_numpy(lab)) if pts.shape[1] else None)
        lo_ov, iou_ov = ex.run(dec, emb.numpy(), *pre, box, pts, lab)
        assert np.abs(lo_ov - lo.numpy()).max() < 1e-3 and abs(float(iou_ov.reshape(-1)[0]) - iou.item()) < 1e-4
