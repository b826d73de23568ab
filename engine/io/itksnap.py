"""ITK-SNAP label descriptions: the names and colours of a label map's values, in ITK-SNAP's text format.

ITK-SNAP's Label Editor exports and imports this file (``.txt`` or ``.label``): ``#`` comment lines,
then one line per label with the columns ``IDX -R- -G- -B- -A-- VIS MSH LABEL``:

* IDX: the label value (0 = "Clear Label", the background);
* -R- -G- -B-: the colour, 0..255;
* -A--: opacity 0..1; VIS, MSH: shown in the slice views / in the 3D mesh (0 or 1);
* LABEL: the name, in double quotes (a name cannot hold a ``"``: BoxSeg writes ``'`` instead).

BoxSeg writes it beside every NIfTI label map as ``<stem>.label.txt`` (``scan_seg.nii.gz`` ->
``scan_seg.label.txt``; :func:`engine.io.formats.label_description_paths`), since NIfTI stores no names
or colours; reading a NIfTI label map looks for ``<stem>.label.txt``, ``<stem>.label``, ``<stem>.txt``.
"""

from __future__ import annotations

import re
from pathlib import Path

from engine.base.atomic import writing
from engine.base.errors import InputError
from engine.data.labelmap import Segment
from engine.io.textfile import read_text

HEADER = """\
################################################
# ITK-SnAP Label Description File
# Written by BoxSeg
# File format:
# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL
# Fields:
#    IDX:   Zero-based index
#    -R-:   Red color component (0..255)
#    -G-:   Green color component (0..255)
#    -B-:   Blue color component (0..255)
#    -A-:   Label transparency (0.00 .. 1.00)
#    VIS:   Label visibility (0 or 1)
#    MSH:   Label mesh visibility (0 or 1)
#  LABEL:   Label description
################################################
"""

_LINE = re.compile(r'^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([-+0-9.eE]+)\s+(\d+)\s+(\d+)\s+"([^"]*)"\s*$')


def _line(value: int, rgb, alpha: float, name: str) -> str:
    r, g, b = (int(c) for c in rgb)
    vis = 1 if alpha > 0 else 0
    name = " ".join(str(name).split()).replace('"', "'")
    return f"{value:5d} {r:5d} {g:4d} {b:4d} {alpha:8.3g} {vis:2d} {vis:2d}    \"{name}\"\n"


def format_label_descriptions(segments: list[Segment]) -> str:
    """The file's text: the header, the background ("Clear Label", value 0) and each segment by value."""
    lines = [HEADER, _line(0, (0, 0, 0), 0.0, "Clear Label")]
    lines += [_line(s.value, s.color, 1.0, s.name or f"label {s.value}")
              for s in sorted(segments, key=lambda s: s.value) if s.value != 0]
    return "".join(lines)


def write_label_descriptions(path: Path, segments: list[Segment]) -> Path:
    """Write ``segments`` (value, name, RGB 0..255) as an ITK-SNAP label description file; returns the path."""
    path = Path(path)
    text = format_label_descriptions(segments)
    with writing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def parse_label_descriptions(text: str, name: str = "label descriptions") -> list[Segment]:
    """Segments (value > 0, name, RGB) of an ITK-SNAP label description text; :class:`InputError` naming
    ``name`` and the line for a line that is neither a comment nor a label (or for a text without labels)."""
    out: dict[int, Segment] = {}
    seen = False
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            raise InputError(f"{name}: line {no} is not an ITK-SNAP label description "
                             "(IDX R G B A VIS MSH \"LABEL\")")
        seen = True
        value, r, g, b = (int(m.group(i)) for i in range(1, 5))
        if value > 65535 or max(r, g, b) > 255:
            raise InputError(f"{name}: line {no}: label {value} or colour ({r}, {g}, {b}) out of range")
        if value != 0:
            out[value] = Segment(value, m.group(8).strip() or f"label {value}", (r, g, b))
    if not seen:
        raise InputError(f"{name}: no ITK-SNAP label descriptions in it")
    return [out[v] for v in sorted(out)]


def read_label_descriptions(path: Path) -> list[Segment]:
    """An ITK-SNAP label description file (``.txt``/``.label``) -> its segments (value > 0)."""
    path = Path(path)
    return parse_label_descriptions(read_text(path), path.name)


__all__ = ["format_label_descriptions", "parse_label_descriptions", "read_label_descriptions",
           "write_label_descriptions"]
