"""Tests of engine.inference.cache: memory LRU, read-only copies, key identity, disk tier, thread safety."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine.base.atomic import is_temp_name, temp_name
from engine.inference.cache import (
    DISK_FORMAT_VERSION,
    CacheKey,
    CacheStats,
    EmbeddingCache,
    content_hash,
    default_disk_dir,
)

SHAPE = (1, 8, 4, 4)  # float32 -> 512 bytes per array


def _key(i: int = 0, **overrides) -> CacheKey:
    fields = dict(content_hash=f"{i:064x}", slice_index=i, window="u8", model_sha256="ab" * 32)
    fields.update(overrides)
    return CacheKey(**fields)


def _one(seed: float = 0.0) -> dict[str, np.ndarray]:
    """LiteMedSAM-like entry: one array, 512 bytes."""
    return {"embedding": np.full(SHAPE, seed, dtype=np.float32)}


def _three(seed: float = 0.0) -> dict[str, np.ndarray]:
    """Swin-LiteMedSAM-like entry: three arrays of different sizes, 512 + 1024 + 512 = 2048 bytes."""
    return {
        "embedding": np.full(SHAPE, seed, dtype=np.float32),
        "f0": np.full((1, 4, 8, 8), seed + 1, dtype=np.float32),
        "n64": np.full(SHAPE, seed + 2, dtype=np.float32),
    }


def _files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.suffix == ".npz")


def _assert_equal_outputs(got: dict[str, np.ndarray] | None, want: dict[str, np.ndarray]) -> None:
    assert got is not None
    assert set(got) == set(want)
    for name in want:
        assert got[name].dtype == want[name].dtype
        np.testing.assert_array_equal(got[name], want[name])


# ---------------------------------------------------------------------- keys and hashing


def test_content_hash_depends_on_bytes_dtype_shape_not_layout():
    a = np.arange(12, dtype=np.int16).reshape(3, 4)
    h = content_hash(a)
    assert len(h) == 64 and all(c in "0123456789abcdef" for c in h)
    assert content_hash(a.copy()) == h
    assert content_hash(np.asfortranarray(a)) == h  # layout is not content
    b = a.copy()
    b[2, 3] += 1
    assert content_hash(b) != h
    assert content_hash(a.reshape(4, 3)) != h
    assert content_hash(a.astype(np.uint16)) != h
    assert content_hash(a.astype(">i2")) != h
    assert content_hash(a[:, ::2]) == content_hash(np.ascontiguousarray(a[:, ::2]))
    assert content_hash(np.array(3.0)) != content_hash(np.array([3.0]))
    with pytest.raises(TypeError):
        content_hash(np.array([object()]))
    with pytest.raises(TypeError):
        content_hash([1, 2, 3])  # type: ignore[arg-type]


def test_cache_key_digest_is_stable_and_field_sensitive():
    k = _key(1)
    assert k.digest() == _key(1).digest()
    assert len(k.digest()) == 64
    assert CacheKey(k.content_hash, np.int64(1), k.window, k.model_sha256) == k  # numpy ints
    assert CacheKey(k.content_hash, np.int64(1), k.window, k.model_sha256).digest() == k.digest()
    variants = [
        _key(1, content_hash="f" * 64),
        _key(1, slice_index=2),
        _key(1, window="ct:40:400"),
        _key(1, model_sha256="cd" * 32),
    ]
    assert len({v.digest() for v in variants} | {k.digest()}) == 5
    with pytest.raises(ValueError):
        _key(1, slice_index=-2)
    with pytest.raises(TypeError):
        _key(1, slice_index=True)
    with pytest.raises(TypeError):
        _key(1, window="")


def test_keys_differing_in_any_one_field_miss():
    cache = EmbeddingCache(max_bytes=1 << 20)
    base = _key(3, window="ct:40:400")
    cache.put(base, _one(1.0))
    for variant in (
        _key(3, window="ct:40:400", content_hash="e" * 64),
        _key(3, window="ct:40:400", slice_index=4),
        _key(3, window="ct:40:401"),
        _key(3, window="ct:40:400", model_sha256="cd" * 32),
    ):
        assert variant not in cache
        assert cache.get(variant) is None
    _assert_equal_outputs(cache.get(base), _one(1.0))
    assert cache.stats == CacheStats(hits=1, misses=4)


def test_default_disk_dir_is_not_created(monkeypatch, tmp_path):
    import platformdirs

    monkeypatch.setattr(platformdirs, "user_cache_dir", lambda app: str(tmp_path / "cache" / app))
    d = default_disk_dir()
    assert d == tmp_path / "cache" / "BoxSeg" / "embeddings"
    assert not d.exists()


# ---------------------------------------------------------------------- memory tier


def test_lru_eviction_with_multi_array_entries_exact_nbytes():
    # Room for exactly two 2048-byte entries.
    cache = EmbeddingCache(max_bytes=2 * 2048)
    cache.put(_key(0), _three(0))
    assert cache.nbytes == 2048
    cache.put(_key(1), _three(1))
    assert cache.nbytes == 4096 and len(cache) == 2
    assert cache.get(_key(0)) is not None  # 0 becomes most recently used
    cache.put(_key(2), _three(2))  # evicts 1 (LRU), not 0
    assert _key(1) not in cache
    assert _key(0) in cache and _key(2) in cache
    assert cache.nbytes == 4096 and len(cache) == 2
    assert cache.stats.evictions == 1

    # A one-array entry (512 B) needs one eviction: LRU is now 0 (2 was put after the get of 0).
    cache.put(_key(3), _one(3))
    assert _key(0) not in cache and _key(2) in cache and _key(3) in cache
    assert cache.nbytes == 2048 + 512
    assert cache.stats.evictions == 2

    # Replacing an entry re-accounts its bytes instead of adding them.
    cache.put(_key(3), _three(3))
    assert cache.nbytes == 4096 and len(cache) == 2
    _assert_equal_outputs(cache.get(_key(3)), _three(3))

    cache.clear()
    assert cache.nbytes == 0 and len(cache) == 0


def test_oversize_entry_not_stored_in_memory():
    cache = EmbeddingCache(max_bytes=1024)
    cache.put(_key(0), _one(0))  # 512 B fits
    cache.put(_key(1), _three(1))  # 2048 B > cap
    assert _key(1) not in cache
    assert cache.get(_key(1)) is None
    assert _key(0) in cache, "an oversize entry must not evict the resident set"
    assert cache.nbytes == 512 and len(cache) == 1
    assert cache.stats.evictions == 0


def test_zero_max_bytes_disables_memory_tier():
    cache = EmbeddingCache(max_bytes=0)
    cache.put(_key(0), _one(0))
    cache.put(_key(1), {"empty": np.zeros((0, 4), np.float32)})  # even 0-byte entries
    assert len(cache) == 0 and cache.nbytes == 0
    assert cache.get(_key(0)) is None


def test_stored_arrays_are_private_read_only_copies():
    cache = EmbeddingCache()
    src = _three(5.0)
    # A non-contiguous view and a view of a bigger buffer, as reused output tensors may be.
    big = np.zeros((2, 8, 4, 4), np.float32)
    src["view"] = big[:1]
    src["strided"] = np.zeros((1, 8, 8, 4), np.float32)[:, :, ::2, :]
    cache.put(_key(0), src)
    expected = {k: v.copy() for k, v in src.items()}

    for arr in src.values():
        assert arr.flags.writeable, "put must not change the caller's arrays"
        arr[...] = -1.0
    big[...] = -7.0

    got = cache.get(_key(0))
    _assert_equal_outputs(got, expected)
    assert got is not None
    for name, arr in got.items():
        assert not arr.flags.writeable
        assert arr.flags.c_contiguous
        assert not np.shares_memory(arr, src[name])
        with pytest.raises(ValueError):
            arr[...] = 0.0
        with pytest.raises(ValueError):
            arr.flags.writeable = True
    # The returned dict is the caller's; editing it does not edit the cache.
    got.pop("embedding")
    _assert_equal_outputs(cache.get(_key(0)), expected)


def test_put_validates_input():
    cache = EmbeddingCache()
    with pytest.raises(TypeError):
        cache.put("not a key", _one())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        cache.put(_key(0), {})
    with pytest.raises(TypeError):
        cache.put(_key(0), {"x": [1.0, 2.0]})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        cache.put(_key(0), {"x": np.array([object()])})
    with pytest.raises(ValueError):
        cache.put(_key(0), {"__boxseg_signature__": np.zeros(2)})
    with pytest.raises(ValueError):
        cache.put(_key(0), {"a/b": np.zeros(2)})
    with pytest.raises(ValueError):
        EmbeddingCache(max_bytes=-1)
    assert len(cache) == 0


# ---------------------------------------------------------------------- disk tier


def test_disk_round_trip_across_instances(tmp_path):
    d = tmp_path / "emb"  # does not exist yet: created on first write
    writer = EmbeddingCache(max_bytes=1 << 20, disk_dir=d)
    # Names that would collide with np.savez's own parameters must round-trip too.
    outputs = {**_three(2.5), "file": np.arange(6, dtype=np.int16).reshape(2, 3)}
    outputs["allow_pickle"] = np.array(1.5, dtype=np.float64)
    writer.put(_key(7), outputs)
    files = _files(d)
    assert [f.name for f in files] == [f"{_key(7).digest()}.npz"]

    reader = EmbeddingCache(max_bytes=1 << 20, disk_dir=d)
    assert len(reader) == 0 and _key(7) in reader
    got = reader.get(_key(7))
    _assert_equal_outputs(got, outputs)
    assert got is not None and all(not a.flags.writeable for a in got.values())
    assert reader.stats == CacheStats(hits=1, disk_hits=1)
    # Promoted into memory: the second get is a memory hit, with exact byte accounting.
    assert len(reader) == 1
    assert reader.nbytes == sum(a.nbytes for a in outputs.values())
    _assert_equal_outputs(reader.get(_key(7)), outputs)
    assert reader.stats == CacheStats(hits=2, disk_hits=1)
    # A different key is a miss on disk as well.
    assert reader.get(_key(8)) is None
    # The file is a plain npz that numpy can open without pickle.
    with np.load(files[0], allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["f0"], outputs["f0"])


def test_oversize_entry_goes_to_disk_only(tmp_path):
    cache = EmbeddingCache(max_bytes=1024, disk_dir=tmp_path)
    cache.put(_key(0), _three(0))
    assert len(cache) == 0 and cache.nbytes == 0
    assert len(_files(tmp_path)) == 1
    _assert_equal_outputs(cache.get(_key(0)), _three(0))
    assert cache.stats.disk_hits == 1
    assert len(cache) == 0  # still too big to promote


def test_disk_file_with_other_keys_signature_is_refused_and_removed(tmp_path):
    writer = EmbeddingCache(disk_dir=tmp_path)
    writer.put(_key(1), _one(1.0))
    # A file for key 1 placed under key 2's name, e.g. by a buggy or malicious writer; each
    # variant changes just one key field.
    for victim in (
        _key(1, content_hash="e" * 64),
        _key(1, slice_index=9),
        _key(1, window="ct:40:400"),
        _key(1, model_sha256="cd" * 32),
    ):
        wrong = tmp_path / f"{victim.digest()}.npz"
        shutil.copyfile(tmp_path / f"{_key(1).digest()}.npz", wrong)
        reader = EmbeddingCache(disk_dir=tmp_path)
        assert victim in reader  # the cheap check only sees a file
        assert reader.get(victim) is None
        assert not wrong.exists(), "a mismatching file must be deleted"
        assert reader.stats == CacheStats(misses=1, disk_refused=1)
        assert len(reader) == 0
    # The genuine file is untouched and still served.
    _assert_equal_outputs(EmbeddingCache(disk_dir=tmp_path).get(_key(1)), _one(1.0))


def test_cache_key_plane_component(tmp_path):
    """A reformatted plane's slices get their own keys; keys of stored slices (plane "") keep the digest they
    had before planes existed, so disk files written by earlier versions still hit."""
    k = _key(1)
    canonical = json.dumps({"v": DISK_FORMAT_VERSION, "content_hash": k.content_hash, "slice_index": 1,
                            "window": "u8", "model_sha256": k.model_sha256}, sort_keys=True, separators=(",", ":"))
    assert k.digest() == hashlib.sha256(canonical.encode("ascii")).hexdigest()
    planes = [_key(1, plane=p) for p in ("axial", "coronal", "sagittal")]
    assert len({p.digest() for p in planes} | {k.digest()}) == 4
    assert _key(1, plane="coronal") == planes[1] and planes[1] != k
    cache = EmbeddingCache(disk_dir=tmp_path)
    cache.put(planes[1], _one(2.0))
    assert cache.get(k) is None and cache.get(planes[2]) is None
    _assert_equal_outputs(EmbeddingCache(disk_dir=tmp_path).get(planes[1]), _one(2.0))  # from disk, signed
    with pytest.raises(TypeError):
        _key(1, plane=None)


def test_disk_file_with_other_format_version_is_refused(tmp_path, monkeypatch):
    import engine.inference.cache as cache_mod

    monkeypatch.setattr(cache_mod, "DISK_FORMAT_VERSION", 0)
    old = EmbeddingCache(disk_dir=tmp_path)
    k = _key(1)
    digest_v0 = k.digest()
    old.put(k, _one(1.0))
    monkeypatch.undo()
    # Same name under the current version, so the file is found and its signature checked.
    os.replace(tmp_path / f"{digest_v0}.npz", tmp_path / f"{k.digest()}.npz")
    reader = EmbeddingCache(disk_dir=tmp_path)
    assert reader.get(k) is None
    assert reader.stats.disk_refused == 1
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    "damage",
    [
        "truncate_half",
        "truncate_tail",
        "flip_payload_byte",
        "garbage",
        "empty",
        "signature_only",
        "extra_member",
    ],
)
def test_corrupt_disk_file_is_refused_and_removed(tmp_path, damage):
    cache = EmbeddingCache(disk_dir=tmp_path)
    outputs = _three(3.0)
    cache.put(_key(4), outputs)
    (path,) = _files(tmp_path)
    data = path.read_bytes()
    if damage == "truncate_half":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "truncate_tail":
        path.write_bytes(data[:-10])
    elif damage == "flip_payload_byte":
        # The last array's payload lies just before the zip central directory; a flipped float
        # byte is caught by the member CRC, not by any structural check.
        raw = outputs["n64"].tobytes()
        at = data.rfind(raw)
        assert at > 0
        buf = bytearray(data)
        buf[at + 5] ^= 0xFF
        path.write_bytes(bytes(buf))
    elif damage == "garbage":
        path.write_bytes(b"\x93NUMPY not really" * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "signature_only":
        # A valid npz whose signature claims arrays it does not hold.
        import zipfile

        with zipfile.ZipFile(path) as zf:
            sig_bytes = zf.read("__boxseg_signature__.npy")
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("__boxseg_signature__.npy", sig_bytes)
    elif damage == "extra_member":
        # Complete and CRC-clean, but holding an array the signature does not list.
        import io
        import zipfile

        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.zeros(3, np.float32))
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr("stray.npy", buf.getvalue())

    reader = EmbeddingCache(disk_dir=tmp_path)
    assert reader.get(_key(4)) is None
    assert not path.exists()
    assert reader.stats == CacheStats(misses=1, disk_refused=1)


def test_atomic_write_leaves_no_temp_files(tmp_path, monkeypatch):
    cache = EmbeddingCache(disk_dir=tmp_path)
    for i in range(5):
        cache.put(_key(i), _three(i))
    cache.put(_key(0), _three(9))  # overwrite an existing file
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(f"{_key(i).digest()}.npz" for i in range(5))

    # A write that fails half-way leaves neither a temp file nor a damaged entry behind.
    import engine.inference.cache as cache_mod

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(cache_mod.np.lib.format, "write_array", boom)
    cache.put(_key(0), _three(42))  # logged, not raised: the disk tier is best-effort
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    _assert_equal_outputs(EmbeddingCache(disk_dir=tmp_path).get(_key(0)), _three(9))


def test_stale_temp_files_are_cleaned_fresh_ones_kept(tmp_path):
    stale = temp_name(tmp_path / f"{'a' * 64}.npz")  # what a writer killed mid-write leaves behind
    fresh = temp_name(tmp_path / f"{'b' * 64}.npz")
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    EmbeddingCache(disk_dir=tmp_path)
    assert not stale.exists()
    assert fresh.exists()


def test_disk_cap_evicts_oldest_files(tmp_path):
    probe = EmbeddingCache(disk_dir=tmp_path / "probe")
    probe.put(_key(0), _three(0))
    (f,) = _files(tmp_path / "probe")
    file_size = f.stat().st_size
    d = tmp_path / "emb"
    cache = EmbeddingCache(max_bytes=0, disk_dir=d, disk_max_bytes=2 * file_size)

    now = time.time()
    cache.put(_key(0), _three(0))
    cache.put(_key(1), _three(1))
    p0, p1 = (d / f"{_key(i).digest()}.npz" for i in (0, 1))
    # Explicit mtimes: file systems with coarse timestamps would otherwise tie.
    os.utime(p0, (now - 30, now - 30))
    os.utime(p1, (now - 20, now - 20))
    # A disk hit refreshes mtime, so key 0 becomes the most recently used file.
    assert cache.get(_key(0)) is not None
    assert p0.stat().st_mtime > p1.stat().st_mtime

    cache.put(_key(2), _three(2))  # over the cap by one file: the oldest (key 1) goes
    assert p0.exists() and not p1.exists()
    assert len(_files(d)) == 2
    assert sum(p.stat().st_size for p in _files(d)) <= 2 * file_size
    assert cache.stats.disk_evictions == 1

    # An entry bigger than the whole disk budget is not written at all.
    small = EmbeddingCache(max_bytes=0, disk_dir=tmp_path / "small", disk_max_bytes=1000)
    small.put(_key(0), _three(0))
    assert not (tmp_path / "small").exists() or _files(tmp_path / "small") == []


def test_clear_disk_removes_entry_files(tmp_path):
    cache = EmbeddingCache(disk_dir=tmp_path)
    cache.put(_key(0), _one())
    cache.put(_key(1), _one())
    cache.clear()
    assert len(cache) == 0 and len(_files(tmp_path)) == 2
    cache.clear(disk=True)
    assert _files(tmp_path) == []
    assert cache.get(_key(0)) is None


# ---------------------------------------------------------------------- threads


@pytest.mark.parametrize("with_disk", [False, True])
def test_thread_safety_smoke(tmp_path, with_disk):
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # force frequent thread switches to expose races
    try:
        entry_bytes = 2048
        cap_entries = 5
        cache = EmbeddingCache(
            max_bytes=cap_entries * entry_bytes,
            disk_dir=tmp_path if with_disk else None,
        )
        n_threads, n_ops, n_keys = 8, 150 if with_disk else 600, 12
        errors: list[BaseException] = []
        gets = [0] * n_threads
        barrier = threading.Barrier(n_threads)

        def worker(t: int) -> None:
            try:
                rng = np.random.default_rng(t)
                barrier.wait()
                for _ in range(n_ops):
                    i = int(rng.integers(n_keys))
                    if rng.random() < 0.5:
                        cache.put(_key(i), _three(float(i)))
                    else:
                        gets[t] += 1
                        got = cache.get(_key(i))
                        if got is not None:
                            # Never a torn or foreign entry.
                            assert float(got["f0"].flat[0]) == i + 1
                            assert set(got) == {"embedding", "f0", "n64"}
                    # Invariant visible to every thread at every step.
                    assert cache.nbytes <= cap_entries * entry_bytes
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(old_interval)

    assert not errors, errors[0]
    st = cache.stats
    assert st.hits + st.misses == sum(gets)
    assert len(cache) <= cap_entries
    assert cache.nbytes == len(cache) * entry_bytes
    resident = [k for k in (_key(i) for i in range(n_keys)) if k in cache]
    if not with_disk:
        assert len(resident) == len(cache)
    if with_disk:
        assert st.disk_refused == 0
        assert not [p for p in tmp_path.iterdir() if is_temp_name(p.name)]
        fresh = EmbeddingCache(disk_dir=tmp_path)
        for p in _files(tmp_path):
            i = next(i for i in range(n_keys) if p.name == f"{_key(i).digest()}.npz")
            _assert_equal_outputs(fresh.get(_key(i)), _three(float(i)))
