"""Frozen copies of code for job processes (`workdir={"copied": [...]}`).

At submission the named folders, files or packages are copied to a new folder; the job runs
from there (its working directory), and its `sys.path` points to the copies instead of the
originals. Editing the code after submission therefore changes nothing for a submitted job.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pydantic

from .errors import InfraConfigError

DEFAULT_EXCLUDES = ("__pycache__", "*.pyc", ".git", ".ipynb_checkpoints", "*.egg-info")


class WorkDir(pydantic.BaseModel):
    """Which code a job process runs from.

    `copied`: folders or files (relative to the current directory) or names of importable
    packages (their source folder is copied, which is what an editable install points to).
    `includes`: if given, only files whose name matches one of these patterns are copied.
    `excludes`: names (files or folders) matching these patterns are not copied.
    `folder`: where the copies go (a new subfolder per submission); default: the method's
    cache folder, under `code/`.
    """

    model_config = pydantic.ConfigDict(extra="forbid")

    copied: list[str] = []
    includes: list[str] = []
    excludes: list[str] = list(DEFAULT_EXCLUDES)
    folder: Path | None = None

    @pydantic.field_validator("copied", mode="before")
    @classmethod
    def _paths_as_strings(cls, copied: object) -> object:
        # `Path` objects are as welcome as strings (a package name stays a string)
        if isinstance(copied, (list, tuple)):
            return [os.fspath(item) if isinstance(item, os.PathLike) else item for item in copied]
        return copied


@dataclass
class CodeCopy:
    """A finished copy: the job's working directory and how its `sys.path` maps."""

    root: Path
    #: original path (absolute, as a string) -> path of its copy
    replaced: dict[str, str] = field(default_factory=dict)
    #: entries to put first on sys.path (parents of copied packages)
    prepend: list[str] = field(default_factory=list)

    def map_path(self, path: str) -> str:
        """`path` inside the copy if it lies in a copied folder (or is a copied file)."""
        for original, copy in self.replaced.items():
            if path == original or path.startswith(original + os.sep):
                return copy + path[len(original) :]
        return path

    def sys_path(self, entries: list[str]) -> list[str]:
        mapped = [self.map_path(e) for e in entries]
        return self.prepend + [e for e in mapped if e not in self.prepend]


def _source(name: str) -> tuple[Path, bool]:
    """(absolute path to copy, whether it is a package whose parent goes on sys.path)."""
    path = Path(name).expanduser()
    if path.exists():
        path = path.absolute()
        return path, (path / "__init__.py").exists()
    if "/" not in name and name.isidentifier():
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin not in (None, "built-in", "frozen"):
            origin = Path(str(spec.origin)).resolve()
            if spec.submodule_search_locations:
                return origin.parent, True
            return origin, True
        if spec is not None and spec.submodule_search_locations:  # namespace package
            return Path(next(iter(spec.submodule_search_locations))).resolve(), True
    raise InfraConfigError(
        f"workdir.copied: {name!r} is neither a file or folder (relative to {os.getcwd()}) nor "
        "an importable package. Give a path or the name of an installed package."
    )


def make_copy(workdir: WorkDir, parent: Path) -> CodeCopy:
    """Copy `workdir.copied` into a new folder under `workdir.folder` or `parent`."""
    base = workdir.folder if workdir.folder is not None else parent
    root = Path(base).absolute() / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(3).hex()}"
    root.mkdir(parents=True)
    copy = CodeCopy(root)
    ignore = _ignore(workdir.includes, workdir.excludes)
    for name in workdir.copied:
        source, package = _source(name)
        target = root / source.name
        if target.exists():
            raise InfraConfigError(
                f"workdir.copied: two entries are named {source.name!r}; the copies would "
                "overwrite each other. Copy their common parent folder instead."
            )
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore, symlinks=True)
        else:
            shutil.copy2(source, target)
        copy.replaced[str(source)] = str(target)
        if package and str(root) not in copy.prepend:
            copy.prepend.append(str(root))
    return copy


def _ignore(includes: list[str], excludes: list[str]) -> Callable[[str, list[str]], set[str]]:
    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if any(fnmatch.fnmatch(n, p) for p in excludes)}
        if includes:
            for name in names:
                if name in skipped or os.path.isdir(os.path.join(folder, name)):
                    continue
                if not any(fnmatch.fnmatch(name, p) for p in includes):
                    skipped.add(name)
        return skipped

    return ignore
