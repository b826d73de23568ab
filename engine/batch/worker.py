"""One batch study, run where a worker runs it: segment, write the output, then its record.

The model is loaded once per worker process (:func:`engine.inference.registry.shared_session`
with the batch's :class:`~engine.inference.session.SessionConfig`, which pins the model's sha256),
and reused by every study that worker runs. Outputs and records are written atomically, so a worker
killed mid-study leaves the previous output and record as they were (and at most a temporary file, which
a run removes once it is a day old: a younger one may be another batch's write on the same folder).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import __version__
from engine.base.errors import BoxSegError
from engine.batch.manifest import Study
from engine.batch.records import RECORD_FORMAT, write_record
from engine.data.image import Image
from engine.data.labelmap import Segment
from engine.data.measure import json_row, measure
from engine.inference.manifest import sha256_file
from engine.inference.registry import shared_session
from engine.inference.session import SessionConfig
from engine.io.challenge_npz import load_case, write_segs
from engine.io.dispatch import open_image, read_labelmap, write_labelmap
from engine.pipeline import segment_case, segment_study


@dataclass
class Task:
    """A study planned to run: its output name, input fingerprint and input size (larger ones run first)."""

    study: Study
    output: str
    fingerprint: str
    input_bytes: int
    stats: bool = False


def study_stats(study: Study, labels: np.ndarray, img: Image, segments: list[Segment] | None) -> list[dict]:
    """The ``boxseg stats`` rows (:func:`engine.data.measure.json_row`: NaN as None) of one study's label map.

    labels: (Z,Y,X) on ``img``'s grid, or a challenge case's ``segs`` ((H,W) for a 2D case)."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels[None]
    return [json_row(m) for m in measure(labels, img, segments)]


def measure_output(study: Study, outdir: str, output: str) -> list[dict]:
    """:func:`study_stats` of an output already written (a study skipped as up to date whose record has
    no measurements): the output is read back on the image, as ``boxseg stats IMAGE OUTPUT`` does."""
    final = Path(outdir) / output
    if study.kind == "npz":
        img = open_image(Path(study.image))
        with np.load(final) as z:
            return study_stats(study, z["segs"], img, None)
    img = open_image(Path(study.image), series=study.series)
    lm = read_labelmap(final, img)
    return study_stats(study, lm.labels, img, lm.segments)


def process_study(study: Study, outdir: str, output: str, fp: str, config: SessionConfig, stats: bool = False
                  ) -> dict:
    """Segment one study and write its output and record atomically; runs on a worker.

    stats: also measure each object (``boxseg stats`` rows, in ``res["stats"]`` and in the record, so a
    later run that skips the study still has them). Never raises for a study's own problems: returns
    a dict (study, objects, status "ok"/"failed", seconds, error, worker[, stats]). A worker that dies
    mid-task leaves at most a temporary file.
    """
    t0 = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    res = {"study": study.study, "objects": len(study.objects) if study.kind == "image" else None,
           "status": "failed", "seconds": 0.0, "error": "", "worker": worker, "output": output}
    out_dir = Path(outdir)
    final = out_dir / output
    try:
        session = shared_session(config)
        try:
            if study.kind == "npz":
                case = load_case(Path(study.image), with_gt=False)
                res["objects"] = len(case.boxes)
                segs = segment_case(session, case)
                write_segs(final, segs)
                if stats:
                    # measured on the case as `boxseg stats CASE.npz` opens it (its own spacing, if any)
                    res["stats"] = study_stats(study, segs, open_image(Path(study.image)), None)
            else:
                img = open_image(Path(study.image), series=study.series)
                labels, segments = segment_study(session, img, study.objects)
                write_labelmap(final, labels, img, segments=segments, model_name=session.entry.name,
                               model_version=session.entry.version)
                if stats:
                    res["stats"] = study_stats(study, labels, img, segments)
        finally:
            session.cache.clear()  # embeddings of one study are never reused by the next
        seconds = time.perf_counter() - t0
        write_record(out_dir, output, {
            "format": RECORD_FORMAT, "study": study.study, "output": output, "bytes": final.stat().st_size,
            "sha256": sha256_file(final),
            "fingerprint": fp, "model": config.model, "model_sha256": config.model_id, "objects": res["objects"],
            "seconds": round(seconds, 3), "worker": worker, "boxseg": __version__,
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            **({"stats": res["stats"]} if "stats" in res else {})})
        res.update(status="ok", seconds=seconds)
    except BoxSegError as e:
        res.update(error=str(e), seconds=time.perf_counter() - t0)
    except Exception as e:  # noqa: BLE001 - one study's failure must not stop the batch
        msg = str(e).splitlines()[0] if str(e) else ""
        res.update(error=f"{type(e).__name__}: {msg}"[:300], seconds=time.perf_counter() - t0)
    return res


__all__ = ["Task", "measure_output", "process_study", "study_stats"]
