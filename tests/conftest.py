"""Shared test helpers: location of the /work/shared reference data."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Reference data shared between engineers (spec test data); absent on most machines.
SHARED = Path(__file__).resolve().parents[2] / "shared"

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"shared reference data not found at {SHARED}"
)
