"""Durable, all-or-nothing file writes: the one way BoxSeg writes a file a user or a later run relies on.

A writer gets a temporary path in the destination's own folder (same file system, so the final
``os.replace`` is atomic) that ends with the destination's extension (writers that choose the
format by extension, such as nibabel, highdicom or Pillow, write the right format), e.g.
``.scan_seg.nii.gz.1f3a9c0d2b4e.part.nii.gz`` for ``scan_seg.nii.gz``. When the writer returns,
the file is fsynced, renamed over the destination and the folder is fsynced, so that after a
crash or a power cut the destination is either the old complete file or the new complete file,
never a prefix. When the writer raises, the temporary file is removed and the destination is
untouched. A temporary file left by a killed process starts with ``.`` and contains ``.part``
(:func:`is_temp_name`), so folder scans can skip it and clean-up can find it.

Hand-written because the standard library has no such helper and the packages that do
(``atomicwrites``) are unmaintained or do not fsync the folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from engine.base.errors import InputError

_TEMP_RE = re.compile(r"^\..+\.[0-9a-f]{12}\.part(\.[^/\\]*)?$")


def full_suffix(name: str) -> str:
    """The extension a writer looks at: ``.nii.gz`` for ``a.nii.gz`` (a ``.gz`` with the suffix
    before it), else the last suffix (``.dcm``, ``.png``, ``''`` for none)."""
    suffixes = Path(name).suffixes
    if len(suffixes) >= 2 and suffixes[-1].lower() == ".gz":
        return "".join(suffixes[-2:])
    return suffixes[-1] if suffixes else ""


def temp_name(final: Path | str) -> Path:
    """A fresh temporary path beside ``final`` with the same extension (see the module docstring)."""
    final = Path(final)
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.part{full_suffix(final.name)}")


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of :func:`temp_name`'s (a write in progress or a killed one)."""
    return bool(_TEMP_RE.match(name))


def fsync_path(path: Path) -> None:
    """fsync a file that a library wrote and closed (its content, as far as the OS allows)."""
    fd = os.open(path, os.O_RDONLY if os.name == "posix" else os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; Windows cannot open folders this way)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: Path | str, private: bool = False) -> Iterator[Path]:
    """``with atomic_path(dest) as tmp: write(tmp)`` — ``dest`` appears complete or not at all.

    The folder must exist. The body writes (and closes) ``tmp``; on normal exit it is fsynced and
    renamed over ``dest``; on an exception it is removed and the exception propagates. ``private``:
    the file is readable by its owner only (0600; autosave and caches hold patient data) from the
    moment it exists — ``tmp`` is created empty with that mode before the body runs, and writers that
    open it with "wb" keep the mode.
    """
    final = Path(final)
    tmp = temp_name(final)
    try:
        if private:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        yield tmp
        if private:
            os.chmod(tmp, 0o600)  # in case a writer replaced the file instead of truncating it
        fsync_path(tmp)
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()  # gone after a successful replace; a leftover after a failure
    fsync_dir(final.parent)


@contextlib.contextmanager
def writing(final: Path | str) -> Iterator[Path]:
    """:func:`atomic_path` for an output the user named: creates the missing folders first, and an
    ``OSError`` (no permission, disk full, a folder where the file should be) becomes one
    :class:`~engine.base.errors.InputError` naming the file, which the CLI prints as one line (exit 2)."""
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(final) as tmp:
            yield tmp
    except OSError as e:
        raise InputError(f"cannot write {final}: {e.strerror or e}") from e


def remove_stale_temps(folder: Path | str, max_age_s: float = 86400.0, recursive: bool = False) -> int:
    """Remove :func:`temp_name` files older than ``max_age_s`` (left by a killed process) from ``folder``;
    returns how many. Younger ones may belong to a write in progress in another BoxSeg process, so they
    stay. Never follows links; errors (a file removed meanwhile, no permission) are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    now = time.time()
    for p in folder.rglob(".*") if recursive else folder.glob(".*"):
        try:
            if is_temp_name(p.name) and not p.is_symlink() and p.is_file() and now - p.stat().st_mtime > max_age_s:
                p.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def write_bytes(final: Path | str, data: bytes, private: bool = False) -> Path:
    """Write ``data`` to ``final`` atomically and durably (``private``: mode 0600); returns ``final``."""
    final = Path(final)
    with atomic_path(final, private) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return final


def write_text(final: Path | str, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``final`` atomically and durably; returns ``final``."""
    return write_bytes(final, text.encode(encoding))


__all__ = ["atomic_path", "fsync_dir", "fsync_path", "full_suffix", "is_temp_name", "remove_stale_temps", "temp_name",
           "write_bytes", "write_text", "writing"]
