"""`Token`: what `xp.token(name, size)` returns; `token(count, task)` makes the task need it."""

from __future__ import annotations

from typing import TypeVar

from ..config import Task
from ..workspace.tokens import check_token

T = TypeVar("T", bound=Task)


class Token:
    """A named counter of `size` units of a resource, shared by the experiments of a workspace.

    `token(count, task)` returns `task`, which then starts only once `count` units are free,
    and holds them while it runs. Two experiments should declare the same size for a name.
    """

    def __init__(self, name: str, size: int) -> None:
        check_token(name, size)
        self.name = name
        self.size = size
        self.needs: dict[int, tuple[Task, int]] = {}  # id(task) -> (task, units), until submit

    def __call__(self, count: int, task: T) -> T:
        if not isinstance(task, Task):
            raise TypeError(f"token {self.name!r}: expected a Task, got {type(task).__name__}.")
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= self.size:
            raise ValueError(
                f"token {self.name!r}({count!r}, {type(task).__qualname__}): ask for 1 to "
                f"{self.size} units (the token's size)."
            )
        self.needs[id(task)] = (task, count)
        return task

    def take_need(self, task: Task) -> int:
        """The units `task` asked for (0 if none), forgotten once read (at submit)."""
        entry = self.needs.pop(id(task), None)
        return entry[1] if entry is not None and entry[0] is task else 0

    def __repr__(self) -> str:
        return f"Token({self.name!r}, {self.size})"
