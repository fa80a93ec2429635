"""User settings: `~/.config/etude/settings.yaml` (or `$XDG_CONFIG_HOME/etude/settings.yaml`).

```yaml
workspaces:
  - id: main
    path: ~/experiments
    max_retries: 5        # default 3: how often a resumable task is started again
    env:                  # added to the environment of every job of this workspace
      OMP_NUM_THREADS: "4"
    store: postgresql://me@db.example:5432/etude   # the index database (default: SQLite)
```
`experiment("main", ...)` opens the workspace whose `id` is `main`; `experiment(folder, ...)`
uses the entry whose `path` is that folder, if any.

Two more top-level keys serve run tracking (`etude.tracking`):
```yaml
default_workspace: main    # Run.init() without workspace= and without ETUDE_WORKSPACE
tracking:
  reuse_hours: 72          # Run.init reuses the last run of a project/name this recent
  debug_samples: 100       # images and media kept per title/series (the last ones)
  env: [CUDA_*, SLURM_JOB_ID]   # environment variables recorded with each run
  flush_seconds: 0.5       # how often buffered points are written
```
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MAX_RETRIES = 3


class SettingsError(ValueError):
    """The settings file is not valid; the message names the file, the entry and the fix."""


@dataclass(frozen=True)
class WorkspaceSettings:
    path: Path
    id: str | None = None
    max_retries: int = DEFAULT_MAX_RETRIES
    env: dict[str, str] = field(default_factory=dict)
    store: str | None = None


def settings_path() -> Path:
    key = (os.environ.get("XDG_CONFIG_HOME"), os.environ.get("HOME"))
    path = _settings_paths.get(key)
    if path is None:  # made once per environment: a process starting many runs asks each time
        base = key[0] or os.path.join(os.path.expanduser("~"), ".config")
        path = _settings_paths[key] = Path(base) / "etude" / "settings.yaml"
    return path


_settings_paths: dict[tuple[str | None, str | None], Path] = {}


TRACKING_DEFAULTS: dict[str, Any] = {
    "reuse_hours": 72.0, "debug_samples": 100, "env": [], "flush_seconds": 0.5,
}


def _load(path: Path) -> dict[str, Any]:
    """The parsed settings file ({} when there is none). Parsed again only when the file
    changes (one stat per call: a process that starts many runs reads it for each); callers
    must not modify the mapping. A file modified in the last two seconds is always parsed:
    file times are coarse, so two quick edits of the same size could share one."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return {}
    version = (os.fspath(path), info.st_mtime_ns, info.st_size, info.st_ino)
    cached = _parsed.get(version[0])
    settled = time.time_ns() - info.st_mtime_ns > 2_000_000_000
    if cached is not None and cached[0] == version and settled:
        return cached[1]
    import yaml  # lazily: most runs have no settings file

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML ({exc}).") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a mapping with a 'workspaces' list at the top.")
    _parsed[version[0]] = (version, data)
    return data


_parsed: dict[str, tuple[tuple[str, int, int, int], dict[str, Any]]] = {}


def load_tracking(path: Path | None = None) -> dict[str, Any]:
    """The `tracking` settings merged over TRACKING_DEFAULTS, checked."""
    path = path or settings_path()
    section = _load(path).get("tracking") or {}
    if not isinstance(section, dict):
        raise SettingsError(f"{path}: tracking must be a mapping (keys: "
                            f"{', '.join(TRACKING_DEFAULTS)}).")
    unknown = set(section) - set(TRACKING_DEFAULTS)
    if unknown:
        raise SettingsError(f"{path}: tracking: unknown key(s) {', '.join(sorted(unknown))}; "
                            f"valid keys: {', '.join(TRACKING_DEFAULTS)}.")
    merged = {**TRACKING_DEFAULTS, **section}
    for key in ("reuse_hours", "debug_samples", "flush_seconds"):
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise SettingsError(f"{path}: tracking.{key} must be a number >= 0, got {value!r}.")
    if not isinstance(merged["env"], list) or not all(isinstance(v, str) for v in merged["env"]):
        raise SettingsError(f"{path}: tracking.env must be a list of variable names or "
                            "patterns such as CUDA_*.")
    return merged


def default_workspace(path: Path | None = None) -> str | None:
    """The settings' `default_workspace` (an id or a path), if any."""
    path = path or settings_path()
    value = _load(path).get("default_workspace")
    if value is not None and not isinstance(value, str):
        raise SettingsError(f"{path}: default_workspace must be a workspace id or a path, "
                            f"got {value!r}.")
    return value


def load_workspaces(path: Path | None = None) -> list[WorkspaceSettings]:
    """The `workspaces` entries of the settings file (none if the file does not exist)."""
    path = path or settings_path()
    data = _load(path)
    entries = data.get("workspaces") or []
    if not isinstance(entries, list):
        raise SettingsError(f"{path}: 'workspaces' must be a list of entries with 'path'.")
    return [_entry(path, i, entry) for i, entry in enumerate(entries)]


def _entry(path: Path, index: int, entry: Any) -> WorkspaceSettings:
    where = f"{path}: workspaces[{index}]"
    if not isinstance(entry, dict) or "path" not in entry:
        raise SettingsError(f"{where}: each entry needs a 'path' (and optionally an 'id').")
    unknown = set(entry) - {"id", "path", "max_retries", "env", "store"}
    if unknown:
        raise SettingsError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; valid keys: id, path, "
            "max_retries, env, store."
        )
    store = entry.get("store")
    if store is not None and (not isinstance(store, str) or not store.strip()):
        raise SettingsError(
            f"{where}: store must be a database URL such as "
            f"postgresql://user@host:5432/etude, got {store!r}."
        )
    retries = entry.get("max_retries", DEFAULT_MAX_RETRIES)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise SettingsError(f"{where}: max_retries must be an integer >= 0, got {retries!r}.")
    env = entry.get("env") or {}
    if not isinstance(env, dict):
        raise SettingsError(f"{where}: env must be a mapping of variable names to values.")
    return WorkspaceSettings(
        path=Path(str(entry["path"])).expanduser().absolute(),
        id=None if entry.get("id") is None else str(entry["id"]),
        max_retries=retries,
        env={str(k): str(v) for k, v in env.items()},
        store=store,
    )


def find_workspace(workdir: str | os.PathLike[str]) -> WorkspaceSettings:
    """The settings for `workdir`: the entry with that id, or that path, or the defaults."""
    entries = load_workspaces()
    text = os.fspath(workdir)
    for entry in entries:
        if entry.id is not None and entry.id == text:
            return entry
    folder = Path(text).expanduser().absolute()
    for entry in entries:
        if entry.path == folder:
            return entry
    return WorkspaceSettings(path=folder)
