"""Segment metadata JSON beside a NIfTI label map: what each label value is, in dcmqi's format.

NIfTI stores voxels only, and the ITK-SNAP label descriptions BoxSeg writes beside it
(:mod:`engine.io.itksnap`) hold names and colours but no codes. The codes go into ``<stem>.meta.json``
(:func:`engine.io.formats.seg_meta_path`), written in the metadata format of dcmqi's
``itkimage2segimage`` (schema https://raw.githubusercontent.com/qiicr/dcmqi/master/doc/schemas/seg-schema.json),
so the pair converts to a DICOM-SEG with ``itkimage2segimage --inputImageList seg.nii.gz --inputMetadata
seg.meta.json --inputDICOMDirectory ...`` and other tools that read dcmqi metadata understand it:

.. code-block:: json

    {"@schema": "...seg-schema.json#", "ContentCreatorName": "BoxSeg", "SeriesDescription": "BoxSeg",
     "SeriesNumber": "300", "InstanceNumber": "1",
     "segmentAttributes": [[{"labelID": 1, "SegmentLabel": "Kidney, left", "SegmentDescription": "Kidney, left",
        "SegmentAlgorithmType": "SEMIAUTOMATIC", "SegmentAlgorithmName": "BoxSeg",
        "recommendedDisplayRGBValue": [185, 102, 83],
        "SegmentedPropertyCategoryCodeSequence": {"CodeValue": "91723000", "CodingSchemeDesignator": "SCT",
                                                  "CodeMeaning": "Anatomical Structure"},
        "SegmentedPropertyTypeCodeSequence": {"CodeValue": "64033007", ...,"CodeMeaning": "Kidney"},
        "SegmentedPropertyTypeModifierCodeSequence": {"CodeValue": "7771000", ..., "CodeMeaning": "Left"}}]]}

One inner list (one label map file), one entry per label value (``labelID``). Reading takes any number of
inner lists (their entries by ``labelID``; a later one wins) and ignores fields it does not know.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.base.atomic import writing
from engine.base.errors import InputError
from engine.data.labelmap import Segment
from engine.data.palette import default_color
from engine.data.structures import GENERIC_CATEGORY, GENERIC_TYPE, Code
from engine.io.textfile import read_text

SCHEMA = "https://raw.githubusercontent.com/qiicr/dcmqi/master/doc/schemas/seg-schema.json#"


def _code(c: Code) -> dict:
    return {"CodeValue": c.value, "CodingSchemeDesignator": c.scheme, "CodeMeaning": c.meaning}


def format_seg_meta(segments: list[Segment], *, algorithm: str = "BoxSeg") -> str:
    """The JSON text for ``segments`` (value > 0, in value order)."""
    attrs = []
    for s in sorted(segments, key=lambda s: s.value):
        if s.value == 0:
            continue
        name = s.name or f"label {s.value}"
        a = {"labelID": int(s.value), "SegmentLabel": name[:64], "SegmentDescription": name,
             "SegmentAlgorithmType": "SEMIAUTOMATIC", "SegmentAlgorithmName": algorithm[:64] or "BoxSeg",
             "recommendedDisplayRGBValue": [int(c) for c in s.color],
             "SegmentedPropertyCategoryCodeSequence": _code(s.category_code),
             "SegmentedPropertyTypeCodeSequence": _code(s.type_code)}
        if s.type_modifier_code is not None:
            a["SegmentedPropertyTypeModifierCodeSequence"] = _code(s.type_modifier_code)
        attrs.append(a)
    doc = {"@schema": SCHEMA, "ContentCreatorName": "BoxSeg", "SeriesDescription": "BoxSeg", "SeriesNumber": "300",
           "InstanceNumber": "1", "segmentAttributes": [attrs]}
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def write_seg_meta(path: Path, segments: list[Segment], *, algorithm: str = "BoxSeg") -> Path:
    """Write the metadata JSON of ``segments``; returns the path."""
    path = Path(path)
    text = format_seg_meta(segments, algorithm=algorithm)
    with writing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _color(v, value: int) -> tuple[int, int, int]:
    if isinstance(v, list) and len(v) == 3 and all(isinstance(c, (int, float)) and 0 <= c <= 255 for c in v):
        return tuple(int(c) for c in v)
    return default_color(value)


def parse_seg_meta(text: str, name: str = "segment metadata") -> dict[int, Segment]:
    """label value -> :class:`Segment` (name, colour, codes) of a dcmqi metadata JSON text; :class:`InputError`
    naming ``name`` for text that is not JSON or has no ``segmentAttributes`` list."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise InputError(f"{name}: not a JSON file ({e.msg} at line {e.lineno})") from e
    groups = doc.get("segmentAttributes") if isinstance(doc, dict) else None
    if not isinstance(groups, list):
        raise InputError(f"{name}: no 'segmentAttributes' list (not a dcmqi segmentation metadata file)")
    out: dict[int, Segment] = {}
    for group in groups:
        for a in group if isinstance(group, list) else []:
            if not isinstance(a, dict):
                continue
            try:
                value = int(a.get("labelID", a.get("LabelID")))
            except (TypeError, ValueError):
                continue
            if not 0 < value <= 65535:
                continue
            label = str(a.get("SegmentLabel") or a.get("SegmentDescription") or f"label {value}")
            full = str(a.get("SegmentDescription") or "")
            if len(label) == 64 and full.startswith(label):  # a long name: the label is cut to DICOM's 64
                label = full
            out[value] = Segment(value, label, _color(a.get("recommendedDisplayRGBValue"), value),
                                 Code.from_json(a.get("SegmentedPropertyCategoryCodeSequence")) or GENERIC_CATEGORY,
                                 Code.from_json(a.get("SegmentedPropertyTypeCodeSequence")) or GENERIC_TYPE,
                                 Code.from_json(a.get("SegmentedPropertyTypeModifierCodeSequence")))
    return out


def read_seg_meta(path: Path) -> dict[int, Segment]:
    """A metadata JSON file -> label value -> :class:`Segment`."""
    path = Path(path)
    return parse_seg_meta(read_text(path), path.name)


__all__ = ["SCHEMA", "format_seg_meta", "parse_seg_meta", "read_seg_meta", "write_seg_meta"]
