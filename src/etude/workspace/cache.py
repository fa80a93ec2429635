"""`@cache("name")`: a method result kept in a per-configuration folder of the workspace."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..config import Config, ConfigError, identifier, type_name
from .layout import current_workspace
from .locks import FileLock

R = TypeVar("R")


def cache_path(cfg: Config, name: str) -> Path:
    """`WORKSPACE/config/QUALIFIED_NAME/ID/name` for `cfg` in the current workspace."""
    workspace = current_workspace.get()
    if workspace is None:
        raise ConfigError(
            f"{type(cfg).__qualname__}: @cache({name!r}) needs a workspace; call the method "
            "inside `with experiment(...)` or inside a running task."
        )
    return workspace.cache / type_name(type(cfg)).lower() / identifier(cfg) / name


def cache(name: str) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Give a config method `method(self, path, ...)` a cache path, held under a lock.

    The path is `WORKSPACE/config/QUALIFIED_NAME/ID/name`, keyed by the configuration's
    identifier; the lock (`name.lock` beside it) is held while the method runs, so two jobs
    using the same configuration never compute it at the same time. The method decides
    whether the path already holds the result.
    """
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"@cache(name): expected a file name such as 'terms.npy', got {name!r}.")

    def decorate(method: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(method)
        def wrapper(self: Config, *args: Any, **kwargs: Any) -> R:
            path = cache_path(self, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(path.with_name(name + ".lock")):
                return method(self, path, *args, **kwargs)

        return wrapper

    return decorate
