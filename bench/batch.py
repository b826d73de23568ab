"""Batch throughput: studies/min on the 3D challenge cases, sequential `boxseg eval` vs `boxseg batch`.

    python bench/batch.py [--eval ../shared/data/eval] [--cases NAME,NAME,...] [--out FILE]

Configurations, each a fresh process tree on the same cases (3D cases of --eval, or the ones whose
names contain one of --cases), timed wall clock from command start to exit (Python start, model
load and cluster start included — what a user waits for):

* ``eval``: `boxseg eval DIR` — one process, OpenVINO on all cores (the sequential baseline);
* ``batch 1w``: `boxseg batch DIR --workers 1` (embedded LocalCluster, 1 worker x all cores);
* ``batch 2w``: `boxseg batch DIR --workers 2` (2 workers x cores/2 threads);
* ``dask 2w``: `dask scheduler` + two `dask worker --nthreads 1` processes started separately on
  127.0.0.1 (the multi-machine path on one machine), then `boxseg batch DIR --scheduler ...
  --threads-per-worker cores/2`; the cluster's start-up is not timed (a cluster stays up).

Every batch's outputs are checked: ``segs`` identical across configurations, and DSC against the
ground truth equal to what `boxseg eval` reports for the case (4 decimals). CPU-s/study = wall x
cores / studies (the machine's cost per study). Writes a markdown table (default
bench/results/batch-<date>.md). Not a test: run it when nothing else is running.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def boxseg(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli.main", *args]


def timed(cmd: list[str], log: Path) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as f:
        r = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {r.returncode}); see {log}:\n{log.read_text()[-2000:]}")
    return wall


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dask_exe() -> str:
    exe = Path(sys.executable).with_name("dask")
    found = str(exe) if exe.exists() else shutil.which("dask")
    if not found:
        raise SystemExit("the `dask` command is missing: pip install -e '.[cluster]'")
    return found


class LoopbackCluster:
    """`dask scheduler` and N `dask worker` processes on 127.0.0.1 (separate processes, as on other machines)."""

    def __init__(self, n_workers: int, logdir: Path):
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        exe = dask_exe()
        self.procs = [subprocess.Popen([exe, "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                        "--no-dashboard"], stdout=open(logdir / "scheduler.log", "w"),
                                       stderr=subprocess.STDOUT)]
        for i in range(n_workers):
            self.procs.append(subprocess.Popen(
                [exe, "worker", self.address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                 "--host", "127.0.0.1", "--name", f"w{i}"], stdout=open(logdir / f"worker{i}.log", "w"),
                stderr=subprocess.STDOUT, cwd=REPO))
        from distributed import Client

        deadline = time.monotonic() + 120
        while True:
            try:
                with Client(self.address, timeout="5s") as c:
                    c.wait_for_workers(n_workers, timeout=120)
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.close()
                    raise
                time.sleep(1)

    def close(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eval", type=Path, default=REPO.parent / "shared" / "data" / "eval")
    ap.add_argument("--cases", default=None, help="comma-separated name fragments (default: every 3D case)")
    ap.add_argument("--configs", default="eval,batch1,batch2,dask2")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from engine.io.challenge_npz import load_case
    from engine.eval.metrics import compute_case_metrics
    from engine.base.sysinfo import available_cores, describe, markdown

    files = sorted(args.eval.glob("3D*.npz"))
    if args.cases:
        frags = [c.strip() for c in args.cases.split(",") if c.strip()]
        files = [f for f in files if any(fr in f.name for fr in frags)]
    if not files:
        raise SystemExit(f"no 3D cases in {args.eval}")
    n = len(files)
    cores = available_cores()
    half = max(1, cores // 2)
    configs = args.configs.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="boxseg-bench-batch-"))
    cases = tmp / "cases"
    cases.mkdir()
    for f in files:
        (cases / f.name).symlink_to(f.resolve())
    print(f"{n} cases, {cores} cores, work in {tmp}", file=sys.stderr)

    rows, eval_dsc, outputs = [], {}, {}
    if "eval" in configs:
        wall = timed(boxseg("eval", str(cases), "--csv", str(tmp / "eval.csv")), tmp / "eval.log")
        with open(tmp / "eval.csv", newline="") as f:
            eval_dsc = {r["case"]: r["dsc"] for r in csv.DictReader(f)}
        rows.append(("`boxseg eval` (sequential)", "1 process, OpenVINO default threads", wall))
    runs = {"batch1": ("`boxseg batch --workers 1`", f"1 worker x {cores} threads", ["--workers", "1"]),
            "batch2": ("`boxseg batch --workers 2`", f"2 workers x {half} threads", ["--workers", "2"])}
    for key in ("batch1", "batch2", "dask2"):
        if key not in configs:
            continue
        out = tmp / f"out-{key}"
        if key == "dask2":
            cl = LoopbackCluster(2, tmp)
            try:
                wall = timed(boxseg("batch", str(cases), "-o", str(out), "--scheduler", cl.address,
                                    "--threads-per-worker", str(half)), tmp / f"{key}.log")
            finally:
                cl.close()
            rows.append(("`dask scheduler` + 2 `dask worker`, `boxseg batch --scheduler`",
                         f"2 workers x {half} threads (loopback)", wall))
        else:
            label, shape, extra = runs[key]
            wall = timed(boxseg("batch", str(cases), "-o", str(out), *extra), tmp / f"{key}.log")
            rows.append((label, shape, wall))
        outputs[key] = out
    # outputs: identical across configurations; DSC as `boxseg eval` reports it
    checks = []
    first = next(iter(outputs.values()), None)
    for f in files:
        name = f.name[:-4]
        segs = {k: np.load(o / f.name)["segs"] for k, o in outputs.items()}
        same = all(np.array_equal(s, segs[next(iter(segs))]) for s in segs.values())
        ok_dsc = True
        if first is not None and name in eval_dsc:
            case = load_case(f)
            dsc, _ = compute_case_metrics(case.gts, segs[next(iter(segs))], spacing=case.spacing, is_3d=True)
            ok_dsc = f"{dsc:.4f}" == eval_dsc[name]
        checks.append((name, same, ok_dsc))
    bad = [c for c in checks if not (c[1] and c[2])]

    date = dt.date.today().isoformat()
    lines = [f"# Batch throughput ({date})", "", markdown(describe()),
             f"{n} 3D cases of `{args.eval.name}`: {', '.join(f.name[:-4] for f in files)}.", "",
             "| configuration | workers x OpenVINO threads | wall s | studies/min | CPU-s/study |",
             "|---|---|---:|---:|---:|"]
    for label, shape, wall in rows:
        lines.append(f"| {label} | {shape} | {wall:.1f} | {n / wall * 60:.2f} | {wall * cores / n:.1f} |")
    lines += ["", "Wall time from command start to exit (Python start, model load, cluster start included; "
                  "the separately started dask cluster's start-up excluded).",
              f"Outputs identical across batch configurations and DSC equal to `boxseg eval`: "
              f"{'yes' if not bad else 'NO: ' + ', '.join(c[0] for c in bad)}."]
    text = "\n".join(lines) + "\n"
    out = args.out or REPO / "bench" / "results" / f"batch-{date}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    shutil.rmtree(tmp, ignore_errors=True)
    if bad:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
