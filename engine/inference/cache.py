"""Embedding cache of an engine session: a bounded in-memory LRU plus an optional disk tier.

An image encoder turns one 2D slice into one or more arrays, for example

* LiteMedSAM: ``{"embedding": float32 (1, 256, 64, 64)}`` (4 MiB),
* Swin-LiteMedSAM: ``{"embedding": float32 (1, 256, 64, 64), "f0": float32 (1, 128, 128, 128),
  "n64": float32 (1, 256, 64, 64)}`` (16 MiB).

Encoding costs about 0.2-0.5 s per slice on a laptop CPU while a decoder call costs a few ms, so
every box the user draws on an already-encoded slice should reuse the stored embedding.

Design rules (from the architecture):

* The cache is owned by an engine session object; there are no module-level caches or singletons.
* Entries are keyed by :class:`CacheKey`: image content hash, slice index, intensity window,
  model sha256 and reformatted plane, so that a different file, slice, window or model can never hit a stale entry.
* Memory is bounded in bytes (exact ``ndarray.nbytes`` accounting of the arrays as stored,
  multi-array entries included). The default budget follows the machine's RAM
  (:func:`default_max_bytes`).
* ``storage="f16"`` (what :class:`~engine.inference.session.Session` uses) keeps float32 arrays as
  float16, in memory and on disk: half the bytes, so twice the slices per budget; ``get`` gives
  float32 back (the model's input type). On 44 boxes of 40 eval 2D cases and 13 3D slices the masks
  from float16-stored embeddings match the float32 ones to a DSC of 0.99999 on average (0.9999 at
  worst; DSC against the ground truth unchanged to 4 decimals) and a spleen propagation is identical
  (bench/results/fp16-cache-2026-12-07.md). Non-float32
  arrays, and float32 arrays with values beyond float16's range (|x| > 65504), are stored as given.
* Stored arrays are private read-only copies: a consumer that writes into a returned array gets
  ``ValueError`` instead of silently corrupting every later segmentation of that slice.
* The optional disk tier stores one ``.npz`` per entry with a signature (key fields + format
  version); a file whose signature does not match, or that cannot be read completely, is refused,
  deleted and reported as a miss (the same policy micro-sam uses for its embedding files).
* All public methods are thread-safe: the app's worker thread and a background precompute thread
  may share one instance.

This module is pure numpy + stdlib (and :mod:`engine.base` for durable writes and the user cache folder).
"""

from __future__ import annotations

import hashlib
import json
import logging
import numbers
import os
import re
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.base.atomic import atomic_path, remove_stale_temps
from engine.base.folders import user_cache_dir
from engine.base.sysinfo import total_ram_bytes

__all__ = [
    "DISK_FORMAT_VERSION",
    "CacheKey",
    "CacheStats",
    "EmbeddingCache",
    "STORAGES",
    "content_hash",
    "default_disk_dir",
    "default_max_bytes",
]

_log = logging.getLogger(__name__)

#: Version of the on-disk ``.npz`` layout; bump it whenever the layout or the meaning of a key
#: field changes, so that files written by an older BoxSeg are refused instead of misread.
DISK_FORMAT_VERSION = 1

#: Largest default memory budget in bytes (512 MiB = 256 LiteMedSAM slices stored as float16, as many as
#: the 1 GiB float32 default of earlier versions held), the budget from 16 GiB of RAM on; see
#: :func:`default_max_bytes`.
DEFAULT_MAX_BYTES = 512 << 20
#: Smallest default memory budget in bytes (64 LiteMedSAM slices stored as float16).
MIN_DEFAULT_MAX_BYTES = 128 << 20
#: The default budget is this fraction of the machine's RAM, within the two bounds above.
RAM_FRACTION = 1 / 32
#: With a disk tier, which gives an evicted slice back in a few ms (a float16 file read), the memory tier
#: is a hot set only: this fraction of RAM, from MIN_DEFAULT_MAX_BYTES to DISK_TIER_MAX_BYTES.
DISK_TIER_RAM_FRACTION = 1 / 128
DISK_TIER_MAX_BYTES = 192 << 20
#: Environment variable overriding the default budget, in MiB (``0`` turns the memory tier off).
CACHE_ENV = "BOXSEG_CACHE_MIB"

#: Storage precisions: ``"f32"`` keeps arrays exactly as given; ``"f16"`` stores float32 arrays as
#: float16 and gives them back as float32.
STORAGES = ("f32", "f16")
_F16_MAX = float(np.finfo(np.float16).max)

# Reserved npz member holding the JSON signature; output names may not use this prefix.
_SIGNATURE_MEMBER = "__boxseg_signature__"
_RESERVED_PREFIX = "__boxseg"
_ENTRY_FILE_RE = re.compile(r"^[0-9a-f]{64}\.npz$")
# Temp files older than this are leftovers of a crashed writer; younger ones may belong to a
# concurrent writer (another thread or another BoxSeg process) and must not be touched.
_STALE_TEMP_AGE_S = 3600.0


def content_hash(array: np.ndarray) -> str:
    """Return a hex digest identifying an array's content (dtype, shape and element values).

    Uses sha256 (64 hex characters): collision-resistant, so distinct images never share a key
    in practice, and hashlib's OpenSSL sha256 uses the CPU's SHA extensions present on current
    laptop CPUs, which made it faster than BLAKE2b when measured (~60 ms vs ~120 ms for a
    512x512x200 int16 CT volume, 105 MB). Hash a volume once, not once per slice.

    The hashed message is a version tag, the dtype descriptor (``np.lib.format.dtype_to_descr``,
    which includes byte order, so ``<i2`` and ``>i2`` differ), the shape, and the raw element bytes
    in C order. Memory layout does not matter: a Fortran-ordered or strided view hashes like its
    C-contiguous copy. Object arrays are rejected because their bytes are pointers, not content.

    Args:
        array: any numeric/bool/fixed-width ndarray (e.g. an (H, W) or (H, W, 3) uint8 image or
            a (Z, H, W) int16 volume). Not modified.

    Returns:
        64 lowercase hex characters.

    Raises:
        TypeError: ``array`` is not an ndarray or has an object dtype.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"content_hash expects a numpy.ndarray, got {type(array).__name__}")
    if array.dtype.hasobject:
        raise TypeError("content_hash cannot hash object arrays (their bytes are pointers)")
    h = hashlib.sha256()
    h.update(b"boxseg-content-v1\0")
    h.update(repr(np.lib.format.dtype_to_descr(array.dtype)).encode("utf-8") + b"\0")
    h.update(repr(tuple(int(s) for s in array.shape)).encode("ascii") + b"\0")
    # reshape(-1) also makes 0-d arrays viewable as bytes; ascontiguousarray copies only when the
    # input is not already C-contiguous.
    flat = np.ascontiguousarray(array).reshape(-1)
    h.update(flat.view(np.uint8).data)
    return h.hexdigest()


@dataclass(frozen=True)
class CacheKey:
    """Identity of one cached encoder result.

    Attributes:
        content_hash: hex digest of the image/volume content (see :func:`content_hash`). For a
            volume, hash the whole volume once and use ``slice_index`` to tell slices apart.
        slice_index: index of the slice along the volume's slicing axis; ``-1`` for a 2D image.
        window: canonical string of the intensity preprocessing, e.g. ``"u8"`` or ``"ct:40:400"``
            (CT level:width in HU). Two windows that give different encoder inputs must differ.
        model_sha256: sha256 hex digest of the encoder model file (from the model manifest).
        plane: the reformatted plane the slice was cut from ('axial', 'coronal', 'sagittal'; see
            :mod:`engine.data.planes`, where ``slice_index`` counts along that plane's normal); ``""``
            (the default) for the stored slices ``voxels[z]``. An empty plane is left out of
            :meth:`digest` and of the disk signature, so keys written before planes existed still hit.
    """

    content_hash: str
    slice_index: int
    window: str
    model_sha256: str
    plane: str = ""

    def __post_init__(self) -> None:
        for name in ("content_hash", "window", "model_sha256"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise TypeError(f"CacheKey.{name} must be a non-empty str, got {value!r}")
        idx = self.slice_index
        if isinstance(idx, bool) or not isinstance(idx, numbers.Integral):
            raise TypeError(f"CacheKey.slice_index must be an int, got {idx!r}")
        if int(idx) < -1:
            raise ValueError(f"CacheKey.slice_index must be >= -1, got {idx}")
        if not isinstance(self.plane, str):
            raise TypeError(f"CacheKey.plane must be a str, got {self.plane!r}")
        # Loops over volumes hand in numpy integers; normalise so that json, hashing and
        # repr are identical to the plain-int key.
        object.__setattr__(self, "slice_index", int(idx))

    def _fields(self) -> dict[str, object]:
        fields: dict[str, object] = {
            "content_hash": self.content_hash,
            "slice_index": self.slice_index,
            "window": self.window,
            "model_sha256": self.model_sha256,
        }
        if self.plane:  # absent for stored slices: their digests are those of the keys before planes
            fields["plane"] = self.plane
        return fields

    def digest(self, storage: str = "") -> str:
        """Return the sha256 hex digest (64 chars) of a canonical JSON serialisation of the key.

        Used as the disk file name; stable across processes, platforms and Python versions
        (unlike ``hash()``, which is salted per process). storage: the cache's storage tag (``""``
        for exact storage, ``"f16"``), so that files of differently stored caches never share a name.
        """
        canonical = json.dumps(
            {"v": DISK_FORMAT_VERSION, **self._fields(), **({"storage": storage} if storage else {})},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
        )
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class CacheStats:
    """Snapshot of an :class:`EmbeddingCache`'s counters (all counts since construction).

    Attributes:
        hits: ``get`` calls that returned an entry (memory or disk).
        misses: ``get`` calls that returned ``None``.
        disk_hits: the subset of ``hits`` served from the disk tier.
        evictions: entries dropped from the memory tier to respect ``max_bytes``.
        disk_evictions: files deleted from the disk tier to respect ``disk_max_bytes``.
        disk_refused: disk files refused on load (signature mismatch, corrupt, truncated).
    """

    hits: int = 0
    misses: int = 0
    disk_hits: int = 0
    evictions: int = 0
    disk_evictions: int = 0
    disk_refused: int = 0


#: Environment variable naming the disk tier's default folder instead of the user cache folder (the smoke
#: test and the app's tests point it at a temporary folder).
DISK_DIR_ENV = "BOXSEG_CACHE_DIR"


def default_disk_dir() -> Path:
    """Return the per-user default disk-cache directory, ``<user cache dir>/BoxSeg/embeddings``, or the
    folder ``BOXSEG_CACHE_DIR`` names.

    The directory is not created here; :class:`EmbeddingCache` creates it on its first write.
    """
    env = os.environ.get(DISK_DIR_ENV, "").strip()
    return Path(env) if env else user_cache_dir() / "embeddings"


def default_max_bytes(ram_bytes: int | None = None, *, disk_tier: bool = False) -> int:
    """The memory budget a cache gets when none is given, in bytes.

    ``BOXSEG_CACHE_MIB`` (MiB) when set; else 1/32 of the machine's RAM (``ram_bytes``, default
    :func:`engine.base.sysinfo.total_ram_bytes`; 8 GiB assumed where the OS does not say), clamped to
    128 MiB .. 512 MiB: 256 MiB on an 8 GiB laptop (128 float16 LiteMedSAM slices, about 40 s of
    encoding), 512 MiB from 16 GiB on. With a disk tier (``disk_tier``): 1/128 of RAM, 128 .. 192 MiB
    (128 MiB up to 16 GiB of RAM, 192 MiB from 24 GiB), since every encoded slice is also on disk and an
    evicted one comes back in ~6 ms; this keeps the app's peak for a 512x512x300 CT under 1.2 GB. The app holds the image, its uint8 model volume, labels and the
    model besides (about 0.8 GB for a 512x512x300 CT: docs/memory.md), and its goal is a peak under
    1.2 GB; with the disk tier on, an evicted slice comes back in milliseconds, not a new encode.
    """
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        try:
            return max(0, int(float(env) * 2**20))
        except ValueError:
            _log.warning("embedding cache: ignoring %s=%r (not a number of MiB)", CACHE_ENV, env)
    ram = ram_bytes if ram_bytes is not None else total_ram_bytes()
    ram = ram or 8 << 30
    if disk_tier:
        return int(min(DISK_TIER_MAX_BYTES, max(MIN_DEFAULT_MAX_BYTES, ram * DISK_TIER_RAM_FRACTION)))
    return int(min(DEFAULT_MAX_BYTES, max(MIN_DEFAULT_MAX_BYTES, ram * RAM_FRACTION)))


def _entry_nbytes(arrays: Mapping[str, np.ndarray]) -> int:
    return sum(int(a.nbytes) for a in arrays.values())


class _Stored(dict):
    """One entry as held: name -> private read-only array; ``widen`` names the arrays stored as float16
    that were given (and are given back) as float32."""

    def __init__(self, arrays: Mapping[str, np.ndarray], widen=frozenset()):
        super().__init__(arrays)
        self.widen = frozenset(widen)


class _RefusedFile(Exception):
    """Internal: a disk file exists but must not be used."""


class EmbeddingCache:
    """Bounded LRU cache of encoder outputs, with an optional disk tier. Thread-safe.

    Values are ``dict[str, np.ndarray]`` mapping output names (e.g. ``"embedding"``) to arrays
    of any non-object dtype and shape; the encoders produce float32 arrays such as
    (1, 256, 64, 64). Sizes are in bytes (``ndarray.nbytes`` of the arrays as stored, so a float32
    array kept as float16 counts half; Python object overhead is ignored).

    Args:
        max_bytes: memory budget in bytes (None: :func:`default_max_bytes`, from the machine's RAM and
            whether there is a disk tier).
            The sum of ``nbytes`` of all arrays in memory never exceeds it; least-recently-used
            entries are evicted to make room. An entry larger than ``max_bytes`` is not kept in
            memory (it may still go to disk). ``0`` disables the memory tier.
        disk_dir: directory of the disk tier, or ``None`` for memory only. Created on first
            write. See :func:`default_disk_dir` for the per-user default. It may be shared by
            several caches/processes: writes are atomic and every load checks a signature.
        disk_max_bytes: budget of the disk tier in bytes (sum of ``.npz`` file sizes in
            ``disk_dir``), or ``None`` for unbounded. Oldest files by mtime are deleted first; a
            disk hit refreshes a file's mtime, so this is LRU across sessions.
        storage: ``"f32"`` (default: arrays kept exactly as given) or ``"f16"`` (float32 arrays kept
            as float16 in memory and on disk and given back as float32, rounded to float16's 11
            significant bits; see the module docstring). An ``"f16"`` cache names and signs its disk
            files apart from an ``"f32"`` one, so the two may share ``disk_dir``.

    Raises:
        ValueError: a negative budget or an unknown storage.
    """

    def __init__(
        self,
        max_bytes: int | None = None,
        disk_dir: Path | str | None = None,
        disk_max_bytes: int | None = None,
        storage: str = "f32",
    ) -> None:
        if max_bytes is None:
            max_bytes = default_max_bytes(disk_tier=disk_dir is not None)
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
        self._storage = storage
        if int(max_bytes) < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        if disk_max_bytes is not None and int(disk_max_bytes) < 0:
            raise ValueError(f"disk_max_bytes must be >= 0 or None, got {disk_max_bytes}")
        self._max_bytes = int(max_bytes)
        self._disk_dir = Path(disk_dir) if disk_dir is not None else None
        self._disk_max_bytes = int(disk_max_bytes) if disk_max_bytes is not None else None
        # Two locks so that a slow disk write by the precompute thread never blocks a memory hit
        # on the UI worker thread. Lock order: _disk_lock may be held while taking _lock (to bump
        # a counter), never the reverse, so the two cannot deadlock.
        self._lock = threading.Lock()
        self._disk_lock = threading.Lock()
        self._mem: OrderedDict[CacheKey, dict[str, np.ndarray]] = OrderedDict()
        self._mem_bytes = 0
        self._hits = 0
        self._misses = 0
        self._disk_hits = 0
        self._evictions = 0
        self._disk_evictions = 0
        self._disk_refused = 0
        if self._disk_dir is not None:
            self._remove_stale_temp_files()

    # ------------------------------------------------------------------ properties

    @property
    def max_bytes(self) -> int:
        """Memory budget in bytes."""
        return self._max_bytes

    @property
    def storage(self) -> str:
        """``"f32"`` or ``"f16"`` (see the class docstring)."""
        return self._storage

    @property
    def disk_dir(self) -> Path | None:
        """Directory of the disk tier, or ``None``."""
        return self._disk_dir

    @property
    def disk_max_bytes(self) -> int | None:
        """Disk budget in bytes, or ``None`` for unbounded."""
        return self._disk_max_bytes

    @property
    def nbytes(self) -> int:
        """Exact sum of ``nbytes`` of every array held in the memory tier (as stored), in bytes."""
        with self._lock:
            return self._mem_bytes

    @property
    def stats(self) -> CacheStats:
        """A consistent snapshot of the counters (see :class:`CacheStats`)."""
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                disk_hits=self._disk_hits,
                evictions=self._evictions,
                disk_evictions=self._disk_evictions,
                disk_refused=self._disk_refused,
            )

    # ------------------------------------------------------------------ public API

    def __len__(self) -> int:
        """Number of entries in the memory tier (disk files are not counted)."""
        with self._lock:
            return len(self._mem)

    def __contains__(self, key: object) -> bool:
        """True if ``key`` is in memory or a disk file for it exists.

        Cheap: the disk file is not opened or validated, so a following :meth:`get` may still
        miss if the file turns out to be refused. Does not touch LRU order or stats.
        """
        if not isinstance(key, CacheKey):
            return False
        with self._lock:
            if key in self._mem:
                return True
        path = self._path_for(key)
        return path is not None and path.is_file()

    def get(self, key: CacheKey) -> dict[str, np.ndarray] | None:
        """Return the cached outputs for ``key``, or ``None`` on a miss.

        Memory is tried first, then the disk tier; a disk hit is promoted into memory (subject
        to ``max_bytes``). The returned dict is new on every call (adding/removing names does not
        affect the cache); its arrays are read-only views of the stored arrays (of a float32 copy for
        an array stored as float16), so any write, and any attempt to set ``flags.writeable = True``,
        raises ``ValueError``.
        """
        self._check_key(key)
        with self._lock:
            stored = self._mem.get(key)
            if stored is not None:
                self._mem.move_to_end(key)
                self._hits += 1
                return _views(stored)

        loaded = self._disk_load(key) if self._disk_dir is not None else None
        with self._lock:
            if loaded is None:
                self._misses += 1
                return None
            self._hits += 1
            self._disk_hits += 1
            # Another thread may have stored the same key meanwhile; keys are content-addressed
            # so both values are equal, and keeping the resident one avoids byte churn.
            if key in self._mem:
                self._mem.move_to_end(key)
                return _views(self._mem[key])
            self._mem_insert_locked(key, loaded)
            return _views(loaded)

    def put(self, key: CacheKey, outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Store encoder ``outputs`` under ``key`` (replacing any previous value); return the outputs as
        :meth:`get` would give them back (with ``storage="f16"``: rounded to float16, as float32), so
        that a caller uses the same numbers whether its slice was just encoded or came from the cache.

        Every array is copied into a private C-contiguous array that is then marked read-only, so
        the caller may keep using or mutating its arrays (e.g. reused OpenVINO output tensors)
        afterwards. The copy costs a few ms per 16 MiB, negligible next to an encoder call, and
        copying unconditionally is what guarantees the cached value can never change: an array
        that owns its data could otherwise be made writeable again by whoever holds it.

        Args:
            key: the entry's identity.
            outputs: non-empty mapping of output name -> ndarray (any non-object dtype/shape,
                typically float32 (1, C, H, W)). Names must be non-empty, must not contain
                ``/``, ``\\`` or NUL and must not start with ``"__boxseg"``.

        Raises:
            TypeError: ``key`` is not a :class:`CacheKey`, a name is not a str, a value is not an
                ndarray or has an object dtype.
            ValueError: ``outputs`` is empty or a name is invalid.
        """
        self._check_key(key)
        arrays = _private_copies(outputs, half=self._storage == "f16")
        with self._lock:
            self._mem_insert_locked(key, arrays)
        if self._disk_dir is not None:
            self._disk_store(key, arrays)
        return _views(arrays)

    def clear(self, *, disk: bool = False) -> None:
        """Drop every memory entry; with ``disk=True`` also delete this cache's disk files.

        Counters in :attr:`stats` are kept. Temp files of concurrent writers are not touched.
        """
        with self._lock:
            self._mem.clear()
            self._mem_bytes = 0
        if disk and self._disk_dir is not None:
            with self._disk_lock:
                for path, _size, _mtime in self._list_disk_entries():
                    _unlink_quietly(path)

    # ------------------------------------------------------------------ memory tier

    def _mem_insert_locked(self, key: CacheKey, arrays: dict[str, np.ndarray]) -> None:
        old = self._mem.pop(key, None)
        if old is not None:
            self._mem_bytes -= _entry_nbytes(old)
        size = _entry_nbytes(arrays)
        if self._max_bytes == 0 or size > self._max_bytes:
            # Evicting everything else would still not make it fit; keep the resident set.
            return
        while self._mem and self._mem_bytes + size > self._max_bytes:
            _evicted_key, evicted = self._mem.popitem(last=False)
            self._mem_bytes -= _entry_nbytes(evicted)
            self._evictions += 1
        self._mem[key] = arrays
        self._mem_bytes += size

    # ------------------------------------------------------------------ disk tier

    def _path_for(self, key: CacheKey) -> Path | None:
        if self._disk_dir is None:
            return None
        return self._disk_dir / f"{key.digest(self._storage_tag)}.npz"

    @property
    def _storage_tag(self) -> str:
        # "" for exact storage: its file names and signatures are those of the caches before storages
        return "" if self._storage == "f32" else self._storage

    def _disk_store(self, key: CacheKey, arrays: dict[str, np.ndarray]) -> None:
        assert self._disk_dir is not None
        if self._disk_max_bytes is not None and _entry_nbytes(arrays) > self._disk_max_bytes:
            return  # the file would be larger still, and evicted at once
        signature = _signature(key, arrays, self._storage_tag)
        with self._disk_lock:
            try:
                self._disk_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                _atomic_write_npz(self._path_for(key), arrays, signature)  # type: ignore[arg-type]
            except OSError as exc:
                # The disk tier is an optimisation; a full or read-only disk must not break
                # segmentation.
                _log.warning("embedding cache: cannot write %s: %s", self._disk_dir, exc)
                return
            self._enforce_disk_cap_locked()

    def _disk_load(self, key: CacheKey) -> dict[str, np.ndarray] | None:
        path = self._path_for(key)
        assert path is not None
        with self._disk_lock:
            if not path.is_file():
                return None
            try:
                arrays = _read_npz(path, _signature_fields(key, self._storage_tag))
            except _RefusedFile as exc:
                _log.warning("embedding cache: refusing %s: %s", path.name, exc)
                _unlink_quietly(path)
                with self._lock:
                    self._disk_refused += 1
                return None
            except OSError as exc:
                # Transient (e.g. permission, file locked by another process on Windows): a miss,
                # but the file may be fine, so keep it.
                _log.warning("embedding cache: cannot read %s: %s", path.name, exc)
                return None
            try:
                os.utime(path)  # mtime = last use, so the disk cap evicts least recently used
            except OSError:
                pass
        return arrays

    def _list_disk_entries(self) -> list[tuple[Path, int, float]]:
        assert self._disk_dir is not None
        entries: list[tuple[Path, int, float]] = []
        try:
            with os.scandir(self._disk_dir) as it:
                for de in it:
                    if not _ENTRY_FILE_RE.match(de.name):
                        continue
                    try:
                        st = de.stat()
                    except OSError:
                        continue  # deleted concurrently
                    entries.append((Path(de.path), st.st_size, st.st_mtime))
        except FileNotFoundError:
            pass
        return entries

    def _enforce_disk_cap_locked(self) -> None:
        if self._disk_max_bytes is None:
            return
        entries = self._list_disk_entries()
        total = sum(size for _p, size, _m in entries)
        # Oldest first; the name tie-break only makes equal-mtime ordering deterministic.
        for path, size, _mtime in sorted(entries, key=lambda e: (e[2], e[0].name)):
            if total <= self._disk_max_bytes:
                break
            if _unlink_quietly(path):
                with self._lock:
                    self._disk_evictions += 1
            total -= size

    def _remove_stale_temp_files(self) -> None:
        assert self._disk_dir is not None
        remove_stale_temps(self._disk_dir, _STALE_TEMP_AGE_S)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _check_key(key: object) -> None:
        if not isinstance(key, CacheKey):
            raise TypeError(f"expected a CacheKey, got {type(key).__name__}")


# ---------------------------------------------------------------------- module helpers


def _views(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    # Views of read-only arrays cannot be flipped back to writeable (numpy refuses because the
    # base is read-only), whereas the owning arrays themselves could be.
    widen = getattr(arrays, "widen", frozenset())
    out: dict[str, np.ndarray] = {}
    for name, arr in arrays.items():
        if name in widen:
            arr = arr.astype(np.float32)
            arr.flags.writeable = False
        out[name] = arr.view()
    return out


def _private_copies(outputs: Mapping[str, np.ndarray], *, half: bool = False) -> _Stored:
    """Private read-only C-contiguous copies; with ``half``, float32 arrays within float16's range
    become float16 (their names in ``widen``)."""
    if not isinstance(outputs, Mapping):
        raise TypeError(f"outputs must be a mapping of name -> ndarray, got {type(outputs).__name__}")
    if not outputs:
        raise ValueError("outputs must contain at least one array")
    copies: dict[str, np.ndarray] = {}
    widen: set[str] = set()
    for name, arr in outputs.items():
        if not isinstance(name, str):
            raise TypeError(f"output names must be str, got {name!r}")
        if not name or name.startswith(_RESERVED_PREFIX) or any(c in name for c in "/\\\0"):
            raise ValueError(f"invalid output name {name!r}")
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"output {name!r} must be a numpy.ndarray, got {type(arr).__name__}")
        if arr.dtype.hasobject:
            raise TypeError(f"output {name!r} has an object dtype, which cannot be cached")
        dtype = arr.dtype
        if half and dtype == np.float32 and (arr.size == 0 or float(np.abs(arr).max()) <= _F16_MAX):
            dtype = np.dtype(np.float16)
            widen.add(name)
        copy = np.array(arr, dtype=dtype, order="C", copy=True, subok=False)
        copy.flags.writeable = False
        copies[name] = copy
    return _Stored(copies, widen)


def _descr(dtype: np.dtype) -> object:
    # JSON round trip so a structured dtype's tuples compare equal to what the file holds.
    return json.loads(json.dumps(np.lib.format.dtype_to_descr(dtype)))


def _signature_fields(key: CacheKey, storage: str = "") -> dict[str, object]:
    fields = {"format": DISK_FORMAT_VERSION, **key._fields()}
    if storage:  # absent for exact storage, as in the files written before storages existed
        fields["storage"] = storage
    return fields


def _signature(key: CacheKey, arrays: Mapping[str, np.ndarray], storage: str = "") -> dict[str, object]:
    widen = sorted(getattr(arrays, "widen", ()))
    return {
        **_signature_fields(key, storage),
        **({"widen": widen} if widen else {}),
        # Recorded so that a load can tell a complete file from one with members missing or
        # rewritten with another layout.
        "arrays": {
            name: [_descr(a.dtype), [int(s) for s in a.shape]]
            for name, a in arrays.items()
        },
    }


def _atomic_write_npz(path: Path, arrays: Mapping[str, np.ndarray], signature: dict) -> None:
    """Write an uncompressed ``.npz`` (readable by ``np.load``) to ``path`` atomically.

    The zip is built with ``zipfile`` + ``np.lib.format.write_array``, the same thing
    ``np.savez`` does, because ``np.savez(file, **arrays)`` would misinterpret an output named
    ``file`` or ``allow_pickle`` as its own parameter.
    """
    # Readers see either the old complete file or the new complete file, never a prefix.
    with atomic_path(path, private=True) as tmp, open(tmp, "wb") as f:  # embeddings derive from patient images
        with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            sig = np.array(json.dumps(signature, sort_keys=True))
            for name, arr in [(_SIGNATURE_MEMBER, sig), *arrays.items()]:
                with zf.open(name + ".npy", mode="w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)


def _read_npz(path: Path, expected: dict[str, object]) -> _Stored:
    """Load and validate a cache file; raise :class:`_RefusedFile` if it must not be used."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise _RefusedFile("not an npz archive")
            if _SIGNATURE_MEMBER not in npz.files:
                raise _RefusedFile("no signature")
            sig = json.loads(str(npz[_SIGNATURE_MEMBER][()]))
            if not isinstance(sig, dict):
                raise _RefusedFile("malformed signature")
            for field, value in expected.items():
                if sig.get(field) != value:
                    raise _RefusedFile(f"signature mismatch in {field!r}")
            if sig.get("storage", "") != expected.get("storage", ""):
                raise _RefusedFile("signature mismatch in 'storage'")
            layout = sig.get("arrays")
            if not isinstance(layout, dict) or not layout:
                raise _RefusedFile("malformed signature")
            if set(npz.files) != {_SIGNATURE_MEMBER, *layout}:
                raise _RefusedFile("members do not match signature")
            arrays: dict[str, np.ndarray] = {}
            for name, (descr, shape) in layout.items():
                # Full read: zipfile checks each member's CRC-32 at its end, so bit rot is caught.
                arr = npz[name]
                if _descr(arr.dtype) != descr or list(arr.shape) != shape:
                    raise _RefusedFile(f"array {name!r} does not match signature")
                arr = np.ascontiguousarray(arr)
                arr.flags.writeable = False
                arrays[name] = arr
            widen = sig.get("widen", [])
            if not isinstance(widen, list) or any(n not in arrays or arrays[n].dtype != np.float16 for n in widen):
                raise _RefusedFile("malformed signature")
            return _Stored(arrays, widen)
    except _RefusedFile:
        raise
    except (PermissionError, FileNotFoundError):
        raise  # not the file's fault: let the caller treat it as a transient miss
    except Exception as exc:  # noqa: BLE001 - any parse failure means the file is unusable
        # Truncated zips raise BadZipFile/EOFError/ValueError/OSError depending on where the cut
        # is; all mean the same thing here.
        raise _RefusedFile(f"unreadable ({type(exc).__name__}: {exc})") from exc


def _unlink_quietly(path: Path) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:
        return False
