"""The named-structure catalogue: every code is pydicom's, searching and looking names up."""

from __future__ import annotations

import pytest
from pydicom.sr.codedict import codes

from engine.data.structures import (ABNORMAL, ANATOMY, CATALOGUE, GENERIC_TYPE, LEFT, RIGHT, TISSUE, Code,
                                    find_code, lookup, search)


def _pydicom(keyword: str) -> Code:
    c = getattr(codes.SCT, keyword)
    return Code(str(c.value), str(c.scheme_designator), str(c.meaning))


def test_every_code_is_pydicoms():
    assert len(CATALOGUE) >= 80
    for s in CATALOGUE:
        assert s.type == _pydicom(s.keyword), s.name
    assert ANATOMY == _pydicom("AnatomicalStructure")
    assert ABNORMAL == _pydicom("MorphologicallyAbnormalStructure")
    assert TISSUE == _pydicom("Tissue") == GENERIC_TYPE
    assert (LEFT, RIGHT) == (_pydicom("Left"), _pydicom("Right"))
    assert {s.category for s in CATALOGUE} == {ANATOMY, ABNORMAL, TISSUE}


def test_names_unique_and_lateral_entries_coded_by_modifier():
    names = [s.name.lower() for s in CATALOGUE]
    assert len(set(names)) == len(names)
    left = lookup("Kidney, left")
    assert (left.type.value, left.modifier) == ("64033007", LEFT)
    assert lookup("right kidney").modifier == RIGHT
    assert lookup("Kidney").modifier is None
    for s in CATALOGUE:
        assert (s.modifier is not None) == (", left" in s.name or ", right" in s.name), s.name


def test_slicer_colours():
    assert lookup("liver").color == (221, 130, 101)
    assert lookup("spleen").color == (157, 108, 162)
    assert lookup("Kidney, left").color == lookup("Kidney, right").color == (185, 102, 83)
    assert lookup("Lesion").color is None


def test_search_case_insensitive_prefix_first():
    assert [s.name for s in search("spl")] == ["Spleen"]
    assert [s.name for s in search("KID")][:3] == ["Kidney", "Kidney, left", "Kidney, right"]
    # a word of the name ("Lateral ventricle, left" for "vent") ranks before a match inside a word
    hits = [s.name for s in search("vent")]
    assert hits[0] == "Left ventricle" and "Inferior vena cava" not in hits
    assert "Tumour" in [s.name for s in search("tumor")]  # synonym
    assert [s.name for s in search("ivc")] == ["Inferior vena cava"]
    assert search("zzz") == [] and len(search("")) == len(CATALOGUE)


@pytest.mark.parametrize("text,want", [("liver", "Liver"), ("  LIVER ", "Liver"), ("Lesion 2", "Lesion"),
                                       ("nodule_3", "Nodule"), ("tumor", "Tumour"), ("my blob", None),
                                       ("Liver segment 4", None)])
def test_lookup(text, want):
    hit = lookup(text)
    assert (hit.name if hit else None) == want


def test_find_code_and_json():
    s = find_code(ANATOMY, lookup("Lung, left").type, LEFT)
    assert s.name == "Lung, left"
    assert find_code(ANATOMY, lookup("Lung").type, None).name == "Lung"
    assert find_code(TISSUE, TISSUE) is None
    c = lookup("Spleen").type
    assert Code.from_json(c.to_json()) == c
    assert Code.from_json({"CodeValue": "78961009", "CodingSchemeDesignator": "SCT", "CodeMeaning": "Spleen"}) == c
    assert Code.from_json(None) is None and Code.from_json(["x"]) is None
