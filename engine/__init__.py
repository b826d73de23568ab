"""BoxSeg engine: numpy + OpenVINO inference for box-prompted medical segmentation.

Rooms (docs/ARCHITECTURE.md): ``base`` < ``data`` < ``io`` | ``inference`` < ``pipeline`` < ``eval`` | ``batch``.
This package never imports Qt, torch, nncf, ``app`` or ``quantization`` (the import-linter contracts in
``pyproject.toml``, checked by ``tests/test_architecture.py``).
"""

__version__ = "0.1.0"
