"""BoxSeg engine: numpy + OpenVINO inference for box-prompted medical segmentation.

This package must never import Qt, torch, nncf, ``app`` or ``quantization`` (enforced by
``tests/test_architecture.py`` and the import-linter contracts in ``pyproject.toml``).
"""

__version__ = "0.1.0"
