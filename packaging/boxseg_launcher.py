"""Entry point of the frozen BoxSeg (PyInstaller): exactly the ``boxseg`` console script.

``BoxSeg`` alone starts the desktop app; ``BoxSeg app --smoke-test PATH``, ``BoxSeg segment ...``
and every other subcommand work as with ``boxseg`` (see ``app.cli.main``).
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a no-op unless a library ever spawns worker processes
    from app.cli.main import main

    sys.exit(main())
