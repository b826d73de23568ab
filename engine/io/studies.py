"""Studies and series of a DICOM folder or a DICOMDIR (a patient CD/DVD, a USB stick), for a study/series browser.

* A folder is scanned recursively like :func:`engine.io.dicom.scan_folder` does (same walk, same header gate).
* A DICOMDIR (the DICOM Media Storage Directory at the root of a CD, PS3.10/PS3.3 F) is used as the list of
  files: every directory record with a ReferencedFileID, relative to the DICOMDIR's folder (components
  matched case-insensitively too: CD file systems are often mounted in lower case). A listed file that is
  missing, outside that folder or refused by the header gate is left out with a warning; the headers of
  the others are read (pixels are not) and grouped by SeriesInstanceUID, so a DICOMDIR and its folder list
  the same series. Opening one series of a DICOMDIR (:func:`read_dicomdir`) reads only the headers of the
  files its SERIES record lists (pydicom's :class:`~pydicom.fileset.FileSet`).

Each series comes with its patient (name and ID) and study (date, description): those are for the
browser's display only and are kept out of every message, warning, log line and ``repr``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.base.callbacks import ProgressFn, StopFn
from engine.base.errors import InputError
from engine.data.image import Image
from engine.io.dicom import SeriesInfo, _dcmread, choose_series, group_series, quiet, read_series, scan_folder
from engine.io.formats import is_dicomdir

log = logging.getLogger(__name__)

def _date(value) -> str:
    """A DICOM DA ``YYYYMMDD`` as ``YYYY-MM-DD`` ('' when absent; any other text as stored)."""
    s = str(value or "").strip()
    return f"{s[:4]}-{s[4:6]}-{s[6:8]}" if len(s) == 8 and s.isdigit() else s


def _person(value) -> str:
    """A DICOM PN ``Family^Given^Middle^Prefix^Suffix`` as ``Family, Given Middle``."""
    parts = [p.strip() for p in str(value or "").split("=")[0].split("^")]
    rest = " ".join(p for p in parts[1:] if p)
    return f"{parts[0]}, {rest}" if parts[0] and rest else parts[0] or rest


@dataclass
class SeriesEntry:
    """One image series with its patient and study (headers only, no pixels).

    info: the series (:class:`~engine.io.dicom.SeriesInfo`: UID, modality, description, number, files,
    frames); patient_name / patient_id: for display only (not in ``repr``); study_uid, study_date
    (``YYYY-MM-DD`` or ''), study_description; series_date: SeriesDate, else the study's date.
    """

    info: SeriesInfo = field(repr=False)
    patient_name: str = field(default="", repr=False)
    patient_id: str = field(default="", repr=False)
    study_uid: str = ""
    study_date: str = ""
    study_description: str = ""
    series_date: str = ""

    @classmethod
    def of(cls, info: SeriesInfo) -> "SeriesEntry":
        h = info.headers[0] if info.headers else {}
        with quiet():
            study_date = _date(h.get("StudyDate"))
            return cls(info=info, patient_name=_person(h.get("PatientName")),
                       patient_id=str(h.get("PatientID", "") or "").strip(),
                       study_uid=str(h.get("StudyInstanceUID", "") or ""), study_date=study_date,
                       study_description=str(h.get("StudyDescription", "") or "").strip(),
                       series_date=_date(h.get("SeriesDate")) or study_date)

    @property
    def uid(self) -> str:
        return self.info.uid

    @property
    def modality(self) -> str:
        return self.info.modality

    @property
    def slices(self) -> int:
        """Slices (frames) of the series' usable files."""
        return self.info.frames

    @property
    def files(self) -> list[Path]:
        return self.info.files

    def patient_label(self) -> str:
        """'Name (ID)' for the browser; never for logs or messages."""
        if self.patient_name and self.patient_id:
            return f"{self.patient_name} ({self.patient_id})"
        return self.patient_name or self.patient_id or "(no patient name)"

    def study_label(self) -> str:
        return self.study_description or "(no study description)"

    def series_label(self) -> str:
        """'#3 Abdomen 5mm' (the SeriesNumber and SeriesDescription; patient-free)."""
        num = f"#{self.info.number} " if self.info.number is not None else ""
        return (num + (self.info.description or "(no description)")).strip()


@dataclass
class Listing:
    """What :func:`list_studies` found: ``source`` (the folder or DICOMDIR), its series (most slices first) and
    patient-free warnings (files left out)."""

    source: Path
    series: list[SeriesEntry]
    warnings: list[str] = field(default_factory=list)

    def tree(self) -> list[tuple[SeriesEntry, list[tuple[SeriesEntry, list[SeriesEntry]]]]]:
        """Patient > study > series for display: [(first entry of the patient, [(first entry of the study,
        [series by SeriesNumber])])]; patients by label, studies by date then description."""
        patients: dict[tuple[str, str], dict[str, list[SeriesEntry]]] = {}
        for e in self.series:
            patients.setdefault((e.patient_id, e.patient_name), {}).setdefault(e.study_uid, []).append(e)
        out = []
        for studies in sorted(patients.values(), key=lambda st: next(iter(st.values()))[0].patient_label()):
            rows = []
            for entries in sorted(studies.values(), key=lambda es: (es[0].study_date, es[0].study_description)):
                entries = sorted(entries, key=lambda e: (e.info.number if e.info.number is not None else 1 << 30,
                                                         e.info.description, e.uid))
                rows.append((entries[0], entries))
            out.append((rows[0][0], rows))
        return out

    def find(self, uid: str) -> SeriesEntry | None:
        return next((e for e in self.series if e.uid == uid), None)

    def open_path(self, entry: SeriesEntry) -> Path:
        """What to open ``entry`` from, with ``series=entry.uid``, reading as few headers again as possible: a
        DICOMDIR (its SERIES record lists the files), else the deepest folder holding all the series' files
        (on a CD-like layout its own folder, not the whole disc)."""
        if not self.source.is_dir() or not entry.files:
            return self.source
        common = Path(os.path.commonpath([str(Path(f).parent) for f in entry.files]))
        return common if common == self.source or self.source in common.parents else self.source


def _record_files(ds) -> list[tuple[str, ...]]:
    """ReferencedFileID components of every in-use directory record that references a file, in record order."""
    out = []
    with quiet():
        for rec in ds.get("DirectoryRecordSequence", None) or []:
            if rec.get("RecordInUseFlag", 0xFFFF) == 0:
                continue
            fid = rec.get("ReferencedFileID")
            if fid is None or fid == "":
                continue
            parts = (fid,) if isinstance(fid, str) else tuple(str(p) for p in fid)
            out.append(tuple(p.strip() for p in parts))
    return out


class _Resolver:
    """ReferencedFileID components -> an existing file under ``root`` (exact, else case-insensitive), or None.

    Components that would leave ``root`` (``..``, separators, absolute) are refused: a DICOMDIR is data."""

    def __init__(self, root: Path):
        self.root = root
        self._listing: dict[Path, dict[str, str]] = {}

    def _names(self, d: Path) -> dict[str, str]:
        if d not in self._listing:
            try:
                self._listing[d] = {p.name.upper(): p.name for p in d.iterdir()}
            except OSError:
                self._listing[d] = {}
        return self._listing[d]

    def __call__(self, parts: tuple[str, ...]) -> Path | None:
        if not parts or any(p in ("", ".", "..") or "/" in p or "\\" in p or ":" in p for p in parts):
            return None
        exact = self.root.joinpath(*parts)
        if exact.is_file():
            return exact
        d = self.root
        for p in parts:
            name = self._names(d).get(p.upper()) or self._names(d).get(p.upper() + ";1")  # ISO 9660 version
            if name is None:
                return None
            d = d / name
        return d if d.is_file() else None


def _read_dicomdir(path: Path):
    """The DICOMDIR's dataset, or a one-line :class:`InputError`."""
    from pydicom.errors import InvalidDicomError

    try:
        ds = _dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise InputError(f"{path}: cannot read as a DICOMDIR (not a DICOM file, or truncated/corrupt)") from e
    if "DirectoryRecordSequence" not in ds:
        raise InputError(f"{path}: not a DICOMDIR (no directory records)")
    return ds


def _series_parts(ds, path: Path, uid: str) -> list[tuple[str, ...]] | None:
    """The ReferencedFileIDs of series ``uid``'s instances by pydicom's FileSet (the record tree), or None when
    the tree cannot be used (then every listed file is read)."""
    try:
        from pydicom.fileset import FileSet

        with quiet():
            fs = FileSet(ds)
            found = fs.find(SeriesInstanceUID=uid)
            return [tuple(Path(inst.path).relative_to(Path(fs.path)).parts) for inst in found] or None
    except Exception as e:  # noqa: BLE001 - a malformed record tree still lists its files
        log.debug("DICOMDIR %s: record tree not used (%s)", path.name, type(e).__name__)
        return None


def dicomdir_files(path: Path, *, parts: list[tuple[str, ...]] | None = None) -> tuple[list[Path], list[str]]:
    """The existing files a DICOMDIR lists (each once, in record order) and patient-free warnings about those
    missing or outside its folder. ``parts``: only these ReferencedFileIDs (default: every record's)."""
    path = Path(path)
    root = path.parent
    if parts is None:
        parts = _record_files(_read_dicomdir(path))
    resolve = _Resolver(root)
    files: list[Path] = []
    seen: set[Path] = set()
    missing: list[str] = []
    for p in parts:
        f = resolve(p)
        if f is None:
            missing.append("/".join(p))
        elif f not in seen:
            seen.add(f)
            files.append(f)
    warnings = []
    if missing:
        warnings.append(f"{len(missing)} file(s) listed in {path.name} not found: " + ", ".join(missing[:3])
                        + (", ..." if len(missing) > 3 else ""))
    return files, warnings


def _refused_warning(refused: list[str]) -> list[str]:
    if not refused:
        return []
    return [f"{len(refused)} file(s) left out (header refused): " + "; ".join(refused[:3])
            + ("; ..." if len(refused) > 3 else "")]


def list_studies(path: str | Path, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None
                 ) -> Listing:
    """The image series of a folder (recursive) or of a DICOMDIR, with patient and study, most slices first.

    progress(done, total) per file header read; ``should_stop()`` True raises
    :class:`~engine.base.errors.Cancelled`. Raises :class:`InputError` (one line, naming the path) when
    nothing usable is found.
    """
    p = Path(path)
    if p.is_dir():
        found = scan_folder(p, progress=progress, should_stop=should_stop)
        warnings = _refused_warning([w for s in found for w in s.skipped])
        return Listing(p, [SeriesEntry.of(s) for s in found], warnings)
    if not p.is_file():
        raise InputError(f"{p}: no such file or folder")
    if not is_dicomdir(p):
        raise InputError(f"{p.name}: not a folder or a DICOMDIR")
    ds = _read_dicomdir(p)
    listed = _record_files(ds)
    files, warnings = dicomdir_files(p, parts=listed)
    found, refused = group_series(files, p.parent, progress=progress, should_stop=should_stop)
    warnings += _refused_warning(refused)
    other = len(files) - sum(len(s.files) for s in found) - len(refused)
    if other:  # unlike a folder's stray files, a listed file was meant to be read
        warnings.append(f"{other} file(s) listed in {p.name} are not DICOM images or cannot be read")
    if not found:
        raise InputError(f"{p}: no usable DICOM image ({len(listed)} file(s) listed, {len(files)} found, "
                         f"{len(refused)} refused)")
    log.debug("DICOMDIR: %d file(s) listed, %d series", len(listed), len(found))
    return Listing(p, [SeriesEntry.of(s) for s in found], warnings)


def read_dicomdir(path: str | Path, *, series: str | None = None, progress: ProgressFn | None = None,
                  should_stop: StopFn | None = None) -> Image:
    """One series of a DICOMDIR as an :class:`Image`: ``series`` is a SeriesInstanceUID (only the files of its
    SERIES record are read) or a number in :func:`list_studies`' order; None: the series with the most
    slices (a tie is an error, as for a folder)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    ds = _read_dicomdir(p)
    parts = _series_parts(ds, p, series) if series and not str(series).isdigit() else None
    files, warnings = dicomdir_files(p, parts=parts if parts is not None else _record_files(ds))
    found, refused = group_series(files, p.parent, progress=progress, should_stop=should_stop)
    if not found:
        raise InputError(f"{p}: no usable DICOM image ({len(files)} file(s) found, {len(refused)} refused)")
    info = choose_series(found, series, where=str(p))
    img = read_series(info, progress=progress, should_stop=should_stop)
    img.warnings[:0] = warnings
    if len(found) > 1:
        img.warnings.insert(0, f"{len(found)} series in {p.name}; using {info.line()}")
    return img


__all__ = ["Listing", "SeriesEntry", "dicomdir_files", "list_studies", "read_dicomdir"]
