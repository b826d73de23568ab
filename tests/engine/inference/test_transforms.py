"""Coordinate maths between the original frame and 256-space (SPEC A.4/A.5)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.base.errors import InputError, PromptError
from engine.inference.transforms import (Geometry, as_rgb_u8, box_from_previous_mask, box_to_model, postprocess,
                               preprocess, upscale_logits)
from tests.conftest import needs_torch


@pytest.mark.parametrize("h,w,nh,nw", [(300, 200, 256, 171), (512, 512, 256, 256), (141, 131, 256, 238),
                                       (166, 164, 256, 253), (100, 401, 64, 256)])
def test_geometry_rounding(h, w, nh, nw):
    g = Geometry(h, w)
    assert (g.new_h, g.new_w) == (nh, nw)


def test_preprocess_pads_bottom_right_and_minmax():
    img = np.zeros((300, 200, 3), np.uint8)
    img[:, :, 0] = 50
    img[100:, :, 1] = 250
    x, g = preprocess(img)
    assert x.shape == (1, 3, 256, 256) and x.dtype == np.float32
    assert x.min() == 0.0 and np.isclose(x.max(), 1.0)
    assert np.all(x[:, :, :, g.new_w:] == 0) and g.new_w == 171


def test_constant_and_zero_slices_give_finite_input():
    for v in (0, 7, 255):
        x, _ = preprocess(np.full((64, 80), v, np.uint8))
        assert np.isfinite(x).all() and x.max() == 0.0


def test_bad_images_are_rejected():
    with pytest.raises(InputError):
        as_rgb_u8(np.zeros((10, 10), np.float32))
    with pytest.raises(InputError):
        as_rgb_u8(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(InputError):
        as_rgb_u8(np.zeros((0, 10), np.uint8))


def test_box_truncates_like_the_reference():
    g = Geometry(300, 200)  # scale 256/300
    b = box_to_model([35, 85, 145, 235], g)
    assert b.tolist() == [[29, 72, 123, 200]]  # int(35*0.8533)=29, int(85*.8533)=72, ...


@pytest.mark.parametrize("box", [[10, 10, 10, 20], [10, 20, 30, 5], [300, 0, 320, 10], [-50, -50, -10, -1],
                                 [0, 0, float("nan"), 5], [1, 2, 3]])
def test_bad_boxes(box):
    with pytest.raises(PromptError):
        box_to_model(box, Geometry(100, 200))


@needs_torch
@pytest.mark.parametrize("h,w", [(300, 200), (512, 512), (141, 131), (100, 80), (257, 1000)])
def test_upscale_matches_torch_bilinear(h, w):
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(h * w)
    low = rng.normal(size=(1, 1, 256, 256)).astype(np.float32)
    g = Geometry(h, w)
    ref = F.interpolate(torch.from_numpy(low[:, :, :g.new_h, :g.new_w]), (h, w), mode="bilinear",
                        align_corners=False)[0, 0].numpy()
    ours = upscale_logits(low, g)
    assert ours.shape == (h, w)
    assert np.abs(ours - ref).max() < 5e-5  # float32 rounding order only
    assert np.array_equal(postprocess(low, g), ref > 0)


def test_box_from_previous_mask_margin_and_clipping():
    g = Geometry(512, 512)
    m = np.zeros((512, 512), bool)
    m[100:200, 300:510] = True
    b = box_from_previous_mask(m, 1, g)
    # resized by 1/2: rows 50..99, cols 150..254 -> enlarged by 3, max clipped at 256
    assert b.tolist() == [[147, 47, 256, 102]]
    assert box_from_previous_mask(np.zeros((512, 512), bool), 1, g) is None


def test_label_value_changes_what_survives_downsizing():
    """INTER_AREA averages 0/k values: a lone pixel survives only for large enough k (SPEC A.8)."""
    g = Geometry(512, 512)
    m = np.zeros((512, 512), bool)
    m[10, 10] = True  # 1 of 4 pixels of its 2x2 block -> k/4 after averaging
    assert box_from_previous_mask(m, 1, g) is None
    assert box_from_previous_mask(m, 3, g) is not None
