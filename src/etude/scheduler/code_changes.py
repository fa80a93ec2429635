"""Which code a job ran with, and whether it changed since: fingerprints of source files.

A job's code is the modules that define its task class and the configuration classes in its
parameters. Its fingerprint, recorded in `params.json` (`code`) and copied by the job process
into its done marker, is `{"digest": ..., "modules": {module: {"file": path, "sha256": ...}}}`;
the digest covers module names and file contents, not paths, so that a moved checkout keeps
its jobs. Each file is read and hashed once per experiment.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable
from typing import IO, Any

from ..workspace import read_json
from .job import Job


class CodeFingerprints:
    """Fingerprints of job code for one experiment; files are hashed once, on first use."""

    def __init__(self) -> None:
        self._files: dict[str, str | None] = {}  # module name -> its file (None: no file)
        self._hashes: dict[str, str] = {}  # file -> sha256 of its content
        self._by_types: dict[frozenset[type], dict[str, Any]] = {}

    def of(self, configs: Iterable[object]) -> dict[str, Any]:
        """The fingerprint of the code of these configurations (a task and its parameters)."""
        types = frozenset(type(config) for config in configs)
        found = self._by_types.get(types)
        if found is None:
            modules: dict[str, Any] = {}
            for cls in types:
                path = self._file_of(cls.__module__)
                if path is not None:
                    modules[cls.__module__] = {"file": path, "sha256": self._hash(path)}
            digest = hashlib.sha256()
            for name in sorted(modules):
                digest.update(f"{name}\0{modules[name]['sha256']}\n".encode())
            found = {"digest": digest.hexdigest()[:32], "modules": modules}
            self._by_types[types] = found
        return found

    def _file_of(self, module_name: str) -> str | None:
        if module_name not in self._files:
            module = sys.modules.get(module_name)
            path = getattr(module, "__file__", None)
            self._files[module_name] = (
                os.path.realpath(path) if path and os.path.isfile(path) else None
            )
        return self._files[module_name]

    def _hash(self, path: str) -> str:
        if path not in self._hashes:
            with open(path, "rb") as source:
                self._hashes[path] = hashlib.sha256(source.read()).hexdigest()
        return self._hashes[path]


def changed_files(recorded: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """The files (as they are now) of the modules whose content differs from `recorded`."""
    before = (recorded or {}).get("modules") or {}
    now = current.get("modules") or {}
    changed = []
    for name in sorted(set(before) | set(now)):
        if (before.get(name) or {}).get("sha256") != (now.get(name) or {}).get("sha256"):
            entry = now.get(name) or before.get(name) or {}
            changed.append(_shown(str(entry.get("file") or name)))
    return changed


def _shown(path: str) -> str:
    """A path relative to the working directory when it lies below it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


class CodeChangeReport:
    """Tells, once per task, that done jobs are reused although their code changed since."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream
        self._told: set[str] = set()

    def code_changed(self, job: Job, done: dict[str, Any]) -> bool:
        """Whether the code of a done `job` changed since it ran; unknown (a job done before
        etude recorded code) counts as unchanged."""
        recorded = done.get("code")
        return recorded is not None and job.code is not None and recorded != job.code["digest"]

    def files(self, job: Job) -> str:
        """The changed files of a done `job` whose code changed, as a message shows them."""
        try:
            recorded = read_json(job.dir.params).get("code")
        except (OSError, ValueError, AttributeError):
            recorded = None  # the message then names every file of the job's code
        return ", ".join(changed_files(recorded, job.code or {})) or "unknown files"

    def reused(self, job: Job) -> None:
        """Say that `job` is reused although its code changed (once per task)."""
        if job.type_name in self._told or job.code is None:
            return
        self._told.add(job.type_name)
        files = self.files(job)
        task = job.type_name
        print(
            f"etude: {task}: the code changed since done job {job.name} ran ({files}); done "
            f"jobs of {task} are reused as they are. Ways out:\n"
            "  keep them (the default): nothing to do;\n"
            f"  run them again: submit(rerun=\"changed\") (or rerun=True for every job), or "
            f"`etude jobs rerun --where \"task = '{task}'\"` before the next run;\n"
            "  or, if the change alters results, bump a Constant of the task (e.g. "
            "version: Constant[int] = 2): new identifiers, new jobs.",
            file=self.stream or sys.stderr,
        )
