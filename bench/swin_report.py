"""Swin-LiteMedSAM report: parity, INT8 accuracy drop, BF16 speed/accuracy (parity weights).

    python bench/swin_report.py [--work /tmp/boxseg-swin-report] [--models DIR] [--runs 15]
                                [--threads 2] [--real 7] [--out FILE]

Reproducible end to end from ``../shared/swin_parity`` (synthetic weights, fixed inputs, the official
code's outputs) and ``../shared/data``:

1. regenerates the parity weights (``gen_weights.build_state_dict``, digest checked) into
   ``WORK/swin_parity.pth``;
2. builds the models into ``--models`` (default ``WORK/models``) with ``quantization.build.build_swin``
   (FP32 encoder + decoder IR, NNCF INT8 encoder on ``shared/data/calib``), or reuses that folder when
   its manifest holds both models, its files verify and it was built from the same .pth;
3. runs ``python -m quantization parity`` with both backends and compares with ``expected.npz``;
4. runs the parity inputs through the torch model and the engine's :class:`~engine.inference.runtime.Runtime`
   (FP32 IR at f32 and bf16, INT8 encoder + FP32 decoder at f32 and bf16) with the explicit prompts,
   and compares every encoder output (``embedding``, ``f0``, ``n64``) and the decoder outputs;
5. encodes one real 2D image per modality of ``shared/data/eval`` with each configuration (encoder
   output cosine, mask agreement on the case's first box with the generated box prompts);
6. times encoder and decoder (median / min over ``--runs`` interleaved runs, ``--threads`` threads,
   PERFORMANCE_HINT LATENCY) for torch eager, FP32 IR f32/bf16, INT8 encoder f32/bf16;
7. runs ``boxseg eval --model swin-litemedsam-int8 --precision bf16`` on 3 eval cases (must not fail).

Writes markdown (default ``bench/results/swin-<date>.md``). The synthetic weights are not a trained
model: the numbers measure arithmetic fidelity (how far INT8/BF16 move this network's outputs), not
segmentation quality. Heavy: run it alone, e.g. ``flock /tmp/boxseg-heavy.lock python bench/swin_report.py``
(build the models first under ``nice`` if the machine is shared, then pass ``--models``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_engine import interleaved  # noqa: E402  (median / min / max ms, round-robin)
SHARED = REPO.parent / "shared"
WEIGHTS_SHA256 = "b68d6596832f186367b83908b750d1240c3ce946c01a77fec6a84c802c3c6294"
OUTPUTS = ("embedding", "f0", "n64")
#: the CLI check: two 2D cases and a small multi-object 3D case
CLI_CASES = ("2DBox_CT_MedScribble-BTCV_0763890-Image", "2DBox_US_", "3DBox_CT_dcmqi_ct-3slice")


# ------------------------------------------------------------------------------------------------
# comparisons
# ------------------------------------------------------------------------------------------------


def cos(a, b) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def maxabs(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).max())


def masks(la, lb, ignore_below: float = 0.0) -> dict:
    """Agreement of logits>0 masks; ``ignore_below``: pixels with |lb| below it are not counted as flips."""
    ma, mb = np.asarray(la).reshape(-1) > 0, np.asarray(lb).reshape(-1) > 0
    union = int((ma | mb).sum())
    differ = ma != mb
    firm = differ & (np.abs(np.asarray(lb).reshape(-1)) >= ignore_below)
    return {"equal": float(1 - differ.mean()), "iou": (int((ma & mb).sum()) / union) if union else 1.0,
            "flipped": int(differ.sum()), "flipped_firm": int(firm.sum()), "px_a": int(ma.sum()), "px_b": int(mb.sum())}


# ------------------------------------------------------------------------------------------------
# setup
# ------------------------------------------------------------------------------------------------


def make_weights(parity_dir: Path, work: Path, log) -> Path:
    """Regenerate the parity weights into WORK/swin_parity.pth (kept if the digest file matches)."""
    pth, stamp = work / "swin_parity.pth", work / "swin_parity.sha256"
    sys.path.insert(0, str(parity_dir))
    import gen_weights  # noqa: E402 - from shared/swin_parity

    arrays = gen_weights.build_numpy()
    digest = gen_weights.digest(arrays)
    if digest != WEIGHTS_SHA256:
        raise SystemExit(f"regenerated weights digest {digest} != README's {WEIGHTS_SHA256}")
    if pth.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        log(f"weights: reusing {pth} (digest {digest[:16]}...)")
        return pth
    import torch

    work.mkdir(parents=True, exist_ok=True)
    torch.save(gen_weights.build_state_dict(), pth)
    stamp.write_text(digest + "\n")
    log(f"weights: wrote {pth} (digest {digest[:16]}...)")
    return pth


def ensure_models(pth: Path, models: Path, calib: Path, log) -> tuple[dict, str]:
    """name -> ModelEntry of swin-litemedsam-{fp32,int8} in ``models``; builds them if needed."""
    from engine.inference.manifest import read_manifest, sha256_file

    sha = sha256_file(pth)

    def usable():
        got = {e.name: e for e in read_manifest(models) if e.family == "swin-litemedsam"} if models.is_dir() else {}
        ok = (set(got) >= {"swin-litemedsam-fp32", "swin-litemedsam-int8"}
              and all(not e.check() and e.source_checkpoint.get("sha256") == sha for e in got.values()))
        return got if ok else None

    got = usable()
    if got:
        return got, f"reused {models} (built from this .pth, files verified)"
    from quantization.build import build_swin

    t = time.perf_counter()
    build_swin(pth, models, calib, log=log)
    got = usable()
    if not got:
        raise SystemExit(f"build into {models} did not produce verifiable swin-litemedsam models")
    return got, f"built into {models} in {time.perf_counter() - t:.0f} s"


# ------------------------------------------------------------------------------------------------
# runs
# ------------------------------------------------------------------------------------------------


def parity_commands(pth: Path, parity_dir: Path, work: Path, threads: int, log) -> list[dict]:
    exp = np.load(parity_dir / "expected.npz")
    rows = []
    for backend in ("torch", "openvino"):
        out = work / f"parity-{backend}.npz"
        cmd = [sys.executable, "-m", "quantization", "parity", "--arch", "swin-litemedsam", "--checkpoint", str(pth),
               "--inputs", str(parity_dir / "inputs.npz"), "--backend", backend, "--out", str(out),
               "--threads", str(threads)]
        t = time.perf_counter()
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        secs = time.perf_counter() - t
        if r.returncode != 0:
            raise SystemExit(f"parity --backend {backend} failed:\n{r.stderr}")
        log(r.stdout.strip())
        got = np.load(out)
        m = masks(got["logits"], exp["logits"], ignore_below=1e-3)
        rows.append({"backend": backend, "cmd": cmd, "seconds": secs, "logits": maxabs(got["logits"], exp["logits"]),
                     "iou": abs(float(got["iou"].reshape(-1)[0]) - float(exp["iou"].reshape(-1)[0])),
                     "flipped": m["flipped"], "flipped_firm": m["flipped_firm"]})
    return rows


def parity_inputs(parity_dir: Path) -> dict:
    from quantization.parity import load_inputs

    return load_inputs(parity_dir / "inputs.npz")


def torch_outputs(model, x: dict) -> dict:
    import torch

    t = {k: torch.from_numpy(v) for k, v in x.items()}
    with torch.no_grad():
        emb, (f0, f1, f2, f3) = model.encode(t["image"])
        n64 = model.mask_decoder.skip_neck(f1, f2, f3)
        logits, iou = model.decode(emb, (f0, n64), t["box"], (t["points"], t["labels"]), t["scribble"])
    return {"embedding": emb.numpy(), "f0": f0.numpy(), "n64": n64.numpy(), "logits": logits.numpy(),
            "iou": iou.numpy().reshape(1, 1)}


def expected_outputs(model, parity_dir: Path) -> dict:
    """expected.npz in float32, plus n64 = our torch skip neck on the expected (fp16-stored) f1..f3."""
    import torch

    z = np.load(parity_dir / "expected.npz")
    out = {k: z[k].astype(np.float32) for k in ("embedding", "f0", "logits", "iou")}
    with torch.no_grad():
        f = [torch.from_numpy(z[k].astype(np.float32)) for k in ("f1", "f2", "f3")]
        out["n64"] = model.mask_decoder.skip_neck(*f).numpy()
    return out


def ov_outputs(rt, x: dict) -> dict:
    enc = rt.infer("encoder", {"image": x["image"]})
    dec = rt.infer("decoder", {"embedding": enc["embedding"], "f0": enc["f0"], "n64": enc["n64"],
                               "points": x["points"], "labels": x["labels"], "box": x["box"], "scribble": x["scribble"]})
    return {**{k: enc[k] for k in OUTPUTS}, "logits": dec["logits"], "iou": dec["iou"].reshape(1, 1)}


def real_cases(eval_dir: Path) -> list[Path]:
    """The first 2D case (sorted by name) of every modality in ``eval_dir``."""
    seen = {}
    for f in sorted(eval_dir.glob("2DBox_*.npz")):
        seen.setdefault(f.name.split("_")[1], f)
    return list(seen.values())


def cpu_snapshot() -> tuple[float, float, float, float]:
    """(wall s, busy CPU s of the whole machine, of this process, steal s) from /proc/stat and os.times()."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        busy = (v[0] + v[1] + v[2] + v[5] + v[6]) / hz  # user nice system irq softirq
        steal = v[7] / hz if len(v) > 7 else 0.0
    except (OSError, ValueError, IndexError):
        busy = steal = float("nan")
    t = os.times()
    return time.perf_counter(), busy, t.user + t.system, steal


def others_load(a, b) -> str:
    wall = b[0] - a[0]
    return (f"other processes used {((b[1] - a[1]) - (b[2] - a[2])) / wall:.2f} CPU cores on average during the "
            f"timing (this process {(b[2] - a[2]) / wall:.2f}; steal {(b[3] - a[3]) / wall:.2f})")


def cli_check(models: Path, eval_dir: Path, work: Path, threads: int) -> dict:
    """`boxseg eval --model swin-litemedsam-int8 --precision bf16` on 3 cases (linked into WORK/cli-cases)."""
    d = work / "cli-cases"
    d.mkdir(parents=True, exist_ok=True)
    for old in d.iterdir():
        old.unlink()
    for prefix in CLI_CASES:
        src = sorted(eval_dir.glob(prefix + "*.npz"))[0]
        (d / src.name).symlink_to(src)
    csv = work / "cli-eval.csv"
    cmd = [sys.executable, "-m", "app.cli.main", "eval", str(d), "--model", "swin-litemedsam-int8", "--precision", "bf16",
           "--threads", str(threads), "--csv", str(csv)]
    env = {**os.environ, "BOXSEG_MODEL_PATH": str(models)}
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    return {"cmd": cmd, "rc": r.returncode, "seconds": time.perf_counter() - t, "csv": csv.read_text() if csv.is_file() else "",
            "stderr": "\n".join(ln for ln in r.stderr.splitlines() if ln.startswith("model ") or "error" in ln.lower()),
            "stdout": r.stdout.strip()}


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/boxseg-swin-report"))
    p.add_argument("--models", type=Path, default=None, help="model folder to build into / reuse (default WORK/models)")
    p.add_argument("--parity", type=Path, default=SHARED / "swin_parity")
    p.add_argument("--calib", type=Path, default=SHARED / "data" / "calib")
    p.add_argument("--eval", type=Path, default=SHARED / "data" / "eval")
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--real", type=int, default=7, help="real 2D eval images (one per modality; 0 = skip)")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-cli", action="store_true")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    t_start = time.perf_counter()

    def log(msg):
        print(msg, flush=True)

    import torch

    from engine.inference.runtime import Runtime
    from engine.inference.session import Session, SessionConfig
    from engine.base.sysinfo import describe, markdown
    from quantization.swin_export import SwinDecoderWrapper
    from quantization.swin_litemedsam import load_swin_litemedsam

    torch.set_num_threads(args.threads)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    models_dir = args.models or work / "models"
    pth = make_weights(args.parity, work, log)
    entries, how_built = ensure_models(pth, models_dir, args.calib, log)
    log(f"models: {how_built}")
    fp32, int8 = entries["swin-litemedsam-fp32"], entries["swin-litemedsam-int8"]
    info = describe()
    L = [f"# Swin-LiteMedSAM report ({dt.datetime.now():%Y-%m-%d %H:%M})\n\n", markdown(info),
         f"- OpenVINO threads: {args.threads} (INFERENCE_NUM_THREADS, PERFORMANCE_HINT LATENCY); torch threads: "
         f"{args.threads}\n",
         f"- weights: synthetic parity weights regenerated by `shared/swin_parity/gen_weights.py` (sha256 "
         f"{WEIGHTS_SHA256[:16]}...) into `{pth}`; models {how_built}\n",
         f"- INT8 encoder: {_notes(models_dir, int8.name)}\n",
         "\nThe weights are synthetic (not a trained model): the numbers below measure how far each runtime "
         "and precision moves this network's outputs, not segmentation quality.\n"]

    # 1. the parity command, both backends -------------------------------------------------------
    log("parity commands ...")
    prow = parity_commands(pth, args.parity, work, args.threads, log)
    L.append("\n## `python -m quantization parity` vs `expected.npz`\n\n"
             "| backend | logits max abs | iou abs diff | mask px differing (all / where abs(expected) >= 1e-3) | seconds |\n"
             "|---|---:|---:|---:|---:|\n")
    for r in prow:
        L.append(f"| {r['backend']} | {r['logits']:.2e} | {r['iou']:.2e} | {r['flipped']} / {r['flipped_firm']} | "
                 f"{r['seconds']:.1f} |\n")
    L.append("\nCommands:\n\n```\n" + "\n".join(" ".join(_short(c) for c in r["cmd"]) for r in prow) + "\n```\n")

    # 2. parity inputs through every configuration ----------------------------------------------
    log("parity inputs through torch / OpenVINO configurations ...")
    model = load_swin_litemedsam(pth)
    x = parity_inputs(args.parity)
    ref = {"expected": expected_outputs(model, args.parity), "torch": torch_outputs(model, x)}
    rts = {"ov-fp32@f32": Runtime(fp32, threads=args.threads, precision="f32"),
           "ov-fp32@bf16": Runtime(fp32, threads=args.threads, precision="bf16"),
           "ov-int8@f32": Runtime(int8, threads=args.threads, precision="f32"),
           "ov-int8@bf16": Runtime(int8, threads=args.threads, precision="bf16")}
    actual = {k: rt.precision for k, rt in rts.items()}
    res = {"torch": ref["torch"], **{k: ov_outputs(rt, x) for k, rt in rts.items()}}
    base = res["ov-fp32@f32"]
    L.append("\n## Encoder outputs on the parity inputs\n\n"
             "Cosine similarity and max abs difference of each encoder output. `expected`: the official code's "
             "outputs (stored as float16, so max abs vs expected includes the fp16 rounding: half a float16 step, "
             "~1e-3 for values in [2, 4), ~2e-3 in [4, 8)); `n64` is not stored there and is our torch skip neck applied to the expected f1..f3).\n\n"
             "| configuration (actual OpenVINO precision) | output | cos vs ov-fp32@f32 | max abs vs ov-fp32@f32 | "
             "cos vs expected | max abs vs expected | max abs of output |\n|---|---|---:|---:|---:|---:|---:|\n")
    for k, out in res.items():
        label = f"{k} ({actual[k]})" if k in actual else k
        for o in OUTPUTS:
            L.append(f"| {label} | {o} | {cos(out[o], base[o]):.6f} | {maxabs(out[o], base[o]):.2e} | "
                     f"{cos(out[o], ref['expected'][o]):.6f} | {maxabs(out[o], ref['expected'][o]):.2e} | "
                     f"{float(np.abs(out[o]).max()):.2f} |\n")
    exp = ref["expected"]
    L.append("\n## Decoder outputs on the parity inputs (explicit prompts)\n\n"
             f"The INT8 model's decoder is the FP32 decoder IR. Masks are logits > 0; expected mask: "
             f"{int((exp['logits'] > 0).sum())} px, IoU score {float(exp['iou'].ravel()[0]):.6f}. "
             "'firm' flips exclude pixels where abs(expected logit) < 1e-3.\n\n"
             "| configuration | logits max abs vs ov-fp32@f32 | mask IoU / equal px vs ov-fp32@f32 | "
             "logits max abs vs expected | mask IoU / equal px vs expected | px flipped vs expected (all / firm) | "
             "IoU score | IoU score diff vs fp32 / vs expected |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
    for k, out in res.items():
        mb, me = masks(out["logits"], base["logits"]), masks(out["logits"], exp["logits"], 1e-3)
        s = float(out["iou"].ravel()[0])
        L.append(f"| {k} | {maxabs(out['logits'], base['logits']):.2e} | {mb['iou']:.5f} / {mb['equal']:.6f} | "
                 f"{maxabs(out['logits'], exp['logits']):.2e} | {me['iou']:.5f} / {me['equal']:.6f} | "
                 f"{me['flipped']} / {me['flipped_firm']} | {s:.6f} | "
                 f"{abs(s - float(base['iou'].ravel()[0])):.2e} / {abs(s - float(exp['iou'].ravel()[0])):.2e} |\n")

    # 3. real images ------------------------------------------------------------------------------
    if args.real:
        log("real eval images ...")
        from engine.io.challenge_npz import load_case

        cases = real_cases(args.eval)[: args.real]
        sess = {k: Session(SessionConfig(threads=args.threads, precision=pr), entry=e)
                for k, (e, pr) in {"ov-fp32@f32": (fp32, "f32"), "ov-fp32@bf16": (fp32, "bf16"),
                                   "ov-int8@f32": (int8, "f32"), "ov-int8@bf16": (int8, "bf16")}.items()}
        L.append("\n## Real images (one 2D eval case per modality; synthetic weights, so no DSC)\n\n"
                 "Encoder outputs vs ov-fp32@f32: min cosine over embedding / f0 / n64. Mask: the case's first box "
                 "through the predictor (generated box-based points + scribble), IoU of the logits>0 masks in "
                 "256-space vs ov-fp32@f32.\n\n"
                 "| case | " + " | ".join(f"{k} cos (emb / f0 / n64) | {k} mask IoU" for k in sess if k != "ov-fp32@f32")
                 + " |\n|---|" + "---:|---:|" * (len(sess) - 1) + "\n")
        agg = {k: [] for k in sess}
        for f in cases:
            c = load_case(f)
            outs = {}
            for k, s in sess.items():
                pr = s.predictor()
                pr.set_image(c.imgs)
                outs[k] = (pr._outputs, pr.predict(c.boxes[0]).low_res)
            b_enc, b_low = outs["ov-fp32@f32"]
            cells = []
            for k in sess:
                if k == "ov-fp32@f32":
                    continue
                e, low = outs[k]
                cs = [cos(e[o], b_enc[o]) for o in OUTPUTS]
                mi = masks(low, b_low)["iou"]
                agg[k].append((cs, mi))
                cells.append(f"{' / '.join(f'{v:.4f}' for v in cs)} | {mi:.4f}")
            L.append(f"| {f.name[:-4]} | " + " | ".join(cells) + " |\n")
        L.append("| **mean** | " + " | ".join(
            f"{' / '.join(f'{np.mean([a[0][i] for a in agg[k]]):.4f}' for i in range(3))} | "
            f"{np.mean([a[1] for a in agg[k]]):.4f}" for k in sess if k != "ov-fp32@f32") + " |\n")

    # 4. speed ------------------------------------------------------------------------------------
    if not args.skip_speed:
        from quantization.swin_export import SwinEncoderWrapper

        log("timing ...")
        enc_t = SwinEncoderWrapper(model).eval()
        dec_t = SwinDecoderWrapper(model).eval()
        xi = {"image": x["image"]}
        e0 = base
        dfeed = {"embedding": e0["embedding"], "f0": e0["f0"], "n64": e0["n64"], "points": x["points"],
                 "labels": x["labels"], "box": x["box"], "scribble": x["scribble"]}
        tt = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in dfeed.items()}
        ti = torch.from_numpy(x["image"])
        load0, cpu0 = os.getloadavg(), cpu_snapshot()
        with torch.no_grad():
            enc = interleaved({"torch-fp32 (eager)": lambda: enc_t(ti),
                               **{k: (lambda rt=rt: rt.infer("encoder", xi)) for k, rt in rts.items()}}, args.runs)
            dec = interleaved({"torch-fp32 (eager)": lambda: dec_t(*(tt[n] for n in dfeed)),
                               **{k: (lambda rt=rt: rt.infer("decoder", dfeed)) for k, rt in rts.items()
                                  if k.startswith("ov-fp32")}}, args.runs * 2)
        load1, cpu1 = os.getloadavg(), cpu_snapshot()
        tref = enc["torch-fp32 (eager)"][0]
        fref = enc["ov-fp32@f32"][0]
        L.append(f"\n## Speed (ms, median / min / max; encoder {args.runs} runs, decoder {2 * args.runs} runs, "
                 f"interleaved; load average 1/5/15 min before {load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f}, "
                 f"after {load1[0]:.2f} / {load1[1]:.2f} / {load1[2]:.2f}, this process included; {others_load(cpu0, cpu1)})\n\n"
                 "Encoder = Swin encoder + the hoisted skip neck (outputs embedding, f0, n64); decoder = prompt "
                 "encoder + skip mask decoder with 4 points, box and scribble. The INT8 models use the FP32 decoder "
                 "IR, so their decoder time is the FP32 IR's at the same precision.\n\n"
                 "| configuration | encoder | vs torch | vs ov-fp32@f32 | decoder |\n|---|---:|---:|---:|---:|\n")
        for k, e in enc.items():
            d = dec.get(k) or dec.get("ov-fp32@" + k.split("@")[1])
            L.append(f"| {k} | {e[0]:.0f} / {e[1]:.0f} / {e[2]:.0f} | {tref / e[0]:.2f}x | {fref / e[0]:.2f}x | "
                     f"{d[0]:.1f} / {d[1]:.1f} / {d[2]:.1f}{'' if k in dec else ' (FP32 IR)'} |\n")

    # 5. CLI --------------------------------------------------------------------------------------
    if not args.skip_cli:
        log("boxseg eval --precision bf16 ...")
        r = cli_check(models_dir, args.eval, work, args.threads)
        L.append("\n## `boxseg eval` with the INT8 model at bf16 (accuracy meaningless: synthetic weights)\n\n"
                 f"```\nBOXSEG_MODEL_PATH={models_dir} {' '.join(_short(c) for c in r['cmd'])}\n```\n\n"
                 f"exit status {r['rc']}, {r['seconds']:.0f} s; {r['stderr']}\n\n```\n{r['csv'].strip()}\n```\n")
        if r["rc"] != 0:
            log(f"boxseg eval failed (rc {r['rc']})")

    L.append(f"\nReport generated in {time.perf_counter() - t_start:.0f} s by `{' '.join(_short(a) for a in sys.argv)}`.\n")
    text = "".join(L)
    out = args.out or REPO / "bench" / "results" / f"swin-{dt.date.today()}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"wrote {out}")
    return 0


def _notes(models: Path, name: str) -> str:
    import json

    for m in json.loads((models / "manifest.json").read_text())["models"]:
        if m["name"] == name:
            return m.get("notes", "")
    return ""


def _short(arg) -> str:
    """Paths relative to the repository where possible; the interpreter as `python`."""
    s = str(arg)
    if s == sys.executable:
        return "python"
    try:
        return os.path.relpath(s, REPO) if s.startswith("/") and Path(s).is_relative_to(REPO.parent) else s
    except ValueError:
        return s


if __name__ == "__main__":
    sys.exit(main())
