"""The short fuzzing run of the test suite (issue 18, item 7): structure-aware (hypothesis) and seed-byte
mutations over every reader, the seeds themselves, and the replay of every regression input the long
campaign found (``tests/data/fuzz/<target>/``; ``bench/fuzz.py``).

The oracle is :func:`tests.engine.io.fuzz_targets.run_one`: only BoxSeg's own one-line errors, <= 5 s of CPU
and <= 1.5 GiB per input, no NaN/singular geometry accepted, no seeded patient name in any output. The
examples are derandomized (the same inputs on every run, no example database), so a failure reproduces.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import struct

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, Phase, given, reject, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from engine.base.errors import InputError  # noqa: E402
from engine.data.image import Image  # noqa: E402
from engine.io.dispatch import open_image  # noqa: E402
from tests.engine.io import fuzz_targets as ft  # noqa: E402

#: examples per structure-aware test: together about a minute on one core
FEW, SOME = 25, 60
_BASE = settings(derandomize=True, database=None, deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                      HealthCheck.function_scoped_fixture])


def run(examples: int) -> settings:
    return settings(_BASE, max_examples=examples)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    c = ft.context(tmp_path_factory.mktemp("fuzz"))
    yield c
    ft.cleanup(c)


_SEEDS: dict[str, list[bytes]] = {}


def _seeds(name: str, ctx) -> list[bytes]:
    if name not in _SEEDS:
        _SEEDS[name] = ft.seeds(name, ctx)
    return _SEEDS[name]


def _check(target: str, data: bytes, ctx):
    try:
        return ft.run_one(target, data, ctx)
    except ft.Failure as f:
        pytest.fail(f"{target} ({len(data)} bytes, sha256 {ft.input_name(data)}): {f}", pytrace=False)


# --- seeds and regressions --------------------------------------------------------------------------

@pytest.mark.parametrize("target", list(ft.TARGETS))
def test_every_seed_passes_the_oracle(ctx, target):
    """pydicom's and nibabel's test files, the samples, our writers' files and the crafted inputs."""
    seeds = _seeds(target, ctx)
    assert len(seeds) >= 1
    for data in seeds:
        _check(target, data, ctx)


def test_the_seeds_include_files_that_open(ctx):
    """The seeds are not all refusals: these counts of each target's seeds read without error."""
    ok = {t: sum(not isinstance(ft.run_one(t, d, ctx), Exception) for d in _seeds(t, ctx))
          for t in ("dicom", "nifti", "raster", "npz", "dicom_seg", "seg_nrrd", "nifti_labels")}
    assert ok["dicom"] >= 60 and ok["nifti"] >= 4 and ok["raster"] >= 7 and ok["npz"] == 3, ok
    assert ok["dicom_seg"] == 2 and ok["seg_nrrd"] == 2 and ok["nifti_labels"] == 2, ok


#: why the regression inputs named ``known_*`` still fail (their fix lies outside this change), by target
KNOWN: dict[str, str] = {}


@pytest.mark.parametrize("target,path", ft.regression_inputs(), ids=lambda v: f"{v}" if isinstance(v, str) else v.name)
def test_regression_input(ctx, target, path):
    """Every input the campaign or the in-suite run found, kept under tests/data/fuzz/<target>/."""
    if path.name.startswith("known_"):
        pytest.xfail(KNOWN[target])
    _check(target, path.read_bytes(), ctx)


def test_the_oracle_catches_what_it_must(ctx, monkeypatch):
    """A reader that raises a foreign exception, leaks the seeded name, accepts NaN geometry or allocates
    beyond the limit is a failure (the oracle can fail)."""
    def bad(kind):
        def read(c, data):
            if kind == "exception":
                raise KeyError("x")
            if kind == "leak":
                raise InputError(f"x.dcm: patient {ft.SEED_NAME}")
            if kind == "memory":
                return np.ones(ft.MAX_BYTES + (1 << 28), np.uint8)
            img = Image(np.zeros((1, 2, 2), np.int16), np.eye(4))
            img.affine = np.full((4, 4), np.nan)  # what a reader that skipped the gate would return
            return img
        return read

    for kind in ("exception", "leak", "memory", "geometry"):
        monkeypatch.setattr(ft.TARGETS["raster"], "read", bad(kind))
        with pytest.raises(ft.Failure) as f:
            ft.run_one("raster", b"", ctx)
        assert f.value.kind == kind, (kind, str(f.value))


# --- generic: seed bytes mutated ----------------------------------------------------------------------

_BYTE_TARGETS = [t for t in ft.TARGETS if t != "dicom"]  # DICOM has its own, larger run below


@run(150)
@given(target=st.sampled_from(_BYTE_TARGETS), pick=st.integers(0, 10 ** 6),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=8)), max_size=6),
       cut=st.none() | st.floats(0, 1))
def test_mutated_seed_bytes(ctx, target, pick, edits, cut):
    seeds = _seeds(target, ctx)
    data = bytearray(seeds[pick % len(seeds)])
    for where, b in edits:
        i = int(where * len(data))
        data[i:i + len(b)] = b
    if cut is not None:
        data = data[:int(cut * len(data))]
    _check(target, bytes(data), ctx)


@run(40)
@given(pick=st.integers(0, 10 ** 6), edits=st.lists(st.tuples(st.floats(0, 0.3), st.binary(min_size=1, max_size=4)),
                                                    min_size=1, max_size=4))
def test_mutated_dicom_headers(ctx, pick, edits):
    """Bytes of the first 30 % of a DICOM seed (where the header lies) replaced."""
    seeds = _seeds("dicom", ctx)
    data = bytearray(seeds[pick % len(seeds)])
    for where, b in edits:
        i = int(where * len(data))
        data[i:i + len(b)] = b
    _check("dicom", bytes(data), ctx)


# --- DICOM: element values ----------------------------------------------------------------------------

_NUM_TEXT = st.sampled_from(["0", "-1", "1", "2", "3", "8", "16", "65535", "1e9", "1e400", "nan", "NaN", "inf", "-inf",
                             "abc", "", " 4 ", "1\\2", "0.5", "-0", "1,5"]) | st.integers(-10, 10 ** 6).map(str)
_FLOAT = st.sampled_from(["0", "1", "-1", "0.5", "nan", "inf", "1e308", "", "x"]) | \
    st.floats(-1e4, 1e4, allow_nan=False).map(lambda v: f"{v:.6g}")


def _multi(n):
    return st.lists(_FLOAT, min_size=max(0, n - 2), max_size=n + 1).map("\\".join)


_US = st.sampled_from([0, 1, 2, 3, 7, 8, 12, 15, 16, 17, 31, 32, 64, 65535]) | st.integers(0, 65535)
_DICOM_ELEMENTS = {
    "Rows": _US, "Columns": _US, "BitsAllocated": _US, "BitsStored": _US, "HighBit": _US, "PixelRepresentation": _US,
    "SamplesPerPixel": _US, "PlanarConfiguration": _US,
    "PhotometricInterpretation": st.sampled_from(["MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422",
                                                  "PALETTE COLOR", "", "XYZ"]),
    "NumberOfFrames": _NUM_TEXT, "RescaleSlope": _NUM_TEXT, "RescaleIntercept": _NUM_TEXT,
    "SliceThickness": _NUM_TEXT, "InstanceNumber": _NUM_TEXT,
    "ImageOrientationPatient": _multi(6), "ImagePositionPatient": _multi(3), "PixelSpacing": _multi(2),
    "GridFrameOffsetVector": _multi(3),
    "Modality": st.sampled_from(["CT", "MR", "SEG", "RTDOSE", "US", "", "OT"]),
    "SOPClassUID": st.sampled_from(["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.66.4", "1.2", ""]),
    "TransferSyntaxUID": st.sampled_from(["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
                                          "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50",
                                          "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.90", "1.2.3.4"]),
    "PixelData": st.sampled_from(["missing", "empty", "half", "one", "double"]),
    "delete": st.sampled_from(["ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows",
                               "BitsAllocated", "PhotometricInterpretation", "SeriesInstanceUID", "SamplesPerPixel",
                               "RescaleSlope"]),
}


def _element_edits(max_size=4):
    return st.lists(st.sampled_from(sorted(_DICOM_ELEMENTS)), unique=True, min_size=1, max_size=max_size).flatmap(
        lambda keys: st.tuples(*[st.tuples(st.just(k), _DICOM_ELEMENTS[k]) for k in keys]))


@contextlib.contextmanager
def _lenient_pydicom():
    """pydicom refuses to set or write invalid values (a DS of 'abc'): let it, for the length of one write."""
    import pydicom.config as cfg

    old = cfg.settings.writing_validation_mode
    cfg.settings.writing_validation_mode = cfg.IGNORE
    try:
        yield
    finally:
        cfg.settings.writing_validation_mode = old


def _set_raw(ds, keyword: str, value) -> None:
    """Put ``value`` into ``ds`` as the bytes a file would hold (explicit VR little endian), bypassing
    pydicom's value conversion, which refuses a DS of 'x'."""
    from pydicom.dataelem import RawDataElement
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.tag import Tag

    vr = dictionary_VR(keyword)
    if isinstance(value, int) and vr in ("US", "SS"):
        raw = struct.pack("<H" if vr == "US" else "<h", value)
    else:
        raw = str(value).encode("latin-1", "replace")
        if len(raw) % 2:
            raw += b"\0" if vr == "UI" else b" "
    tag = Tag(tag_for_keyword(keyword))
    ds[tag] = RawDataElement(tag, vr, len(raw), raw, 0, False, True)


def _edited_dicom(edits, z=0.0, inst=1) -> bytes:
    ds = ft._ct(z, inst)
    pixels = bytes(ds.PixelData)
    with _lenient_pydicom():
        for key, value in edits:
            if key == "delete":
                if value in ds:
                    delattr(ds, value)
            elif key == "PixelData":
                if value == "missing":
                    del ds.PixelData
                else:
                    ds.PixelData = {"empty": b"", "half": pixels[:len(pixels) // 2], "one": pixels[:1] + b"\0",
                                    "double": pixels * 2}[value]
            elif key == "TransferSyntaxUID":
                ds.file_meta.TransferSyntaxUID = value
            else:
                _set_raw(ds, key, value)
        buf = io.BytesIO()
        try:
            ds.save_as(buf, enforce_file_format=False, little_endian=True, implicit_vr=False)
        except Exception:  # noqa: BLE001 - pydicom cannot write this combination: not an input
            reject()
    return buf.getvalue()


@run(SOME)
@given(edits=_element_edits())
def test_dicom_element_values(ctx, edits):
    _check("dicom", _edited_dicom(edits), ctx)


@run(15)
@given(edits=_element_edits(3))
def test_dicom_series_with_one_odd_slice(ctx, edits):
    _check("dicom_series", _edited_dicom(edits, z=2.0, inst=3), ctx)


# --- NIfTI: header fields ------------------------------------------------------------------------------

_F32 = st.sampled_from([0.0, 1.0, -1.0, 1e-30, 1e30, float("nan"), float("inf"), 3.5]) | st.floats(width=32)
#: (offset, struct format, strategy) of NIfTI-1 header fields
_NIFTI_FIELDS = {
    "dim": (40, "<8h", st.tuples(st.integers(-1, 8), *[st.sampled_from([0, 1, 2, 4, 5, 6, 3000, 32767, -1])] * 7)),
    "datatype": (70, "<h", st.sampled_from([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 2304,
                                            -1, 99])),
    "bitpix": (72, "<h", st.sampled_from([0, 1, 8, 16, 32, 64, 7])),
    "pixdim": (76, "<8f", st.tuples(*[_F32] * 8)),
    "vox_offset": (108, "<f", st.sampled_from([0.0, 352.0, 348.0, 1e9, -4.0, float("nan"), 353.0])),
    "scl": (112, "<2f", st.tuples(_F32, _F32)),
    "xyzt_units": (123, "<B", st.integers(0, 255)),
    "qform_sform": (252, "<2h", st.tuples(st.integers(-1, 5), st.integers(-1, 5))),
    "quatern": (256, "<6f", st.tuples(*[_F32] * 6)),
    "srow": (280, "<12f", st.tuples(*[_F32] * 12)),
    "magic": (344, "<4s", st.sampled_from([b"n+1\0", b"ni1\0", b"n+2\0", b"xxxx"])),
}


@run(SOME)
@given(fields=st.lists(st.sampled_from(sorted(_NIFTI_FIELDS)), unique=True, min_size=1, max_size=4).flatmap(
    lambda keys: st.tuples(*[st.tuples(st.just(k), _NIFTI_FIELDS[k][2]) for k in keys])),
    gz=st.booleans(), cut=st.none() | st.integers(0, 500))
def test_nifti_header_fields(ctx, fields, gz, cut):
    data = bytearray(gzip.decompress((ctx.root / "image.nii.gz").read_bytes()))
    for key, value in fields:
        off, fmt, _ = _NIFTI_FIELDS[key]
        data[off:off + struct.calcsize(fmt)] = struct.pack(fmt, *(value if isinstance(value, tuple) else (value,)))
    if cut is not None:
        data = data[:len(data) - cut]
    _check("nifti_gz" if gz else "nifti", bytes(data), ctx)


# --- challenge .npz: shapes, dtypes, keys -------------------------------------------------------------

_SHAPES = st.lists(st.sampled_from([0, 1, 2, 3, 4, 8]), min_size=0, max_size=4).map(tuple)


@run(SOME)
@given(imgs=_SHAPES, dtype=st.sampled_from(["u1", "u2", "i2", "f4", "f8", "b1", "U2", "c8"]),
       boxes=st.sampled_from([[[1, 1, 5, 5]], [[1, 1, 0, 5, 5, 3]], [], [[1, 2]], [[np.nan, 0, 1, 1]]]),
       spacing=st.none() | st.lists(_F32, min_size=0, max_size=4), gts=st.none() | _SHAPES,
       two_d=st.booleans(), drop=st.sampled_from([None, "imgs", "boxes"]))
def test_npz_shapes_and_dtypes(ctx, imgs, dtype, boxes, spacing, gts, two_d, drop):
    arrays = {"imgs": np.zeros(imgs, dtype), "boxes": np.asarray(boxes, np.float64)}
    if spacing is not None:
        arrays["spacing"] = np.asarray(spacing, np.float64)
    if gts is not None:
        arrays["gts"] = np.zeros(gts, np.uint8)
    arrays.pop(drop, None)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path = ctx.root / ("2DBox_CT_h.npz" if two_d else "3DBox_CT_h.npz")
    path.write_bytes(buf.getvalue())
    # the target's oracle on a name chosen here (the target itself names 2D/3D by the bytes)
    target = ft.Target("npz_named", lambda c, data: open_image(path), "npz with a chosen name")
    try:
        ft.run_one(target, b"", ctx)
    except ft.Failure as f:
        pytest.fail(f"{path.name}: {f}", pytrace=False)


# --- raster: modes and sizes ---------------------------------------------------------------------------

@run(FEW)
@given(mode=st.sampled_from(["1", "L", "P", "RGB", "RGBA", "I;16", "I", "F", "LA", "CMYK"]),
       size=st.tuples(st.integers(1, 40), st.integers(1, 40)),
       fmt=st.sampled_from(["PNG", "TIFF", "BMP", "JPEG"]), cut=st.none() | st.integers(1, 200))
def test_raster_modes(ctx, mode, size, fmt, cut):
    from PIL import Image as PILImage

    buf = io.BytesIO()
    try:
        PILImage.new(mode, size).save(buf, fmt)
    except (OSError, ValueError, KeyError):
        reject()  # Pillow cannot write this mode in this format
    data = buf.getvalue()
    _check("raster", data[:-cut] if cut else data, ctx)


# --- label maps ----------------------------------------------------------------------------------------

@run(FEW)
@given(shape=st.sampled_from([(4, 5, 6), (4, 5, 5), (6, 5, 4), (4, 5, 6, 1), (4, 5, 6, 2), (4, 5)]),
       dtype=st.sampled_from(["u1", "i2", "u2", "f4", "f8", "i8"]),
       value=st.sampled_from([0, 1, 2, 255, 65535, -1, 0.5, float("nan"), float("inf")]),
       shift=st.sampled_from([0.0, 1e-4, 0.5, 10.0]))
def test_nifti_label_maps(ctx, shape, dtype, value, shift):
    import nibabel as nib

    labels = np.zeros(shape, dtype)
    with np.errstate(all="ignore"):  # NaN or 65535 cast to an integer type: whatever the cast gives
        labels.flat[1] = np.array([value], np.float64).astype(dtype)[0]
    affine = ctx.nifti_image.nifti_header.get_best_affine().copy()
    affine[0, 3] += shift
    buf = io.BytesIO()
    img = nib.Nifti1Image(labels, affine, dtype=labels.dtype)
    buf.write(img.header.binaryblock + b"\0" * 4 + labels.tobytes(order="F"))
    _check("nifti_labels", buf.getvalue(), ctx)


_NRRD_FIELDS = {
    "sizes": st.sampled_from(["6 5 4", "4 5 6", "6 5", "6 5 4 2", "0 5 4", "-1 5 4", "60000 60000 60000", "a b c"]),
    "type": st.sampled_from(["uchar", "short", "float", "double", "int64", "block", "nonsense"]),
    "dimension": st.sampled_from(["3", "4", "2", "0", "x"]),
    "space directions": st.sampled_from(["(0,0,0) (0,1,0) (0,0,1)", "(nan,0,0) (0,1,0) (0,0,1)", "none (1,0,0) (0,1,0) "
                                         "(0,0,1)", "(1,0,0) (0,1,0)", "(1,0,0) (1,0,0) (0,0,1)"]),
    "space origin": st.sampled_from(["(0,0,0)", "(nan,0,0)", "(1,2)", "x"]),
    "encoding": st.sampled_from(["raw", "gzip", "bzip2", "ascii", "hex", "zz"]),
    "Segment0_LabelValue": st.sampled_from(["1", "0", "-1", "70000", "x", ""]),
    "Segment0_Layer": st.sampled_from(["0", "1", "5", "-1", "x"]),
    "Segment0_Extent": st.sampled_from(["0 5 0 4 0 3", "3 1 0 0 0 0", "0 99 0 99 0 99", "x"]),
    "Segment0_Color": st.sampled_from(["0.5 0.5 0.5", "nan 1 1", "1", "x y z"]),
    "Segment0_Name": st.sampled_from(["liver", "", "a" * 300]),
    "Segments_SourceRepresentation": st.sampled_from(["Binary labelmap", "Closed surface", ""]),
}


@run(SOME)
@given(edits=st.lists(st.sampled_from(sorted(_NRRD_FIELDS)), unique=True, min_size=1, max_size=3).flatmap(
    lambda keys: st.tuples(*[st.tuples(st.just(k), _NRRD_FIELDS[k]) for k in keys])))
def test_seg_nrrd_header_fields(ctx, edits):
    data = _seeds("seg_nrrd", ctx)[0]
    head, sep, body = data.partition(b"\n\n")
    lines = head.decode("latin-1").split("\n")
    for key, value in edits:
        found = False
        for i, line in enumerate(lines):
            k = line.split(":=", 1)[0] if ":=" in line else line.split(":", 1)[0]
            if k.strip() == key:
                lines[i] = f"{key}:={value}" if ":=" in line else f"{key}: {value}"
                found = True
        if not found:
            lines.append(f"{key}:={value}" if key.startswith("Segment") else f"{key}: {value}")
    _check("seg_nrrd", "\n".join(lines).encode("latin-1") + sep + body, ctx)


_SEG_ELEMENTS = {
    "NumberOfFrames": st.sampled_from(["0", "1", "2", "3", "1000000", "x", ""]),
    "Rows": _US, "Columns": _US,
    "BitsAllocated": st.sampled_from([1, 8, 16, 0, 7]),
    "SegmentationType": st.sampled_from(["BINARY", "FRACTIONAL", "LABELMAP", "X"]),
    "ReferencedSegmentNumber": st.sampled_from([0, 1, 2, 3, 99]),
    "SegmentNumber": st.sampled_from([0, 1, 2, 99]),
    "ImagePositionPatient": _multi(3), "ImageOrientationPatient": _multi(6), "PixelSpacing": _multi(2),
    "PixelData": st.sampled_from(["empty", "half", "double"]),
}


@settings(run(FEW))
@given(edits=st.lists(st.sampled_from(sorted(_SEG_ELEMENTS)), unique=True, min_size=1, max_size=3).flatmap(
    lambda keys: st.tuples(*[st.tuples(st.just(k), _SEG_ELEMENTS[k]) for k in keys])))
def test_dicom_seg_element_values(ctx, edits):
    """Values of our own SEG (two segments on the 3-slice series), in the dataset and in every frame's groups."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(_seeds("dicom_seg", ctx)[0]))
    with _lenient_pydicom():
        for key, value in edits:
            if key == "PixelData":
                px = bytes(ds.PixelData)
                ds.PixelData = {"empty": b"", "half": px[:len(px) // 2], "double": px * 2}[value]
                continue
            targets = [ds]
            for seq in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence", "SegmentSequence"):
                for item in ds.get(seq, []):
                    targets.append(item)
                    for sub in item:
                        if sub.VR == "SQ":
                            targets.extend(sub.value)
            for t in targets:
                if key in t or t is ds and key in ("NumberOfFrames", "Rows", "Columns", "BitsAllocated"):
                    _set_raw(t, key, value)
        buf = io.BytesIO()
        try:
            ds.save_as(buf)
        except Exception:  # noqa: BLE001
            reject()
    _check("dicom_seg", buf.getvalue(), ctx)


# --- text files: label descriptions, model and batch manifests -----------------------------------------

_TOKEN = st.sampled_from(["0", "1", "-1", "255", "256", "1e9", "0.5", "nan", "x", '"a"', '"', '""', "", "  ",
                          '"' + "n" * 500 + '"', "\t", "#", "65536"])


@run(SOME)
@given(lines=st.lists(st.lists(_TOKEN, min_size=0, max_size=9).map(" ".join), max_size=6))
def test_label_description_lines(ctx, lines):
    _check("label_descriptions", "\n".join(lines).encode(), ctx)


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2, 2 ** 70) | st.floats() | st.text(max_size=12),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                     max_leaves=8)
_MODEL_FIELDS = ["name", "family", "precision", "input_size", "graphs", "files", "default", "license",
                 "source_checkpoint"]


@run(SOME)
@given(field=st.sampled_from(_MODEL_FIELDS + ["format", "models", "file.path", "file.sha256", "file.bytes"]),
       value=_JSON, drop=st.booleans())
def test_model_manifest_fields(ctx, field, value, drop):
    doc = json.loads(_seeds("model_manifest", ctx)[1])
    model = doc["models"][0]
    where, key = (doc, field) if field in ("format", "models") else \
        (model["files"][0], field[5:]) if field.startswith("file.") else (model, field)
    if drop:
        where.pop(key, None)
    else:
        where[key] = value
    _check("model_manifest", json.dumps(doc).encode(), ctx)


_CELL = st.sampled_from(["a.nii.gz", "", "1,2,3,4", "1,2,0,5,6,4", "1 2 3 4", "nan,1,2,3", "1e400,1,2,3", "-1,-1,0,0",
                         "x", "3", "-2", "40,400", "abdomen", "../..", "1.2.3", '"', "a,b"]) | st.text(max_size=8)


@run(SOME)
@given(header=st.lists(st.sampled_from(["image", "box", "study", "object", "slice", "window", "series", "path", "z",
                                        "Image", " box ", "x", ""]), min_size=1, max_size=6),
       rows=st.lists(st.lists(_CELL, min_size=0, max_size=7), max_size=5), jsonl=st.booleans())
def test_batch_manifest_rows(ctx, header, rows, jsonl):
    if jsonl:
        text = "\n".join(json.dumps(dict(zip(header, r))) for r in rows)
        _check("batch_jsonl", text.encode(), ctx)
    else:
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(header)
        w.writerows(rows)
        _check("batch_csv", out.getvalue().encode(), ctx)
