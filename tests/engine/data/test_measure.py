"""engine.data.measure: against shapes of known size on anisotropic and oblique grids, and against
SimpleITK's label statistics (a peer no one here wrote) on real volumes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.data.geometry import raster_affine
from engine.data.image import Image
from engine.data.measure import COLUMNS, measure
from tests.conftest import DATA, needs_shared

SPACING = (0.7, 0.9, 2.5)  # x, y, z mm


def _affine(spacing=SPACING, rotate=False):
    a = np.diag([*spacing, 1.0])
    if rotate:  # an oblique acquisition: the voxel axes rotated 30 deg about S and 20 deg about R
        c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
        rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        c, s = math.cos(math.radians(20)), math.sin(math.radians(20))
        rx = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
        a[:3, :3] = rx @ rz @ a[:3, :3]
    a[:3, 3] = (-40.0, 12.0, 7.0)
    return a


def _image(labels, affine, values=None):
    v = values if values is not None else np.zeros(labels.shape, np.int16)
    return Image(voxels=v, affine=affine, modality="CT", units="HU")


def test_columns_are_the_contract():
    assert COLUMNS[:18] == ("label", "name", "voxels", "volume_ml", "mean", "sd", "min", "max", "median", "p5", "p95",
                            "extent_r_mm", "extent_a_mm", "extent_s_mm", "feret_mm", "recist_long_mm",
                            "recist_short_mm", "recist_slice")


@pytest.mark.parametrize("rotate", [False, True])
def test_cuboid_of_known_size(rotate):
    labels = np.zeros((12, 40, 50), np.uint8)
    nz, ny, nx = 6, 20, 30
    labels[3:3 + nz, 10:10 + ny, 5:5 + nx] = 2
    values = np.where(labels == 2, np.arange(labels.size).reshape(labels.shape) % 7, 0).astype(np.int16)
    (m,) = measure(labels, _image(labels, _affine(rotate=rotate), values))
    sx, sy, sz = SPACING
    inside = values[labels == 2].astype(float)
    assert m.label == 2 and m.voxels == nx * ny * nz
    assert m.volume_ml == pytest.approx(nx * ny * nz * sx * sy * sz / 1000, rel=1e-12)
    assert (m.mean, m.min, m.max, m.median) == pytest.approx((inside.mean(), 0, 6, np.median(inside)))
    assert m.sd == pytest.approx(inside.std(ddof=1))
    corners = math.dist((0, 0, 0), ((nx - 1) * sx, (ny - 1) * sy, (nz - 1) * sz))
    assert m.feret_mm == pytest.approx(corners, rel=1e-9)
    assert m.recist_long_mm == pytest.approx(math.hypot((nx - 1) * sx, (ny - 1) * sy), rel=1e-9)
    assert 3 <= m.recist_slice < 3 + nz
    assert m.area == pytest.approx(nx * ny * sx * sy) and m.area_unit == "mm2" and m.length_unit == "mm"
    if not rotate:
        assert (m.extent_r_mm, m.extent_a_mm, m.extent_s_mm) == pytest.approx((nx * sx, ny * sy, nz * sz))
        # a chord perpendicular to the diagonal is at most the rectangle's width across it
        w, h = (nx - 1) * sx, (ny - 1) * sy
        assert 0.5 * w * h / math.hypot(w, h) < m.recist_short_mm <= 2 * w * h / math.hypot(w, h) + 1e-9
        (x0, y0), (x1, y1) = m.recist_long_ends
        assert {x0, x1} == {5, 5 + nx - 1} and {y0, y1} == {10, 10 + ny - 1}


def test_recist_of_a_square_and_of_a_disc():
    labels = np.zeros((3, 40, 40), np.uint8)
    labels[1, 5:26, 10:31] = 1  # 21 x 21 pixels of 1 mm: both diagonals 20*sqrt(2) centre to centre
    labels[0, 8:12, 12:14] = 1  # a smaller slice: not the slice of largest area
    (m,) = measure(labels, _image(labels, _affine(spacing=(1.0, 1.0, 3.0))))
    assert m.recist_slice == 1
    assert m.recist_long_mm == pytest.approx(20 * math.sqrt(2))
    assert m.recist_short_mm == pytest.approx(20 * math.sqrt(2), abs=1.0)
    yy, xx = np.indices((80, 80))
    disc = ((xx - 40) ** 2 + (yy - 40) ** 2 <= 30**2)[None].astype(np.uint8)
    (d,) = measure(disc, _image(disc, _affine(spacing=(0.5, 0.5, 1.0))))
    assert d.recist_long_mm == pytest.approx(30.0, abs=0.5) and d.recist_short_mm == pytest.approx(30.0, abs=1.0)
    assert d.area == pytest.approx(math.pi * 15**2, rel=0.01) and math.isnan(d.volume_ml)


def test_sphere_on_an_anisotropic_grid_and_its_oblique_twin():
    r = 20.0  # mm
    shape = (24, 60, 70)
    out = []
    for rotate in (False, True):
        aff = _affine(rotate=rotate)
        z, y, x = np.indices(shape)
        idx = np.stack([x, y, z, np.ones_like(x)], axis=-1).astype(float)
        world = idx @ aff.T
        centre = np.array([35, 30, 12, 1.0]) @ aff.T
        labels = (np.linalg.norm(world[..., :3] - centre[:3], axis=-1) <= r).astype(np.uint8)
        (m,) = measure(labels, _image(labels, aff))
        diag = math.dist((0, 0, 0), SPACING)
        assert m.volume_ml == pytest.approx(4 / 3 * math.pi * r**3 / 1000, rel=0.03)
        assert 2 * r - diag <= m.feret_mm <= 2 * r
        assert m.recist_long_mm == pytest.approx(m.recist_short_mm, abs=2 * diag)
        out.append(m)
    assert out[0].feret_mm == pytest.approx(out[1].feret_mm, abs=math.dist((0, 0, 0), SPACING))


def test_2d_image_without_spacing_says_pixels():
    labels = np.zeros((1, 30, 40), np.uint8)
    labels[0, 5:15, 10:30] = 1
    img = Image(voxels=np.full((1, 30, 40, 3), 9, np.uint8), affine=raster_affine(), spacing_known=False)
    (m,) = measure(labels, img)
    assert m.area == 200 and m.area_unit == "px2" and m.length_unit == "px" and math.isnan(m.volume_ml)
    assert math.isnan(m.mean) and m.recist_slice == 0 and m.feret_mm == pytest.approx(math.hypot(19, 9))


def test_absent_label_gives_an_empty_row():
    labels = np.zeros((3, 8, 8), np.uint8)
    from engine.data.labelmap import Segment

    (m,) = measure(labels, _image(labels, _affine()), [Segment(4, "gone", (1, 2, 3))])
    assert m.voxels == 0 and m.volume_ml == 0 and math.isnan(m.feret_mm) and m.recist_slice == -1


# --- against SimpleITK -------------------------------------------------------------------------------

CASES = {
    "spleen": ("raw/ivadomed-spleen/sub-spleen2_ct.nii.gz", "raw/ivadomed-spleen/sub-spleen2_ct_seg-manual.nii.gz"),
    "brats": ("raw/deepmedic-brats_2013_pat0001_1/Flair_subtrMeanDivStd.nii.gz",
              "raw/deepmedic-brats_2013_pat0001_1/OTMultiClass.nii.gz"),
    "dcmqi-liver": ("raw/dcmqi/ct-3slice", "raw/dcmqi/liver.dcm"),
}


@needs_shared
@pytest.mark.parametrize("case", sorted(CASES))
def test_against_simpleitk_label_statistics(case, tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    from engine.io.dispatch import open_image, read_labelmap, write_labelmap
    from engine.io.nifti import write_nifti_image

    image_path, label_path = (DATA / p for p in CASES[case])
    img = open_image(image_path)
    lm = read_labelmap(label_path, img)
    ours = {m.label: m for m in measure(lm.labels, img, lm.segments)}
    # SimpleITK reads the same voxels and geometry from NIfTI files (the DICOM-SEG through our reader)
    write_nifti_image(tmp_path / "img.nii.gz", img)
    write_labelmap(tmp_path / "lab.nii.gz", lm.labels, img)
    si = sitk.Cast(sitk.ReadImage(str(tmp_path / "img.nii.gz")), sitk.sitkFloat64)
    sl = sitk.Cast(sitk.ReadImage(str(tmp_path / "lab.nii.gz")), sitk.sitkUInt16)
    shape = sitk.LabelShapeStatisticsImageFilter()
    shape.ComputeFeretDiameterOn()
    shape.Execute(sl)
    bins = 4096
    stats = sitk.LabelIntensityStatisticsImageFilter()
    stats.SetNumberOfBins(bins)
    stats.Execute(sl, si)
    assert sorted(shape.GetLabels()) == sorted(ours)
    diag = math.dist((0, 0, 0), img.spacing)
    for label, m in ours.items():
        assert m.voxels == shape.GetNumberOfPixels(label)
        assert m.volume_ml == pytest.approx(shape.GetPhysicalSize(label) / 1000, rel=1e-4)
        for ours_v, theirs in ((m.mean, stats.GetMean(label)), (m.sd, stats.GetStandardDeviation(label)),
                               (m.min, stats.GetMinimum(label)), (m.max, stats.GetMaximum(label))):
            assert ours_v == pytest.approx(theirs, rel=1e-4, abs=1e-6)
        # SimpleITK's median comes from a histogram (`bins` bins over the image's range); ours is exact:
        # within a bin of SimpleITK's, and equal to the median of the voxels SimpleITK read for the label
        lo, hi = float(sitk.GetArrayViewFromImage(si).min()), float(sitk.GetArrayViewFromImage(si).max())
        assert abs(m.median - stats.GetMedian(label)) <= (hi - lo) / bins + 1e-9
        theirs = sitk.GetArrayViewFromImage(si)[sitk.GetArrayViewFromImage(sl) == label]
        assert (m.median, m.p5, m.p95) == pytest.approx(tuple(np.percentile(theirs, [50, 5, 95])), rel=1e-9)
        assert abs(m.feret_mm - shape.GetFeretDiameter(label)) <= diag
