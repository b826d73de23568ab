"""BoxSeg front ends (they import the engine, never each other's internals).

* :mod:`app.cli` — the ``boxseg`` command line; never imports Qt (checked by an import-linter
  contract), except that ``boxseg app`` starts the desktop app through :mod:`app.gui.launch`.
* :mod:`app.gui` — the PySide6 desktop app (the only place Qt is imported).
* :mod:`app.autosave` — autosave snapshots of a session (no Qt: the app writes them, tools can read them).

See docs/ARCHITECTURE.md.
"""
