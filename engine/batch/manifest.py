"""A batch's studies, from a manifest file or a folder of challenge cases.

* a CSV or JSON-lines file, one object per row: ``image`` (DICOM folder or file, NIfTI, 2D raster,
  relative paths against the manifest's folder), optional ``series`` (UID or number, as
  ``boxseg info`` lists them), optional ``study`` (the output's name; default: the image path),
  optional ``object`` (name), ``box`` (``x0,y0,x1,y1`` on ``slice`` or a 3D box
  ``x0,y0,z0,x1,y1,z1`` propagated through ``z0..z1`` from its middle slice, as the challenge's 3D
  flow), optional ``slice``, optional ``window``. Rows of the same study (same image and series,
  or the same ``study``) are its objects, label values 1..N in row order (later ones win where they
  overlap);
* a folder of challenge ``.npz`` cases (boxes inside): each becomes one study.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.base.errors import BoxSegError, InputError, PromptError
from engine.data.window import parse_window
from engine.io.formats import stem
from engine.pipeline import StudyObject, parse_box

_COLUMNS = {"image": "image", "path": "image", "series": "series", "series_uid": "series", "study": "study",
            "study_id": "study", "object": "object", "name": "object", "label": "object", "box": "box",
            "slice": "slice", "z": "slice", "window": "window"}


@dataclass
class Study:
    """One task: ``kind`` "npz" (a challenge case, boxes inside) or "image" (objects from manifest rows).

    image: absolute path; rows: manifest line numbers; error: a manifest problem (the study fails
    without running).
    """

    study: str
    kind: str
    image: str
    series: str | None = None
    objects: list[StudyObject] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    error: str | None = None


def safe_id(text: str) -> str:
    """A file-name-safe study id (letters, digits, ``.``, ``_``, ``-``)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._")
    return s or "study"


def _derived_id(image: Path, series: str | None, base: Path) -> str:
    try:
        rel = image.relative_to(base)
    except ValueError:
        rel = Path(image.name)
    parts = list(rel.parts)
    if not parts:  # the root folder
        return safe_id(f"study_series-{series}" if series else "study")
    parts[-1] = stem(parts[-1])
    sid = "_".join(p for p in parts if p not in ("", "."))
    if series:
        sid += f"_series-{series}"
    return safe_id(sid)


def _rows_csv(path: Path) -> list[tuple[int, dict]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path.name}: cannot read the manifest ({e})") from e
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for rec in reader:
        if not any((v or "").strip() for k, v in rec.items() if k is not None):
            continue
        rows.append((reader.line_num, {(k or "").strip().lower(): (v or "").strip() for k, v in rec.items()
                                       if k is not None}))
    if reader.fieldnames is None:
        raise InputError(f"{path.name}: empty manifest")
    return rows


def _rows_jsonl(path: Path) -> list[tuple[int, dict]]:
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path.name}: cannot read the manifest ({e})") from e
    rows = []
    for n, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise InputError(f"{path.name}: line {n} is not JSON ({e.msg})") from e
        if not isinstance(rec, dict):
            raise InputError(f"{path.name}: line {n} must be a JSON object, one per line")
        rows.append((n, {str(k).strip().lower(): v for k, v in rec.items()}))
    return rows


def _npz_studies(folder: Path, exclude: Path | None) -> list[Study]:
    studies, seen = [], {}
    for f in sorted(folder.rglob("*.npz")):
        rel = f.relative_to(folder)
        if any(p.startswith(".") for p in rel.parts) or not f.name.startswith(("2D", "3D")):
            continue
        if exclude is not None and (exclude == f.parent or exclude in f.parents):
            continue
        sid = f.name[:-4]
        st = Study(study=sid, kind="npz", image=str(f.resolve()))
        if sid in seen:
            st.error = f"another case of the same name ({seen[sid]}) is in the batch; outputs are named after the case"
            st.study = f"{sid} ({rel})"
        else:
            seen[sid] = str(rel)
        studies.append(st)
    if not studies:
        raise InputError(f"{folder}: no challenge cases (*.npz named 2D*/3D*) in this folder")
    return studies


def read_manifest(path: Path | str, *, exclude: Path | None = None) -> list[Study]:
    """Studies of a manifest (CSV, JSON lines) or of a folder of challenge ``.npz`` cases.

    A file that cannot be read as a manifest raises :class:`InputError`; a bad row (no image, a
    malformed box, a study id reused for another image) becomes a study with ``error`` set so that
    the rest of the batch runs. ``exclude``: a folder to leave out (the output folder).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such manifest file or folder")
    if p.is_dir():
        return _npz_studies(p, Path(exclude).resolve() if exclude is not None else None)
    low = p.name.lower()
    if low.endswith(".csv"):
        rows = _rows_csv(p)
    elif low.endswith((".jsonl", ".ndjson", ".json")):
        rows = _rows_jsonl(p)
    else:
        raise InputError(f"{p.name}: a manifest is a .csv or .jsonl file, or a folder of challenge .npz cases")
    if not rows:
        raise InputError(f"{p.name}: the manifest has no rows")
    keys = {k for _, r in rows for k in r}
    known = {_COLUMNS.get(k) for k in keys} - {None}
    if not {"image", "box"} <= known:
        found = ", ".join(repr(" ".join(str(k).split())[:40]) for k in sorted(keys)[:20])  # one line, bounded
        raise InputError(f"{p.name}: the manifest needs columns 'image' and 'box' (optional: series, study, object, "
                         f"slice, window); found {found or 'none'}")
    base = p.parent.resolve()
    studies: dict[str, Study] = {}
    order: list[Study] = []
    for line, raw in rows:
        r = {}
        for k, v in raw.items():
            if k in _COLUMNS and v not in (None, ""):
                r[_COLUMNS[k]] = v
        image = str(r.get("image", "")).strip()
        series = str(r["series"]).strip() if "series" in r else None
        explicit = safe_id(r["study"]) if "study" in r else None
        if not image:
            bad = Study(study=explicit or f"row-{line}", kind="image", image="", rows=[line],
                        error=f"row {line}: no image path")
            order.append(bad)
            continue
        try:
            img = Path(image).expanduser()
            img = (img if img.is_absolute() else base / img).resolve()
        except (RuntimeError, ValueError, OSError) as e:  # ~unknown-user, a NUL byte, a path too long
            order.append(Study(study=explicit or f"row-{line}", kind="image", image="", rows=[line],
                               error=f"row {line}: image path {image[:80]!r} is not usable ({type(e).__name__})"))
            continue
        sid = explicit or _derived_id(img, series, base)
        st = studies.get(sid)
        if st is None:
            st = studies[sid] = Study(study=sid, kind="image", image=str(img), series=series)
            order.append(st)
        elif st.image != str(img) or st.series != series:
            order.append(Study(study=f"{sid} (row {line})", kind="image", image=str(img), series=series, rows=[line],
                               error=f"row {line}: study id {sid!r} is already used by row {st.rows[0]} for another "
                                     "image or series; give the rows distinct 'study' values"))
            continue
        st.rows.append(line)
        try:
            box = parse_box(r.get("box"))
            z = r.get("slice")
            try:
                z = None if z is None else int(str(z).strip())
            except ValueError:
                raise PromptError(f"slice must be an integer, got {z!r}") from None
            if len(box) == 6 and z is not None:
                raise PromptError("a 3D box (6 numbers) carries its z range; leave 'slice' empty")
            window = str(r["window"]).strip() if "window" in r else None
            if window is not None:
                parse_window(window)
            name = str(r.get("object") or f"object {len(st.objects) + 1}")
            st.objects.append(StudyObject(name=name, box=box, slice=z, window=window, source=f"row {line}"))
        except BoxSegError as e:
            if st.error is None:
                st.error = f"row {line}: {e}"
    return order


__all__ = ["Study", "read_manifest", "safe_id"]
