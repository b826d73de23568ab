"""Named structures in the app (issue 14, item 5): the object-name editor's completer offers catalogue
structures; picking 'Spleen' after typing 'spl' gives the object its name, SNOMED CT code and Slicer colour,
which undo, autosave and a DICOM-SEG saved from the app keep."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from engine.data.geometry import raster_affine
from engine.data.image import Image
from engine.data.labelmap import LabelMap, Segment
from engine.data.structures import ANATOMY, GENERIC_CATEGORY, GENERIC_TYPE, LEFT, lookup
from tests.app.gui.test_app import wait_job
from tests.app.gui.test_commits import SAMPLE, mouse_box

pytestmark = pytest.mark.gui

SPLEEN_RGB = (157, 108, 162)  # 3D Slicer's spleen


def open_editor(qtbot, win, objects, row=0):
    """Double-click the row's name with real mouse events; returns the open (visible) name editor."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLineEdit

    def editor():  # a closed editor lingers until its deferred deletion
        return next((e for e in win.findChildren(QLineEdit, "objectNameEditor") if e.isVisible()), None)

    rect = objects.visualItemRect(objects.item(row))
    # a real double click is press, release, press+double-click event (the view edits only the item it saw pressed)
    qtbot.mouseClick(objects.viewport(), Qt.LeftButton, pos=rect.center())
    qtbot.mouseDClick(objects.viewport(), Qt.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: editor() is not None, timeout=5_000)
    return editor()


def editor_open(win) -> bool:
    from PySide6.QtWidgets import QLineEdit

    return any(e.isVisible() for e in win.findChildren(QLineEdit, "objectNameEditor"))


def test_typing_spl_and_picking_spleen_codes_the_object_and_the_saved_seg(qtbot, open_window, tmp_path):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QListWidget

    from app.autosave import list_snapshots

    win = open_window(SAMPLE)
    c = win.c
    qtbot.waitUntil(lambda: c.slice_ready(), timeout=60_000)
    mouse_box(win, (72, 0, 110, 28))
    qtbot.waitUntil(lambda: len(c.doc.objects) == 1 and c.pending_commits == 0, timeout=30_000)
    obj = c.doc.objects[0]
    assert (obj.name, obj.type_code) == ("Object 1", GENERIC_TYPE)
    before = tuple(obj.color)
    steps = c.doc.undo_stack.count()

    objects = win.findChild(QListWidget, "objectList")
    editor = open_editor(qtbot, win, objects)
    assert editor.text() == "Object 1"  # the bare name, without the figures the item shows
    editor.selectAll()
    qtbot.keyClicks(editor, "spl")
    popup = editor.completer().popup()
    qtbot.waitUntil(popup.isVisible, timeout=5_000)
    rows = [popup.model().index(r, 0).data() for r in range(popup.model().rowCount())]
    assert rows == ["Spleen"]
    qtbot.mouseClick(popup.viewport(), Qt.LeftButton, pos=popup.visualRect(popup.model().index(0, 0)).center())
    qtbot.waitUntil(lambda: c.doc.objects[0].name == "Spleen", timeout=5_000)
    assert not editor_open(win)

    obj = c.doc.objects[0]
    assert (obj.category_code, obj.type_code.value, obj.type_code.meaning) == (ANATOMY, "78961009", "Spleen")
    assert obj.type_modifier_code is None and tuple(obj.color) == SPLEEN_RGB
    assert c.doc.undo_stack.count() == steps + 1  # naming is one undo step
    assert objects.item(0).text().startswith("Spleen")
    assert "78961009" in objects.item(0).toolTip()

    # autosave keeps the codes (the snapshot of the newest change)
    qtbot.waitUntil(lambda: any(o.get("type_code") == ["78961009", "SCT", "Spleen"]
                                for s in list_snapshots() for o in s.objects), timeout=10_000)

    out = tmp_path / "named.dcm"
    ok, msg = wait_job(qtbot, win, lambda: c.save(out))
    assert ok, msg
    item = pydicom.dcmread(out).SegmentSequence[0]
    assert str(item.SegmentLabel) == "Spleen"
    code = item.SegmentedPropertyTypeCodeSequence[0]
    assert (str(code.CodeValue), str(code.CodingSchemeDesignator)) == ("78961009", "SCT")
    assert str(item.SegmentedPropertyCategoryCodeSequence[0].CodeValue) == "91723000"

    win.a_undo.trigger()
    obj = c.doc.objects[0]
    assert (obj.name, obj.type_code, tuple(obj.color)) == ("Object 1", GENERIC_TYPE, before)

    # typed, not picked: Enter with the popup open (nothing chosen in it) names the object as typed
    at = c.doc.undo_stack.index()
    editor = open_editor(qtbot, win, objects)
    assert editor.text() == "Object 1"
    editor.selectAll()
    qtbot.keyClicks(editor, "liver")
    popup = editor.completer().popup()
    qtbot.waitUntil(popup.isVisible, timeout=5_000)
    popup.setCurrentIndex(popup.model().index(-1, 0))  # nothing chosen (offscreen, the pointer may hover a row)
    qtbot.keyClick(popup, Qt.Key_Return)
    qtbot.waitUntil(lambda: c.doc.objects[0].name == "liver", timeout=5_000)
    obj = c.doc.objects[0]
    assert (obj.type_code.value, tuple(obj.color)) == ("10200004", (221, 130, 101))
    assert c.doc.undo_stack.index() == at + 1 and not editor_open(win)


@pytest.fixture
def doc(qapp):
    from app.gui.document import Document

    d = Document()
    d.set_image(Image(voxels=np.zeros((2, 20, 30), np.int16), affine=raster_affine()))
    m = np.zeros((20, 30), bool)
    m[2:8, 2:8] = True
    d.add_object(0, m, iou=0.9, box=(2, 2, 7, 7))
    return d


def test_free_text_colour_choice_laterality_and_autosave_json(doc):
    from app.gui.document import SegObject

    doc.rename_object(1, "Kidney, left")
    o = doc.object(1)
    assert (o.type_code.value, o.type_modifier_code, tuple(o.color)) == ("64033007", LEFT, (185, 102, 83))
    doc.rename_object(1, "my blob")  # free text: the generic codes, the colour stays
    o = doc.object(1)
    assert (o.category_code, o.type_code, o.type_modifier_code) == (GENERIC_CATEGORY, GENERIC_TYPE, None)
    assert tuple(o.color) == (185, 102, 83)
    doc.update_object(1, color=(1, 2, 3), color_chosen=True)  # the user picked a colour: naming keeps it
    doc.rename_object(1, "lesion 2")  # a numbered catalogue name still codes
    o = doc.object(1)
    assert (o.name, o.type_code, tuple(o.color)) == ("lesion 2", lookup("Lesion").type, (1, 2, 3))
    seg = doc.segments()[0]
    assert (seg.category_code, seg.type_code) == (lookup("Lesion").category, lookup("Lesion").type)
    back = SegObject.from_json(o.to_json())
    assert back == o
    old = o.to_json()
    for k in ("category_code", "type_code", "type_modifier_code", "color_chosen"):
        del old[k]  # a snapshot written before named structures: the codes its name means
    assert SegObject.from_json(old).type_code == lookup("Lesion").type


def test_a_loaded_label_map_keeps_its_codes(doc):
    s = lookup("Kidney, right")
    lm = LabelMap(doc.labels.copy(), raster_affine(), [Segment(1, "Kidney, right", s.color, s.category, s.type,
                                                               s.modifier)])
    doc.load_labelmap(lm)
    o = doc.object(1)
    assert (o.type_code, o.type_modifier_code) == (s.type, s.modifier)
    assert doc.segments()[0].type_modifier_code == s.modifier
