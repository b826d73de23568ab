"""engine.inference.imgproc against OpenCV and scipy: the INTER_AREA resize must be bit-identical to cv2.resize.

The resize is the model's preprocessing contract (SPEC A.4), so every comparison requires zero
differing pixels. OpenCV is a test-only dependency (the ``test`` extra); without it these parity
tests skip.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.inference.imgproc import label_components, resize_area
from engine.inference.transforms import Geometry, as_rgb_u8, resize_longest
from tests.conftest import EVAL, needs_shared

LONG_SIDES = range(2, 1101)
ASPECTS = (1.0, 0.75, 0.5, 0.33)   # short side / long side


@pytest.fixture(scope="module")
def cv2():
    return pytest.importorskip("cv2", reason="opencv-python-headless (test extra) is needed for the parity tests")


def _reference(cv2, img: np.ndarray, h: int, w: int) -> np.ndarray:
    out = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    return out[:, :, None] if img.ndim == 3 and out.ndim == 2 else out   # cv2 drops a single channel


def _mismatches(cv2, cases) -> list[str]:
    """cases: iterable of (label, image, new_h, new_w) -> descriptions of those that differ."""
    bad = []
    for label, img, h, w in cases:
        want = _reference(cv2, img, h, w)
        got = resize_area(img, h, w)
        if got.shape != want.shape or got.dtype != want.dtype:
            bad.append(f"{label}: {img.shape} -> {got.shape} {got.dtype}, OpenCV {want.shape} {want.dtype}")
        elif not np.array_equal(got, want):
            d = np.abs(got.astype(int) - want.astype(int))
            bad.append(f"{label}: {img.shape} -> {(h, w)}: {np.count_nonzero(d)} pixels differ (max {d.max()})")
    return bad


def _geometry_shapes(long_sides) -> list[tuple[int, int]]:
    """Every (h, w) the engine resizes for these long sides and aspect ratios, both orientations."""
    shapes = []
    for n in long_sides:
        for a in ASPECTS:
            short = max(1, round(n * a))
            shapes.append((n, short))
            if short != n:
                shapes.append((short, n))
    return shapes


def _random_content(rng, shape, i: int) -> np.ndarray:
    """Random image, 3 or 1 channels, or a 0/k label map (as box_from_previous_mask resizes)."""
    h, w = shape
    kind = i % 4
    if kind == 3:
        k = int(rng.choice([1, 2, 7, 255]))
        blob = rng.random((max(h // 8, 1) + 1, max(w // 8, 1) + 1)) < 0.4
        lab = np.repeat(np.repeat(blob, 8, axis=0), 8, axis=1)[:h, :w]
        return np.where(lab, np.uint8(k), np.uint8(0))
    shp = (h, w, 3) if kind in (0, 2) else (h, w)
    return rng.integers(0, 256, shp, dtype=np.uint8)


@pytest.mark.parametrize("chunk", range(11))
def test_every_geometry_size_matches_opencv(cv2, chunk):
    """All (h,w) of long sides 2..1100 x 4 aspect ratios (identity, integer, non-integer, upscale)."""
    lo = 2 + 100 * chunk
    rng = np.random.default_rng(chunk)
    cases = []
    for i, (h, w) in enumerate(_geometry_shapes(range(lo, min(lo + 100, 1101)))):
        g = Geometry(h, w)
        cases.append((f"geometry {h}x{w}", _random_content(rng, (h, w), i), g.new_h, g.new_w))
    assert not (bad := _mismatches(cv2, cases)), f"{len(bad)} of {len(cases)} sizes differ: {bad[:10]}"


def test_code_paths_are_all_covered():
    """The sizes above reach every OpenCV path: copy, area-fast 2x2 and kxk, general area, upscale."""
    paths = set()
    for h, w in _geometry_shapes(LONG_SIDES):
        g = Geometry(h, w)
        sx, sy = 1 / (g.new_w / w), 1 / (g.new_h / h)
        if (g.new_h, g.new_w) == (h, w):
            paths.add("copy")
        elif sx >= 1 and sy >= 1:
            fast = abs(sx - round(sx)) < 2.2e-16 and abs(sy - round(sy)) < 2.2e-16
            paths.add(("fast 2x2" if round(sx) == round(sy) == 2 else "fast kxk") if fast else "area")
        else:
            paths.add("upscale")
    assert paths == {"copy", "fast 2x2", "fast kxk", "area", "upscale"}


def _edge_images():
    yield "zeros", np.zeros((300, 200, 3), np.uint8)
    yield "255", np.full((300, 200, 3), 255, np.uint8)
    for v in (1, 127, 128, 254):
        yield f"constant {v}", np.full((517, 333), v, np.uint8)
    for period in (1, 2, 3):
        y, x = np.mgrid[0:601, 0:457]
        board = (((y // period) + (x // period)) % 2 * 255).astype(np.uint8)
        yield f"checkerboard {period}", board
        yield f"checkerboard {period} rgb", np.stack([board, 255 - board, board], axis=2)
    y, x = np.mgrid[0:700, 0:512]
    yield "stripes", ((x % 2) * 255).astype(np.uint8)
    yield "ramp", ((x + y) % 256).astype(np.uint8)
    for k in (1, 2, 255):
        lab = np.zeros((640, 480), np.uint8)
        lab[100:321, 50:299] = k
        lab[400:401, 10:470] = k   # a 1-pixel line survives or not by the value of k
        yield f"label 0/{k}", lab


@pytest.mark.parametrize("name,img", list(_edge_images()), ids=lambda v: v if isinstance(v, str) else "")
def test_edge_case_content(cv2, name, img):
    g = Geometry(*img.shape[:2])
    sizes = [(g.new_h, g.new_w), (img.shape[0] // 2, img.shape[1] // 2), (97, 61), (250, 255), (700, 500)]
    assert not (bad := _mismatches(cv2, [(f"{name} -> {s}", img, *s) for s in sizes])), bad


def test_one_pixel_wide_images(cv2):
    rng = np.random.default_rng(5)
    cases = []
    for n in list(range(1, 300)) + list(range(300, 1101, 37)) + [511, 512, 513, 768, 1024, 1100]:
        for shape in ((1, n), (n, 1), (1, n, 3), (n, 1, 3), (2, n), (n, 2, 3)):
            img = rng.integers(0, 256, shape, dtype=np.uint8)
            g = Geometry(*shape[:2])
            if g.new_h > 0 and g.new_w > 0:
                cases.append((f"{shape}", img, g.new_h, g.new_w))
    assert not (bad := _mismatches(cv2, cases)), f"{len(bad)} of {len(cases)}: {bad[:10]}"


def test_arbitrary_target_sizes(cv2):
    """resize_area is general: random sizes both ways, mixed up/down scaling, 1..4 channels."""
    rng = np.random.default_rng(7)
    cases = []
    for i in range(400):
        h, w = (int(v) for v in rng.integers(1, 400, 2))
        nh, nw = (int(v) for v in rng.integers(1, 400, 2))
        if i % 10 == 0:   # exact integer factors, including 1xk and kx1 blocks
            fy, fx = (int(v) for v in rng.integers(1, 6, 2))
            nh, nw = max(h // fy, 1), max(w // fx, 1)
            h, w = nh * fy, nw * fx
        shape = (h, w) if i % 5 == 0 else (h, w, int(rng.integers(1, 5)))
        cases.append((f"case {i}", rng.integers(0, 256, shape, dtype=np.uint8), nh, nw))
    assert not (bad := _mismatches(cv2, cases)), f"{len(bad)} of {len(cases)}: {bad[:10]}"


def test_integer_factor_rounding_ties(cv2):
    """Block means ending in .5: (sum + 2) >> 2 rounds up for 2x2 blocks of 1/3/4 channels, the other
    blocks (2 channels, or 1x2, 3x3, 4x4, ...) round half to even in float32."""
    rng = np.random.default_rng(8)
    cases = []
    for ky, kx in ((2, 2), (1, 2), (2, 1), (3, 3), (4, 4), (2, 4), (5, 3)):
        for cn in (1, 2, 3, 4):
            block = np.zeros((ky, kx), np.uint8)
            block.flat[: (ky * kx) // 2] = 1      # sum = area / 2 -> mean .5 for even areas
            img = np.tile(block, (16, 16))
            img = np.repeat(img[:, :, None], cn, axis=2) + rng.integers(0, 2, (1, 1, cn), dtype=np.uint8) * 2
            cases.append((f"{ky}x{kx} blocks, {cn} ch", img, 16, 16))
    assert not (bad := _mismatches(cv2, cases)), bad


@needs_shared
def test_real_images_match_opencv(cv2):
    """Every 2D image of shared/data/eval and first/middle/last slices (+ their label maps) of the 3D ones."""
    files = sorted(EVAL.glob("*.npz"))
    if not files:
        pytest.skip(f"no challenge cases in {EVAL}")
    cases = []
    n2d = n3d = 0
    for f in files:
        with np.load(f) as z:
            imgs, gts = z["imgs"], z["gts"] if "gts" in z.files else None
        if f.name.startswith("2D"):
            n2d += 1
            slices = [("", imgs)]
        else:
            n3d += 1
            slices = [(f"[{k}]", imgs[k]) for k in sorted({0, imgs.shape[0] // 2, imgs.shape[0] - 1})]
            if gts is not None:
                k = int(np.argmax((gts > 0).reshape(gts.shape[0], -1).sum(axis=1)))
                lab = gts[k].astype(np.uint8) if gts.max() <= 255 else (gts[k] > 0).astype(np.uint8)
                slices.append((f" labels[{k}]", lab))
        for tag, s in slices:
            g = Geometry(*s.shape[:2])
            cases.append((f.name + tag, s, g.new_h, g.new_w))
            if s.ndim == 2 and "labels" not in tag:
                cases.append((f.name + tag + " rgb", as_rgb_u8(s), g.new_h, g.new_w))
    assert n2d > 0 and n3d > 0
    assert not (bad := _mismatches(cv2, cases)), f"{len(bad)} of {len(cases)}: {bad[:10]}"


def test_resize_longest_is_resize_area():
    img = np.random.default_rng(3).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    g = Geometry(300, 200)
    assert np.array_equal(resize_longest(img, g), resize_area(img, g.new_h, g.new_w))


def test_input_layout_and_validation():
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    ref = resize_area(np.ascontiguousarray(img), 17, 23)
    assert ref.shape == (17, 23, 3) and ref.dtype == np.uint8 and ref.flags.c_contiguous
    # views: strided, transposed, Fortran order give the same result as a contiguous copy
    big = rng.integers(0, 256, (80, 120, 3), dtype=np.uint8)
    view = big[::2, ::2]
    assert np.array_equal(resize_area(view, 17, 23), resize_area(np.ascontiguousarray(view), 17, 23))
    t = img.transpose(1, 0, 2)
    assert np.array_equal(resize_area(t, 23, 17), resize_area(np.ascontiguousarray(t), 23, 17))
    assert np.array_equal(resize_area(np.asfortranarray(img), 17, 23), ref)
    # identity returns a copy; one channel keeps its axis
    same = resize_area(img, 40, 60)
    assert np.array_equal(same, img) and not np.shares_memory(same, img)
    assert resize_area(img[:, :, :1], 20, 30).shape == (20, 30, 1)
    assert resize_area(img[:, :, 0], 20, 30).shape == (20, 30)
    for bad in (img.astype(np.float32), img.astype(np.uint16), np.zeros((4, 4, 5), np.uint8),
                np.zeros((2, 3, 4, 3), np.uint8), np.zeros((0, 5), np.uint8)):
        with pytest.raises(ValueError):
            resize_area(bad, 3, 3)
    with pytest.raises(ValueError):
        resize_area(img, 0, 5)


# --------------------------------------------------------------------------------------------
# connected components (engine.inference.prompts' scribble, app.gui.smoke's box finder) against scipy
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("connectivity", [8, 4])
def test_label_components_matches_scipy(connectivity):
    ndimage = pytest.importorskip("scipy.ndimage")
    structure = np.ones((3, 3)) if connectivity == 8 else None
    rng = np.random.default_rng(connectivity)
    masks = [np.zeros((5, 7), bool), np.ones((5, 7), bool), np.eye(9, dtype=bool), np.eye(9, dtype=bool)[::-1]]
    for _ in range(600):
        h, w = (int(v) for v in rng.integers(1, 48, 2))
        masks.append(rng.random((h, w)) < rng.uniform(0.05, 0.8))
    y, x = np.mgrid[0:256, 0:256]
    masks.append(((x // 3 + y // 3) % 2 == 0))           # diagonal contacts only
    snake = np.zeros((101, 101), bool)
    snake[::2] = True
    snake[1::4, -1] = snake[3::4, 0] = True               # one long snake: many merge rounds
    masks.append(snake)
    for m in masks:
        want, n = ndimage.label(m, structure=structure)
        got, gn = label_components(m, connectivity)
        assert gn == n and got.dtype == np.int32 and np.array_equal(got, want)


def test_label_components_validation():
    with pytest.raises(ValueError):
        label_components(np.zeros((3, 3)), connectivity=6)
    with pytest.raises(ValueError):
        label_components(np.zeros((3, 3, 3)))
    lab, n = label_components(np.array([[0, 2, 0], [0, 0, 5]]))   # any non-zero is foreground
    assert n == 1 and lab.tolist() == [[0, 1, 0], [0, 0, 1]]
