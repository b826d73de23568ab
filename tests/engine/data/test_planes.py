"""Reformatted planes (engine.data.planes), square pixels for the model (engine.data.square) and plane
prompts/propagation (engine.pipeline): exact voxels, RAS, orientation letters, masks back on the grid."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest

from engine.data.display import display_for
from engine.data.image import Image
from engine.data.planes import cross_section, plane_of, planes_of
from engine.data.square import ModelFrame, SquareGrid
from engine.inference.transforms import as_rgb_u8
from engine.pipeline import propagate_in_plane, segment_in_plane
from engine.io.dicom import read_dicom
from engine.io.dispatch import open_image, read_labelmap
from tests.conftest import DATA, needs_shared
from tests.engine.io.test_dicom import write_series

SHAPE = (9, 13, 17)          # (Z, Y, X)
MM_XYZ = (0.7, 0.9, 5.0)     # voxel size along index x, y, z
E = np.eye(3)
#: each plane's normal, screen-down and screen-right directions in RAS (radiological display)
CONVENTION = {
    "axial": (E[2], -E[1], -E[0]),
    "coronal": (E[1], -E[2], -E[0]),
    "sagittal": (E[0], -E[2], -E[1]),
}
LETTERS = {
    "axial": {"left": "R", "right": "L", "top": "A", "bottom": "P"},
    "coronal": {"left": "R", "right": "L", "top": "S", "bottom": "I"},
    "sagittal": {"left": "A", "right": "P", "top": "S", "bottom": "I"},
}


def signed_permutation_affines():
    """The 48 axis-aligned affines: index x, y, z along every permutation of R, A, S with every sign."""
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            a = np.eye(4)
            a[:3, :3] = 0
            for idx in range(3):
                a[perm[idx], idx] = signs[idx] * MM_XYZ[idx]
            a[:3, 3] = (-31.5, 12.25, 7.0)
            out.append(pytest.param(a, id=f"{perm}{signs}"))
    return out


def volume(shape=SHAPE, dtype=np.int32):
    return np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)  # every voxel its own value


def ras_of(affine, zyx):
    return zyx[..., ::-1] @ affine[:3, :3].T + affine[:3, 3]


@pytest.mark.parametrize("affine", signed_permutation_affines())
def test_planes_are_exact_voxel_slices_in_radiological_orientation(affine):
    v = volume()
    planes = planes_of(affine, SHAPE)
    assert sorted(p.normal_axis for p in planes.values()) == [0, 1, 2]
    for name, p in planes.items():
        normal, down, right = CONVENTION[name]
        # the normal axis is the voxel axis along the plane's patient axis
        assert abs(affine[:3, 2 - p.normal_axis] @ normal) == pytest.approx(MM_XYZ[2 - p.normal_axis])
        assert p.n_slices == SHAPE[p.normal_axis]
        assert p.letters == LETTERS[name]
        for k in (0, p.n_slices // 2, p.n_slices - 1):
            s = p.slice(v, k, copy=True)
            rows, cols = np.meshgrid(np.arange(s.shape[0]), np.arange(s.shape[1]), indexing="ij")
            zyx = p.to_voxel(k, rows, cols)
            idx = zyx.astype(int)
            assert np.array_equal(zyx, idx)  # whole pixels are whole voxels
            assert np.array_equal(s, v[idx[..., 0], idx[..., 1], idx[..., 2]])  # exactly the stored voxels
            assert set(s.ravel()) == set(np.take(v, k, axis=p.normal_axis).ravel())  # and all of slice k
            assert np.array_equal(p.from_voxel(zyx), np.stack([np.full_like(rows, k), rows, cols], -1))
            ras = p.to_ras(k, rows, cols)
            np.testing.assert_allclose(ras, ras_of(affine, zyx), atol=1e-9)  # affine @ voxel
            # rows go down, columns right, in the radiological directions, by the reported spacings
            sr, sc = p.pixel_spacing
            np.testing.assert_allclose(np.diff(ras, axis=0), np.broadcast_to(sr * down, ras[1:].shape), atol=1e-9)
            np.testing.assert_allclose(np.diff(ras, axis=1), np.broadcast_to(sc * right, ras[:, 1:].shape), atol=1e-9)
            np.testing.assert_allclose(p.from_ras(ras), p.from_voxel(zyx), atol=1e-9)
        np.testing.assert_allclose(abs((p.to_ras(1, 0, 0) - p.to_ras(0, 0, 0)) @ normal), p.slice_spacing)


@pytest.mark.parametrize("affine", signed_permutation_affines()[::5])
def test_stored_plane_is_the_apps_slice_view(affine):
    """The plane of voxels[z] is shown exactly as the app shows stored slices (engine.data.display)."""
    v = volume()
    image = Image(v, affine)
    p = plane_of(affine, SHAPE, display_for(affine).plane)
    assert p.is_stored and p.display == image.display
    for z in range(SHAPE[0]):
        assert np.array_equal(p.slice(v, z), image.display.to_screen(v[z]))


def blob(shape=SHAPE) -> np.ndarray:
    z, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return ((z - 4) / 3.5) ** 2 + ((y - 6) / 5) ** 2 + ((x - 9) / 6.5) ** 2 <= 1


@pytest.mark.parametrize("affine", signed_permutation_affines()[::3])
def test_mask_drawn_in_any_plane_lands_on_the_same_voxels(affine):
    g = blob()
    planes = planes_of(affine, SHAPE)
    results = {}
    for name, p in planes.items():
        labels = np.zeros(SHAPE, np.uint8)
        written = sum(p.paint(labels, k, p.slice(g, k).copy(), 3) for k in range(p.n_slices))
        assert written == g.sum()
        results[name] = labels
    for name, labels in results.items():
        assert set(zip(*np.nonzero(labels))) == set(zip(*np.nonzero(g))), name
        assert np.array_equal(labels, 3 * g.astype(np.uint8))
    # one rectangle on one coronal slice: exactly its pixels' voxels, and axial views show it
    cor, ax = planes["coronal"], planes["axial"]
    m = np.zeros(cor.slice_shape, bool)
    m[2:5, 3:9] = True
    labels = np.zeros(SHAPE, np.uint8)
    cor.paint(labels, 6, m, 1)
    expected = {tuple(int(i) for i in cor.to_voxel(6, r, c)) for r, c in zip(*np.nonzero(m))}
    assert set(zip(*np.nonzero(labels))) == expected
    redrawn = np.zeros(SHAPE, np.uint8)
    for k in range(ax.n_slices):
        ax.paint(redrawn, k, ax.slice(labels, k) > 0, 1)
    assert np.array_equal(redrawn, labels)
    # a whole stack of screen slices back onto the grid
    assert np.array_equal(cor.volume_from_screen(cor.screen_volume(g)), g)


def test_rgb_volume_planes():
    v = np.stack([volume(), volume() + 1, volume() + 2], axis=-1)
    p = planes_of(np.diag([0.7, 0.9, 5, 1]), SHAPE)["sagittal"]
    s = p.slice(v, 4)
    assert s.shape == (*p.slice_shape, 3)
    assert np.array_equal(s[..., 1], p.slice(v[..., 1], 4))


def test_bad_slice_and_grid_are_refused():
    p = planes_of(np.eye(4), SHAPE)["coronal"]
    with pytest.raises(Exception, match="out of range"):
        p.slice(volume(), SHAPE[1])
    with pytest.raises(ValueError, match="grid"):
        p.slice(np.zeros((3, 3, 3)), 0)


# --- oblique series -----------------------------------------------------------------------------

def rot(axis: int, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    i, j = [a for a in range(3) if a != axis]
    m = np.eye(3)
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


@pytest.mark.parametrize("iop_lps, expect", [
    # axial tilted 20 deg about L-R (a gantry-tilt-like oblique), then turned 25 deg in-plane
    ((rot(0, 20) @ rot(2, 25)) @ np.array([[1, 0, 0], [0, 1, 0]]).T, {"axial": 0, "coronal": 1, "sagittal": 2}),
    # coronal acquisition (rows run L, columns run inferior), tilted 15 deg about L-R
    (rot(0, 15) @ np.array([[1, 0, 0], [0, 0, -1]]).T, {"coronal": 0, "axial": 1, "sagittal": 2}),
    # sagittal acquisition (rows run P, columns inferior), turned 30 deg about S
    (rot(2, 30) @ np.array([[0, 1, 0], [0, 0, -1]]).T, {"sagittal": 0, "axial": 1, "coronal": 2}),
])
def test_oblique_dicom_series_ras(tmp_path, iop_lps, expect):
    """An oblique DICOM series read by the app's reader: each plane follows the closest voxel axis,
    shows the file's pixels, and reports the RAS the DICOM headers themselves give for each pixel."""
    row, col = iop_lps[:, 0], iop_lps[:, 1]
    normal = np.cross(row, col)
    positions = [np.array([-20.0, 30.0, 50.0]) + 2.5 * k * normal for k in range(5)]
    write_series(tmp_path / "s", positions, iop=[float(v) for v in (*row, *col)])
    image = read_dicom(tmp_path / "s")
    files = sorted((pydicom.dcmread(f) for f in (tmp_path / "s").iterdir()),
                   key=lambda ds: float(np.dot(ds.ImagePositionPatient, normal)))
    planes = planes_of(image.affine, image.shape)
    assert {n: p.normal_axis for n, p in planes.items()} == expect
    rng = np.random.default_rng(0)
    for name, p in planes.items():
        assert p.letters == LETTERS[name]  # the closest letters of the tilted axes
        for _ in range(25):
            k = int(rng.integers(p.n_slices))
            r, c = (int(rng.integers(n)) for n in p.slice_shape)
            z, y, x = (int(i) for i in p.to_voxel(k, r, c))
            ds = files[z]
            dy, dx = (float(v) for v in ds.PixelSpacing)
            lps = np.asarray(ds.ImagePositionPatient, float) + x * dx * row + y * dy * col
            np.testing.assert_allclose(p.to_ras(k, r, c), lps * [-1, -1, 1], atol=1e-3)
            value = float(ds.pixel_array[y, x]) * float(getattr(ds, "RescaleSlope", 1)) + float(
                getattr(ds, "RescaleIntercept", 0))
            assert float(p.slice(image.voxels, k)[r, c]) == value


@pytest.mark.parametrize("affine", signed_permutation_affines()[::4] + [
    pytest.param(np.vstack([np.hstack([rot(0, 20) @ rot(2, 25) @ np.diag(MM_XYZ), [[4.0], [-2.0], [9.0]]]),
                            [0, 0, 0, 1]]), id="oblique")])
def test_cross_section_is_where_a_mask_meets_another_planes_slice(affine):
    """A mask drawn on one plane's slice, seen in another plane's slice: exactly the voxels of the first
    mask that lie on the second slice (what the linked views draw while a box is dragged in any view)."""
    planes = planes_of(affine, SHAPE)
    rng = np.random.default_rng(1)
    for src, dst in itertools.product(planes.values(), repeat=2):
        k = int(rng.integers(src.n_slices))
        mask = rng.random(src.slice_shape) < 0.4
        painted = np.zeros(SHAPE, bool)
        src.paint(painted, k, mask)
        for k_dst in range(dst.n_slices):
            got = cross_section(src, k, mask, dst, k_dst)
            np.testing.assert_array_equal(got, dst.slice(painted, k_dst))
        assert not cross_section(src, k, mask, dst, dst.n_slices).any()  # past the end: nothing
    with pytest.raises(ValueError, match="does not match"):
        cross_section(planes["axial"], 0, np.ones((2, 2), bool), planes["coronal"], 0)


@pytest.mark.parametrize("affine", signed_permutation_affines()[::9])
def test_one_slice_windowed_alone_is_the_model_volumes_slice(affine):
    """What the app's encoder gets for a reformatted slice (that slice windowed alone, then resampled) is
    exactly the slice of the whole model volume the engine's propagation walks."""
    rng = np.random.default_rng(2)
    vox = rng.normal(40, 300, SHAPE).astype(np.int16)
    image = Image(vox, affine, modality="CT", units="HU")
    vol, key = image.model_volume(None)
    for name, plane in planes_of(affine, SHAPE).items():
        for square in (True, False):
            frame = ModelFrame.for_plane(plane, square=square)
            for k in (0, plane.n_slices // 2, plane.n_slices - 1):
                px, key2 = frame.slice_pixels(image, k)
                assert key2 == key and px.dtype == np.uint8 and px.flags.c_contiguous
                np.testing.assert_array_equal(px, frame.pixels(vol, k))
                np.testing.assert_array_equal(frame.from_screen(plane.slice(vol, k)), frame.pixels(vol, k))


# --- square pixels --------------------------------------------------------------------------------

def test_square_grid_shape_and_linear_resample():
    g = SquareGrid(9, 17, 5.0, 0.7)
    assert g.shape == (64, 17)  # round(9 * 5 / 0.7)
    np.testing.assert_allclose(g.square_spacing, (45 / 64, 0.7))
    img = np.tile((np.arange(9) * 20).astype(np.uint8)[:, None], (1, 17))  # linear ramp down the rows
    sq = g.resample(img)
    assert sq.dtype == np.uint8 and sq.shape == (64, 17)
    pos = np.clip((np.arange(64) + 0.5) * 9 / 64 - 0.5, 0, 8)
    np.testing.assert_array_equal(sq[:, 5], np.rint(pos * 20).astype(np.uint8))
    assert np.array_equal(g.resample(np.full((9, 17), 7, np.int16)), np.full((64, 17), 7, np.int16))
    assert SquareGrid(4, 5, 0.8, 0.8).identity


@pytest.mark.parametrize("rows, cols, row_mm, col_mm", [(9, 17, 5.0, 0.7), (26, 166, 5.0, 0.795),
                                                        (30, 12, 0.9, 3.0), (7, 7, 1.0, 1.0)])
def test_square_round_trips(rows, cols, row_mm, col_mm):
    g = SquareGrid(rows, cols, row_mm, col_mm)
    rng = np.random.default_rng(1)
    m = rng.random((rows, cols)) > 0.5
    assert np.array_equal(g.mask_from_square(g.mask_to_square(m)), m)  # voxel mask -> square -> voxels
    drawn = rng.random(g.shape) > 0.7  # drawn on the square image
    back = g.mask_from_square(drawn)
    assert np.array_equal(g.mask_from_square(g.mask_to_square(back)), back)  # resampled again: the same
    for _ in range(20):
        x0, x1 = sorted(rng.integers(cols, size=2))
        y0, y1 = sorted(rng.integers(rows, size=2))
        sq = g.box_to_square([x0, y0, x1, y1])
        assert list(g.box_from_square(sq)) == [x0, y0, x1, y1]
        box_mask = np.zeros((rows, cols), bool)
        box_mask[y0:y1 + 1, x0:x1 + 1] = True
        ys, xs = np.nonzero(g.mask_to_square(box_mask))
        assert list(sq) == [xs.min(), ys.min(), xs.max(), ys.max()]  # the square pixels of the box
    pts = rng.random((5, 2)) * [cols - 1, rows - 1]
    np.testing.assert_allclose(g.points_from_square(g.points_to_square(pts)), pts)


@pytest.mark.parametrize("flip", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("affine", signed_permutation_affines()[::7])
def test_model_frame_round_trip_onto_voxels(affine, flip):
    """A mask made on a plane's model-frame (square) image lands on the voxels its pixels cover, the same
    voxels an axial drawing of them gives."""
    v = volume(dtype=np.int32).astype(np.uint8)
    g = blob()
    for name, p in planes_of(affine, SHAPE).items():
        frame = ModelFrame.for_plane(p, flip)
        assert frame.cache_plane == ("" if p.is_stored else name if flip == (False, False)
                                     else f"{name}:flip{int(flip[0])}{int(flip[1])}")
        k = p.n_slices // 2
        px = frame.pixels(v, k)
        assert px.shape == frame.shape and px.flags.c_contiguous
        if p.is_stored:
            assert np.array_equal(px, np.take(v, k, axis=0))  # today's axial path, unchanged
        else:
            square = SquareGrid(*p.slice_shape, *p.pixel_spacing).resample(p.slice(v, k))
            assert np.array_equal(px, square[::-1 if flip[0] else 1, ::-1 if flip[1] else 1])
            pts = np.array([[1.0, 2.0], [p.slice_shape[1] - 1.0, 0.0]])
            np.testing.assert_allclose(frame._turn_xy(frame.points_to_model(pts)),
                                       SquareGrid(*p.slice_shape, *p.pixel_spacing).points_to_square(pts))
        model_mask = frame.mask_to_model(p.slice(g, k))
        assert model_mask.shape == frame.shape
        screen = frame.mask_to_screen(model_mask)
        assert np.array_equal(screen, p.slice(g, k))
        labels = np.zeros(SHAPE, bool)
        p.paint(labels, k, screen, True)
        assert np.array_equal(np.take(labels, k, axis=p.normal_axis), np.take(g, k, axis=p.normal_axis))
        assert not np.take(labels, [i for i in range(p.n_slices) if i != k], axis=p.normal_axis).any()
        box = [2, 1, p.slice_shape[1] - 3, p.slice_shape[0] - 2]
        assert list(frame.box_to_screen(frame.box_to_model(box))) == box


# --- prompts and propagation along a plane's normal --------------------------------------------

class _ThresholdPredictor:
    """Stands in for the model: the mask is the bright pixels of the slice it is given."""

    def __init__(self):
        self.calls = []

    def set_image(self, img, *, slice_index, window, plane=""):
        self.img = np.asarray(img)
        self.calls.append((plane, slice_index, self.img.shape))

    def predict_256(self, box256, points256=None, labels=None):
        return SimpleNamespace(mask=self.img > 127, iou=0.9)


@pytest.mark.parametrize("name, affine, flip, square", [
    ("coronal", np.diag([-0.7, -0.9, 5.0, 1.0]), (False, False), True),  # axial (LPS) acquisition: coronal cut across Y
    ("coronal", np.diag([-0.7, -0.9, 5.0, 1.0]), (True, True), True),
    ("coronal", np.diag([-0.7, -0.9, 5.0, 1.0]), (False, False), False),
    ("axial", np.array([[-0.7, 0, 0, 0], [0, 0, 5.0, 0], [0, -0.9, 0, 0], [0, 0, 0, 1]]), (False, False), True),
])
def test_propagation_along_a_reformatted_planes_normal_lands_on_the_right_voxels(name, affine, flip, square):
    shape = (14, 21, 30)
    image = Image(np.zeros(shape, np.int16), affine)
    g = blob(shape)
    vol = np.where(g, 255, 0).astype(np.uint8)
    plane = planes_of(affine, shape)[name]
    assert not plane.is_stored and plane.normal_axis == 1
    pred = _ThresholdPredictor()
    session = SimpleNamespace(family=SimpleNamespace(propagation="A.8"), predictor=lambda: pred)
    k_min, k_max = 3, 9
    ious = {}
    out = propagate_in_plane(session, image, plane, [2, 2, 20, 10], k_min, k_max, start=6,
                             volume=(vol, "u8"), ious=ious, flip=flip, square=square)
    expected = np.zeros(shape, bool)
    expected[:, k_min:k_max + 1] = g[:, k_min:k_max + 1]
    assert np.array_equal(out, expected)  # exactly the object's voxels in the slab, nothing outside
    assert sorted(ious) == list(range(k_min, k_max + 1))
    frame = ModelFrame.for_plane(plane, flip, square)
    assert (frame.shape != plane.slice_shape) == square  # the model got square pixels, or the slice as shown
    assert frame.cache_plane.endswith(":raw") != square
    assert {c[0] for c in pred.calls} == {frame.cache_plane} and {c[2] for c in pred.calls} == {frame.shape}
    assert [c[1] for c in pred.calls] == [6, 7, 8, 9, 5, 4, 3]  # up from the start slice, then down


@needs_shared
def test_sagittal_box_on_the_spleen(session):
    """A box on a sagittal slice of the spleen CT (5 mm slices) through the real model."""
    raw = DATA / "raw" / "ivadomed-spleen"
    image = open_image(raw / "sub-spleen2_ct.nii.gz")
    gt = read_labelmap(raw / "sub-spleen2_ct_seg-manual.nii.gz", image).labels > 0
    sag = planes_of(image.affine, image.shape)["sagittal"]
    k = int(np.argmax([sag.slice(gt, i).sum() for i in range(sag.n_slices)]))  # the spleen's widest
    truth = sag.slice(gt, k)
    ys, xs = np.nonzero(truth)
    box = [xs.min(), ys.min(), xs.max(), ys.max()]
    mask, iou = segment_in_plane(session, image, sag, k, box)
    assert mask.shape == truth.shape
    dsc = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
    print(f"sagittal slice {k}: DSC {dsc:.3f}, IoU estimate {iou:.3f}")
    assert dsc >= 0.8, dsc
    vol, window = image.model_volume()
    pixels = ModelFrame.for_plane(sag).pixels(vol, k)
    assert pixels.shape == (164, 166)  # round(26 x 5 mm / 0.795 mm) rows
    assert session.key(as_rgb_u8(pixels), k, window, "sagittal") in session.cache  # cached per plane
    assert session.key(as_rgb_u8(pixels), k, window) not in session.cache


def test_reformat_512x512x300_is_one_copy_of_the_slice():
    """The reformat is a view plus one copy (its speed, < 10 ms, is bench/bench_planes.py's to measure: timed
    asserts fail on a loaded machine): the copy owns exactly the slice's bytes, the view shares the volume's."""
    v = np.empty((300, 512, 512), np.int16)
    v[...] = np.arange(512, dtype=np.int16)
    for name, p in planes_of(np.diag([0.7, 0.7, 5.0, 1.0]), v.shape).items():
        view = p.slice(v, 100)
        copy = p.slice(v, 100, copy=True)
        assert np.shares_memory(view, v) and not np.shares_memory(copy, v), name
        assert copy.nbytes == int(np.prod(p.slice_shape)) * 2 and np.array_equal(copy, view), name
