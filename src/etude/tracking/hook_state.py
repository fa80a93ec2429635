"""What the automatic hooks share (see `frameworks`): the sink protocol, the process-wide
state of the patches, and how a hook reaches the sink without ever raising.

The patched attributes can only be process-wide, so is what they share: one lock, one state,
reset by `uninstall_all`. Importing this module imports the standard library only, and only
what `import etude.tracking` already needs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar

if TYPE_CHECKING:  # importlib.abc costs milliseconds at start-up; only the type is needed
    from importlib.abc import MetaPathFinder

_log = logging.getLogger("etude.tracking")
_T = TypeVar("_T")


class FrameworkSink(Protocol):
    """What the hooks need of a run."""

    def connect_arguments(self, values: dict[str, Any], types: dict[str, str]) -> dict[str, Any]:
        """Record parsed arguments in section "Args": `values` by dest (JSON-friendly), `types`
        their type names. Return the values the script must use (an agent may have edited
        them); the hook writes those back into the Namespace."""
        ...

    def report_scalar(self, title: str, series: str, value: float, iteration: int) -> None: ...

    def report_text(self, text: str) -> None: ...

    def report_image(self, title: str, series: str, iteration: int, image: Any) -> None:
        """`image`: a numpy array, HW or HWC, uint8 or float in 0..1."""
        ...

    def report_histogram(self, title: str, series: str, iteration: int, values: Any) -> None: ...

    def report_matplotlib_figure(
        self, title: str, series: str, iteration: int, figure: Any
    ) -> None: ...

    def log_model(self, path: str, name: str | None = None, framework: str | None = None) -> None:
        """Record the file at `path` as an output model."""
        ...


CurrentRun: TypeAlias = Callable[[], FrameworkSink | None]

_MISSING = object()


class _Patch:
    def __init__(self, owner: Any, name: str, saved: Any) -> None:
        self.owner = owner
        self.name = name
        self.saved = saved  # the owner's own attribute before patching, _MISSING when inherited


class ParsedArguments:
    """One top-level parse of an ArgumentParser, as the argparse hook read it."""

    def __init__(self, namespace: Any, values: dict[str, Any], types: dict[str, str],
                 originals: dict[str, Any], actions: dict[str, argparse.Action]) -> None:
        self.namespace = namespace  # the user's Namespace, kept to write edits back into it
        self.values = values  # JSON-friendly, by dest
        self.types = types
        self.originals = originals  # the parsed Python values, by dest
        self.actions = actions


class HookState:
    """Everything the hooks remember; `clear` forgets it all (the patches are not undone)."""

    getters: dict[str, CurrentRun]  # by hook group: "argparse", "frameworks"
    patches: list[_Patch]
    frameworks_installed: bool
    finder: MetaPathFinder | None  # the post-import hook, once it was put on sys.meta_path
    watched: set[str]  # modules whose import is awaited
    last_parsed: ParsedArguments | None
    pending: ParsedArguments | None
    counters: dict[tuple[str, ...], int]
    warned: set[str]

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.getters = {}
        self.patches = []
        self.frameworks_installed = False
        self.finder = None
        self.watched = set()
        self.last_parsed = None
        self.pending = None
        self.counters = {}
        self.warned = set()


lock = threading.RLock()
state = HookState()
_local = threading.local()


def uninstall_all() -> None:
    """Restore every patched attribute, remove the post-import hook, and forget getters,
    parsed arguments and counters. Names bound from a patched attribute meanwhile keep it."""
    with lock:
        for patch in reversed(state.patches):
            try:
                if patch.saved is _MISSING:
                    delattr(patch.owner, patch.name)
                else:
                    setattr(patch.owner, patch.name, patch.saved)
            except (AttributeError, TypeError) as error:
                _log.warning("etude tracking: cannot restore %r.%s (%s: %s); it stays hooked",
                             patch.owner, patch.name, type(error).__name__, error)
        if state.finder is not None:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(state.finder)
        state.clear()


def patch_attribute(owner: Any, name: str, make: Callable[[Any], Callable[..., Any]]) -> None:
    """Replace `owner.name` by `make(original)`, once: a second call for the same attribute
    does nothing. `uninstall_all` restores it."""
    with lock:
        if any(p.owner is owner and p.name == name for p in state.patches):
            return
        saved = vars(owner).get(name, _MISSING)
        setattr(owner, name, make(getattr(owner, name)))
        state.patches.append(_Patch(owner, name, saved))


# ---------------------------------------------------------------------------------------------
# Reaching the sink without ever raising


def tolerate(hook: str, error: BaseException) -> None:
    """Log a tracking failure with its cause: a warning the first time for `hook`, then DEBUG."""
    with lock:
        first = hook not in state.warned
        state.warned.add(hook)
    message = ("etude tracking: recording %s failed (%s: %s); the call itself went through "
               "and the run misses this record. Later failures of this hook are logged at "
               "DEBUG level. Fix the run's sink, or start the run with "
               "auto_connect_frameworks=False to turn the hooks off.")
    level = logging.WARNING if first else logging.DEBUG
    _log.log(level, message, hook, type(error).__name__, error, exc_info=error)


def busy_kinds() -> set[str]:
    """The hook kinds this thread is inside ("sink" while it is inside a sink call)."""
    busy: set[str] | None = getattr(_local, "busy", None)
    if busy is None:
        busy = _local.busy = set()
    return busy


def current_sink(group: str, hook: str) -> FrameworkSink | None:
    """The sink the getter of `group` gives; None without a getter, or when it fails (the
    failure is tolerated, logged for `hook`)."""
    getter = state.getters.get(group)
    if getter is None:
        return None
    try:
        return getter()
    except Exception as error:
        tolerate(hook, error)
        return None


def deliver(hook: str, send: Callable[[], _T]) -> _T | None:
    """Call `send` as a sink call; its failure is tolerated (logged) and gives None."""
    busy = busy_kinds()
    entered = "sink" not in busy
    busy.add("sink")
    try:
        return send()
    except Exception as error:
        tolerate(hook, error)
        return None
    finally:
        if entered:
            busy.discard("sink")
