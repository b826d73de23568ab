"""3D Slicer ``.seg.nrrd`` (issue 19): what BoxSeg writes is read by pynrrd and by SimpleITK (not our
reader) and lies voxel for voxel, in world space, on the NIfTI label map written for the same objects; its
header has the fields of Slicer's segmentation format; our reader gives the names and colours back,
takes what Slicer writes (layers, RAS, cropped files, the empty single-voxel file) and refuses a grid
that is not the image's."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from engine.base.errors import InputError
from engine.data.image import Image
from engine.data.labelmap import Segment
from engine.io.dispatch import open_image, read_labelmap, write_labelmap
from tests.conftest import REPO

nrrd = pytest.importorskip("nrrd")

SAMPLE_MR = REPO / "assets" / "sample" / "mni_icbm152_t1_2009a.nii.gz"
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS, written out here rather than taken from the engine
SEGMENTS = [Segment(1, "pons", (220, 20, 60)), Segment(2, "left caudate", (0, 128, 255)),
            Segment(7, "lesion", (250, 250, 10))]


def oblique_image(shape=(9, 14, 11)) -> Image:
    """An anisotropic (0.7 x 1.3 x 2.9 mm), oblique (rotated about two axes) grid; Z, Y, X = shape."""
    a, b = np.deg2rad(23.0), np.deg2rad(-11.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    aff = np.eye(4)
    aff[:3, :3] = rz @ rx @ np.diag([0.7, 1.3, 2.9])
    aff[:3, 3] = (-31.5, 12.25, 40.0)
    rng = np.random.default_rng(0)
    return Image(voxels=rng.normal(size=shape).astype(np.float32), affine=aff, description="synthetic oblique")


def objects_on(shape) -> np.ndarray:
    """Three objects of different values and no symmetry (a flip or transposition moves them)."""
    z, y, x = shape
    lab = np.zeros(shape, np.uint8)
    lab[1:z // 2, 2:y // 2, 1:x // 3] = 1
    lab[z // 2:z - 1, y // 2:y - 1, x // 2:x - 2] = 2
    lab[z - 2, 1, x - 1] = 7  # one voxel in a corner
    lab[0, y - 1, 0] = 2
    return lab


def nrrd_world(path):
    """(data[i, j, k], affine (i, j, k) -> RAS mm, header) read by pynrrd alone."""
    data, h = nrrd.read(str(path))
    assert h["space"] == "left-posterior-superior"
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(h["space directions"], np.float64).T  # rows = the i, j, k step vectors
    lps[:3, 3] = h["space origin"]
    return data, LPS @ lps, h


def assert_same_in_world(nrrd_path, nifti_path):
    """Every labelled NRRD voxel's centre is the centre of a NIfTI voxel with the same label, and both
    files label the same number of voxels per value (the map is one-to-one): voxel for voxel in world space."""
    data, aff, _ = nrrd_world(nrrd_path)
    nii = nib.load(str(nifti_path))
    ndata = np.asanyarray(nii.dataobj)
    assert np.count_nonzero(data), "nothing to compare"
    ijk = np.argwhere(data != 0)
    world = aff @ np.c_[ijk, np.ones(len(ijk))].T
    idx = np.linalg.solve(nii.affine, world)[:3].T
    near = np.round(idx)
    assert np.abs(idx - near).max() < 1e-3, "the NRRD voxel centres are not NIfTI voxel centres"
    near = near.astype(int)
    assert (near >= 0).all() and (near < ndata.shape).all()
    assert np.array_equal(ndata[tuple(near.T)], data[tuple(ijk.T)])
    for v in np.unique(ndata[ndata != 0]):
        assert np.count_nonzero(ndata == v) == np.count_nonzero(data == v), v


def header_lines(path) -> list[str]:
    raw = path.read_bytes()
    return raw[: raw.index(b"\n\n")].decode().splitlines()


@pytest.fixture(params=["oblique", "bundled MR"])
def case(request, tmp_path):
    if request.param == "oblique":
        img = oblique_image()
        labels = objects_on(img.shape)
    else:
        img = open_image(SAMPLE_MR)
        labels = np.zeros(img.shape, np.uint8)
        labels[60:80, 100:130, 90:105] = 1  # boxes around made-up structures of the brain
        labels[85:95, 140:150, 60:70] = 2
        labels[40, 90, 120] = 7
    seg = write_labelmap(tmp_path / "objects.seg.nrrd", labels, img, segments=SEGMENTS)
    nii = write_labelmap(tmp_path / "objects.nii.gz", labels, img, segments=SEGMENTS)
    return img, labels, seg, nii


def test_seg_nrrd_lies_on_the_nifti_voxel_for_voxel(case):
    img, labels, seg, nii = case
    assert_same_in_world(seg, nii)
    data, aff, _ = nrrd_world(seg)
    assert data.shape == labels.shape[::-1] and data.dtype == np.uint8
    assert np.allclose(aff, img.affine, atol=1e-6)


def test_seg_nrrd_header_follows_slicers_format(case):
    img, labels, seg, _ = case
    data, _, h = nrrd_world(seg)
    assert h["dimension"] == 3 and list(h["kinds"]) == ["domain"] * 3 and h["encoding"] == "gzip"
    assert h["Segmentation_MasterRepresentation"] == "Binary labelmap"
    assert "Binary labelmap" in h["Segmentation_ContainedRepresentationNames"].split("|")
    assert h["Segmentation_ReferenceImageExtentOffset"].split() == ["0", "0", "0"]
    lines = header_lines(seg)
    assert "Segment0_Name:=pons" in lines, "custom fields are key:=value lines"
    ids = set()
    for n, s in enumerate(SEGMENTS):
        f = {k.split("_", 1)[1]: v for k, v in h.items() if k.startswith(f"Segment{n}_")}
        ids.add(f["ID"])
        assert f["Name"] == s.name and f["NameAutoGenerated"] == "0" and f["ColorAutoGenerated"] == "0"
        assert int(f["LabelValue"]) == s.value and f["Layer"] == "0"
        rgb = np.array([float(c) for c in f["Color"].split()])
        assert np.abs(rgb * 255 - np.array(s.color)).max() < 0.01
        where = np.argwhere(data == s.value)
        want = [int(v) for pair in zip(where.min(0), where.max(0)) for v in pair]  # minI maxI minJ maxJ minK maxK
        assert [int(v) for v in f["Extent"].split()] == want
        tags = dict(t.split(":", 1) for t in f["Tags"].split("|") if t)
        parts = tags["TerminologyEntry"].split("~")
        assert len(parts) == 7
        assert parts[0] == "Segmentation category and type - 3D Slicer General Anatomy list"
        assert parts[1] == parts[2] == "SCT^85756007^Tissue"  # SNOMED CT "Tissue", as in our DICOM-SEG
        assert parts[4] == "Anatomic codes - DICOM master list" and parts[5] == "^^"
    assert len(ids) == len(SEGMENTS) and "Segment3_ID" not in h


def test_seg_nrrd_reads_back_with_names_and_colours(case):
    img, labels, seg, nii = case
    for path in (seg, nii):  # the NIfTI's come from its ITK-SNAP label descriptions
        lm = read_labelmap(path, img)
        assert np.array_equal(lm.labels, labels) and not lm.warnings
        assert [(s.value, s.name, s.color) for s in lm.segments] == [(s.value, s.name, s.color) for s in SEGMENTS]
    own = read_labelmap(seg)  # without the image: the file's own grid
    assert np.allclose(own.affine, img.affine, atol=1e-6) and np.array_equal(own.labels, labels)


def test_simpleitk_reads_the_seg_nrrd_as_the_nifti(case, tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    img, labels, seg, nii = case
    a, b = sitk.ReadImage(str(seg)), sitk.ReadImage(str(nii))
    assert np.array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))  # both (Z,Y,X)
    assert np.array_equal(sitk.GetArrayFromImage(a), labels)
    assert np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    assert np.allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-5)
    assert np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-5)
    # and back: the NRRD that ITK writes reads onto the image as the NIfTI
    back = tmp_path / "itk.nrrd"
    sitk.WriteImage(a, str(back), True)
    lm = read_labelmap(back, img)
    assert np.array_equal(lm.labels, np.transpose(np.asanyarray(nib.load(str(nii)).dataobj), (2, 1, 0)))


def test_a_seg_nrrd_of_another_grid_is_refused_naming_the_file(tmp_path):
    img = oblique_image()
    labels = objects_on(img.shape)
    seg = write_labelmap(tmp_path / "objects.seg.nrrd", labels, img, segments=SEGMENTS)
    moved = Image(voxels=img.voxels, affine=img.affine.copy())
    moved.affine[:3, 3] += (0.4, 0.0, 0.0)  # off the lattice by 0.4 mm
    bigger = oblique_image((9, 14, 12))
    bigger.affine[:3, :3] *= 1.01  # another spacing
    turned = Image(voxels=img.voxels, affine=img.affine.copy())
    turned.affine[:3, :2] = turned.affine[:3, 1::-1]  # x and y directions swapped: same shape, other grid
    # (a larger image on the same lattice is no mismatch: the file is a box of it, put in place below)
    for other in (moved, bigger, turned, oblique_image((8, 14, 11))):
        with pytest.raises(InputError) as e:
            read_labelmap(seg, other)
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith("objects.seg.nrrd:") and "does not match" in msg


def test_a_cropped_seg_nrrd_is_put_back_in_place(tmp_path):
    """Slicer's "crop to minimum extent": a box of the image's own lattice, origin at its first voxel."""
    img = oblique_image()
    labels = objects_on(img.shape)
    lps = LPS @ img.affine
    x0, y0, z0 = 1, 2, 1
    box = labels[z0:z0 + 4, y0:y0 + 6, x0:x0 + 5]
    h = {"space": "left-posterior-superior", "space directions": lps[:3, :3].T,
         "space origin": (lps @ np.array([x0, y0, z0, 1.0]))[:3], "kinds": ["domain"] * 3, "encoding": "gzip",
         "Segment0_ID": "Segment_1", "Segment0_Name": "cropped", "Segment0_LabelValue": "1", "Segment0_Layer": "0",
         "Segment0_Color": "1 0 0"}
    nrrd.write(str(tmp_path / "crop.seg.nrrd"), np.asfortranarray(box.transpose(2, 1, 0)), h)
    lm = read_labelmap(tmp_path / "crop.seg.nrrd", img)
    want = np.zeros_like(labels)
    want[z0:z0 + 4, y0:y0 + 6, x0:x0 + 5] = box == 1
    assert np.array_equal(lm.labels, want) and [(s.name, s.color) for s in lm.segments] == [("cropped", (255, 0, 0))]
    h["space origin"] = h["space origin"] + lps[:3, 0] * 0.5  # half a voxel off the lattice
    nrrd.write(str(tmp_path / "off.seg.nrrd"), np.asfortranarray(box.transpose(2, 1, 0)), h)
    with pytest.raises(InputError, match=r"^off\.seg\.nrrd: label map geometry does not match"):
        read_labelmap(tmp_path / "off.seg.nrrd", img)


def test_layers_ras_and_the_empty_file_as_slicer_writes_them(tmp_path):
    img = oblique_image()
    labels = objects_on(img.shape)
    ras = img.affine
    # two overlapping segments, each in its own layer (a 4D list axis first), in RAS space, both value 1
    a, b = labels == 1, (labels == 1) | (labels == 2)
    data = np.stack([a, b]).astype(np.uint8).transpose(0, 3, 2, 1)
    dirs = np.vstack([np.full(3, np.nan), ras[:3, :3].T])
    h = {"space": "right-anterior-superior", "space directions": dirs, "space origin": ras[:3, 3],
         "kinds": ["list", "domain", "domain", "domain"], "encoding": "gzip",
         "Segment0_ID": "a", "Segment0_Name": "first", "Segment0_LabelValue": "1", "Segment0_Layer": "0",
         "Segment1_ID": "b", "Segment1_Name": "second", "Segment1_LabelValue": "1", "Segment1_Layer": "1",
         "Segment1_Color": "0 0.5 1"}
    nrrd.write(str(tmp_path / "layers.seg.nrrd"), np.asfortranarray(data), h)
    lm = read_labelmap(tmp_path / "layers.seg.nrrd", img)
    assert [(s.value, s.name) for s in lm.segments] == [(1, "first"), (2, "second")]
    assert lm.segments[1].color == (0, 128, 255)
    want = np.where(b, 2, 0)  # the later segment wins where they overlap
    assert np.array_equal(lm.labels, want) and lm.warnings and "more than one segment" in lm.warnings[0]
    # Slicer's file of a segmentation without voxels: a single voxel, geometry to be ignored
    nrrd.write(str(tmp_path / "empty.seg.nrrd"), np.zeros((1, 1, 1), np.uint8),
               {"space": "left-posterior-superior", "space directions": np.eye(3), "space origin": np.zeros(3)})
    empty = read_labelmap(tmp_path / "empty.seg.nrrd", img)
    assert empty.labels.shape == img.shape and not empty.labels.any() and empty.segments == []


def test_unreadable_and_spaceless_nrrd_are_one_line_errors(tmp_path):
    img = oblique_image()
    (tmp_path / "junk.seg.nrrd").write_bytes(b"NRRD0004\ntype: nonsense\n\n")
    nrrd.write(str(tmp_path / "nospace.nrrd"), np.zeros((11, 14, 9), np.uint8))
    for name, words in (("junk.seg.nrrd", "not a readable NRRD"), ("nospace.nrrd", "patient space")):
        with pytest.raises(InputError) as e:
            read_labelmap(tmp_path / name, img)
        assert str(e.value).startswith(f"{name}:") and words in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError, match="not an image"):
        open_image(tmp_path / "nospace.nrrd")
