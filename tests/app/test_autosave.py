"""Autosave snapshots only go back onto the image they were made on (no Qt; issue 18)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from app.autosave import Snapshot, image_fingerprint, list_snapshots, mismatch, read_snapshot, write_snapshot
from engine.data.image import Image


@pytest.fixture(autouse=True)
def autosave_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BOXSEG_AUTOSAVE_DIR", str(tmp_path / "autosave"))
    return tmp_path / "autosave"


def volume(seed=0, spacing=1.0):
    rng = np.random.default_rng(seed)
    return Image(rng.integers(-1000, 1000, (4, 16, 12), dtype=np.int16), np.diag([spacing, 1.0, 2.0, 1.0]),
                 modality="CT", units="HU")


def snapshot_of(img, **kw):
    labels = np.zeros(img.shape, np.uint8)
    labels[1, 2:5, 3:6] = 1
    return Snapshot(key="k", source="/x/scan.nii.gz", series_uid=None, labels=labels, objects=[], z=1,
                    fingerprint=image_fingerprint(img), affine=img.affine.tolist(), **kw)


def test_fingerprint_follows_content_not_identity():
    a, b = volume(0), volume(0)
    assert image_fingerprint(a) == image_fingerprint(b)
    assert image_fingerprint(a) != image_fingerprint(volume(1))
    c = volume(0)
    c.voxels[3, 15, 11] += 1  # one voxel of another patient's scan is enough
    assert image_fingerprint(a) != image_fingerprint(c)
    d = Image(a.voxels.astype(np.int32), a.affine)
    assert image_fingerprint(a) != image_fingerprint(d)


def test_mismatch_names_the_reason():
    img = volume(0)
    snap = snapshot_of(img)
    assert mismatch(snap, img, image_fingerprint(img)) is None
    assert "content" in mismatch(snap, volume(1), image_fingerprint(volume(1)))
    moved = volume(0, spacing=0.8)
    assert "position or spacing" in mismatch(snap, moved, image_fingerprint(moved))
    small = Image(np.zeros((4, 16, 10), np.int16), img.affine)
    assert "size" in mismatch(snap, small, image_fingerprint(small))
    old = Snapshot(key="k", source="s", series_uid=None, labels=snap.labels, objects=[], z=0)  # format 1
    assert "older BoxSeg" in mismatch(old, img, image_fingerprint(img))


def test_snapshot_round_trip_is_private(autosave_dir):
    img = volume(0)
    path = write_snapshot(snapshot_of(img))
    back = read_snapshot(path)
    assert back.fingerprint == image_fingerprint(img) and np.allclose(back.affine, img.affine)
    assert mismatch(back, img, image_fingerprint(img)) is None
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(autosave_dir.stat().st_mode) == 0o700
    assert [s.key for s in list_snapshots()] == ["k"]
