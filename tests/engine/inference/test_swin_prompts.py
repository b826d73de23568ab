"""Box-based points (SPEC B.4) and scribble (SPEC B.5) of Swin-LiteMedSAM: properties and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from engine.inference import prompts as P
from tests.conftest import EVAL, needs_shared


def _image(fg: np.ndarray) -> np.ndarray:
    """Network input (1,3,256,256) in [0,1] whose foreground (channel mean > 0) is ``fg``."""
    rng = np.random.default_rng(0)
    img = np.where(fg[None, None], rng.uniform(0.05, 1.0, (1, 3, 256, 256)), 0.0)
    return img.astype(np.float32)


def _disc(cx=128, cy=120, r=70) -> np.ndarray:
    y, x = np.mgrid[0:256, 0:256]
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


BOXES = [(60, 50, 200, 190), (100, 90, 140, 150), (0, 0, 256, 256), (10, 200, 250, 256), (120, 100, 131, 112)]


def _check(img, box, pr: P.BoxPrompts):
    fg = P.foreground(img)
    x_min, y_min, x_max, y_max = (int(v) for v in box)
    mx, my = (x_min + x_max) // 2, (y_min + y_max) // 2
    # the exact shrunk box: box_points draws the shrink first from the points generator
    rng_points, rng_scribble = P.prompt_rngs(img, box)
    x0, y0, x1, y1 = P.shrunk_point_box(box, rng_points)
    assert pr.points.shape == (4, 2) and pr.points.dtype == np.float32
    assert np.array_equal(pr.labels, np.ones(4, np.float32))
    quads = ((y0, my, x0, mx), (my, y1, x0, mx), (my, y1, mx, x1), (y0, my, mx, x1))
    for (x, y), (ya, yb, xa, xb) in zip(pr.points.astype(int), quads):
        q = np.zeros_like(fg)
        q[ya:yb, xa:xb] = fg[ya:yb, xa:xb]
        if not q.any():
            assert (x, y) == (mx, my), "empty quadrant -> centre of the unshrunk box"
            continue
        assert xa <= x < xb and ya <= y < yb, "point inside its quadrant of the shrunk box"
        assert q[:, x].any() and q[y, :].any(), "x and y are coordinates of foreground pixels of the quadrant"
    s = pr.scribble
    assert s.shape == (256, 256) and s.dtype == np.float32 and set(np.unique(s)) <= {0.0, 1.0}
    region = P.scribble_region(box, fg, rng_scribble)
    assert not (s.astype(bool) & ~region).any(), "scribble inside the shrunk box, on foreground"
    if s.any():
        from scipy import ndimage

        assert s.sum() > 5
        assert ndimage.label(s, structure=np.ones((3, 3)))[1] == 1, "one 8-connected component"


@pytest.mark.parametrize("box", BOXES)
def test_properties_on_a_disc(box):
    img = _image(_disc())
    pr = P.box_prompts(img, box)
    _check(img, box, pr)


def test_points_on_foreground_for_a_convex_rectangle():
    fg = np.zeros((256, 256), bool)
    fg[40:220, 30:230] = True
    img = _image(fg)
    for box in BOXES[:3]:
        pr = P.box_prompts(img, box)
        _check(img, box, pr)
        assert all(fg[int(y), int(x)] for x, y in pr.points)
        assert pr.scribble.sum() > 5


def test_fallbacks_when_there_is_no_foreground():
    img = np.zeros((1, 3, 256, 256), np.float32)
    box = (60, 50, 200, 190)
    pr = P.box_prompts(img, box)
    assert np.array_equal(pr.points, np.tile(np.float32([130, 120]), (4, 1)))
    assert not pr.scribble.any()
    # foreground only outside the box: same fallbacks
    fg = np.zeros((256, 256), bool)
    fg[:, :40] = True
    pr = P.box_prompts(_image(fg), box)
    assert np.array_equal(pr.points, np.tile(np.float32([130, 120]), (4, 1))) and not pr.scribble.any()


def test_partly_empty_quadrants_fall_back_to_the_centre():
    fg = np.zeros((256, 256), bool)
    fg[:, 130:] = True  # right half of the box only
    img, box = _image(fg), (60, 50, 200, 190)
    pr = P.box_prompts(img, box)
    _check(img, box, pr)
    assert np.array_equal(pr.points[:2], np.float32([[130, 120], [130, 120]]))
    assert (pr.points[2:, 0] >= 130).all()


def test_stroke_sampler_fallbacks():
    rng = np.random.default_rng(1)
    assert not P.stroke_sampler(np.zeros((256, 256), bool), rng).any()
    tiny = np.zeros((256, 256), bool)
    tiny[100:102, 100:102] = True  # 4 px: no component can have more than 5 pixels
    assert not P.stroke_sampler(tiny, rng).any()
    big = np.zeros((256, 256), bool)
    big[50:200, 50:200] = True
    s = P.stroke_sampler(big, rng)
    assert s.sum() > 5 and not (s & ~big).any()


def test_degenerate_boxes_do_not_fail():
    img = _image(_disc())
    for box in [(100, 100, 100, 140), (100, 100, 101, 101), (-20, -5, 300, 400), (100.7, 90.2, 150.9, 160.5)]:
        pr = P.box_prompts(img, box)
        assert pr.points.shape == (4, 2) and pr.scribble.shape == (256, 256)


def test_deterministic_and_layout_independent():
    img = _image(_disc())
    box = (60, 50, 200, 190)
    a, b = P.box_prompts(img, box), P.box_prompts(img.copy(), np.array(box, np.float32))
    assert np.array_equal(a.points, b.points) and np.array_equal(a.scribble, b.scribble)
    hwc = np.ascontiguousarray(img[0].transpose(1, 2, 0))
    c = P.box_prompts(hwc, list(box))
    assert np.array_equal(a.points, c.points) and np.array_equal(a.scribble, c.scribble)
    p, s, sc = a.model_inputs()
    assert p.shape == (1, 4, 2) and s.shape == (1, 4) and sc.shape == (1, 1, 256, 256)


def test_different_boxes_or_images_give_different_prompts():
    img = _image(_disc())
    seen = set()
    for box in [(60, 50, 200, 190), (61, 50, 200, 190), (60, 50, 200, 191), (70, 60, 190, 180)]:
        pr = P.box_prompts(img, box)
        seen.add((pr.points.tobytes(), pr.scribble.tobytes()))
    assert len(seen) == 4
    img2 = img.copy()
    img2[0, 0, 5, 5] += 0.01
    box = (60, 50, 200, 190)
    a, b = P.box_prompts(img, box), P.box_prompts(img2, box)
    assert not (np.array_equal(a.points, b.points) and np.array_equal(a.scribble, b.scribble))


def test_shrink_ranges_follow_the_spec():
    """Points: shrink in [int(w/5), int(w/2) - 1); scribble: [int(w/8), int(w/6)); empty range -> 0."""
    fg = np.ones((256, 256), bool)
    w = 140
    pts_sx, scr_sx = set(), set()
    for seed in range(300):
        x0, _, x1, _ = P.shrunk_point_box((0, 0, w, w), np.random.default_rng(seed))
        pts_sx.add(x0)
        assert x1 == w - x0
        r = P.scribble_region((0, 0, w, w), fg, np.random.default_rng(seed))
        scr_sx.add(int(np.nonzero(r.any(axis=0))[0][0]))
    assert pts_sx == set(range(w // 5, w // 2 - 1))
    assert scr_sx == set(range(w // 8, w // 6))
    assert P.shrunk_point_box((10, 10, 14, 14), np.random.default_rng(0)) == (10, 10, 14, 14)


def test_engine_prompts_import_no_torch():
    import subprocess
    import sys

    code = "import sys, engine.inference.prompts; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@needs_shared
def test_real_slice_from_eval():
    from engine.inference.transforms import box_to_model, preprocess

    files = sorted(EVAL.glob("2DBox_CT_*.npz"))
    if not files:
        pytest.skip(f"no 2D CT case in {EVAL}")
    with np.load(files[0]) as z:
        img, boxes = z["imgs"], z["boxes"]
    x, geom = preprocess(img)
    for b in boxes:
        box = box_to_model(b, geom)[0]
        pr = P.box_prompts(x, box)
        _check(x, box, pr)
        assert pr.scribble.sum() > 5, "a CT slice has non-black pixels inside its box"
        again = P.box_prompts(x, box)
        assert np.array_equal(pr.points, again.points) and np.array_equal(pr.scribble, again.scribble)
