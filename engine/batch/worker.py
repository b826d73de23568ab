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

from engine import __version__
from engine.base.errors import BoxSegError
from engine.batch.manifest import Study
from engine.batch.records import RECORD_FORMAT, write_record
from engine.inference.manifest import sha256_file
from engine.inference.registry import shared_session
from engine.inference.session import SessionConfig
from engine.io.challenge_npz import load_case, write_segs
from engine.io.dispatch import open_image, write_labelmap
from engine.pipeline import segment_case, segment_study


@dataclass
class Task:
    """A study planned to run: its output name, input fingerprint and input size (larger ones run first)."""

    study: Study
    output: str
    fingerprint: str
    input_bytes: int


def process_study(study: Study, outdir: str, output: str, fp: str, config: SessionConfig) -> dict:
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
        session = shared_session(config)
        try:
            if study.kind == "npz":
                case = load_case(Path(study.image), with_gt=False)
                res["objects"] = len(case.boxes)
                write_segs(final, segment_case(session, case))
            else:
                img = open_image(Path(study.image), series=study.series)
                labels, segments = segment_study(session, img, study.objects)
                write_labelmap(final, labels, img, segments=segments, model_name=session.entry.name,
                               model_version=session.entry.version)
        finally:
            session.cache.clear()  # embeddings of one study are never reused by the next
        seconds = time.perf_counter() - t0
        write_record(out_dir, output, {
            "format": RECORD_FORMAT, "study": study.study, "output": output, "bytes": final.stat().st_size,
            "sha256": sha256_file(final),
            "fingerprint": fp, "model": config.model, "model_sha256": config.model_id, "objects": res["objects"],
            "seconds": round(seconds, 3), "worker": worker, "boxseg": __version__,
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
        res.update(status="ok", seconds=seconds)
    except BoxSegError as e:
        res.update(error=str(e), seconds=time.perf_counter() - t0)
    except Exception as e:  # noqa: BLE001 - one study's failure must not stop the batch
        msg = str(e).splitlines()[0] if str(e) else ""
        res.update(error=f"{type(e).__name__}: {msg}"[:300], seconds=time.perf_counter() - t0)
    return res


__all__ = ["Task", "process_study"]
