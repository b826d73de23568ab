"""Ruler length and ROI statistics (engine.data.roi) against direct numpy on the same pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.data.geometry import raster_affine
from engine.data.image import Image
from engine.data.roi import line_length, roi_mask, roi_stats


def ct(affine=None, shape=(3, 40, 50), seed=1):
    v = np.random.default_rng(seed).normal(40, 25, shape).astype(np.int16)
    return Image(voxels=v, affine=np.diag([0.7, 1.3, 5.0, 1.0]) if affine is None else affine, modality="CT",
                 units="HU")


def test_line_length_uses_the_in_plane_spacing_and_pixels_without_it():
    img = ct()
    assert line_length(img, (2, 3), (12, 3)) == pytest.approx(7.0)
    assert line_length(img, (2, 3), (2, 13)) == pytest.approx(13.0)
    assert line_length(img, (0, 0), (3, 4)) == pytest.approx(math.hypot(3 * 0.7, 4 * 1.3))
    a = np.eye(4)
    c, s = math.cos(0.4), math.sin(0.4)
    a[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag([0.5, 2.0, 3.0])  # oblique pixels
    assert line_length(ct(a), (1, 1), (4, 5)) == pytest.approx(math.hypot(3 * 0.5, 4 * 2.0))
    raster = Image(voxels=np.zeros((1, 20, 20), np.uint8), affine=raster_affine(), spacing_known=False)
    assert line_length(raster, (0, 0), (3, 4)) == pytest.approx(5.0)


@pytest.mark.parametrize("shape", ["ellipse", "rectangle"])
def test_roi_stats_equal_numpy_on_the_same_pixels(shape):
    img = ct()
    bounds = (30.6, 5.2, 8.3, 27.9)  # corners in any order
    st = roi_stats(img, 1, bounds, shape)
    yy, xx = np.mgrid[0:40, 0:50]
    if shape == "ellipse":
        cx, cy, rx, ry = (8.3 + 30.6) / 2, (5.2 + 27.9) / 2, (30.6 - 8.3) / 2, (27.9 - 5.2) / 2
        inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
    else:
        inside = (xx >= 8.3) & (xx <= 30.6) & (yy >= 5.2) & (yy <= 27.9)
    vals = img.voxels[1][inside].astype(np.float64)
    assert st.pixels == inside.sum() > 100
    assert st.area == pytest.approx(inside.sum() * 0.7 * 1.3)
    assert st.area_unit == "mm2" and st.intensity_unit == "HU"
    assert (st.mean, st.sd, st.min, st.max) == pytest.approx((vals.mean(), vals.std(ddof=1), vals.min(), vals.max()))


def test_roi_is_clipped_to_the_slice_and_an_empty_one_has_no_statistics():
    img = ct()
    mask, (y0, x0) = roi_mask((40, 50), (-10, -10, 5, 5))
    assert (y0, x0) == (0, 0) and mask.shape == (6, 6)
    st = roi_stats(img, 0, (60, 60, 70, 70))
    assert st.pixels == 0 and math.isnan(st.mean)
    with pytest.raises(ValueError):
        roi_mask((4, 4), (0, 0, 2, 2), "star")
