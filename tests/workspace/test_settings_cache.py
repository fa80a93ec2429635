"""The settings file is parsed once and read again when it changes, even twice in a row."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from etude.workspace.settings import SettingsError, load_tracking


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_an_edit_is_seen_at_once_even_with_the_same_size(tmp_path: Path) -> None:
    path = tmp_path / "etude" / "settings.yaml"
    _write(path, "tracking:\n  flush_seconds: 0.5\n")
    assert load_tracking(path)["flush_seconds"] == 0.5
    _write(path, "tracking:\n  flush_seconds: 0.7\n")  # same size, same coarse mtime
    assert load_tracking(path)["flush_seconds"] == 0.7


def test_an_old_file_is_served_from_the_cache_until_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "etude" / "settings.yaml"
    _write(path, "tracking:\n  debug_samples: 5\n")
    os.utime(path, (1_000_000_000, 1_000_000_000))  # settled: written long ago
    assert load_tracking(path)["debug_samples"] == 5
    _write(path, "tracking:\n  debug_samples: 7\n")
    assert load_tracking(path)["debug_samples"] == 7
    path.unlink()
    assert load_tracking(path)["debug_samples"] == 100  # the default again


def test_a_broken_edit_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "etude" / "settings.yaml"
    _write(path, "tracking:\n  debug_samples: 5\n")
    assert load_tracking(path)["debug_samples"] == 5
    _write(path, "tracking: [\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_tracking(path)
