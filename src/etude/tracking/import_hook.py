"""The post-import hook (see `frameworks`): `install_framework_hooks` patches a library now
when the user has already imported it, else right after the user imports it, through a finder
on `sys.meta_path` that removes itself once every watched module is patched.

Imported only by `install_framework_hooks`, never by `import etude.tracking`.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import logging
import sys
import threading
from collections.abc import Sequence
from types import ModuleType

from .framework_hooks import PATCHERS
from .hook_state import CurrentRun, lock, state, tolerate

_log = logging.getLogger("etude.tracking")
_finding = threading.local()  # .active: this thread's finder is asking the other finders


def install_framework_hooks(current: CurrentRun) -> None:
    """Hook matplotlib, tensorboardX (and torch's) SummaryWriter, joblib.dump, torch.save and
    pickle.dump: now for those already imported, right after their import for the others.
    Idempotent: a second call only replaces `current`."""
    with lock:
        state.getters["frameworks"] = current
        if state.frameworks_installed:
            return
        state.frameworks_installed = True
        ready = {name: sys.modules[name] for name in PATCHERS if name in sys.modules}
        state.watched.update(name for name in PATCHERS if name not in ready)
        if state.watched:
            state.finder = _finder  # for uninstall_all to remove
            if _finder not in sys.meta_path:
                sys.meta_path.insert(0, _finder)
    for name, module in ready.items():
        _patch_module(name, module)


def _patch_module(name: str, module: ModuleType) -> None:
    try:
        PATCHERS[name](module)
    except Exception as error:
        tolerate(f"the patching of {name}", error)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds no module itself. For a watched name it returns the spec the other finders give,
    with the loader's `exec_module` wrapped so that the module is patched right after its code
    ran."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        with lock:
            if fullname not in state.watched:
                return None
        if getattr(_finding, "active", False):  # another finder asked the import system back
            return None
        _finding.active = True
        try:
            for finder in list(sys.meta_path):
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    _wrap_loader(fullname, spec)
                    return spec
        finally:
            _finding.active = False
        return None


def _wrap_loader(fullname: str, spec: importlib.machinery.ModuleSpec) -> None:
    loader = spec.loader
    original = getattr(loader, "exec_module", None)
    if loader is None or isinstance(loader, type) or original is None:
        _log.debug("etude tracking: cannot hook the import of %s (loader %r); it is not "
                   "tracked unless imported before the run starts", fullname, loader)
        return

    def exec_module(module: ModuleType) -> None:
        if module.__name__ != fullname:  # a loader shared by several modules (zipimport)
            original(module)
            return
        with contextlib.suppress(AttributeError):
            delattr(loader, "exec_module")
        original(module)
        _on_imported(fullname, module)

    try:
        setattr(loader, "exec_module", exec_module)
    except AttributeError as error:
        _log.debug("etude tracking: cannot hook the import of %s (%s); it is not tracked "
                   "unless imported before the run starts", fullname, error)


def _on_imported(fullname: str, module: ModuleType) -> None:
    with lock:
        if fullname not in state.watched:  # uninstalled meanwhile
            return
        state.watched.discard(fullname)
        if not state.watched:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(_finder)
    _patch_module(fullname, module)


_finder = _PostImportFinder()
