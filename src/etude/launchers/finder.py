"""Choosing a launcher from `~/.config/etude/launchers.yaml` by what a job requires.

```yaml
launchers:
  - name: laptop                  # shown in messages and by `etude launchers find`
    type: direct                  # direct | slurm
    hosts: ["my-laptop"]          # optional: only on these machines (shell patterns)
    options: {max_jobs: 2}        # keyword arguments of DirectLauncher / SlurmLauncher
    limits: {duration: 2h, cores: 8, mem: 16G, gpus: 1, gpu_mem: 8G}
  - name: cluster-gpu
    type: slurm
    options: {partition: gpu, account: team, setup: ["module load cuda"]}
    limits: {duration: 2d, cores: 32, mem: 256G, gpus: 8, gpu_mem: 40G}
```
The first entry whose limits hold the requirement is chosen. A missing limit means "no limit",
except `gpus`: a launcher without a `gpus` limit offers none. A direct launcher's
`options.gpus` (`[0, 1]`, or `{0: 24G, 1: 24G}` with their memory) gives it GPU limits: as many
GPUs as listed, and the largest memory listed.
"""

from __future__ import annotations

import fnmatch
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..workspace.settings import settings_path
from .base import Launcher
from .gpus import parse_gpus
from .requirements import (
    RequirementError,
    Requirements,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)

KINDS = ("direct", "slurm")
_LIMITS = ("duration", "cores", "mem", "gpus", "gpu_mem")


class LaunchersFileError(ValueError):
    """launchers.yaml is not valid; the message names the file, the entry and the fix."""


class NoLauncherFits(LookupError):
    """No listed launcher can run a job with these requirements; says why for each."""


@dataclass
class LauncherEntry:
    """One launcher of launchers.yaml, built on first use (then shared, so `max_jobs` holds)."""

    name: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    limits: Requirements = field(default_factory=Requirements)
    hosts: tuple[str, ...] = ()
    _launcher: Launcher | None = field(default=None, repr=False)

    def launcher(self) -> Launcher:
        if self._launcher is None:
            from .direct import DirectLauncher
            from .slurm import SlurmLauncher

            factory = DirectLauncher if self.kind == "direct" else SlurmLauncher
            try:
                self._launcher = factory(**self.options)
            except (TypeError, ValueError) as exc:
                raise LaunchersFileError(
                    f"{launchers_path()}: launcher {self.name!r}: bad options: {exc}"
                ) from exc
        return self._launcher

    def why_not(self, needs: Requirements) -> str | None:
        """Why this launcher cannot run a job that needs `needs`, or None if it can."""
        if self.hosts and not any(fnmatch.fnmatch(socket.gethostname(), h) for h in self.hosts):
            return f"only on hosts {', '.join(self.hosts)} (this is {socket.gethostname()})"
        have = self.limits
        checks: list[tuple[str, float | None, float | None, Callable[[Any], str]]] = [
            ("duration", needs.duration, have.duration, format_duration),
            ("cores", needs.cores, have.cores, str),
            ("memory", needs.memory, have.memory, format_size),
        ]
        for what, wanted, limit, show in checks:
            if wanted is not None and limit is not None and wanted > limit:
                return f"{what} {show(wanted)} is over its limit {show(limit)}"
        if needs.gpus > have.gpus:
            return f"{needs.gpus} GPU(s) wanted, it has {have.gpus}"
        if (
            needs.gpus
            and needs.gpu_memory
            and have.gpu_memory is not None
            and needs.gpu_memory > have.gpu_memory
        ):
            return (
                f"GPU memory {format_size(needs.gpu_memory)} is over its limit "
                f"{format_size(have.gpu_memory)}"
            )
        return None


def launchers_path() -> Path:
    """`$XDG_CONFIG_HOME/etude/launchers.yaml`, beside settings.yaml."""
    return settings_path().with_name("launchers.yaml")


def load_launchers(path: Path | None = None) -> list[LauncherEntry]:
    """The entries of launchers.yaml (none if the file does not exist)."""
    path = path or launchers_path()
    if not path.exists():
        return []
    import yaml  # lazily: most runs have no launchers file

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise LaunchersFileError(f"{path}: not valid YAML: {exc}") from exc
    items = data.get("launchers") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise LaunchersFileError(
            f"{path}: expected a top-level 'launchers:' list of entries with name, type, "
            "options and limits."
        )
    return [_entry(path, i, item) for i, item in enumerate(items)]


def _entry(path: Path, index: int, item: Any) -> LauncherEntry:
    where = f"{path}: launchers[{index}]"
    if not isinstance(item, dict):
        raise LaunchersFileError(f"{where}: expected a mapping with name, type, options, limits.")
    unknown = set(item) - {"name", "type", "options", "limits", "hosts"}
    if unknown:
        raise LaunchersFileError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; valid keys: name, type, "
            "hosts, options, limits."
        )
    kind = item.get("type")
    if kind not in KINDS:
        raise LaunchersFileError(f"{where}: type {kind!r}; expected one of {', '.join(KINDS)}.")
    options = item.get("options") or {}
    if not isinstance(options, dict):
        raise LaunchersFileError(f"{where}: options must be a mapping of keyword arguments.")
    hosts = item.get("hosts") or []
    if isinstance(hosts, str) or not isinstance(hosts, list):
        raise LaunchersFileError(f"{where}: hosts must be a list of host name patterns.")
    name = str(item.get("name") or f"{kind}-{index}")
    limits = _limits(f"{where} ({name})", item.get("limits") or {})
    if kind == "direct" and options.get("gpus") is not None:
        limits = _gpu_limits(f"{where} ({name})", options["gpus"], limits, item.get("limits"))
    return LauncherEntry(name, kind, dict(options), limits, tuple(str(h) for h in hosts))


def _gpu_limits(where: str, gpus: Any, limits: Requirements, raw: Any) -> Requirements:
    """A direct launcher's `options.gpus` (indices, or `{index: memory}`) are its GPU limits,
    unless `limits` states them."""
    try:
        stated = parse_gpus(gpus)
    except ValueError as exc:
        raise LaunchersFileError(f"{where}: options.gpus: {exc}") from exc
    assert stated is not None
    raw = raw if isinstance(raw, dict) else {}
    memories = [gpu.memory for gpu in stated]
    return replace(
        limits,
        gpus=limits.gpus if "gpus" in raw else len(stated),
        gpu_memory=limits.gpu_memory
        if "gpu_mem" in raw or None in memories or not memories
        else max(m for m in memories if m is not None),
    )


def _limits(where: str, raw: Any) -> Requirements:
    if not isinstance(raw, dict):
        raise LaunchersFileError(f"{where}: limits must be a mapping ({', '.join(_LIMITS)}).")
    unknown = set(raw) - set(_LIMITS)
    if unknown:
        raise LaunchersFileError(
            f"{where}: unknown limit(s) {', '.join(sorted(unknown))}; valid: {', '.join(_LIMITS)}."
        )
    try:
        return Requirements(
            duration=parse_duration(str(raw["duration"])) if "duration" in raw else None,
            cores=_count(where, "cores", raw.get("cores")),
            memory=parse_size(str(raw["mem"])) if "mem" in raw else None,
            gpus=_count(where, "gpus", raw.get("gpus")) or 0,
            gpu_memory=parse_size(str(raw["gpu_mem"])) if "gpu_mem" in raw else None,
        )
    except RequirementError as exc:
        raise LaunchersFileError(f"{where}: limits: {exc}") from exc


def _count(where: str, key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LaunchersFileError(f"{where}: limits.{key} must be a whole number, got {value!r}.")
    return value


def find_entry(needs: Requirements, entries: list[LauncherEntry]) -> LauncherEntry:
    """The first entry that can run a job needing `needs`; `NoLauncherFits` says why not."""
    reasons = []
    for entry in entries:
        why = entry.why_not(needs)
        if why is None:
            return entry
        reasons.append(f"  {entry.name} ({entry.kind}): {why}")
    if not entries:
        raise NoLauncherFits(
            f"no launchers are listed in {launchers_path()}; add one (see the Slurm page of the "
            "docs) or pass launcher=... to submit()."
        )
    raise NoLauncherFits(
        f"no launcher of {launchers_path()} fits '{needs}':\n" + "\n".join(reasons)
        + "\nRaise a limit there, add a launcher, or ask for less."
    )


_cache: dict[tuple[str, float], list[LauncherEntry]] = {}


def find_launcher(needs: str | Requirements, path: Path | None = None) -> Launcher:
    """The launcher of launchers.yaml that fits `needs` (`"duration=4h & gpu(mem=24G)*2"`).

    The file is read once per change, and each entry's launcher is built once, so jobs
    placed on the same entry share it. Raises `NoLauncherFits`, `LaunchersFileError`.
    """
    from .requirements import as_requirements

    wanted = as_requirements(needs) or Requirements()
    path = path or launchers_path()
    try:
        key = (str(path), os.path.getmtime(path))
    except OSError:
        key = (str(path), 0.0)
    if key not in _cache:
        _cache[key] = load_launchers(path)
    return find_entry(wanted, _cache[key]).launcher()
