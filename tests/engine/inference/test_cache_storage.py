"""Tests of the embedding cache's float16 storage and of its default budget from the machine's RAM."""

from __future__ import annotations

import numpy as np
import pytest

import engine.inference.cache as cache_mod
from engine.inference.cache import CacheKey, EmbeddingCache, default_max_bytes


def _key(i: int = 0) -> CacheKey:
    return CacheKey(content_hash=f"{i:064x}", slice_index=i, window="u8", model_sha256="ab" * 32)


def _outputs(seed: int = 0) -> dict[str, np.ndarray]:
    """A LiteMedSAM-like embedding (float32 (1, 256, 8, 8), 64 KiB) with values of an encoder's range,
    plus an int32 array that must be kept as it is."""
    rng = np.random.default_rng(seed)
    return {"embedding": rng.normal(0, 0.5, (1, 256, 8, 8)).astype(np.float32),
            "ids": np.arange(10, dtype=np.int32)}


def _check_rounded(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert got["embedding"].dtype == np.float32 and got["embedding"].shape == (1, 256, 8, 8)
    # float16 keeps 11 significant bits: relative error <= 2**-11 for normal numbers, absolute <= 2**-25 below
    err = np.abs(got["embedding"] - want["embedding"])
    assert np.all(err <= np.maximum(np.abs(want["embedding"]) * 2.0**-11, 2.0**-25))
    assert err.max() > 0  # it really was rounded
    np.testing.assert_array_equal(got["embedding"], want["embedding"].astype(np.float16).astype(np.float32))
    assert got["ids"].dtype == np.int32
    np.testing.assert_array_equal(got["ids"], want["ids"])


def test_f16_round_trip_in_memory_counts_the_float16_bytes():
    cache = EmbeddingCache(max_bytes=1 << 20, storage="f16")
    want = _outputs()
    given = cache.put(_key(), want)
    _check_rounded(given, want)
    assert cache.nbytes == 256 * 8 * 8 * 2 + 10 * 4  # float16 embedding + int32 ids
    got = cache.get(_key())
    _check_rounded(got, want)
    np.testing.assert_array_equal(got["embedding"], given["embedding"])  # put gives what get gives
    with pytest.raises(ValueError):
        got["embedding"][0, 0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        got["embedding"].flags.writeable = True


def test_f16_budget_holds_twice_the_entries_of_f32():
    entry32 = 256 * 8 * 8 * 4 + 40
    f32 = EmbeddingCache(max_bytes=4 * entry32, storage="f32")
    f16 = EmbeddingCache(max_bytes=4 * entry32, storage="f16")
    for i in range(10):
        f32.put(_key(i), _outputs(i))
        f16.put(_key(i), _outputs(i))
    assert len(f32) == 4 and f32.nbytes == 4 * entry32
    assert len(f16) == 7 and f16.nbytes == 7 * (256 * 8 * 8 * 2 + 40)


def test_f16_keeps_float32_beyond_float16_range_exact():
    cache = EmbeddingCache(max_bytes=1 << 20, storage="f16")
    big = {"embedding": np.array([1.0, 7.0e4, -3.0], np.float32)}
    cache.put(_key(), big)
    got = cache.get(_key())
    assert got["embedding"].dtype == np.float32
    np.testing.assert_array_equal(got["embedding"], big["embedding"])
    assert cache.nbytes == 12


def test_f16_disk_tier_round_trip_and_separate_from_f32(tmp_path):
    want = _outputs(3)
    EmbeddingCache(max_bytes=1 << 20, disk_dir=tmp_path, storage="f16").put(_key(), want)
    files = sorted(tmp_path.glob("*.npz"))
    assert len(files) == 1
    with np.load(files[0]) as npz:
        assert npz["embedding"].dtype == np.float16  # half the disk too
    reader = EmbeddingCache(max_bytes=1 << 20, disk_dir=tmp_path, storage="f16")
    got = reader.get(_key())
    assert reader.stats.disk_hits == 1
    _check_rounded(got, want)
    assert reader.nbytes == 256 * 8 * 8 * 2 + 40
    # an exact cache on the same folder never gets the rounded values: its own file name and signature
    exact = EmbeddingCache(max_bytes=1 << 20, disk_dir=tmp_path, storage="f32")
    assert exact.get(_key()) is None
    exact.put(_key(), want)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    np.testing.assert_array_equal(EmbeddingCache(disk_dir=tmp_path, storage="f32").get(_key())["embedding"],
                                  want["embedding"])


def test_f16_file_renamed_to_an_f32_name_is_refused(tmp_path):
    EmbeddingCache(disk_dir=tmp_path, storage="f16").put(_key(), _outputs())
    f16_file, = tmp_path.glob("*.npz")
    f16_file.rename(tmp_path / f"{_key().digest()}.npz")
    exact = EmbeddingCache(disk_dir=tmp_path, storage="f32")
    assert exact.get(_key()) is None and exact.stats.disk_refused == 1


def test_unknown_storage_is_refused():
    with pytest.raises(ValueError, match="storage"):
        EmbeddingCache(storage="bf16")


@pytest.mark.parametrize("ram_gib, want_mib", [(4, 128), (8, 256), (12, 384), (16, 512), (256, 512)])
def test_default_budget_follows_ram(monkeypatch, ram_gib, want_mib):
    monkeypatch.delenv(cache_mod.CACHE_ENV, raising=False)
    monkeypatch.setattr(cache_mod, "total_ram_bytes", lambda: ram_gib << 30)
    assert default_max_bytes() == want_mib << 20
    assert EmbeddingCache().max_bytes == want_mib << 20


@pytest.mark.parametrize("ram_gib, want_mib", [(8, 128), (16, 128), (20, 160), (24, 192), (256, 192)])
def test_default_budget_with_a_disk_tier_is_smaller(monkeypatch, tmp_path, ram_gib, want_mib):
    monkeypatch.delenv(cache_mod.CACHE_ENV, raising=False)
    monkeypatch.setattr(cache_mod, "total_ram_bytes", lambda: ram_gib << 30)
    assert default_max_bytes(disk_tier=True) == want_mib << 20
    assert EmbeddingCache(disk_dir=tmp_path).max_bytes == want_mib << 20


def test_default_budget_without_ram_figure_and_env_override(monkeypatch):
    monkeypatch.delenv(cache_mod.CACHE_ENV, raising=False)
    monkeypatch.setattr(cache_mod, "total_ram_bytes", lambda: None)
    assert default_max_bytes() == 256 << 20  # 8 GiB assumed
    monkeypatch.setenv(cache_mod.CACHE_ENV, "300")
    assert default_max_bytes() == 300 << 20
    monkeypatch.setenv(cache_mod.CACHE_ENV, "lots")
    assert default_max_bytes() == 256 << 20
    assert EmbeddingCache(max_bytes=5000).max_bytes == 5000  # an explicit budget wins
