"""BoxSeg front ends: the `boxseg` CLI and (later) the PySide6 desktop app."""
