"""Partial identities: a folder shared by tasks that differ only in some parameter groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any, overload

from ..config import Config, ConfigError, partial_identifier, type_name
from ..config.fields import group_names
from ..config.schema import Field
from .layout import current_workspace


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
    first access, except in a dry run (which writes nothing); tasks sharing it may run at the
    same time, so write into it atomically.

    A parameter of the task is left out of the partial identifier when `exclude_all` is set,
    when it is in one of `exclude_groups`, or when it has no group and `exclude_no_group` is
    set; but never when it is in one of `include_groups`. Groups are names or
    `param_group(...)` objects.
    """

    def __init__(
        self,
        exclude_groups: Any = (),
        include_groups: Any = (),
        exclude_all: bool = False,
        exclude_no_group: bool = False,
    ) -> None:
        self.exclude_groups = frozenset(group_names(exclude_groups, "partial(exclude_groups=...)"))
        self.include_groups = frozenset(group_names(include_groups, "partial(include_groups=...)"))
        self.exclude_all = exclude_all
        self.exclude_no_group = exclude_no_group
        if not (self.exclude_groups or exclude_all or exclude_no_group):
            raise ValueError(
                "partial(...): say which parameters to leave out: exclude_groups=['training'], "
                "exclude_all=True or exclude_no_group=True (then include_groups=[...] keeps some)."
            )
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def excluded(self, f: Field) -> bool:
        """Whether parameter `f` is left out of the partial identifier."""
        if self.include_groups.intersection(f.groups):
            return False
        return (
            self.exclude_all
            or bool(self.exclude_groups.intersection(f.groups))
            or (self.exclude_no_group and not f.groups)
        )

    def folder_in(self, workspace: Path, owner: Config) -> Path:
        """The partial folder of `owner` in `workspace` (not created)."""
        ident = partial_identifier(owner, self.name, self.excluded)
        return workspace / "partials" / type_name(type(owner)).lower() / self.name / ident

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
            workspace = job.workspace  # that of the experiment, or dry run, that submitted it
        if workspace is None:
            raise ConfigError(
                f"{type(obj).__qualname__}.{self.name} is a partial folder; it is known inside "
                "an experiment or a running task."
            )
        folder = self.folder_in(workspace.path, obj)
        if not workspace.dry_run:
            folder.mkdir(parents=True, exist_ok=True)
        return folder


def partial(
    *,
    exclude_groups: Any = (),
    include_groups: Any = (),
    exclude_all: bool = False,
    exclude_no_group: bool = False,
) -> Any:
    """Declare a partial folder on a task class (see `Partial`)."""
    return Partial(exclude_groups, include_groups, exclude_all, exclude_no_group)
