"""Accuracy report of the shipped models: FP32 vs INT8 on the evaluation set, per modality.

Writes ``ACCURACY.md`` and one CSV per model next to the models, compared with the official
PyTorch pipeline's per-case results (``shared/reference/litemedsam_official_eval.csv``) where present.
For the default model it also runs the 3D cases with early stop (after 2 empty slices).
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


def _official(eval_dir: Path) -> list[dict] | None:
    p = eval_dir.parents[1] / "reference" / "litemedsam_official_eval.csv"
    if not p.is_file():
        return None
    with open(p) as f:
        return [{**r, "dsc": float(r["dsc"]), "nsd": float(r["nsd"]), "seconds": float(r["seconds"])}
                for r in csv.DictReader(f)]


def accuracy_report(models_dir: Path, eval_dir: Path, threads: int = 2, log=print) -> Path:
    files = sorted(p for p in Path(eval_dir).glob("*.npz") if p.name.startswith(("2D", "3D")))
    entries = read_manifest(Path(models_dir))
    results: dict[str, list[dict]] = {}
    t0 = time.perf_counter()
    for e in entries:
        log(f"evaluating {e.name} on {len(files)} cases ...")
        s = Session(SessionConfig(threads=threads), entry=e)
        results[e.name] = run_eval(s, files, log=log)
        if e.default:
            results[f"{e.name} early-stop {EARLY_STOP}"] = run_eval(
                s, [f for f in files if f.name.startswith("3D")], early_stop=EARLY_STOP, log=log)
        with open(Path(models_dir) / f"accuracy-{e.name}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["case", "modality", "dim", "dsc", "nsd", "seconds"])
            w.writeheader()
            for r in results[e.name]:
                w.writerow({**r, "dsc": f"{r['dsc']:.4f}", "nsd": f"{r['nsd']:.4f}", "seconds": f"{r['seconds']:.3f}"})
    official = _official(Path(eval_dir))
    if official is not None:
        names = {r["case"] for r in next(iter(results.values()))}
        results["official PyTorch (reference csv)"] = [r for r in official if r["case"] in names]
    summaries = {k: summarise(v) for k, v in results.items()}
    groups = sorted({g for s in summaries.values() for g in s}, key=lambda g: (g != "overall", len(g.split()), g))

    from engine.base.sysinfo import describe, markdown

    lines = [f"# Accuracy report ({dt.date.today()})\n\n",
             f"Data: `{eval_dir}` ({len(files)} cases). Challenge metrics (engine/metrics.py, SPEC C). "
             f"Each case starts with an empty embedding cache; seconds = load + segment, as `boxseg eval` reports.\n"
             f"OpenVINO inference precision f32, {threads} threads. Total time {time.perf_counter() - t0:.0f} s.\n\n",
             markdown(describe()), "\n| group | cases |" + "".join(f" {k} DSC | NSD | s/case |" for k in summaries) + "\n",
             "|---|---|" + "---|---|---|" * len(summaries) + "\n"]
    for g in groups:
        n = next((s[g][0] for s in summaries.values() if g in s), 0)
        cells = "".join(f" {s[g][1]:.4f} | {s[g][2]:.4f} | {s[g][3]:.2f} |" if g in s else " | | |" for s in summaries.values())
        lines.append(f"| {g} | {n} |{cells}\n")
    if official is not None:
        lines.append("\nDifference to the official pipeline (mean DSC, model - official):\n\n")
        ref = summaries["official PyTorch (reference csv)"]
        for k, s in summaries.items():
            if k.startswith("official") or "early-stop" in k:
                continue
            worst = max((abs(s[g][1] - ref[g][1]), g) for g in s if g in ref)
            lines.append(f"- {k}: overall {s['overall'][1] - ref['overall'][1]:+.4f}; largest group difference "
                         f"{worst[0]:.4f} ({worst[1]})\n")
    out = Path(models_dir) / "ACCURACY.md"
    out.write_text("".join(lines), encoding="utf-8")
    log(f"wrote {out}")
    return out
