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
import itertools
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
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| group |"))
    rows = list(itertools.takewhile(lambda ln: ln.startswith("|"), lines[start:]))  # the first table only
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


HELD_OUT_TITLE = "## Held-out datasets"


def held_out_section(results: dict[str, list[dict]], reference: str) -> str:
    """Markdown: every model of ``results`` (name -> per-case rows) against ``reference`` (the FP32 model) on the
    held-out datasets of the protocol's fixed split (``quantization.validate.split_datasets``: the datasets that
    took part in no recipe choice), with issue 17's goals, the worst cases and the verdicts
    (``quantization.validate.goals_report``). Computed from the same per-case CSVs as the table above."""
    from .validate import goals_report, split_datasets

    by_case = {name: {r["case"]: r for r in rows} for name, rows in results.items()}
    split = split_datasets(f"{c}.npz" for c in by_case[reference])
    order = [reference] + [n for n in by_case if n != reference]
    body = goals_report({n: by_case[n] for n in order}, reference, split, {n: n for n in order}, title=False)
    held = ", ".join(f"{d} {m} {ds}" for d, m, ds in sorted(split.test))
    return (f"{HELD_OUT_TITLE}\n\nThe held-out protocol's fixed split (docs/quantization.md): {held}. These datasets "
            "took part in no choice of the quantization recipe, so they are the figure that predicts unseen scans; "
            "the table above includes the development datasets the recipe was chosen on. Computed from the same per-case "
            "CSVs as that table (`python -m quantization report --held-out-section` rewrites this section from them "
            "alone).\n\n" + body)


def held_out_of_folder(entries, results: dict[str, list[dict]]) -> str | None:
    """:func:`held_out_section` of a model folder's ``entries`` (their per-case rows in ``results``) against its
    FP32 model; None where the folder has no FP32 model or nothing to compare with it."""
    fp32 = next((e.name for e in entries if e.precision == "fp32"), None)
    if fp32 is None or len(entries) < 2:
        return None
    return held_out_section({e.name: results[e.name] for e in entries}, fp32)


def write_held_out_section(models_dir: Path) -> Path:
    """Rewrite the held-out section of ``models_dir``/ACCURACY.md (:func:`held_out_section`) from the per-case
    CSVs beside it, in place: the text before :data:`HELD_OUT_TITLE` is kept as it is, the section is replaced
    (or appended). No model runs: the section adds the protocol's view of an existing report's own cases.
    Raises FileNotFoundError when the report or a model's CSV is missing."""
    models_dir = Path(models_dir)
    report_path = models_dir / "ACCURACY.md"
    text = report_path.read_text(encoding="utf-8")
    entries = read_manifest(models_dir)
    section = held_out_of_folder(entries, {e.name: read_cases(models_dir / f"accuracy-{e.name}.csv") for e in entries})
    if section is None:
        raise FileNotFoundError(f"{models_dir}: a held-out section needs an FP32 model and another model")
    head = text.split(f"\n{HELD_OUT_TITLE}\n", 1)[0].rstrip("\n") + "\n\n"
    report_path.write_text(head + section, encoding="utf-8")
    return report_path


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
    from engine.inference.precision import int8_mode, int8_wording

    mode, why = int8_mode()
    lines = [f"# Accuracy report ({dt.date.today()})\n\n",
             f"Data: `{eval_dir}` ({len(files)} cases). Challenge metrics (engine/metrics.py, SPEC C). "
             f"Each case starts with an empty embedding cache; seconds = load + segment, as `boxseg eval` reports.\n"
             f"OpenVINO inference precision f32, {threads} threads. Total time {time.perf_counter() - t0:.0f} s"
             + (f" (per-case results of the held-out protocol's cache `{Path(cache).name}` reused where it had this "
                "model on this CPU class; the early-stop runs ran here). " if cache is not None else ". ")
             + "Written by `python -m quantization report` (quantization/report.py) from the per-case CSVs beside it. "
             + f"INT8 layers ran {int8_wording(mode)} ({why}).\n\n",
             markdown(describe()), *render_table(results)]
    section = held_out_of_folder(entries, results)
    if section is not None:
        lines += ["\n", section]
    out = Path(models_dir) / "ACCURACY.md"
    out.write_text("".join(lines), encoding="utf-8")
    log(f"wrote {out}")
    return out
