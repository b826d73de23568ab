"""ITK-SNAP label descriptions (issue 19): written beside every NIfTI label map as ``<stem>.label.txt``,
parsed back (by a parser of the test's own and by ours), found as ``.label.txt``, ``.label`` or ``.txt``;
names and colours of a NIfTI come back from them."""

from __future__ import annotations

import shlex

import numpy as np
import pytest

from engine.base.errors import InputError
from engine.data.labelmap import Segment
from engine.io.dispatch import read_labelmap, write_labelmap
from engine.io.itksnap import format_label_descriptions, parse_label_descriptions
from tests.engine.io.test_segnrrd import SEGMENTS, objects_on, oblique_image

#: what ITK-SNAP 4 exports from its Label Editor (header shortened), labels 0..3 of its default table
ITKSNAP_EXPORT = '''################################################
# ITK-SnAP Label Description File
# File format:
# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL
################################################
    0     0    0    0        0  0  0    "Clear Label"
    1   255    0    0        1  1  1    "Liver"
    2     0  255    0        1  1  1    "Label 2"
    3     0    0  255     0.75  1  0    "Right kidney"
'''


def columns(text: str) -> dict[int, tuple]:
    """The test's own reading of the format: IDX R G B A VIS MSH "LABEL" per non-comment line."""
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            f = shlex.split(line)
            assert len(f) == 8, line
            out[int(f[0])] = (int(f[1]), int(f[2]), int(f[3]), float(f[4]), int(f[5]), int(f[6]), f[7])
    return out


def test_written_beside_the_nifti_and_parsed_back(tmp_path):
    img = oblique_image()
    labels = objects_on(img.shape)
    nii = write_labelmap(tmp_path / "scan_seg.nii.gz", labels, img, segments=SEGMENTS)
    side = tmp_path / "scan_seg.label.txt"
    # + the segment metadata JSON with the codes (tests/engine/io/test_structure_codes.py)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan_seg.label.txt", "scan_seg.meta.json",
                                                          "scan_seg.nii.gz"]
    text = side.read_text()
    assert "# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL" in text
    rows = columns(text)
    assert rows[0][-1] == "Clear Label" and rows[0][3] == 0
    assert {v: (r[:3], r[6]) for v, r in rows.items() if v} == {s.value: (s.color, s.name) for s in SEGMENTS}
    assert all(r[3] == 1.0 and r[4] == r[5] == 1 for v, r in rows.items() if v)
    assert parse_label_descriptions(text) == SEGMENTS
    lm = read_labelmap(nii, img)
    assert [(s.value, s.name, s.color) for s in lm.segments] == [(s.value, s.name, s.color) for s in SEGMENTS]


def test_values_without_a_segment_get_a_default_line_and_names_stay_on_one_quoted_line(tmp_path):
    img = oblique_image()
    labels = objects_on(img.shape)
    write_labelmap(tmp_path / "a.nii", labels, img, segments=[Segment(1, 'the "odd"\nname', (1, 2, 3))])
    rows = columns((tmp_path / "a.label.txt").read_text())
    assert rows[1][-1] == "the 'odd' name" and rows[1][:3] == (1, 2, 3)
    assert rows[2][-1] == "label 2" and rows[7][-1] == "label 7"


@pytest.mark.parametrize("suffix", [".label", ".txt", ".label.txt"])
def test_an_itksnap_export_beside_a_nifti_names_its_labels(tmp_path, suffix):
    img = oblique_image()
    labels = np.where(objects_on(img.shape) == 7, 3, objects_on(img.shape))  # values 1, 2, 3
    write_labelmap(tmp_path / "seg.nii.gz", labels, img)
    (tmp_path / "seg.label.txt").unlink()
    (tmp_path / f"seg{suffix}").write_text(ITKSNAP_EXPORT)
    lm = read_labelmap(tmp_path / "seg.nii.gz", img)
    assert [(s.value, s.name, s.color) for s in lm.segments] == [
        (1, "Liver", (255, 0, 0)), (2, "Label 2", (0, 255, 0)), (3, "Right kidney", (0, 0, 255))]


def test_only_present_values_become_objects_and_label_txt_comes_first(tmp_path):
    img = oblique_image()
    labels = (objects_on(img.shape) == 1).astype(np.uint8)
    write_labelmap(tmp_path / "seg.nii.gz", labels, img, segments=[Segment(1, "ours", (9, 9, 9))])
    (tmp_path / "seg.txt").write_text(ITKSNAP_EXPORT)  # an older export: the .label.txt wins
    lm = read_labelmap(tmp_path / "seg.nii.gz", img)
    assert [(s.value, s.name) for s in lm.segments] == [(1, "ours")]
    (tmp_path / "seg.label.txt").unlink()
    lm = read_labelmap(tmp_path / "seg.nii.gz", img)
    assert [(s.value, s.name) for s in lm.segments] == [(1, "Liver")]  # labels 2 and 3 are not in the map


def test_a_broken_description_file_keeps_the_label_map_with_a_warning(tmp_path):
    img = oblique_image()
    labels = objects_on(img.shape)
    write_labelmap(tmp_path / "seg.nii.gz", labels, img, segments=SEGMENTS)
    (tmp_path / "seg.label.txt").write_text(ITKSNAP_EXPORT + "    4   1 2\n")
    lm = read_labelmap(tmp_path / "seg.nii.gz", img)
    # the names and colours written into the segment metadata JSON beside it stand in
    assert np.array_equal(lm.labels, labels) and [(s.name, s.color) for s in lm.segments] == [
        (s.name, s.color) for s in SEGMENTS]
    assert len(lm.warnings) == 1 and "seg.label.txt: line 10" in lm.warnings[0]
    (tmp_path / "seg.meta.json").unlink()
    lm = read_labelmap(tmp_path / "seg.nii.gz", img)
    assert np.array_equal(lm.labels, labels) and [s.name for s in lm.segments] == ["label 1", "label 2", "label 7"]
    assert len(lm.warnings) == 1 and "seg.label.txt: line 10" in lm.warnings[0]


def test_parse_errors_name_the_file_and_line():
    with pytest.raises(InputError, match=r"^x\.txt: line 2 is not an ITK-SNAP label description"):
        parse_label_descriptions('# c\n1 2 3\n', "x.txt")
    with pytest.raises(InputError, match="no ITK-SNAP label descriptions"):
        parse_label_descriptions("# only comments\n\n", "x.txt")
    with pytest.raises(InputError, match="out of range"):
        parse_label_descriptions('1 300 0 0 1 1 1 "a"\n', "x.txt")
    assert parse_label_descriptions(format_label_descriptions([])) == []
