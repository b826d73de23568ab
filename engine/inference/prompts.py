"""Box-based prompts of Swin-LiteMedSAM: 4 points (SPEC B.4) and a scribble (SPEC B.5), from a box.

At inference the official model is prompted with the user's box *plus* four positive points and a
scribble generated at random inside the (shrunk) box on non-black pixels of the network input. The
official code draws them from process-global RNGs, so its prompts depend on processing order; here
every draw comes from a numpy Generator seeded with a hash of the network input and the box, so the
same box on the same slice always gives the same prompts (and different boxes different ones).

Frames: everything is in 256-space (the padded 256x256 network input, x = column, y = row). The
image argument is that network input, normalised to [0, 1]: float (1,3,256,256), (3,256,256) or
(256,256,3). "Foreground" is the per-pixel channel mean > 0 (not the global minimum, not padding).

numpy + Pillow only (no torch, OpenCV or scipy). The stroke is rasterised with Pillow's ImageDraw
(line of the brush width plus a disc at every control point), as the original does; pixel-exact
equality with the original is neither possible (random streams differ) nor needed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from engine.inference.imgproc import label_components

SIZE = 256

# StrokeSampler preset "rand_curve" (SPEC B.5)
N_VERTEX = (10, 30)          # uniform integer, upper bound exclusive
MAX_SPEED = 20.0
SPEED_STEP = 15.0
ANGLE_STEP = 0.5
BRUSH_WIDTH = (3, 10)        # uniform integer, upper bound exclusive
JITTER_FRACTION = 0.5
MAX_JITTER = 3               # integer jitter in [-3, 3)
LINE_SPEED_STD = 3.0         # |N(0, 6/2)|
ATTEMPTS = 6
MIN_COMPONENT = 5            # the largest component must have more than this many pixels


@dataclass(frozen=True)
class BoxPrompts:
    """Generated prompts for one box: points (4,2) float32 (x, y), labels (4,) float32 (all 1),
    scribble (256,256) float32 0/1; all in 256-space."""

    points: np.ndarray
    labels: np.ndarray
    scribble: np.ndarray

    def model_inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(points (1,4,2), labels (1,4), scribble (1,1,256,256)), float32, C-contiguous."""
        return (np.ascontiguousarray(self.points[None], np.float32),
                np.ascontiguousarray(self.labels[None], np.float32),
                np.ascontiguousarray(self.scribble[None, None], np.float32))


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _as_hwc(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[2] != 3:
        a = a.transpose(1, 2, 0)
    if a.shape != (SIZE, SIZE, 3):
        raise ValueError(f"expected the 256x256x3 network input, got shape {np.asarray(image).shape}")
    return np.ascontiguousarray(a, dtype=np.float32)


def foreground(image: np.ndarray) -> np.ndarray:
    """bool (256,256): per-pixel mean over the 3 channels > 0 (SPEC B.4 step 1)."""
    return _as_hwc(image).mean(axis=2) > 0


def _int_box(box) -> tuple[int, int, int, int]:
    """256-space box -> integer (x_min, y_min, x_max, y_max), truncated and clipped to [0, 256]."""
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    if b.shape != (4,) or not np.all(np.isfinite(b)):
        raise ValueError(f"box must be 4 finite numbers in 256-space, got {box!r}")
    x0, y0, x1, y1 = (int(np.clip(np.trunc(v), 0, SIZE)) for v in b)
    return x0, y0, x1, y1


def _shrink(rng: np.random.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi) (exclusive upper bound, like numpy randint); 0 if the range is empty."""
    return int(rng.integers(lo, hi)) if hi > lo else 0


def prompt_rngs(image: np.ndarray, box) -> tuple[np.random.Generator, np.random.Generator]:
    """Two independent Generators (points, scribble) seeded from sha256(network input bytes, box).

    The image is hashed in a canonical layout (float32 HWC) and the box as float64, so the seed does
    not depend on how the caller holds the arrays.
    """
    h = hashlib.sha256(b"boxseg-swin-prompts-v1")
    h.update(_as_hwc(image).tobytes())
    h.update(np.asarray(box, dtype=np.float64).reshape(-1).tobytes())
    seq = np.random.SeedSequence(int.from_bytes(h.digest()[:16], "little"))
    a, b = seq.spawn(2)
    return np.random.default_rng(a), np.random.default_rng(b)


# --------------------------------------------------------------------------------------------
# SPEC B.4: four box-based points (inference variant)
# --------------------------------------------------------------------------------------------


def shrunk_point_box(box, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Shrunk box for the points: sx uniform in [int(w/5), int(w/2) − 1), sy likewise (0 if empty)."""
    x_min, y_min, x_max, y_max = _int_box(box)
    w, h = x_max - x_min, y_max - y_min
    sx = _shrink(rng, int(w / 5), int(2 * w / 4) - 1)
    sy = _shrink(rng, int(h / 5), int(2 * h / 4) - 1)
    return x_min + sx, y_min + sy, x_max - sx, y_max - sy


def box_points(box, fg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """4 positive points (4,2) float32 (x, y) in 256-space from ``box`` and foreground ``fg`` (SPEC B.4).

    Quadrants of the shrunk box around the centre of the *unshrunk* box, in the order top-left,
    bottom-left, bottom-right, top-right. In each, x is drawn from the x-coordinates of its
    foreground pixels and, independently, y from their y-coordinates; an empty quadrant gives the
    centre (mx, my).
    """
    x_min, y_min, x_max, y_max = _int_box(box)
    mx, my = (x_min + x_max) // 2, (y_min + y_max) // 2
    x0, y0, x1, y1 = shrunk_point_box(box, rng)
    quads = ((y0, my, x0, mx), (my, y1, x0, mx), (my, y1, mx, x1), (y0, my, mx, x1))
    pts = np.empty((4, 2), np.float32)
    for i, (ya, yb, xa, xb) in enumerate(quads):
        ys, xs = np.nonzero(fg[ya:yb, xa:xb])  # all bounds are >= 0
        if ys.size == 0:
            pts[i] = (mx, my)
        else:
            pts[i] = (xa + xs[rng.integers(xs.size)], ya + ys[rng.integers(ys.size)])
    return pts


# --------------------------------------------------------------------------------------------
# SPEC B.5: box-based scribble
# --------------------------------------------------------------------------------------------


def scribble_region(box, fg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """bool (256,256): foreground inside the box shrunk by sx in [int(w/8), int(w/6)) (sy likewise)."""
    x_min, y_min, x_max, y_max = _int_box(box)
    w, h = x_max - x_min, y_max - y_min
    sx = _shrink(rng, int(w / 8), int(w / 6))
    sy = _shrink(rng, int(h / 8), int(h / 6))
    region = np.zeros((SIZE, SIZE), dtype=bool)
    ya, yb, xa, xb = y_min + sy, y_max - sy, x_min + sx, x_max - sx
    if yb > ya and xb > xa:
        region[ya:yb, xa:xb] = fg[ya:yb, xa:xb]
    return region


def _stroke(region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random curve stroke (preset "rand_curve") rasterised on a 256x256 uint8 canvas."""
    ys, xs = np.nonzero(region)
    i = rng.integers(xs.size)
    x, y = float(xs[i]), float(ys[i])
    n_vertex = int(rng.integers(*N_VERTEX))
    width = int(rng.integers(*BRUSH_WIDTH))
    angle = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(0, MAX_SPEED)
    pts = [(x, y)]
    for _ in range(n_vertex):
        speed = float(np.clip(speed + rng.uniform(-SPEED_STEP, SPEED_STEP), 0, MAX_SPEED))
        angle += rng.uniform(-ANGLE_STEP, ANGLE_STEP)
        x, y = x + speed * np.sin(angle), y + speed * np.cos(angle)   # sin for x, cos for y (SPEC B.5)
        pts.append((x, y))
    pts = np.asarray(pts, dtype=np.float64)
    line_speed, line_angle = abs(rng.normal(0, LINE_SPEED_STD)), rng.uniform(0, 2 * np.pi)
    pts += (int(line_speed * np.cos(line_angle)), int(line_speed * np.sin(line_angle)))
    k = int(np.floor(JITTER_FRACTION * len(pts)))
    idx = rng.choice(len(pts), size=k, replace=False)
    pts[idx] += rng.integers(-MAX_JITTER, MAX_JITTER, size=(k, 2))
    ipts = [(int(px), int(py)) for px, py in np.round(pts).astype(np.int64)]
    # imported on first use: ImageDraw imports ImageFont (FreeType, HarfBuzz), which the installer leaves
    # out, and only Swin-LiteMedSAM (whose weights users install themselves) draws scribbles
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(canvas)
    draw.line(ipts, fill=1, width=width)
    radius = max(width // 2 - 1, 0)
    for px, py in ipts:
        draw.ellipse((px - radius, py - radius, px + radius, py + radius), fill=1)
    return np.asarray(canvas)


def stroke_sampler(region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """bool (256,256) scribble inside ``region`` (SPEC B.5 StrokeSampler), all False if none.

    Up to 6 attempts: draw a stroke, AND it with the region, keep its largest 8-connected component;
    accept it when that has more than 5 pixels.
    """
    region = np.asarray(region, dtype=bool)
    if not region.any():
        return np.zeros((SIZE, SIZE), dtype=bool)
    for _ in range(ATTEMPTS):
        s = (_stroke(region, rng) > 0) & region
        if not s.any():
            continue
        lab, n = label_components(s, connectivity=8)
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        sizes[0] = 0
        best = int(sizes.argmax())
        if sizes[best] > MIN_COMPONENT:
            return lab == best
    return np.zeros((SIZE, SIZE), dtype=bool)


def box_scribble(box, fg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """float32 (256,256) 0/1 scribble for ``box`` (SPEC B.5 inference variant)."""
    return stroke_sampler(scribble_region(box, fg, rng), rng).astype(np.float32)


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


def box_prompts(image: np.ndarray, box) -> BoxPrompts:
    """Deterministic box-based points + scribble for ``box`` (256-space) on the network input ``image``."""
    fg = foreground(image)
    rng_points, rng_scribble = prompt_rngs(image, box)
    return BoxPrompts(points=box_points(box, fg, rng_points), labels=np.ones(4, np.float32),
                      scribble=box_scribble(box, fg, rng_scribble))
