"""Outputs never replace inputs: the one check every writer of a user-named path goes through.

Typing the input's own name as the output (``boxseg segment scan.nii.gz -o scan.nii.gz``, a save dialog
whose suffix was added after its overwrite question, a label map saved into a DICOM series under a
slice's name) would destroy the scan. :func:`check_output` refuses an output that is, or links to,
the image's file, one of its series' files, or any other input named by the caller.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.base.errors import InputError
from engine.data.image import Image


def input_files(image: Image | None) -> list[Path]:
    """The files ``image`` was read from: its source file, or its DICOM series' slice files."""
    if image is None:
        return []
    out = list(image.files)
    if image.source is not None and not Path(image.source).is_dir():
        out.append(Path(image.source))
    return out


def _same(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)  # hard links, case-folding file systems
    except OSError:
        return False


def check_output(out: Path | str, image: Image | None = None, *others: Path | str | None) -> Path:
    """Return ``out`` as a Path, or raise InputError when writing it would replace an input: a file of
    ``image`` (:func:`input_files`) or one of ``others`` (e.g. the label map being converted). A folder
    given as an input protects nothing but itself (new files may go into it)."""
    out = Path(out)
    protected = [("the image", f) for f in input_files(image)] + [("an input", Path(o)) for o in others if o]
    for what, f in protected:
        if _same(out, f):
            raise InputError(f"{out}: this is {what} being read ({f.name}); choose another output name")
    if out.is_dir():
        raise InputError(f"{out}: is a folder; give a file name")
    return out


__all__ = ["check_output", "input_files"]
