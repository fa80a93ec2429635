"""Submit hooks: decorators on configuration classes that edit a job before it is launched."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ..launchers import Launcher
    from .job import Job

C = TypeVar("C", bound=type)


class SubmitHook:
    """Subclass and decorate a `Config` class with an instance: `@needs_java(11)`.

    Every job whose configuration graph contains an object of the decorated class calls
    `process(job, launcher)` before launch, once per distinct `(hook class, spec())`.
    """

    def spec(self) -> Hashable:
        """A hashable value: two hooks of one class with equal specs are applied once."""
        return ()

    def process(self, job: Job, launcher: Launcher) -> None:
        """Edit `job` (e.g. `job.environ["X"] = "1"`, `job.launcher_options`)."""
        raise NotImplementedError(f"{type(self).__qualname__} must define process(job, launcher).")

    def __call__(self, cls: C) -> C:
        hooks = list(cls.__dict__.get("__etude_hooks__", ()))
        hooks.append(self)
        cls.__etude_hooks__ = tuple(hooks)  # type: ignore[attr-defined]
        return cls


def hooks_for(classes: Iterable[type]) -> list[SubmitHook]:
    """The hooks declared on `classes` and their bases, deduplicated by `(type, spec())`."""
    found: dict[tuple[type, Any], SubmitHook] = {}
    for cls in classes:
        for klass in cls.__mro__:
            for hook in klass.__dict__.get("__etude_hooks__", ()):
                found.setdefault((type(hook), hook.spec()), hook)
    return list(found.values())
