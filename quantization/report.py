"""Accuracy report of the shipped models: FP32 vs INT8 on the evaluation set, per modality.

Writes ``ACCURACY.md`` and one CSV per model (and per early-stop run) next to the models, compared with the
official PyTorch pipeline's per-case results (``shared/reference/litemedsam_official_eval.csv``) where present.
For the default model it also runs the 3D cases with early stop (after 2 empty slices). From the command line the
per-case results are shared with ``python -m quantization validate`` through its cache (:func:`cached_eval`), so a
model is evaluated once per CPU class for both.

The promise the report checks (and the README states): every model's mean DSC is within :data:`PROMISE_DSC`
of the official pipeline overall and in every group (:func:`promise_gaps`). :func:`read_table` reads a written
report back, so a test can hold a committed ``ACCURACY.md`` to its per-case CSVs and to the promise.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import time
from collections import defaultdict
from pathlib import Path

from engine.eval.challenge import evaluate_case
from engine.inference.manifest import read_manifest
from engine.inference.session import Session, SessionConfig

EARLY_STOP = 2
#: the accuracy promise: |model - official| mean DSC per group, overall included
PROMISE_DSC = 0.01


def _mean(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else float("nan")


def run_eval(session: Session, files: list[Path], early_stop=None, log=print) -> list[dict]:
    rows = []
    for i, f in enumerate(files, 1):
        res, _ = evaluate_case(session, f, early_stop=early_stop)
        rows.append({"case": res.case, "modality": res.modality, "dim": res.dim, "dsc": res.dsc, "nsd": res.nsd,
                     "seconds": res.seconds})
        if i % 25 == 0 or i == len(files):
            log(f"  {session.entry.name}{' early-stop' if early_stop else ''}: {i}/{len(files)}")
        session.cache.clear()  # every case starts cold, as `boxseg eval` on one case would
    return rows


def summarise(rows: list[dict]) -> dict[str, tuple[int, float, float, float]]:
    groups = defaultdict(list)
    for r in rows:
        groups["overall"].append(r)
        groups[r["dim"]].append(r)
        groups[f"{r['dim']} {r['modality']}"].append(r)
    return {g: (len(v), _mean([r["dsc"] for r in v]), _mean([r["nsd"] for r in v]), _mean([r["seconds"] for r in v]))
            for g, v in groups.items()}


def official_csv(eval_dir: Path) -> Path:
    """Where the official pipeline's per-case results lie for ``eval_dir`` (shared/data/eval ->
    shared/reference/litemedsam_official_eval.csv)."""
    return Path(eval_dir).parents[1] / "reference" / "litemedsam_official_eval.csv"


def _official(eval_dir: Path) -> list[dict] | None:
    p = official_csv(eval_dir)
    return read_cases(p) if p.is_file() else None


OFFICIAL = "official PyTorch (reference csv)"


def write_cases(path: Path, rows: list[dict]) -> None:
    """The per-case CSV a report column is computed from."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["case", "modality", "dim", "dsc", "nsd", "seconds"])
        w.writeheader()
        for r in rows:
            w.writerow({**r, "dsc": f"{r['dsc']:.4f}", "nsd": f"{r['nsd']:.4f}", "seconds": f"{r['seconds']:.3f}"})


def read_cases(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{**r, "dsc": float(r["dsc"]), "nsd": float(r["nsd"]), "seconds": float(r["seconds"])}
                for r in csv.DictReader(f)]


def promise_gaps(summaries: dict[str, dict], official: str = OFFICIAL) -> dict[str, dict[str, float]]:
    """model -> group -> |model - official| mean DSC, for every column but the official one and the early-stop
    runs (which the challenge rule does not allow). The promise: every value <= :data:`PROMISE_DSC`."""
    ref = summaries[official]
    return {k: {g: abs(v[1] - ref[g][1]) for g, v in s.items() if g in ref}
            for k, s in summaries.items() if k != official and "early-stop" not in k}


def render_table(results: dict[str, list[dict]]) -> list[str]:
    """The report's table (one column group per model: DSC, NSD, s/case; a row per group with its case
    count) and, with an official column, the promise lines. Early-stop columns cover the 3D cases only,
    so they have no "overall" row (it would sit beside the count of all cases)."""
    summaries = {k: summarise(v) for k, v in results.items()}
    for k in summaries:
        if "early-stop" in k:
            summaries[k].pop("overall", None)
    groups = sorted({g for s in summaries.values() for g in s}, key=lambda g: (g != "overall", len(g.split()), g))
    lines = ["\n| group | cases |" + "".join(f" {k} DSC | NSD | s/case |" for k in summaries) + "\n",
             "|---|---|" + "---|---|---|" * len(summaries) + "\n"]
    for g in groups:
        n = next((s[g][0] for s in summaries.values() if g in s), 0)
        cells = "".join(f" {s[g][1]:.4f} | {s[g][2]:.4f} | {s[g][3]:.2f} |" if g in s else " | | |" for s in summaries.values())
        lines.append(f"| {g} | {n} |{cells}\n")
    if OFFICIAL in summaries:
        lines.append(f"\nDifference to the official pipeline (mean DSC, model - official; promise: within "
                     f"{PROMISE_DSC} overall and in every group):\n\n")
        ref = summaries[OFFICIAL]
        for k, gaps in promise_gaps(summaries).items():
            worst = max((v, g) for g, v in gaps.items())
            lines.append(f"- {k}: overall {summaries[k]['overall'][1] - ref['overall'][1]:+.4f}; largest group "
                         f"difference {worst[0]:.4f} ({worst[1]})\n")
    return lines


def read_table(text: str) -> dict[str, dict[str, tuple[int, float, float, float]]]:
    """The table of a written report back: column (model) -> group -> (cases, DSC, NSD, s/case); empty
    cells are left out. The inverse of :func:`render_table` to its 4 printed decimals."""
    rows = [ln for ln in text.splitlines() if ln.startswith("|")]
    head = [c.strip() for c in rows[0].strip("|").split("|")]
    models = [h[:-len(" DSC")] for h in head[2:] if h.endswith(" DSC")]
    out: dict[str, dict] = {m: {} for m in models}
    for ln in rows[2:]:
        cells = [c.strip() for c in ln.strip().strip("|").split("|")]
        for i, m in enumerate(models):
            dsc, nsd, sec = cells[2 + 3 * i: 5 + 3 * i]
            if dsc:
                out[m][cells[0]] = (int(cells[1]), float(dsc), float(nsd), float(sec))
    return out


def cached_eval(entry, files: list[Path], cache: Path, threads: int = 2, log=print) -> list[dict]:
    """The rows :func:`run_eval` would give, read from (and added to) the held-out protocol's per-case cache
    (``bench/results/validate-cases.csv``): both run :func:`engine.eval.challenge.evaluate_case` on a cold embedding
    cache with an f32 hint, keyed by model id (sha256 of its files) and CPU class, so a model the protocol already
    ran on this kind of CPU is not evaluated a second time for its accuracy report."""
    from .validate import case_keys, evaluate_model

    res = evaluate_model(entry, files, cache, threads=threads, log=log)
    rows = []
    for f in files:
        case = f.name.removesuffix(".npz")
        dim, modality, _ = case_keys(f.name)
        rows.append({"case": case, "modality": modality, "dim": dim, **res[case]})
    return rows


def accuracy_report(models_dir: Path, eval_dir: Path, threads: int = 2, log=print, cache: Path | None = None) -> Path:
    """Evaluate every model of ``models_dir`` on ``eval_dir`` and write ``ACCURACY.md`` and the per-case CSVs there.

    ``cache``: the held-out protocol's per-case CSV (:func:`cached_eval`); None evaluates every case here. The
    early-stop runs are not in that cache and always run."""
    files = sorted(p for p in Path(eval_dir).glob("*.npz") if p.name.startswith(("2D", "3D")))
    entries = read_manifest(Path(models_dir))
    results: dict[str, list[dict]] = {}
    t0 = time.perf_counter()
    for e in entries:
        log(f"evaluating {e.name} on {len(files)} cases ...")
        config = SessionConfig(threads=threads, precision="f32")
        s = None  # compiled only for cases that run here (a cached model compiles nothing for its own rows)
        if cache is not None:
            results[e.name] = cached_eval(e, files, cache, threads, log)
        else:
            s = Session(config, entry=e)
            results[e.name] = run_eval(s, files, log=log)
        # the tables are computed from the CSVs as written (4 decimals), so that each figure can be recomputed
        # from them exactly: a mean of unrounded values can fall on the other side of a rounding boundary
        path = Path(models_dir) / f"accuracy-{e.name}.csv"
        write_cases(path, results[e.name])
        results[e.name] = read_cases(path)
        if e.default and any(f.name.startswith("3D") for f in files):
            key = f"{e.name} early-stop {EARLY_STOP}"
            s = s or Session(config, entry=e)
            results[key] = run_eval(s, [f for f in files if f.name.startswith("3D")], early_stop=EARLY_STOP, log=log)
            path = Path(models_dir) / f"accuracy-{e.name}-early-stop-{EARLY_STOP}.csv"
            write_cases(path, results[key])
            results[key] = read_cases(path)
    official = _official(Path(eval_dir))
    if official is not None:
        names = {r["case"] for r in next(iter(results.values()))}
        results[OFFICIAL] = [r for r in official if r["case"] in names]

    from engine.base.sysinfo import describe, markdown

    lines = [f"# Accuracy report ({dt.date.today()})\n\n",
             f"Data: `{eval_dir}` ({len(files)} cases). Challenge metrics (engine/metrics.py, SPEC C). "
             f"Each case starts with an empty embedding cache; seconds = load + segment, as `boxseg eval` reports.\n"
             f"OpenVINO inference precision f32, {threads} threads. Total time {time.perf_counter() - t0:.0f} s"
             + (f" (per-case results of the held-out protocol's cache `{Path(cache).name}` reused where it had this "
                "model on this CPU class; the early-stop runs ran here). " if cache is not None else ". ")
             + "Written by `python -m quantization report` (quantization/report.py) from the per-case CSVs beside it.\n\n",
             markdown(describe()), *render_table(results)]
    out = Path(models_dir) / "ACCURACY.md"
    out.write_text("".join(lines), encoding="utf-8")
    log(f"wrote {out}")
    return out
