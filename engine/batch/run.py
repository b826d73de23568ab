"""Running a batch: plan (which studies need work), run them sequentially or on Dask, report.

:func:`run_batch` reads the manifest (:mod:`engine.batch.manifest`), skips studies whose record
is up to date (:mod:`engine.batch.records`), runs the others with
:func:`engine.batch.worker.process_study` in this process or on Dask ``distributed`` (an embedded
``LocalCluster`` or an existing scheduler, :mod:`engine.batch.cluster`), and writes
``OUTDIR/report.csv`` (study, objects, status, seconds, error). ``distributed`` is optional (the
``cluster`` extra); only :mod:`engine.batch.cluster` imports it, and that module is imported only when
a cluster is used.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from engine.base.atomic import write_text
from engine.base.errors import BoxSegError, InputError
from engine.base.sysinfo import available_cores
from engine.batch.manifest import read_manifest
from engine.batch.records import fingerprint, output_name, remove_stale_temp_files, up_to_date, write_record
from engine.batch.worker import Task, measure_output, process_study
from engine.data.measure import COLUMNS, to_csv
from engine.inference.session import SessionConfig, configured_model

REPORT = "report.csv"
REPORT_COLUMNS = ("study", "objects", "status", "seconds", "error")
STATS = "stats.csv"
#: columns of ``OUTDIR/stats.csv`` (``--stats``): the study, then ``boxseg stats``' columns
STATS_COLUMNS = ("study",) + COLUMNS
CLUSTER_HINT = "install the cluster extra for parallel and multi-machine runs: pip install 'boxseg[cluster]'"


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
    """Whether Dask ``distributed`` (the ``cluster`` extra) is installed (found, not imported)."""
    return importlib.util.find_spec("distributed") is not None


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
    """``OUTDIR/report.csv``: one row per study (:data:`REPORT_COLUMNS`), written atomically."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(REPORT_COLUMNS)
    for r in rows:
        objects = "" if r.get("objects") is None else r["objects"]
        w.writerow([r["study"], objects, r["status"], f"{float(r.get('seconds') or 0):.3f}",
                    (r.get("error") or "").replace("\n", " ")])
    return write_text(Path(outdir) / REPORT, buf.getvalue())


def write_stats(outdir: Path, rows: list[dict]) -> Path:
    """``OUTDIR/stats.csv``: one row per object of every study that has measurements (manifest order;
    :data:`STATS_COLUMNS`, values as ``boxseg stats --csv`` writes them), written atomically."""
    out = [dict(m, study=r["study"]) for r in rows for m in (r.get("stats") or [])]
    return write_text(Path(outdir) / STATS, to_csv(out, STATS_COLUMNS))


@dataclass(frozen=True)
class BatchOptions:
    """How to run a batch.

    config: the model each worker loads (its ``threads`` are OpenVINO threads per worker; the model
    name is resolved and its sha256 pinned when the batch starts); workers: local worker processes
    (0 = sequentially in this process; None = sized to the machine); scheduler: ``tcp://HOST:PORT``
    of an existing Dask cluster (its workers must see the output folder and the inputs at the same
    paths); resume: skip studies whose output is up to date; fmt: label map format of manifest
    studies (:data:`~engine.batch.records.FORMATS`); tls: (CA certificate, client certificate, client
    key) PEM files for a ``tls://`` scheduler — Dask's RPC is unauthenticated pickle, so a scheduler
    reachable from other machines must use TLS (docs/batch.md); stats: measure every object
    (``OUTDIR/stats.csv``, the rows of ``boxseg stats`` on each output).
    """

    config: SessionConfig = SessionConfig(cache_bytes=512 << 20)
    workers: int | None = None
    scheduler: str | None = None
    resume: bool = True
    fmt: str = "auto"
    tls: tuple[str, str, str] | None = None
    stats: bool = False


def run_batch(manifest: Path | str, outdir: Path | str, options: BatchOptions = BatchOptions(), *,
              progress: Callable[[int, int, str], None] | None = None,
              log: Callable[[str], None] | None = None) -> BatchResult:
    """Run a batch; returns its :class:`BatchResult` (``report.csv`` is written into ``outdir``).

    progress(done, total, what) after each study; log(line) for notes to the user. Without
    ``distributed`` installed the batch runs sequentially (``log`` says how to enable the cluster).
    Raises :class:`InputError` / :class:`ModelError` for an unusable manifest, output folder or model.
    """
    log = log or (lambda s: None)
    t0 = time.perf_counter()
    out = Path(outdir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: the output must be a folder")
    studies = read_manifest(manifest, exclude=out)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out)
    entry = configured_model(options.config)  # what --precision auto picks where no model is named
    config = replace(options.config, model=entry.name, model_id=entry.model_id)
    workers, threads, scheduler, fmt = options.workers, options.config.threads, options.scheduler, options.fmt

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
        rec = up_to_date(out, name, fp, entry.model_id) if options.resume else None
        if rec is not None:
            row.update(status="skipped", objects=rec.get("objects", row["objects"]))
            if options.stats:
                row["stats"] = rec.get("stats")
                if row["stats"] is None:  # segmented by a run without --stats: measure the output here
                    try:
                        row["stats"] = measure_output(st, str(out), name)
                        write_record(out, name, dict(rec, stats=row["stats"]))
                    except BoxSegError as e:
                        log(f"{st.study}: could not be measured: {e}")
            continue
        tasks.append((len(rows) - 1, Task(st, name, fp, nbytes, options.stats)))
    total = len(rows)
    done = total - len(tasks)
    if progress:
        progress(done, total, "")
    state = {"done": done, "last_report": time.perf_counter()}

    def on_result(i: int, task: Task, res: dict) -> None:
        if res["status"] == "ok" and up_to_date(out, task.output, task.fingerprint, entry.model_id) is None:
            res = dict(res, status="failed", error=f"{res.get('worker', 'a worker')} wrote {task.output} but it is not "
                                                   f"visible in {out} here: the output folder must be shared storage")
        rows[i].update({k: res[k] for k in ("objects", "status", "seconds", "error", "stats") if k in res})
        state["done"] += 1
        if progress:
            progress(state["done"], total, f"{task.study.study[:32]} {res['status']}")
        if time.perf_counter() - state["last_report"] > 10:
            write_report(out, rows)
            if options.stats:
                write_stats(out, rows)
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
                    on_result(i, task, process_study(task.study, str(out), task.output, task.fingerprint, config,
                                                      task.stats))
            else:
                # imported here, not at the top: `distributed` takes ~0.3 s to import, which every `boxseg`
                # start (the desktop app's included) would pay (contract "Dask only in engine.batch.cluster")
                from engine.batch.cluster import run_on_dask

                if mode == "local":
                    n, t = local_sizing(workers, threads)
                    if n * t > available_cores():
                        log(f"warning: {n} workers x {t} threads exceed this machine's {available_cores()} cores")
                    config = replace(config, threads=t)
                    mode = f"local cluster, {n} workers x {t} thread{'s' if t > 1 else ''}"
                    log(f"starting {mode}")
                    mode = run_on_dask(tasks, str(out), config, on_result, n_workers=n, log=log) or mode
                else:
                    mode = run_on_dask(tasks, str(out), config, on_result, address=scheduler, tls=options.tls,
                                       log=log)
        finally:
            for r in rows:
                if r["status"] == "pending":
                    r.update(status="failed", error="not run (batch interrupted)")
            write_report(out, rows)
            if options.stats:
                write_stats(out, rows)
    else:
        write_report(out, rows)
        if options.stats:
            write_stats(out, rows)
    return BatchResult(rows=rows, seconds=time.perf_counter() - t0, mode=mode)


__all__ = ["BatchOptions", "BatchResult", "CLUSTER_HINT", "REPORT", "REPORT_COLUMNS", "STATS", "STATS_COLUMNS",
           "have_distributed", "local_sizing", "run_batch", "write_report", "write_stats"]
