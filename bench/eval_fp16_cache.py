"""What storing embeddings as float16 does to the masks: float32 vs float16-stored embeddings on the eval cases.

    python bench/eval_fp16_cache.py [--every 5] [--propagate spleen2 ...] [--out FILE]

Needs shared/data (eval/) and the bundled model. The session's embedding cache keeps embeddings as float16
(``SessionConfig.cache_storage="f16"``, engine.inference.cache) and gives them back as float32; this measures
what that rounding changes, against the exact float32 embeddings:

* 2D: every ``--every``-th 2D case (sorted names), each of its boxes decoded twice from one encoder run —
  from the float32 embedding and from the same embedding rounded to float16 and back;
* 3D slices: the middle slice of each target's extent in every 3D case, its tight ground-truth box;
* propagation (``--propagate`` case-name substrings, default the MSD spleen): the whole challenge flow
  (``engine.pipeline.segment_case``, no early stop) with an exact ("f32") and a float16 ("f16") session,
  where the rounding reaches every slice's box through the previous slice's mask.

Reports the DSC between the two masks (1.0 = identical) and each one's DSC against the ground truth.
Writes bench/results/fp16-cache-<date>.md with engine.base.sysinfo.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.base.atomic import write_text  # noqa: E402
from engine.base.sysinfo import describe, markdown  # noqa: E402
from engine.inference.session import Session, SessionConfig  # noqa: E402
from engine.inference.transforms import as_rgb_u8, box_to_model, postprocess, preprocess  # noqa: E402
from engine.io.challenge_npz import load_case  # noqa: E402
from engine.pipeline import segment_case  # noqa: E402

EVAL = REPO.parent / "shared" / "data" / "eval"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


def rounded(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What an "f16" cache gives back: float32 arrays rounded to float16 and widened again."""
    return {k: v.astype(np.float16).astype(np.float32) if v.dtype == np.float32 else v for k, v in outputs.items()}


def both_masks(session: Session, image: np.ndarray, boxes) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """One encoder run, each box decoded from the float32 and the float16-rounded embedding:
    [(mask32, mask16, max |logit difference|)]."""
    rgb = as_rgb_u8(image)
    x, geom = preprocess(rgb)
    out32 = session.runtime.infer("encoder", {"image": x})
    out32 = {k: np.array(v, np.float32 if v.dtype == np.float32 else v.dtype) for k, v in out32.items()}
    st32, st16 = session.decoder_state(out32), session.decoder_state(rounded(out32))
    res = []
    for b in boxes:
        box256 = box_to_model(b, geom)
        net_in = x if session.family.box_prompts else None
        lo32, _ = session.decode(st32, box256, network_input=net_in)
        lo16, _ = session.decode(st16, box256, network_input=net_in)
        res.append((postprocess(lo32, geom), postprocess(lo16, geom), float(np.abs(lo32 - lo16).max())))
    return res


def summary(rows: list[dict]) -> str:
    if not rows:
        return "| (none) | | | | | |"
    agree = [r["agree"] for r in rows]
    d32, d16 = [r["dsc32"] for r in rows], [r["dsc16"] for r in rows]
    identical = sum(a == 1.0 for a in agree)
    return (f"| {len(rows)} | {identical} | {statistics.mean(agree):.5f} / {min(agree):.4f} | "
            f"{statistics.mean(d32):.4f} | {statistics.mean(d16):.4f} | {statistics.mean(d16) - statistics.mean(d32):+.5f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, default=5, help="take every N-th 2D case (default 5: 40 of 196)")
    ap.add_argument("--propagate", nargs="*", default=["spleen2"], help="3D cases (name substrings) to propagate")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / f"fp16-cache-{dt.date.today()}.md")
    args = ap.parse_args(argv)
    if not EVAL.is_dir():
        print(f"no {EVAL}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    session = Session(SessionConfig(threads=args.threads, cache_storage="f32"))
    rows2d, rows3d, worst = [], [], []
    for path in sorted(EVAL.glob("2DBox_*.npz"))[::args.every]:
        case = load_case(path)
        for k, (m32, m16, dl) in enumerate(both_masks(session, case.imgs, case.boxes), start=1):
            gt = case.gts == k
            rows2d.append({"case": path.stem, "agree": dice(m32, m16), "dsc32": dice(m32, gt), "dsc16": dice(m16, gt),
                           "dlogit": dl})
    for path in sorted(EVAL.glob("3DBox_*.npz")):
        case = load_case(path)
        for k, b in enumerate(case.boxes, start=1):
            z = int(b[2] + (b[5] - b[2]) // 2)
            gt = case.gts[z] == k
            if not gt.any():
                continue
            ys, xs = np.nonzero(gt)
            (m32, m16, dl), = both_masks(session, case.imgs[z], [[xs.min(), ys.min(), xs.max(), ys.max()]])
            rows3d.append({"case": f"{path.stem} z{z}", "agree": dice(m32, m16), "dsc32": dice(m32, gt),
                           "dsc16": dice(m16, gt), "dlogit": dl})
    prop = []
    if args.propagate:
        s32 = session
        s16 = Session(SessionConfig(threads=args.threads, cache_storage="f16"))
        for path in sorted(EVAL.glob("3DBox_*.npz")):
            if not any(s in path.stem for s in args.propagate):
                continue
            case = load_case(path)
            seg32, seg16 = segment_case(s32, case), segment_case(s16, case)
            for k in range(1, len(case.boxes) + 1):
                gt = case.gts == k
                prop.append({"case": path.stem, "agree": dice(seg32 == k, seg16 == k), "dsc32": dice(seg32 == k, gt),
                             "dsc16": dice(seg16 == k, gt), "dlogit": float("nan")})
    worst = sorted(rows2d + rows3d + prop, key=lambda r: r["agree"])[:5]
    elapsed = time.perf_counter() - t0

    lines = [f"# Embeddings stored as float16: effect on the masks ({dt.date.today()})", "",
             "`python bench/eval_fp16_cache.py" + (f" --every {args.every}" if args.every != 5 else "") + "` "
             f"({elapsed:.0f} s). Model: {session.entry.name} ({session.entry.family}, {session.entry.precision}).",
             "Each 2D case and 3D slice is encoded once; its boxes are decoded from the float32 embedding and from",
             "the same embedding rounded to float16 (what `EmbeddingCache(storage=\"f16\")` gives back). Propagation",
             "runs the challenge flow (no early stop) with an exact and a float16 session.", "",
             "| set | masks | identical | DSC float16 vs float32 (mean / min) | DSC vs GT, float32 | "
             "DSC vs GT, float16 | difference |",
             "|---" * 7 + "|"]
    for name, rows in ((f"2D boxes, every {args.every}-th 2D case", rows2d), ("3D middle slices", rows3d),
                       ("3D propagation (" + ", ".join(args.propagate) + ")", prop)):
        lines.append(f"| {name} {summary(rows)}")
    dl = [r["dlogit"] for r in rows2d + rows3d]
    lines += ["", f"Largest change of a low-res logit (2D boxes and slices): {max(dl):.4g} (median {statistics.median(dl):.3g}).",
              "", "Least agreeing masks:", "", "| case | DSC f16 vs f32 | DSC vs GT f32 | DSC vs GT f16 |", "|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['agree']:.4f} | {r['dsc32']:.4f} | {r['dsc16']:.4f} |" for r in worst]
    lines += ["", "## Machine", "", markdown(describe())]
    text = "\n".join(lines) + "\n"
    print(text)
    write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
