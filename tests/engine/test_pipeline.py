"""engine.pipeline: boxes from text, object checks, and one study segmented from boxes on the bundled model."""

from __future__ import annotations

import numpy as np
import pytest

from engine.base.errors import PromptError
from engine.data.geometry import raster_affine
from engine.data.image import Image
from engine.pipeline import StudyObject, check_object, parse_box, segment_object, segment_study
from tests.conftest import REPO


@pytest.mark.parametrize("value,box", [("1,2,3,4", (1, 2, 3, 4)), ("[1 2 3 4]", (1, 2, 3, 4)), ([1, 2, 3, 4], (1, 2, 3, 4)),
                                       (["1,2", "3", "4"], (1, 2, 3, 4)), ("1;2;0;3;4;5", (1, 2, 0, 3, 4, 5))])
def test_parse_box_forms(value, box):
    assert parse_box(value) == tuple(float(v) for v in box)


@pytest.mark.parametrize("value", ["1,2,3", "1,2,x,4", "1,2,nan,4", "1,2,0.5,3,4,5", "1,2,5,3,4,1", ""])
def test_parse_box_refuses(value):
    with pytest.raises(PromptError):
        parse_box(value)


def test_parse_box_2d_only():
    with pytest.raises(PromptError, match="x0,y0,x1,y1"):
        parse_box("1,2,0,3,4,5", sizes=(4,))


def _volume():
    v = np.zeros((5, 40, 40), np.int16)
    v[1:4, 10:30, 12:28] = 500
    return Image(voxels=v, affine=raster_affine(), modality="MR")


def test_check_object_names_the_problem():
    img = _volume()
    check_object(img, StudyObject("a", (10, 10, 20, 20), slice=2))
    check_object(img, StudyObject("b", (10, 10, 0, 20, 20, 4)))
    with pytest.raises(PromptError, match="needs a slice"):
        check_object(img, StudyObject("c", (10, 10, 20, 20)))
    with pytest.raises(PromptError, match="outside the image's 5 slice"):
        check_object(img, StudyObject("d", (10, 10, 0, 20, 20, 7)))
    rgb = Image(voxels=np.zeros((1, 8, 8, 3), np.uint8), affine=raster_affine())
    with pytest.raises(PromptError, match="RGB"):
        check_object(rgb, StudyObject("e", (1, 1, 0, 5, 5, 0)))


def test_segment_study_is_segment_object_per_label(session):
    from engine.io.dispatch import open_image

    img = open_image(REPO / "assets" / "sample" / "CT_small.dcm")
    objs = [StudyObject("a", (72, 0, 110, 28)), StudyObject("b", (10, 60, 60, 110))]
    labels, segments = segment_study(session, img, objs)
    assert labels.dtype == np.uint8 and [s.value for s in segments] == [1, 2] and [s.name for s in segments] == ["a", "b"]
    one = segment_object(session, img, objs[0])
    assert one.z == 0 and one.iou is not None and one.mask.any()
    assert np.array_equal(labels == 1, one.mask & ~segment_object(session, img, objs[1]).mask)
    with pytest.raises(PromptError, match=r"^row 3 \(bad\): "):
        segment_study(session, img, [StudyObject("bad", (500, 500, 600, 600), source="row 3")])
