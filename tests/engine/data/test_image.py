"""engine.data.image conventions, engine.data.window fitting, raster and challenge .npz reading."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.base.errors import InputError, PromptError
from engine.data.display import Display, display_for
from engine.data.geometry import LPS_TO_RAS, affine_from_dicom, geometry_mismatch
from engine.data.image import Image
from engine.io.dispatch import open_image
from engine.data.window import (CT_PRESETS, Window, ct_window, fit_window, parse_window, percentile_normalise)
from tests.conftest import EVAL, needs_shared


def test_affine_from_dicom_is_lps_to_ras():
    # standard axial: rows along +x (L), columns along +y (P); PixelSpacing = (row, column) spacing
    aff = affine_from_dicom([1, 0, 0], [0, 1, 0], (0.5, 0.7), [-100, -120, 30], [0, 0, 2.5])
    np.testing.assert_allclose(aff[:3, 0], [-0.7, 0, 0])  # x (column index) steps by column spacing, L -> -R
    np.testing.assert_allclose(aff[:3, 1], [0, -0.5, 0])  # y (row index) steps by row spacing, P -> -A
    np.testing.assert_allclose(aff[:3, 2], [0, 0, 2.5])
    np.testing.assert_allclose(aff[:3, 3], [100, 120, 30])
    img = Image(np.zeros((4, 3, 2), np.int16), aff)
    assert img.orientation == "LPS"
    assert img.spacing == pytest.approx((2.5, 0.5, 0.7))
    np.testing.assert_allclose(img.ras_to_index(img.index_to_ras([[1, 2, 3]])), [[1, 2, 3]])


def test_display_axial_coronal_sagittal():
    # LPS-stored axial (DICOM): shown as stored (patient Right on screen left, Anterior up)
    assert display_for(LPS_TO_RAS) == Display("axial", False, False, False)
    # RAS-stored axial (many NIfTI): both in-plane axes flipped
    assert display_for(np.eye(4)) == Display("axial", False, True, True)
    # coronal slices: x -> L, y -> I (rows go down), z -> A
    cor = np.eye(4)
    cor[:3, :3] = np.array([[-1, 0, 0], [0, 0, -1], [0, 1, 0]]).T
    assert display_for(cor) == Display("coronal", False, False, False)
    # sagittal with stored x running superior->inferior: screen rows are stored x (a transpose)
    sag = np.eye(4)
    sag[:3, :3] = np.array([[0, 0, -1], [0, -1, 0], [1, 0, 0]]).T
    d = display_for(sag)
    assert d.plane == "sagittal" and d.transpose
    a = np.arange(12).reshape(3, 4)  # (Y, X)
    s = d.to_screen(a)
    for r in range(s.shape[0]):
        for c in range(s.shape[1]):
            x, y = d.screen_to_index(r, c, a.shape)
            assert s[r, c] == a[int(y), int(x)]


@pytest.mark.parametrize("d", [Display("axial", t, fr, fc) for t in (False, True) for fr in (False, True)
                               for fc in (False, True)])
def test_index_to_screen_inverts_screen_to_index(d):
    """index_to_screen / box_to_screen (used by the slice view and the CLI overlay) match to_screen."""
    a = np.arange(12).reshape(3, 4)  # (Y, X)
    s = d.to_screen(a)
    for y in range(3):
        for x in range(4):
            r, c = d.index_to_screen(x, y, a.shape)
            assert s[int(r), int(c)] == a[y, x]
            assert d.screen_to_index(r, c, a.shape) == (x, y)
    box = np.zeros(a.shape, bool)
    box[1:3, 1:3] = True  # pixels x 1..2, y 1..2 = box [1, 1, 2, 2]
    c0, r0, c1, r1 = d.box_to_screen([1, 1, 2, 2], a.shape)
    want = np.zeros(s.shape, bool)
    want[r0:r1 + 1, c0:c1 + 1] = True
    assert np.array_equal(d.to_screen(box), want)


def test_geometry_mismatch_reasons():
    a = np.eye(4)
    assert geometry_mismatch((2, 3, 4), a, (2, 3, 4), a + 1e-5) is None
    assert "shape" in geometry_mismatch((2, 3, 4), a, (2, 3, 5), a)
    b = a.copy()
    b[0, 3] = 0.5
    assert "affine differs by up to 0.5 mm" in geometry_mismatch((2, 3, 4), a, (2, 3, 4), b)


@pytest.mark.parametrize("spec,want", [
    (None, Window("ct", (40.0, 400.0))), ("soft-tissue", Window("ct", CT_PRESETS["soft-tissue"])),
    ("abdomen", Window("ct", (40.0, 400.0))), ("lung", Window("ct", (-600.0, 1500.0))),
    ("bone", Window("ct", (400.0, 1800.0))), ("brain", Window("ct", (40.0, 80.0))),
    ("400,40", Window("ct", (40.0, 400.0))), ("W400,L40", Window("ct", (40.0, 400.0))),
    ("L40,W400", Window("ct", (40.0, 400.0))), ("1500,-600", Window("ct", (-600.0, 1500.0))),
    ("L-600/W1500", Window("ct", (-600.0, 1500.0))), ("percentile", Window("pct", (0.5, 99.5))),
    ("percentile:1,99", Window("pct", (1.0, 99.0))), ("minmax", Window("minmax")),
])
def test_parse_window(spec, want):
    assert parse_window(spec) == want


@pytest.mark.parametrize("bad", ["40", "0,40", "lungs", "a,b", "percentile:50,10"])
def test_parse_window_refuses(bad):
    with pytest.raises(InputError):
        parse_window(bad)


def test_fitted_window_equals_rule_on_whole_volume():
    rng = np.random.default_rng(0)
    vol = rng.normal(0, 400, (5, 20, 30)).astype(np.float32)
    m = fit_window(parse_window("400,40"), vol)
    np.testing.assert_array_equal(np.stack([m.apply(vol[z]) for z in range(5)]), ct_window(vol, 40, 400))
    mr = np.abs(vol)
    mr[0, :5] = 0
    p = fit_window(parse_window("percentile"), mr)
    np.testing.assert_array_equal(np.stack([p.apply(mr[z]) for z in range(5)]), percentile_normalise(mr))
    assert m.key == "ct:40:400" and p.key == "pct:0.5:99.5"


def test_zero_range_is_refused():
    img = Image(np.full((1, 8, 8), 7, np.int16), LPS_TO_RAS, modality="CT")
    with pytest.raises(InputError, match="zero intensity range"):
        img.model_slice(0)


def test_slice_out_of_range():
    img = Image(np.zeros((3, 8, 8), np.int16), LPS_TO_RAS)
    with pytest.raises(PromptError, match="out of range.*0..2"):
        img.check_slice(3)


@pytest.mark.parametrize("ext", [".png", ".tif", ".bmp", ".jpg"])
def test_raster_grey_rgb_16bit(tmp_path, ext):
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 255, (20, 30), dtype=np.uint8)
    rgb = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / f"g{ext}"), grey)
    cv2.imwrite(str(tmp_path / f"c{ext}"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    g = open_image(tmp_path / f"g{ext}")
    c = open_image(tmp_path / f"c{ext}")
    assert g.shape == (1, 20, 30) and not g.is_rgb and g.voxels.dtype == np.uint8
    assert c.is_rgb and c.voxels.shape == (1, 20, 30, 3)
    if ext != ".jpg":  # lossless formats keep the values; RGB order (not OpenCV's BGR)
        np.testing.assert_array_equal(g.voxels[0], grey)
        np.testing.assert_array_equal(c.voxels[0], rgb)
        u8, key = c.model_slice(0)
        assert key == "u8" and np.array_equal(u8, rgb)
    assert g.display == Display("axial", False, False, False)  # shown as stored
    if ext in (".png", ".tif"):
        g16 = (grey.astype(np.uint16) * 200)
        cv2.imwrite(str(tmp_path / f"g16{ext}"), g16)
        i16 = open_image(tmp_path / f"g16{ext}")
        assert i16.voxels.dtype == np.uint16 and np.array_equal(i16.voxels[0], g16)
        u8, key = i16.model_slice(0)
        assert u8.dtype == np.uint8 and u8.max() == 255 and key.startswith("pct")


def test_raster_rgba_drops_alpha(tmp_path):
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 30, 255
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    img = open_image(tmp_path / "a.png")
    assert img.is_rgb and tuple(img.voxels[0, 0, 0]) == (30, 20, 10)  # BGR file order -> RGB


def test_raster_bad_files(tmp_path):
    (tmp_path / "t.png").write_text("not an image")
    with pytest.raises(InputError, match="cannot decode"):
        open_image(tmp_path / "t.png")
    with pytest.raises(InputError, match="no such file"):
        open_image(tmp_path / "missing.png")


def test_raster_pillow_modes_read_as_opencv_did(tmp_path):
    """The Pillow reader keeps what the OpenCV one gave: grey+alpha -> grey, RGBA -> RGB, palette -> RGB
    (grey palette -> grey), bilevel -> 0/255, 16-bit and float TIFF values, a non-ASCII file name."""
    from PIL import Image as PILImage

    rng = np.random.default_rng(4)
    g = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    c = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    a = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    files = {
        "la.png": PILImage.fromarray(np.dstack([g, a]), "LA"),
        "rgba.png": PILImage.fromarray(np.dstack([c, a]), "RGBA"),
        "pal.png": PILImage.fromarray(c).convert("P", palette=PILImage.Palette.ADAPTIVE, colors=40),
        "palgrey.png": PILImage.fromarray(g).convert("P"),
        "bilevel.png": PILImage.fromarray(g > 100),
        "u16.tif": PILImage.fromarray((g.astype(np.uint16) * 250)),
        "f32.tif": PILImage.fromarray(rng.random((20, 30)).astype(np.float32)),
        "grüße 名前.png": PILImage.fromarray(g),
    }
    for name, im in files.items():
        im.save(tmp_path / name)
    for name in files:
        want = cv2.imdecode(np.fromfile(str(tmp_path / name), np.uint8), cv2.IMREAD_UNCHANGED)
        if want.ndim == 3:
            want = want[:, :, 0] if want.shape[2] == 2 else cv2.cvtColor(want[:, :, :3], cv2.COLOR_BGR2RGB)
        if want.ndim == 3 and (want == want[:, :, :1]).all():
            want = want[:, :, 0]
        got = open_image(tmp_path / name).voxels[0]
        assert got.dtype == want.dtype and np.array_equal(got, want), name
    assert open_image(tmp_path / "palgrey.png").voxels.shape == (1, 20, 30)
    assert set(np.unique(open_image(tmp_path / "bilevel.png").voxels)) == {0, 255}


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about corrupt TIFF directories
def test_raster_truncated_files_are_input_errors(tmp_path):
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for ext in (".png", ".jpg", ".bmp", ".tif"):
        ok, buf = cv2.imencode(ext, img)
        data = buf.tobytes()
        for i, cut in enumerate((0, 20, len(data) // 2, len(data) - 20)):
            p = tmp_path / f"cut{i}{ext}"
            p.write_bytes(data[:cut])
            with pytest.raises(InputError, match="cannot decode"):
                open_image(p)


def test_raster_writers_round_trip(tmp_path):
    from engine.io.dispatch import read_labelmap
    from engine.io.raster import write_label_png, write_mask_png, write_overlay_png

    rng = np.random.default_rng(6)
    mask = rng.random((20, 30)) > 0.5
    write_mask_png(tmp_path / "m.png", mask)
    assert np.array_equal(cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_UNCHANGED), mask * np.uint8(255))
    for hi, dtype in ((7, np.uint8), (700, np.uint16)):
        lab = rng.integers(0, hi + 1, (20, 30))
        for ext in (".png", ".tif"):
            p = write_label_png(tmp_path / f"l{hi}{ext}", lab)
            back = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            assert back.dtype == dtype and np.array_equal(back, lab)
            assert np.array_equal(read_labelmap(p).labels[0], lab)
    with pytest.raises(InputError, match="cannot encode"):
        write_label_png(tmp_path / "l.jpg", rng.integers(0, 700, (5, 5)))  # no 16-bit JPEG
    grey = rng.integers(0, 200, (40, 50), dtype=np.uint8)
    m = np.zeros((40, 50), bool)
    m[10:20, 5:25] = True
    write_overlay_png(tmp_path / "o.png", grey, m, [2, 3, 60, 30])   # the box runs past the right border
    ov = cv2.cvtColor(cv2.imread(str(tmp_path / "o.png")), cv2.COLOR_BGR2RGB)
    assert ov.shape == (40, 50, 3)
    green = np.all(ov == (0, 220, 0), axis=2)
    assert green[3, 2:].all() and green[30, 2:].all() and green[3:31, 2].all() and not green[:, 49].all()
    outline = np.all(ov == (255, 80, 40), axis=2)
    assert outline[10, 5:25].all() and outline[19, 5:25].all() and not outline[12:18, 7:23].any()
    untouched = ~m & ~green
    assert np.array_equal(ov[untouched], np.repeat(grey[untouched][:, None], 3, axis=1))


def test_challenge_npz_2d_and_3d(tmp_path):
    imgs = np.random.default_rng(2).integers(0, 255, (6, 7, 3), dtype=np.uint8)
    np.savez(tmp_path / "2DBox_US_x_1.npz", imgs=imgs, boxes=np.array([[1, 1, 4, 4]]))
    im = open_image(tmp_path / "2DBox_US_x_1.npz")
    assert im.shape == (1, 6, 7) and im.is_rgb and im.modality == "US"
    u8, key = im.model_slice(0)
    assert key == "u8" and np.array_equal(u8, imgs)
    vol = np.random.default_rng(3).integers(0, 255, (4, 6, 7), dtype=np.uint8)
    np.savez(tmp_path / "3DBox_CT_x_1.npz", imgs=vol, boxes=np.array([[1, 1, 0, 4, 4, 3]]),
             spacing=np.array([0.5, 0.6, 2.0]))
    im3 = open_image(tmp_path / "3DBox_CT_x_1.npz")
    assert im3.shape == (4, 6, 7) and im3.spacing == pytest.approx((2.0, 0.6, 0.5))  # (z,y,x) from x,y,z
    u8v, key = im3.model_volume()
    assert key == "u8" and np.array_equal(u8v, vol)


@needs_shared
def test_real_challenge_case_reads():
    f = next(EVAL.glob("3DBox_CT_MSD-Spleen_*.npz"), None)
    if f is None:
        pytest.skip("no spleen case in shared/data/eval")
    im = open_image(f)
    z = np.load(f)
    assert im.shape == z["imgs"].shape and im.spacing == pytest.approx(tuple(z["spacing"][::-1]))
