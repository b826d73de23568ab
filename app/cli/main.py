"""``boxseg`` command line: the parser (one module of :mod:`app.cli` per subcommand) and the entry point.

Never imports Qt (the desktop app is started by ``boxseg app``, :mod:`app.cli.desktop`, and by
``boxseg`` alone). Exit codes: 0 success, 1 some cases or studies failed (eval/infer/batch),
2 bad input or usage (one-line error, no traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

from app.cli import batch, challenge, desktop, files, models, segment, stats
from engine import __version__
from engine.base.errors import BoxSegError

EXIT_BAD_INPUT = 2

#: subcommand modules in the order `boxseg --help` lists them
COMMANDS = (models, challenge, segment, files, stats, desktop, batch)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="boxseg", description="Box-prompted medical image segmentation on the CPU.")
    p.add_argument("--version", action="version", version=f"boxseg {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def _quiet_libraries() -> None:
    """pydicom/highdicom/nibabel warnings can quote header values (a patient's name among them) and
    would break the one-line error contract: the CLI shows its own messages only."""
    warnings.simplefilter("ignore")
    for name in ("pydicom", "highdicom", "nibabel"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if not argv:
        argv = ["app"]  # `boxseg` alone starts the desktop app
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_libraries()
    try:
        return args.func(args)
    except BoxSegError as e:
        print(f"boxseg: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("boxseg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
