"""``boxseg models``: the installed models, their precision, sha256 and status, and what ``--precision auto``
chooses on this CPU and why."""

from __future__ import annotations

import sys

from engine.base.errors import ModelError
from engine.inference.manifest import scan_models
from engine.inference.precision import resolve
from engine.inference.session import SessionConfig, configured_model


def auto_choice_lines(precision: str = "auto") -> list[str]:
    """What ``precision`` resolves to on this CPU: the model, the inference precision hint and the reason
    (:data:`engine.inference.precision.AUTO_RULES`)."""
    try:
        entry = configured_model(SessionConfig(precision=precision))
    except ModelError:
        entry = None
    return resolve(precision).explain(entry)


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
    print()
    for line in auto_choice_lines():
        print(line)
    return 0


def add_parser(sub) -> None:
    m = sub.add_parser("models", help="list installed models (name, precision, sha256, status) and what "
                                      "--precision auto chooses on this CPU")
    m.set_defaults(func=cmd_models)


__all__ = ["add_parser", "auto_choice_lines", "cmd_models"]
