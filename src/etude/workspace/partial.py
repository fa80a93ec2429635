"""Partial identities: a folder shared by tasks that differ only in some parameter groups."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, overload

from ..config import Config, ConfigError, partial_identifier, type_name
from .layout import Workspace, current_workspace


class Partial:
    """Class attribute giving each task a folder shared with tasks that differ only in groups.

    ```python
    class Learn(ResumableTask):
        epochs: Param[int] = field(default=100, groups=("training",))
        lr: Param[float]
        checkpoints = partial(exclude_groups=["training"])
    ```
    `self.checkpoints` is `WORKSPACE/partials/QUALIFIED_NAME/checkpoints/PARTIAL_ID/`, the same
    folder for every `Learn` with the same `lr` whatever its `epochs`. The folder is created on
    first access; tasks sharing it may run at the same time, so write into it atomically.
    """

    def __init__(self, exclude_groups: Iterable[str]) -> None:
        groups = [exclude_groups] if isinstance(exclude_groups, str) else list(exclude_groups)
        if not groups or not all(isinstance(g, str) and g for g in groups):
            raise ValueError(
                "partial(exclude_groups=[...]): give the names of the parameter groups to leave "
                "out, e.g. partial(exclude_groups=['training'])."
            )
        self.exclude_groups = frozenset(groups)
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Partial: ...
    @overload
    def __get__(self, obj: Config, owner: type) -> Path: ...
    def __get__(self, obj: Config | None, owner: type) -> Any:
        if obj is None:
            return self
        workspace = current_workspace.get()
        job = obj._etude.job
        if workspace is None and job is not None:
            workspace = Workspace(Path(job.path).parents[2])  # WORKSPACE/jobs/NAME/ID
        if workspace is None:
            raise ConfigError(
                f"{type(obj).__qualname__}.{self.name} is a partial folder; it is known inside "
                "an experiment or a running task."
            )
        ident = partial_identifier(obj, self.name, self.exclude_groups)
        folder = workspace.path / "partials" / type_name(type(obj)).lower() / self.name / ident
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def partial(*, exclude_groups: Iterable[str]) -> Any:
    """Declare a partial folder on a task class (see `Partial`)."""
    return Partial(exclude_groups)
