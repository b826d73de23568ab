"""Entry point of the frozen BoxSeg (PyInstaller): exactly the ``boxseg`` console script.

``BoxSeg`` alone starts the desktop app; ``BoxSeg app --smoke-test PATH``, ``BoxSeg segment ...``
and every other subcommand work as with ``boxseg`` (see ``app.cli.main``). ``BoxSeg --boxseg-pixel-decoder``
is the child process that decodes JPEG-LS / JPEG 2000 pixel data with a time limit
(:mod:`engine.io.decoder_process`; started by the app itself, talks over its stdin/stdout).
"""

import multiprocessing
import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["--boxseg-pixel-decoder"]:
        # the JPEG-LS / JPEG 2000 decoder child (engine.io.decoder_process.CHILD_FLAG): no app, no Qt
        from engine.io.decoder_process import serve

        sys.exit(serve())
    multiprocessing.freeze_support()  # a no-op unless a library ever spawns worker processes
    from app.cli.main import main

    sys.exit(main())
