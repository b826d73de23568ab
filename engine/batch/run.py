"""Batch pre-annotation: many studies -> label maps, resumable, on this machine or a Dask cluster.

A batch is a list of :class:`Study` read from a manifest (:func:`read_manifest`):

* a CSV or JSON-lines file, one object per row: ``image`` (DICOM folder or file, NIfTI, 2D raster,
  relative paths against the manifest's folder), optional ``series`` (UID or number, as
  ``boxseg info`` lists them), optional ``study`` (the output's name; default: the image path),
  optional ``object`` (name), ``box`` (``x0,y0,x1,y1`` on ``slice`` or a 3D box
  ``x0,y0,z0,x1,y1,z1`` propagated through ``z0..z1`` from its middle slice, as the challenge's 3D
  flow), optional ``slice``, optional ``window``. Rows of the same study (same image and series,
  or the same ``study``) are its objects, label values 1..N in row order (later ones win where they
  overlap);
* a folder of challenge ``.npz`` cases (boxes inside): each becomes ``<name>.npz`` holding
  ``segs`` exactly as :func:`engine.io.challenge_npz.segment_case` returns it.

Each study is one task (:func:`process_study`): it reads the image, segments every object with a
per-process cached :class:`~engine.inference.predictor.Session` (:func:`get_session`: the model is loaded
once per process/worker), writes the output atomically (temporary file in the output folder, then
``os.replace``) and then a record ``OUTDIR/.boxseg/<output>.json`` holding the study's input
fingerprint (:func:`fingerprint`: its parameters plus name, size and modification time of every
input file) and the model's sha256. A later run skips a study whose record matches
(:func:`up_to_date`), so a batch is resumable and a rerun is a no-op.

:func:`run_batch` drives it: sequentially in this process, or on Dask ``distributed`` (an
embedded ``LocalCluster`` or an existing scheduler; see :mod:`engine.batch.cluster`), and writes
``OUTDIR/report.csv`` (study, objects, status, seconds, error). ``distributed`` is optional (the
``cluster`` extra); nothing here imports it.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.base.errors import BoxSegError, InputError, PromptError

RECORD_DIR = ".boxseg"
REPORT = "report.csv"
REPORT_COLUMNS = ("study", "objects", "status", "seconds", "error")
FORMATS = ("auto", "nifti", "dicom-seg", "png")
RECORD_FORMAT = 1
CLUSTER_HINT = "install the cluster extra for parallel and multi-machine runs: pip install 'boxseg[cluster]'"

_COLUMNS = {"image": "image", "path": "image", "series": "series", "series_uid": "series", "study": "study",
            "study_id": "study", "object": "object", "name": "object", "label": "object", "box": "box",
            "slice": "slice", "z": "slice", "window": "window"}
_EXTS = (".nii.gz", ".nii", ".npz", ".dcm", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ima")


@dataclass(frozen=True)
class BatchObject:
    """One object of a study: ``box`` has 4 numbers (x0,y0,x1,y1 on ``slice``) or 6 (x0,y0,z0,x1,y1,z1)."""

    name: str
    box: tuple[float, ...]
    slice: int | None = None
    window: str | None = None
    row: int = 0


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
    objects: list[BatchObject] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """What each worker loads: model name, OpenVINO threads, precision, and the sha256 it must have."""

    name: str
    threads: int | None
    precision: str
    model_sha256: str


# ---------------------------------------------------------------------------------------------
# manifests


def safe_id(text: str) -> str:
    """A file-name-safe study id (letters, digits, ``.``, ``_``, ``-``)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._")
    return s or "study"


def _strip_ext(name: str) -> str:
    low = name.lower()
    for ext in _EXTS:
        if low.endswith(ext):
            return name[: -len(ext)]
    return name


def _derived_id(image: Path, series: str | None, base: Path) -> str:
    try:
        rel = image.relative_to(base)
    except ValueError:
        rel = Path(image.name)
    parts = list(rel.parts)
    parts[-1] = _strip_ext(parts[-1])
    sid = "_".join(p for p in parts if p not in ("", "."))
    if series:
        sid += f"_series-{series}"
    return safe_id(sid)


def parse_box(value) -> tuple[float, ...]:
    """``"x0,y0,x1,y1"`` / ``"x0 y0 z0 x1 y1 z1"`` / ``"[...]"`` / a list -> 4 or 6 floats (z as integers)."""
    if isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [p for p in re.split(r"[\s,;]+", str(value or "").strip().strip("[]()")) if p]
    try:
        box = tuple(float(v) for v in parts)
    except (TypeError, ValueError):
        box = ()
    if len(box) not in (4, 6) or not all(np.isfinite(box)):
        raise PromptError(f"box must be x0,y0,x1,y1 (on a slice) or x0,y0,z0,x1,y1,z1 (3D), got {value!r}")
    if len(box) == 6:
        if box[2] != int(box[2]) or box[5] != int(box[5]):
            raise PromptError(f"3D box z0/z1 must be slice indices (integers), got {value!r}")
        if box[5] < box[2]:
            raise PromptError(f"3D box z range {int(box[2])}..{int(box[5])} is reversed")
    return box


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
        raise InputError(f"{p.name}: the manifest needs columns 'image' and 'box' (optional: series, study, object, "
                         f"slice, window); found {', '.join(sorted(keys)) or 'none'}")
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
        img = Path(image).expanduser()
        img = (img if img.is_absolute() else base / img).resolve()
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
                from engine.data.window import parse_window

                parse_window(window)
            name = str(r.get("object") or f"object {len(st.objects) + 1}")
            st.objects.append(BatchObject(name=name, box=box, slice=z, window=window, row=line))
        except BoxSegError as e:
            if st.error is None:
                st.error = f"row {line}: {e}"
    return order


# ---------------------------------------------------------------------------------------------
# outputs, fingerprints, records


def output_name(study: Study, fmt: str = "auto") -> str:
    """The study's output file name: ``<case>.npz`` for challenge cases, else ``<study>`` plus
    ``.nii.gz`` / ``.dcm`` (DICOM-SEG) / ``.png``; ``auto`` follows the input (DICOM -> DICOM-SEG,
    NIfTI -> NIfTI, 2D raster -> PNG)."""
    if fmt not in FORMATS:
        raise InputError(f"output format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if study.kind == "npz":
        return f"{study.study}.npz"
    if fmt == "auto":
        from engine.io.nifti import is_nifti
        from engine.io.raster import is_raster

        p = Path(study.image)
        if p.is_dir():
            fmt = "dicom-seg"
        elif is_nifti(p) or p.suffix.lower() == ".npz":
            fmt = "nifti"
        elif is_raster(p):
            fmt = "png"
        else:
            fmt = "dicom-seg"
    return study.study + {"nifti": ".nii.gz", "dicom-seg": ".dcm", "png": ".png"}[fmt]


def input_files(path: Path) -> list[tuple[str, int, int]]:
    """(relative name, size, mtime_ns) of the input: the file, or every file under a DICOM folder."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_file():
        s = p.stat()
        return [(p.name, s.st_size, s.st_mtime_ns)]
    out = []
    for root, dirs, files in os.walk(p):
        dirs.sort()
        for f in sorted(files):
            fp = Path(root) / f
            try:
                s = fp.stat()
            except OSError:
                continue
            out.append((fp.relative_to(p).as_posix(), s.st_size, s.st_mtime_ns))
    if not out:
        raise InputError(f"{p}: the folder is empty")
    return out


def fingerprint(study: Study, output: str) -> tuple[str, int]:
    """sha256 of the study's parameters (kind, series, objects, output name) and of its input files'
    names, sizes and modification times; returns (hex digest, input bytes)."""
    files = input_files(Path(study.image))
    params = {"kind": study.kind, "series": study.series, "output": output,
              "objects": [[o.name, list(o.box), o.slice, o.window] for o in study.objects], "files": files}
    blob = json.dumps(params, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest(), sum(f[1] for f in files)


def record_path(outdir: Path, output: str) -> Path:
    return Path(outdir) / RECORD_DIR / f"{output}.json"


def read_record(outdir: Path, output: str) -> dict | None:
    try:
        return json.loads(record_path(outdir, output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def up_to_date(outdir: Path, output: str, fp: str, model_sha256: str) -> dict | None:
    """The study's record when its output exists with this input fingerprint and model, else None."""
    rec = read_record(outdir, output)
    if not rec or rec.get("fingerprint") != fp or rec.get("model_sha256") != model_sha256:
        return None
    out = Path(outdir) / output
    try:
        if out.stat().st_size != rec.get("bytes"):
            return None
    except OSError:
        return None
    return rec


def _temp_name(final: Path) -> Path:
    name = final.name
    ext = next((e for e in _EXTS + (".json",) if name.lower().endswith(e)), final.suffix)
    return final.with_name(f".{name}.{uuid.uuid4().hex[:12]}.part{ext}")


def remove_temp_files(outdir: Path, outputs: list[str]) -> int:
    """Remove temporary files that attempts at these outputs left behind (a worker killed mid-write)."""
    n = 0
    for output in outputs:
        for folder in (Path(outdir), Path(outdir) / RECORD_DIR):
            for f in folder.glob(f".{glob_escape(output)}*.part*"):
                try:
                    f.unlink()
                    n += 1
                except OSError:
                    pass
    return n


def glob_escape(s: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", s)


def _atomic_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# per-process model cache (one Session per worker process)

_SESSIONS: dict = {}
_SESSION_LOCK = threading.Lock()
_LOADS = 0


def get_session(spec: ModelSpec):
    """This process's :class:`~engine.inference.predictor.Session` for ``spec``, loaded on first use and reused.

    Raises :class:`~engine.base.errors.ModelError` when the model found here does not have the sha256
    the batch was planned with (a worker with other model files).
    """
    global _LOADS
    from engine.base.errors import ModelError
    from engine.inference.predictor import Session

    key = (spec.name, spec.threads, spec.precision)
    with _SESSION_LOCK:
        s = _SESSIONS.get(key)
        if s is None:
            s = Session(spec.name, threads=spec.threads, precision=spec.precision, cache_bytes=512 << 20)
            _SESSIONS[key] = s
            _LOADS += 1
    if s.model_id != spec.model_sha256:
        raise ModelError(f"{socket.gethostname()}: model {spec.name!r} has sha256 {s.model_id[:16]}..., the batch "
                         f"expects {spec.model_sha256[:16]}... (install the same model files on every machine)")
    return s


def session_loads() -> int:
    """How many models this process has loaded (1 per worker in a batch)."""
    return _LOADS


# ---------------------------------------------------------------------------------------------
# one study


def segment_image_study(session, study: Study):
    """Open the study's image and segment its objects -> (labels (Z,Y,X), image, segments)."""
    from engine.data.labelmap import Segment, default_color
    from engine.inference.propagate import Box3D, propagate_box
    from engine.io.dispatch import open_image
    from engine.inference.transforms import Geometry, validate_box

    img = open_image(Path(study.image), series=study.series)
    n = len(study.objects)
    labels = np.zeros(img.shape, np.uint8 if n < 256 else np.uint16)
    geom = Geometry(img.shape[1], img.shape[2])
    volumes: dict = {}
    for k, obj in enumerate(study.objects, start=1):
        try:
            if len(obj.box) == 6:
                if img.is_rgb:
                    raise PromptError("a 3D box propagates through grey volumes; this image is RGB")
                b3 = Box3D.from_array(obj.box)
                validate_box(b3.box2d, geom)
                if not (0 <= b3.z_min <= b3.z_max < img.depth):
                    raise PromptError(f"z range {b3.z_min}..{b3.z_max} is outside the image's {img.depth} slice(s) "
                                      f"(0..{img.depth - 1})")
                if obj.window not in volumes:
                    volumes[obj.window] = img.model_volume(obj.window)
                vol, key = volumes[obj.window]
                mask = propagate_box(session, vol, b3, label_value=k, window=key)
            else:
                if obj.slice is None and img.depth > 1:
                    raise PromptError(f"a 2D box on a volume of {img.depth} slices needs a slice "
                                      f"(0..{img.depth - 1}), or give a 3D box x0,y0,z0,x1,y1,z1")
                z = img.check_slice(obj.slice if obj.slice is not None else 0)
                validate_box(obj.box, geom)
                slice_u8, key = img.model_slice(z, obj.window)
                pred = session.predictor()
                pred.set_image(slice_u8, slice_index=z, window=key)
                mask = np.zeros(img.shape, bool)
                mask[z] = pred.predict(list(obj.box)).mask
        except BoxSegError as e:
            raise type(e)(f"row {obj.row} ({obj.name}): {e}") from e
        labels[mask] = k
    segments = [Segment(k, o.name, default_color(k)) for k, o in enumerate(study.objects, start=1)]
    return labels, img, segments


def process_study(study: Study, outdir: str, output: str, fp: str, spec: ModelSpec) -> dict:
    """Segment one study and write its output and record atomically; runs on a worker.

    Never raises for a study's own problems: returns a dict (study, objects, status "ok"/"failed",
    seconds, error, worker). A worker that dies mid-task leaves at most a temporary file.
    """
    t0 = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    res = {"study": study.study, "objects": len(study.objects) if study.kind == "image" else None,
           "status": "failed", "seconds": 0.0, "error": "", "worker": worker, "output": output}
    out_dir = Path(outdir)
    final = out_dir / output
    try:
        session = get_session(spec)
        rec = record_path(out_dir, output)
        rec.unlink(missing_ok=True)  # from here until the new record, the study counts as not done
        tmp = _temp_name(final)
        try:
            if study.kind == "npz":
                from engine.io.challenge_npz import load_case, segment_case

                case = load_case(Path(study.image), with_gt=False)
                res["objects"] = len(case.boxes)
                segs = segment_case(session, case)
                np.savez_compressed(tmp, segs=segs)
            else:
                from engine.data.labelmap import write_labelmap

                labels, img, segments = segment_image_study(session, study)
                entry = session.entry
                write_labelmap(tmp, labels, img, segments=segments, model_name=entry.name,
                               model_version=f"{entry.precision} sha256:{entry.model_id[:16]}")
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
            session.cache.clear()  # embeddings of one study are never reused by the next
        seconds = time.perf_counter() - t0
        _atomic_json(rec, {
            "format": RECORD_FORMAT, "study": study.study, "output": output, "bytes": final.stat().st_size,
            "fingerprint": fp, "model": spec.name, "model_sha256": spec.model_sha256, "objects": res["objects"],
            "seconds": round(seconds, 3), "worker": worker, "boxseg": _version(),
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
        res.update(status="ok", seconds=seconds)
    except BoxSegError as e:
        res.update(error=str(e), seconds=time.perf_counter() - t0)
    except Exception as e:  # noqa: BLE001 - one study's failure must not stop the batch
        msg = str(e).splitlines()[0] if str(e) else ""
        res.update(error=f"{type(e).__name__}: {msg}"[:300], seconds=time.perf_counter() - t0)
    return res


def _version() -> str:
    from engine import __version__

    return __version__


# ---------------------------------------------------------------------------------------------
# the batch


@dataclass
class Task:
    study: Study
    output: str
    fingerprint: str
    input_bytes: int


@dataclass
class BatchResult:
    rows: list[dict]
    seconds: float
    mode: str

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r["status"] == status)

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def studies_per_min(self) -> float:
        done = self.count("ok")
        return done / self.seconds * 60 if self.seconds > 0 else 0.0

    def summary(self) -> str:
        ok, skipped, failed = self.count("ok"), self.count("skipped"), self.count("failed")
        return (f"batch: {len(self.rows)} studies: {ok} segmented, {skipped} up to date, {failed} failed in "
                f"{self.seconds:.1f} s ({self.studies_per_min:.2f} studies/min; {self.mode})")


def have_distributed() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def local_sizing(workers: int | None, threads: int | None, cores: int | None = None,
                 ram_gib: float | None = None) -> tuple[int, int]:
    """(workers, OpenVINO threads per worker) for an embedded cluster: workers x threads <= cores.

    Neither given: 1 thread per worker on up to 8 cores (processes scale better than threads for
    this model), 2 above, and at most one worker per 1.5 GiB of RAM.
    """
    cores = cores or available_cores()
    if workers and threads:
        return workers, threads
    if workers:
        return workers, max(1, cores // workers)
    t = threads or (1 if cores <= 8 else 2)
    n = max(1, cores // t)
    if ram_gib is None:
        try:
            ram_gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
        except (ValueError, OSError, AttributeError):
            ram_gib = None
    if ram_gib:
        n = max(1, min(n, int(ram_gib / 1.5)))
    return n, t


def write_report(outdir: Path, rows: list[dict]) -> Path:
    path = Path(outdir) / REPORT
    tmp = _temp_name(path)
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(REPORT_COLUMNS)
        for r in rows:
            objects = "" if r.get("objects") is None else r["objects"]
            w.writerow([r["study"], objects, r["status"], f"{float(r.get('seconds') or 0):.3f}",
                        (r.get("error") or "").replace("\n", " ")])
    os.replace(tmp, path)
    return path


def run_batch(manifest: Path | str, outdir: Path | str, *, workers: int | None = None, threads: int | None = None,
              scheduler: str | None = None, model: str | None = None, precision: str = "f32", resume: bool = True,
              fmt: str = "auto", progress: Callable[[int, int, str], None] | None = None,
              log: Callable[[str], None] | None = None) -> BatchResult:
    """Run a batch; returns its :class:`BatchResult` (``report.csv`` is written into ``outdir``).

    workers: local worker processes (0 = sequentially in this process; None = sized to the machine);
    threads: OpenVINO threads per worker; scheduler: ``tcp://HOST:PORT`` of an existing Dask
    cluster (its workers must see ``outdir`` and the inputs at the same paths). Without
    ``distributed`` installed the batch runs sequentially (``log`` says how to enable the cluster).
    Raises :class:`InputError` / :class:`ModelError` for an unusable manifest, output folder or model.
    """
    from engine.inference.manifest import find_model

    log = log or (lambda s: None)
    t0 = time.perf_counter()
    out = Path(outdir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: the output must be a folder")
    studies = read_manifest(manifest, exclude=out)
    out.mkdir(parents=True, exist_ok=True)
    entry = find_model(model)
    spec = ModelSpec(entry.name, threads, precision, entry.model_id)

    rows: list[dict] = []
    tasks: list[tuple[int, Task]] = []
    for st in studies:
        row = {"study": st.study, "objects": len(st.objects) if st.kind == "image" else None, "status": "pending",
               "seconds": 0.0, "error": ""}
        rows.append(row)
        if st.error:
            row.update(status="failed", error=st.error)
            continue
        try:
            name = output_name(st, fmt)
            fp, nbytes = fingerprint(st, name)
        except BoxSegError as e:
            row.update(status="failed", error=str(e))
            continue
        rec = up_to_date(out, name, fp, spec.model_sha256) if resume else None
        if rec is not None:
            row.update(status="skipped", objects=rec.get("objects", row["objects"]))
            continue
        tasks.append((len(rows) - 1, Task(st, name, fp, nbytes)))
    total = len(rows)
    done = total - len(tasks)
    if progress:
        progress(done, total, "")
    state = {"done": done, "last_report": time.perf_counter()}

    def on_result(i: int, task: Task, res: dict) -> None:
        if res["status"] == "ok" and up_to_date(out, task.output, task.fingerprint, spec.model_sha256) is None:
            res = dict(res, status="failed", error=f"{res.get('worker', 'a worker')} wrote {task.output} but it is not "
                                                   f"visible in {out} here: the output folder must be shared storage")
        rows[i].update({k: res[k] for k in ("objects", "status", "seconds", "error") if k in res})
        state["done"] += 1
        if progress:
            progress(state["done"], total, f"{task.study.study[:32]} {res['status']}")
        if time.perf_counter() - state["last_report"] > 10:
            write_report(out, rows)
            state["last_report"] = time.perf_counter()

    mode = "nothing to do"
    if tasks:
        if scheduler:
            if not have_distributed():
                raise InputError(f"--scheduler needs dask.distributed, which is not installed; {CLUSTER_HINT}")
            mode = "cluster"
        elif workers == 0:
            mode = "sequential"
        elif not have_distributed():
            log(f"dask.distributed is not installed: running the studies one after another in this process; "
                f"{CLUSTER_HINT}")
            mode = "sequential"
        else:
            mode = "local"
        try:
            if mode == "sequential":
                mode = f"sequential, {threads or 'default'} OpenVINO threads"
                for i, task in tasks:
                    on_result(i, task, process_study(task.study, str(out), task.output, task.fingerprint, spec))
            else:
                from engine.batch.cluster import run_on_dask

                if mode == "local":
                    n, t = local_sizing(workers, threads)
                    if n * t > available_cores():
                        log(f"warning: {n} workers x {t} threads exceed this machine's {available_cores()} cores")
                    spec = ModelSpec(spec.name, t, spec.precision, spec.model_sha256)
                    mode = f"local cluster, {n} workers x {t} thread{'s' if t > 1 else ''}"
                    log(f"starting {mode}")
                    mode = run_on_dask(tasks, str(out), spec, on_result, n_workers=n, log=log) or mode
                else:
                    mode = run_on_dask(tasks, str(out), spec, on_result, address=scheduler, log=log)
        finally:
            remove_temp_files(out, [t.output for _, t in tasks])
            for r in rows:
                if r["status"] == "pending":
                    r.update(status="failed", error="not run (batch interrupted)")
            write_report(out, rows)
    else:
        write_report(out, rows)
    return BatchResult(rows=rows, seconds=time.perf_counter() - t0, mode=mode)


__all__ = ["BatchObject", "BatchResult", "FORMATS", "ModelSpec", "REPORT", "REPORT_COLUMNS", "Study", "Task",
           "fingerprint", "get_session", "local_sizing", "output_name", "process_study", "read_manifest",
           "run_batch", "session_loads", "up_to_date", "write_report"]
