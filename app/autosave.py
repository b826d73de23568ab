"""Autosave of the working session: one snapshot per image, written atomically, restored after a crash.

A snapshot is ``<user data dir>/BoxSeg/autosave/<key>.npz`` (``key``: a hash of the image's
source path and series UID) holding the label map (compressed) and a JSON header: source path,
series UID, shape, the image's affine and content fingerprint (:func:`image_fingerprint`), objects
(name, colour, IoU, prompt, per-slice IoU of a propagation, the SNOMED CT codes of a named structure,
whether the user picked the colour, lock), the rulers and ROIs (kind, slice, end points),
current slice and time. It is written with
:func:`engine.base.atomic.atomic_path` (a temporary file in the same folder, fsynced and renamed over
the old one, readable by the user only), so a crash mid-write leaves the previous snapshot intact. It
is removed when the user saves the segmentation or discards the session; a snapshot that is still
there at the next start means unsaved work, and the app offers to restore it — only onto the image
it was made on: the path alone is not enough (another patient's scan of the same shape may have
replaced the file), so :func:`mismatch` compares shape, geometry and content. No Qt here.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.base.atomic import atomic_path
from engine.base.folders import user_data_dir

FORMAT = 3            # 3: rulers/ROIs ("annotations"); 2: image fingerprint and affine (1 had neither)
# An object's codes ("category_code", "type_code", "type_modifier_code", "color_chosen") are optional keys of
# format 3: older snapshots without them restore with the codes their names mean, and an older BoxSeg
# ignores them (a new format number would make it refuse the whole snapshot).
READABLE = (1, 2, 3)


def autosave_dir() -> Path:
    """``BOXSEG_AUTOSAVE_DIR`` or ``<platformdirs user data dir>/BoxSeg/autosave``."""
    env = os.environ.get("BOXSEG_AUTOSAVE_DIR")
    if env:
        return Path(env)
    return user_data_dir() / "autosave"


def session_key(source: Path | str | None, series_uid: str | None = None) -> str:
    s = f"{Path(source).resolve() if source else ''}|{series_uid or ''}"
    return hashlib.sha1(s.encode()).hexdigest()[:16]


@dataclass
class Snapshot:
    key: str
    source: str
    series_uid: str | None
    labels: np.ndarray
    objects: list[dict]
    z: int
    gen: int = 0
    time: float = 0.0
    fingerprint: str | None = None   # image_fingerprint() of the image it was made on (None: format 1)
    affine: list | None = None       # that image's 4x4 voxel -> RAS affine
    annotations: list | None = None  # rulers and ROIs: [{"id", "kind", "z", "points"}] (None: format 1-2)

    @property
    def path(self) -> Path:
        return autosave_dir() / f"{self.key}.npz"

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.time))
        n = len(self.objects)
        return f"{Path(self.source).name}, {n} object{'s' if n != 1 else ''}, autosaved {when}"


def image_fingerprint(image) -> str:
    """Content hash of an :class:`~engine.data.image.Image`: BLAKE2b of its voxels (slice by slice, so no
    copy of the volume), dtype and shape. ~0.2 s for a 512x512x300 int16 CT; run it off the GUI thread."""
    v = image.voxels
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{v.dtype.str}|{v.shape}".encode())
    for plane in v:
        h.update(np.ascontiguousarray(plane).data)
    return h.hexdigest()


def mismatch(snap: Snapshot, image, fingerprint: str | None) -> str | None:
    """Why ``snap`` must not be restored onto ``image`` (one line), or None when it is the same image."""
    if tuple(snap.labels.shape) != tuple(image.shape[:3]):
        return f"the image has another size ({'x'.join(map(str, image.shape[:3]))} voxels)"
    if snap.fingerprint is None or snap.affine is None:
        return "it was written by an older BoxSeg that did not record which image it belongs to"
    if not np.allclose(np.asarray(snap.affine, np.float64), image.affine, rtol=0, atol=1e-4):
        return "the image's position or spacing has changed"
    if fingerprint is None or snap.fingerprint != fingerprint:
        return "the image's content has changed (another scan at the same path?)"
    return None


def write_snapshot(snap: Snapshot) -> Path:
    """Atomically write ``snap`` (tmp file + fsync + rename, mode 0600); returns its path."""
    folder = autosave_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    header = {"format": FORMAT, "source": snap.source, "series_uid": snap.series_uid, "objects": snap.objects,
              "z": int(snap.z), "time": snap.time or time.time(), "shape": list(snap.labels.shape),
              "fingerprint": snap.fingerprint, "affine": snap.affine, "annotations": snap.annotations or []}
    final = folder / f"{snap.key}.npz"
    with atomic_path(final, private=True) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, labels=snap.labels, header=np.frombuffer(json.dumps(header).encode(), np.uint8))
    return final


def read_snapshot(path: Path) -> Snapshot:
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(bytes(z["header"]).decode())
        labels = np.asarray(z["labels"])
    if header.get("format") not in READABLE:
        raise ValueError(f"{path.name}: unknown autosave format")
    return Snapshot(key=path.stem, source=header["source"], series_uid=header.get("series_uid"), labels=labels,
                    objects=header["objects"], z=int(header.get("z", 0)), time=float(header.get("time", 0)),
                    fingerprint=header.get("fingerprint"), affine=header.get("affine"),
                    annotations=header.get("annotations"))


def remove_snapshot(key: str) -> None:
    (autosave_dir() / f"{key}.npz").unlink(missing_ok=True)


def list_snapshots() -> list[Snapshot]:
    """Readable snapshots, newest first (unreadable ones are skipped, never deleted)."""
    folder = autosave_dir()
    out = []
    for p in folder.glob("*.npz") if folder.is_dir() else []:
        if p.name.startswith("."):
            continue
        try:
            out.append(read_snapshot(p))
        except Exception:  # noqa: BLE001 - a damaged snapshot must not stop the app
            continue
    return sorted(out, key=lambda s: -s.time)


def find_snapshot(source: Path | str | None = None, series_uid: str | None = None) -> Snapshot | None:
    """The snapshot of this image, or with no source the newest one whose image still exists."""
    snaps = list_snapshots()
    if source is not None:
        key = session_key(source, series_uid)
        return next((s for s in snaps if s.key == key), None)
    return next((s for s in snaps if Path(s.source).exists()), None)


__all__ = ["Snapshot", "autosave_dir", "find_snapshot", "image_fingerprint", "list_snapshots", "mismatch",
           "read_snapshot", "remove_snapshot", "session_key", "write_snapshot"]
