"""Named structures in every label map format: a 'Liver' and a 'Kidney, left' segment written as DICOM-SEG,
.seg.nrrd and NIfTI (+ ITK-SNAP names + dcmqi metadata JSON) come back with the same names, colours and
SNOMED CT codes; the SEG's code sequences are where DICOM puts them (read with pydicom and highdicom)."""

from __future__ import annotations

import json
import warnings

import highdicom as hd
import numpy as np
import pydicom
import pytest

from engine.data.labelmap import Segment
from engine.data.structures import ANATOMY, GENERIC_CATEGORY, GENERIC_TYPE, LEFT, lookup
from engine.io.dispatch import open_image, read_labelmap, write_labelmap
from tests.engine.io.test_dicom import pd_file


def coded(value: int, name: str) -> Segment:
    s = lookup(name)
    return Segment(value, s.name, s.color, s.category, s.type, s.modifier)


SEGMENTS = [coded(1, "Liver"), coded(2, "Kidney, left"), Segment(3, "my blob", (10, 20, 30))]


def key(segments):
    return [(s.value, s.name, tuple(s.color), s.category_code, s.type_code, s.type_modifier_code) for s in segments]


@pytest.fixture(scope="module")
def case():
    img = open_image(pd_file("CT_small.dcm"))  # a 128x128 CT slice read from DICOM
    labels = np.zeros(img.shape, np.uint8)
    labels[0, 10:40, 10:60] = 1
    labels[0, 70:90, 80:100] = 2
    labels[0, 100:110, 5:20] = 3
    return img, labels


@pytest.mark.parametrize("name", ["seg.dcm", "seg.seg.nrrd", "seg.nii.gz"])
def test_names_colours_and_codes_round_trip(case, tmp_path, name):
    img, labels = case
    out = write_labelmap(tmp_path / name, labels, img, segments=SEGMENTS)
    lm = read_labelmap(out, img)
    assert np.array_equal(lm.labels, labels)
    got = key(lm.segments)
    if name.endswith(".dcm"):  # CIELab -> RGB may move a channel by one
        for g, w in zip(got, key(SEGMENTS)):
            assert g[:2] == w[:2] and np.abs(np.subtract(g[2], w[2])).max() <= 1 and g[3:] == w[3:]
    else:
        assert got == key(SEGMENTS)
    assert lm.segments[0].type_code.value == "10200004" and lm.segments[0].category_code == ANATOMY
    assert (lm.segments[1].type_code.value, lm.segments[1].type_modifier_code) == ("64033007", LEFT)
    assert (lm.segments[2].category_code, lm.segments[2].type_code) == (GENERIC_CATEGORY, GENERIC_TYPE)


def test_dicom_seg_code_sequences_read_by_pydicom_and_highdicom(case, tmp_path):
    img, labels = case
    out = write_labelmap(tmp_path / "seg.dcm", labels, img, segments=SEGMENTS)
    ds = pydicom.dcmread(out)
    items = list(ds.SegmentSequence)
    assert [str(i.SegmentLabel) for i in items] == ["Liver", "Kidney, left", "my blob"]
    cat = [(str(i.SegmentedPropertyCategoryCodeSequence[0].CodeValue)) for i in items]
    typ = [(str(i.SegmentedPropertyTypeCodeSequence[0].CodeValue)) for i in items]
    assert cat == ["91723000", "91723000", "85756007"] and typ == ["10200004", "64033007", "85756007"]
    mod = items[1].SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence[0]
    assert (str(mod.CodeValue), str(mod.CodingSchemeDesignator), str(mod.CodeMeaning)) == ("7771000", "SCT", "Left")
    assert "SegmentedPropertyTypeModifierCodeSequence" not in items[0].SegmentedPropertyTypeCodeSequence[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seg = hd.seg.segread(out)
    d = seg.get_segment_description(2)
    assert d.segmented_property_type == hd.sr.CodedConcept("64033007", "SCT", "Kidney")
    assert d.segmented_property_category == hd.sr.CodedConcept("91723000", "SCT", "Anatomical Structure")
    assert seg.get_segment_description(1).segmented_property_type.value == "10200004"


def test_seg_nrrd_terminology_entry_carries_the_codes(case, tmp_path):
    nrrd = pytest.importorskip("nrrd")
    img, labels = case
    out = write_labelmap(tmp_path / "s.seg.nrrd", labels, img, segments=SEGMENTS)
    h = nrrd.read_header(str(out))
    parts = h["Segment1_Tags"].split("TerminologyEntry:")[1].rstrip("|").split("~")
    assert parts[1:4] == ["SCT^91723000^Anatomical Structure", "SCT^64033007^Kidney", "SCT^7771000^Left"]
    assert h["Segment2_Tags"].split("~")[1:4] == ["SCT^85756007^Tissue", "SCT^85756007^Tissue", "^^"]


def test_nifti_metadata_json_is_dcmqis_and_a_renamed_label_drops_its_code(case, tmp_path):
    img, labels = case
    out = write_labelmap(tmp_path / "s.nii.gz", labels, img, segments=SEGMENTS)
    meta = json.loads((tmp_path / "s.meta.json").read_text())
    attrs = meta["segmentAttributes"][0]
    assert meta["@schema"].endswith("seg-schema.json#") and [a["labelID"] for a in attrs] == [1, 2, 3]
    assert attrs[1]["SegmentedPropertyTypeCodeSequence"] == {
        "CodeValue": "64033007", "CodingSchemeDesignator": "SCT", "CodeMeaning": "Kidney"}
    assert attrs[1]["SegmentedPropertyTypeModifierCodeSequence"]["CodeValue"] == "7771000"
    assert attrs[0]["recommendedDisplayRGBValue"] == [221, 130, 101]
    # renamed in ITK-SNAP afterwards: the old code no longer applies; a catalogue name gives its own code
    txt = tmp_path / "s.label.txt"
    txt.write_text(txt.read_text().replace('"Liver"', '"Spleen"').replace('"Kidney, left"', '"thing"'))
    segs = read_labelmap(out, img).segments
    assert (segs[0].name, segs[0].type_code.value) == ("Spleen", "78961009")
    assert (segs[1].name, segs[1].type_code, segs[1].type_modifier_code) == ("thing", GENERIC_TYPE, None)
    # without the ITK-SNAP file the metadata JSON gives names and colours too
    txt.unlink()
    assert key(read_labelmap(out, img).segments) == key(SEGMENTS)
    (tmp_path / "s.meta.json").write_text("{not json")
    lm = read_labelmap(out, img)
    assert [s.name for s in lm.segments] == ["label 1", "label 2", "label 3"]
    assert len(lm.warnings) == 1 and "s.meta.json" in lm.warnings[0]


def test_dciodvfy_finds_no_error_in_the_coded_seg(case, tmp_path):
    """dicom3tools' IOD checker (skipped where it is not installed: `apt-get install dicom3tools`)."""
    import shutil
    import subprocess

    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (dicom3tools) not installed")
    img, labels = case
    out = write_labelmap(tmp_path / "seg.dcm", labels, img, segments=SEGMENTS)
    r = subprocess.run([exe, str(out)], capture_output=True, text=True, timeout=60)
    report = (r.stdout + r.stderr).splitlines()
    assert report[0].strip() == "Segmentation"
    assert not [line for line in report if line.startswith("Error")], report


def test_metadata_json_keeps_a_long_name_whole_and_skips_bad_entries():
    from engine.io.segmeta import format_seg_meta, parse_seg_meta

    long = "Liver metastasis segment 7, arterial phase, reviewed by the second reader"  # > 64 characters
    text = format_seg_meta([Segment(4, long, (1, 2, 3))])
    assert json.loads(text)["segmentAttributes"][0][0]["SegmentLabel"] == long[:64]
    back = parse_seg_meta(text)
    assert list(back) == [4] and back[4].name == long and back[4].color == (1, 2, 3)
    doc = json.loads(text)
    doc["segmentAttributes"][0] += [{"labelID": "x"}, {"labelID": 0}, "junk",
                                    {"labelID": 9, "SegmentedPropertyTypeCodeSequence": {"CodeValue": ""}}]
    back = parse_seg_meta(json.dumps(doc))
    assert sorted(back) == [4, 9] and back[9].type_code == GENERIC_TYPE and back[9].name == "label 9"
