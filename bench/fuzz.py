"""The long fuzzing campaign over every reader: coverage-guided (atheris / libFuzzer), one target after another.

    python bench/fuzz.py --target dicom --seconds 600       # one target
    python bench/fuzz.py --target all --seconds 120          # every target, 120 s each
    python bench/fuzz.py --target dicom:300,nifti:90          # seconds per target
    python bench/fuzz.py --list                              # the targets

The targets, their seeds and the failure oracle are ``tests/engine/io/fuzz_targets.py`` (shared with the
short in-suite run, ``tests/engine/io/test_fuzz.py``): any exception other than BoxSeg's own errors, a
multi-line error, > 5 s of CPU for one input, an allocation beyond 1.5 GiB (address-space limit around each
read), NaN/singular geometry accepted, or a seeded patient name in any output. The engine, pydicom, nibabel,
pynrrd, highdicom, Pillow's Python part, zipfile, gzip and csv are instrumented for coverage
(``atheris.instrument_imports``).

Each target runs in its own process on one core with its corpus under ``--work`` (default: the user cache,
``~/.cache/boxseg-fuzz/<target>``, kept between runs, never in the repository). The harness records a
failure and goes on (one file per distinct failure under ``<work>/<target>/failures``); a hang (> 15 s wall
clock) or a crash of the process is libFuzzer's artifact, after which the target is restarted for the time
left. A summary (executions, libFuzzer's ``cov``/``ft`` coverage counts from the seeds alone and at the end,
corpus size, distinct failures) goes to ``bench/results/fuzz-<date>.md``. Keep a found input as a
regression case: copy it to ``tests/data/fuzz/<target>/`` (``test_fuzz.py`` replays them all).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: what atheris instruments for coverage: our readers and the libraries that parse the bytes
INSTRUMENT = ["engine", "pydicom", "nibabel", "nrrd", "highdicom", "PIL", "zipfile", "gzip", "csv"]
HANG_SECONDS = 15
RSS_LIMIT_MB = 4096  # a backstop: the harness's own limit is 1.5 GiB of address space above the baseline
FAILURE_FILES_PER_SIGNATURE = 3


def _default_work() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "boxseg-fuzz"


def _child(target: str, work: Path, seconds: int) -> None:
    """Fuzz ``target`` with atheris for ``seconds`` (libFuzzer exits the process at the end)."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    sys.path.insert(0, str(REPO))
    import atheris

    with atheris.instrument_imports(include=INSTRUMENT):
        from tests.engine.io import fuzz_targets as ft
    corpus, failures = work / "corpus", work / "failures"
    corpus.mkdir(parents=True, exist_ok=True)
    failures.mkdir(parents=True, exist_ok=True)
    ctx = ft.context()
    if not any(corpus.iterdir()):
        for data in ft.seeds(target, ctx):
            (corpus / f"seed-{ft.input_name(data)}").write_bytes(data)
    seen: dict[str, int] = {}
    log = failures / "failures.jsonl"

    def test_one_input(data: bytes) -> None:
        try:
            ft.run_one(target, data, ctx)
        except ft.Failure as f:
            n = seen.get(f.signature, 0)
            seen[f.signature] = n + 1
            if n < FAILURE_FILES_PER_SIGNATURE:
                name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f.signature)[:80] + "-" + ft.input_name(data)
                (failures / f"{name}.bin").write_bytes(data)
                with open(log, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"signature": f.signature, "kind": f.kind, "detail": f.detail,
                                         "file": f"{name}.bin"}) + "\n")

    args = [sys.argv[0], str(corpus), f"-max_total_time={seconds}", f"-timeout={HANG_SECONDS}",
            f"-rss_limit_mb={RSS_LIMIT_MB}", "-print_final_stats=1", f"-artifact_prefix={failures}/",
            "-close_fd_mask=1"]
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()


_STAT = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+)(?: corp: (\d+)/)?")


def _parse(text: str) -> dict:
    out = {"execs": 0, "inited": None, "cov": 0, "ft": 0, "corp": 0}
    for line in text.splitlines():
        m = _STAT.match(line)
        if m:
            n, what, cov, ft, corp = m.groups()
            out["last_n"] = int(n)
            if what == "INITED" and out["inited"] is None:
                out["inited"] = (int(cov), int(ft))
            out["cov"], out["ft"] = max(out["cov"], int(cov)), max(out["ft"], int(ft))
            if corp:
                out["corp"] = int(corp)
        elif line.startswith("stat::number_of_executed_units:"):
            out["execs"] = int(line.split(":")[-1])
    if not out["execs"]:
        out["execs"] = out.get("last_n", 0)
    return out


def run_target(target: str, seconds: int, work: Path) -> dict:
    """Fuzz one target for ``seconds`` wall clock (restarting after a hang or a crash of the process)."""
    tw = work / target
    tw.mkdir(parents=True, exist_ok=True)
    logf = tw / f"libfuzzer-{dt.datetime.now():%Y%m%d-%H%M%S}.log"
    total = {"target": target, "seconds": seconds, "execs": 0, "inited": None, "cov": 0, "ft": 0, "corp": 0,
             "restarts": 0}
    end = time.monotonic() + seconds
    while (left := int(end - time.monotonic())) >= 10:
        with open(logf, "a", encoding="utf-8") as fh:
            start = fh.tell()
            r = subprocess.run([sys.executable, __file__, "--child", target, "--work", str(tw), "--seconds", str(left)],
                               stdout=fh, stderr=subprocess.STDOUT, cwd=REPO)
        text = logf.read_text(encoding="utf-8", errors="replace")[start:]
        stats = _parse(text)
        total["execs"] += stats["execs"]
        total["inited"] = total["inited"] or stats["inited"]
        for k in ("cov", "ft", "corp"):
            total[k] = max(total[k], stats[k])
        if r.returncode == 0:
            break
        total["restarts"] += 1
        if stats["execs"] == 0 and stats["inited"] is None:
            total["error"] = f"the fuzzer did not start (exit {r.returncode}); see {logf}"
            break
    total["log"] = str(logf)
    fails = tw / "failures"
    records = []
    if (fails / "failures.jsonl").is_file():
        records = [json.loads(ln) for ln in (fails / "failures.jsonl").read_text().splitlines() if ln.strip()]
    artifacts = sorted(p.name for p in fails.glob("*") if p.name.startswith(("timeout-", "oom-", "crash-", "slow-unit-")))
    sigs: dict[str, dict] = {}
    for rec in records:
        sigs.setdefault(rec["signature"], {**rec, "count": 0})["count"] += 1
    total["failures"] = list(sigs.values())
    total["artifacts"] = artifacts
    return total


def _report(results: list[dict], out: Path, work: Path) -> None:
    lines = [f"# Fuzzing campaign, {dt.date.today():%Y-%m-%d}", "",
             f"`python bench/fuzz.py --target ... --seconds N` (atheris {_atheris_version()}, libFuzzer; one core; "
             f"corpora in `{work}`). Executions: inputs run; cov/ft: libFuzzer's coverage counters (edges/features of "
             "the instrumented Python code and native code) after the seeds alone and at the end; failures: distinct "
             "signatures (kind, exception, innermost frame) found by the oracle of "
             "`tests/engine/io/fuzz_targets.py`, and libFuzzer's own artifacts (hangs > 15 s, out-of-memory).", "",
             "| target | seconds | executions | exec/s | cov seeds -> end | ft seeds -> end | corpus | failures | hangs/crashes |",
             "|---|---:|---:|---:|---|---|---:|---:|---:|"]
    for r in results:
        ini = r["inited"] or (0, 0)
        lines.append(f"| {r['target']} | {r['seconds']} | {r['execs']} | {r['execs'] / max(r['seconds'], 1):.0f} | "
                     f"{ini[0]} -> {r['cov']} | {ini[1]} -> {r['ft']} | {r['corp']} | {len(r['failures'])} | "
                     f"{len(r['artifacts'])} |")
    found = [(r["target"], f) for r in results for f in r["failures"]]
    if found or any(r["artifacts"] for r in results):
        lines += ["", "## Failures", ""]
        for target, f in found:
            lines.append(f"- `{target}` `{f['signature']}` x{f['count']}: {f['detail'][:300]} (`{f['file']}`)")
        for r in results:
            for a in r["artifacts"]:
                lines.append(f"- `{r['target']}` libFuzzer artifact `{a}`")
    for r in results:
        if "error" in r:
            lines.append(f"- `{r['target']}`: {r['error']}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _atheris_version() -> str:
    try:
        import importlib.metadata as md

        return md.version("atheris")
    except Exception:  # noqa: BLE001
        return "?"


def _replay(target: str, files: list[Path]) -> int:
    import traceback

    from tests.engine.io import fuzz_targets as ft

    ctx = ft.context()
    bad = 0
    try:
        for f in files:
            try:
                r = ft.run_one(target, f.read_bytes(), ctx)
                print(f"{f.name}: ok ({type(r).__name__}: {str(r)[:200] if isinstance(r, Exception) else ''})")
            except ft.Failure as e:
                bad += 1
                print(f"{f.name}: {e}")
                traceback.print_exception(e.__cause__ or e)
    finally:
        ft.cleanup(ctx)
    return 1 if bad else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="all", help="a target name, a comma-separated list (NAME or NAME:SECONDS), "
                    "or 'all'")
    ap.add_argument("--seconds", type=int, default=600, help="wall-clock seconds per target")
    ap.add_argument("--work", type=Path, default=None, help="corpora and failures (default: ~/.cache/boxseg-fuzz)")
    ap.add_argument("--out", type=Path, default=None, help="summary (default: bench/results/fuzz-<date>.md)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--replay", nargs="+", metavar=("TARGET", "FILE"), default=None,
                    help="read FILE(s) with TARGET once and print what the oracle says (with the traceback)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child, args.work, args.seconds)
        return 0
    sys.path.insert(0, str(REPO))
    from tests.engine.io.fuzz_targets import TARGETS

    if args.replay:
        return _replay(args.replay[0], [Path(p) for p in args.replay[1:]])
    if args.list:
        for t in TARGETS.values():
            print(f"{t.name:20s} {t.what}")
        return 0
    plan = [(n, args.seconds) for n in TARGETS] if args.target == "all" else \
        [(t.split(":")[0].strip(), int(t.split(":")[1]) if ":" in t else args.seconds) for t in args.target.split(",")]
    unknown = [n for n, _ in plan if n not in TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {', '.join(unknown)}; --list shows them")
    work = args.work or _default_work()
    out = args.out or REPO / "bench" / "results" / f"fuzz-{dt.date.today():%Y-%m-%d}.md"
    results = []
    for name, seconds in plan:
        print(f"fuzzing {name} for {seconds} s ...", flush=True)
        r = run_target(name, seconds, work)
        results.append(r)
        print(f"  {r['execs']} executions, cov {r['inited']} -> {r['cov']}/{r['ft']}, "
              f"{len(r['failures'])} failure signature(s), {len(r['artifacts'])} artifact(s)", flush=True)
        _report(results, out, work)
    print(f"summary: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
