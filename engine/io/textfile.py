"""Reading the small text files that travel beside a label map (ITK-SNAP label descriptions, dcmqi metadata JSON).

One place for how they are read: UTF-8 with undecodable bytes replaced (the parsers then say what they cannot
use, naming the file), and an unreadable file as an :class:`~engine.base.errors.InputError` naming it.
"""

from __future__ import annotations

from pathlib import Path

from engine.base.errors import InputError


def read_text(path: Path) -> str:
    """The text of ``path`` (UTF-8, undecodable bytes replaced); InputError "<path>: cannot read (...)" when
    the file cannot be read."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from e


__all__ = ["read_text"]
