"""The app's memory settings: the embedding cache sized from the machine's RAM unless set, its disk tier on,
and the disk tier's folder (a temporary one in these tests, never the user's)."""

from __future__ import annotations

from pathlib import Path

import engine.inference.cache as cache_mod
from app.gui.settings import Settings
from engine.inference.cache import default_disk_dir
from engine.inference.session import SessionConfig


def test_default_settings_size_the_cache_from_ram_with_the_disk_tier(monkeypatch):
    cfg = Settings().session_config()
    assert cfg.cache_bytes is None and cfg.disk_cache is True and cfg.cache_storage == "f16"
    monkeypatch.delenv(cache_mod.CACHE_ENV, raising=False)
    monkeypatch.setattr(cache_mod, "total_ram_bytes", lambda: 8 << 30)
    assert cache_mod.EmbeddingCache(max_bytes=cfg.cache_bytes, storage=cfg.cache_storage).max_bytes == 256 << 20
    # with the disk tier the memory tier is a hot set: 128 MiB on 8 GiB
    assert cache_mod.EmbeddingCache(max_bytes=cfg.cache_bytes, disk_dir=default_disk_dir()).max_bytes == 128 << 20


def test_a_set_cache_size_and_no_disk_tier_are_kept():
    cfg = Settings(cache_mb=512, disk_cache=False).session_config()
    assert cfg == SessionConfig(cache_bytes=512 << 20, disk_cache=False)


def test_settings_round_trip_the_disk_tier(temp_qsettings):
    Settings(cache_mb=0, disk_cache=False).save()
    assert Settings.load() == Settings(cache_mb=0, disk_cache=False)
    Settings().save()
    assert Settings.load().disk_cache is True


def test_disk_tier_folder_is_temporary_in_the_app_tests(tmp_path):
    # the autouse fixture of tests/app/gui/conftest.py, as the smoke test does for its run
    assert default_disk_dir() == Path(tmp_path / "embeddings")
