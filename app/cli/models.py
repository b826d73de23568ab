"""``boxseg models``: the installed models, their precision, sha256 and status."""

from __future__ import annotations

import sys

from engine.inference.manifest import scan_models


def cmd_models(args) -> int:
    scan = scan_models()
    for w in scan.warnings:  # a skipped manifest, a model ignored for its name (docs: engine.inference.manifest)
        print(f"warning: {w}", file=sys.stderr)
    models = scan.models
    if not models:
        print("no models installed; build them with `python -m quantization build`")
        return 0
    print(f"{'name':<20} {'family':<16} {'precision':<9} {'status':<8} {'sha256 (encoder)':<18} location")
    for m in models:
        problems = m.check()
        enc = next((f["sha256"][:16] for f in m.files if f["path"] == m.graphs.get("encoder", "")[:-4] + ".bin"), "?")
        status = "ok" if not problems else "BROKEN"
        flag = " (default)" if m.default else ""
        print(f"{m.name:<20} {m.family:<16} {m.precision:<9} {status:<8} {enc:<18} {m.root}{flag}")
        for p in problems:
            print(f"    ! {p}")
    return 0


def add_parser(sub) -> None:
    m = sub.add_parser("models", help="list installed models (name, precision, sha256, status)")
    m.set_defaults(func=cmd_models)


__all__ = ["add_parser", "cmd_models"]
