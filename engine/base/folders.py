"""Where BoxSeg's own files are: the bundled assets and the user's data and cache folders.

* bundled assets (models, samples, icon): ``assets/`` of the source checkout or editable install,
  or of the frozen PyInstaller bundle (``sys._MEIPASS``);
* the user's data folder (installed models, autosave) and cache folder (embedding cache):
  ``platformdirs.user_data_dir("BoxSeg")`` / ``user_cache_dir("BoxSeg")``.
"""

from __future__ import annotations

import sys
from pathlib import Path

APP_NAME = "BoxSeg"


def bundle_root() -> Path:
    """The folder holding ``assets/``: the frozen bundle's, or the source checkout's."""
    frozen = getattr(sys, "_MEIPASS", None)
    return Path(frozen) if frozen else Path(__file__).resolve().parents[2]


def assets_dir() -> Path:
    return bundle_root() / "assets"


def user_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def user_cache_dir() -> Path:
    import platformdirs

    # without appauthor=False (unlike the data folder): the embedding cache has always lived here, and on
    # Windows the two spellings are different folders
    return Path(platformdirs.user_cache_dir(APP_NAME))


__all__ = ["APP_NAME", "assets_dir", "bundle_root", "user_cache_dir", "user_data_dir"]
