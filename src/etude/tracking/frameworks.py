"""Automatic hooks of run tracking: what a script does with argparse, matplotlib, TensorBoard
writers, joblib, torch and pickle is recorded into the current run without a tracking call.

The hooks reach the run only through `FrameworkSink` and a getter returning the current run
(None when no run is active: every hook then only calls the original). They patch
process-wide attributes, so their state is process-wide too; `uninstall_all` restores it all.

Every hook calls the original with the same arguments and returns its result unchanged. It
never raises because of tracking: a failure of the sink (or of the getter) is logged on the
"etude.tracking" logger with its cause, as a warning the first time for that hook and at DEBUG
level afterwards. Hooks are thread-safe, and do nothing on a thread that is inside a sink call
(the run saving a figure or pickling a file is never recorded as the user's).

Not hooked: names bound before the patch (`from joblib import dump` run before the hooks are
installed), `_pickle.dump`, `pickle.Pickler`, `pickle.dumps`.

Importing this module imports the standard library only. A library is patched at install time
when the user has already imported it, else right after the user imports it (a post-import
hook on `sys.meta_path` that removes itself once every watched module is patched).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import enum
import functools
import importlib.abc
import importlib.machinery
import inspect
import logging
import os
import pathlib
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import BuiltinFunctionType, FunctionType, ModuleType
from typing import Any, Protocol, TypeAlias, TypeVar

__all__ = [
    "CurrentRun",
    "FrameworkSink",
    "apply_pending_arguments",
    "install_argparse_hook",
    "install_framework_hooks",
    "last_parsed_arguments",
    "uninstall_all",
]

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

# ---------------------------------------------------------------------------------------------
# Process-wide state: the patched attributes can only be process-wide, so is what they share.

_MISSING = object()
_MODEL_SUFFIXES = (".pkl", ".pickle", ".pt", ".joblib", ".model")


@dataclass
class _Patch:
    owner: Any
    name: str
    saved: Any  # the owner's own attribute before patching, _MISSING when it was inherited


@dataclass
class _ParsedArguments:
    namespace: Any  # the user's Namespace, kept to write edits back into it
    values: dict[str, Any]  # JSON-friendly, by dest
    types: dict[str, str]
    originals: dict[str, Any]  # the parsed Python values, by dest
    actions: dict[str, argparse.Action]


@dataclass
class _State:
    getters: dict[str, CurrentRun] = field(default_factory=dict)
    patches: list[_Patch] = field(default_factory=list)
    frameworks_installed: bool = False
    watched: set[str] = field(default_factory=set)  # modules whose import is awaited
    last_parsed: _ParsedArguments | None = None
    pending: _ParsedArguments | None = None
    counters: dict[tuple[str, ...], int] = field(default_factory=dict)
    warned: set[str] = field(default_factory=set)


_lock = threading.RLock()
_local = threading.local()
_state = _State()


def uninstall_all() -> None:
    """Restore every patched attribute, remove the post-import hook, and forget getters,
    parsed arguments and counters. Names bound from a patched attribute meanwhile keep it."""
    global _state
    with _lock:
        for patch in reversed(_state.patches):
            try:
                if patch.saved is _MISSING:
                    delattr(patch.owner, patch.name)
                else:
                    setattr(patch.owner, patch.name, patch.saved)
            except (AttributeError, TypeError) as error:
                _log.warning("etude tracking: cannot restore %r.%s (%s: %s); it stays hooked",
                             patch.owner, patch.name, type(error).__name__, error)
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(_finder)
        _state = _State()


def _patch(owner: Any, name: str, make: Callable[[Any], Callable[..., Any]]) -> None:
    """Replace `owner.name` by `make(original)`, once: a second call for the same attribute
    does nothing."""
    with _lock:
        if any(p.owner is owner and p.name == name for p in _state.patches):
            return
        saved = vars(owner).get(name, _MISSING)
        setattr(owner, name, make(getattr(owner, name)))
        _state.patches.append(_Patch(owner, name, saved))


# ---------------------------------------------------------------------------------------------
# Reaching the sink without ever raising


def _tolerate(hook: str, error: BaseException) -> None:
    """Log a tracking failure with its cause: a warning the first time for `hook`, then DEBUG."""
    with _lock:
        first = hook not in _state.warned
        _state.warned.add(hook)
    message = ("etude tracking: recording %s failed (%s: %s); the call itself went through "
               "and the run misses this record. Later failures of this hook are logged at "
               "DEBUG level. Fix the run's sink, or start the run with "
               "auto_connect_frameworks=False to turn the hooks off.")
    level = logging.WARNING if first else logging.DEBUG
    _log.log(level, message, hook, type(error).__name__, error, exc_info=error)


def _busy() -> set[str]:
    """The hook kinds this thread is inside ("sink" while it is inside a sink call)."""
    busy: set[str] | None = getattr(_local, "busy", None)
    if busy is None:
        busy = _local.busy = set()
    return busy


def _current(group: str, hook: str) -> FrameworkSink | None:
    getter = _state.getters.get(group)
    if getter is None:
        return None
    try:
        return getter()
    except Exception as error:
        _tolerate(hook, error)
        return None


@contextlib.contextmanager
def _hook_scope(kind: str, hook: str) -> Iterator[FrameworkSink | None]:
    """Mark `kind` busy on this thread for the body. Yield the sink to report to, or None when
    no run is current, or the thread is already inside a hook of this kind or a sink call."""
    busy = _busy()
    if kind in busy or "sink" in busy:
        yield None
        return
    busy.add(kind)
    try:
        yield _current("frameworks", hook)
    finally:
        busy.discard(kind)


def _deliver(hook: str, send: Callable[[], _T]) -> _T | None:
    """Call `send` as a sink call; its failure is tolerated (logged) and gives None."""
    busy = _busy()
    entered = "sink" not in busy
    busy.add("sink")
    try:
        return send()
    except Exception as error:
        _tolerate(hook, error)
        return None
    finally:
        if entered:
            busy.discard("sink")


def _iteration(key: tuple[str, ...], step: Any = None) -> int:
    """`step` as an int; when it is None, the next value of a counter kept per `key`, from 0."""
    if step is not None:
        return int(step)
    with _lock:
        value = _state.counters.get(key, 0)
        _state.counters[key] = value + 1
    return value


def _called_from_etude(depth: int = 2) -> bool:
    """Whether the frame `depth` levels up (the caller of the hook calling this) runs code of
    the `etude` package."""
    try:
        name = sys._getframe(depth).f_globals.get("__name__")
    except ValueError:  # no Python frame that far up (called from C)
        return False
    return isinstance(name, str) and (name == "etude" or name.startswith("etude."))


# ---------------------------------------------------------------------------------------------
# argparse


def install_argparse_hook(current: CurrentRun) -> None:
    """Remember every top-level parse of any ArgumentParser (see `last_parsed_arguments`) and
    connect it to the run current at parse time, writing the run's edits into the Namespace
    before the parse returns; without a current run the parse waits for
    `apply_pending_arguments`. Idempotent: a second call only replaces `current`."""
    with _lock:
        _state.getters["argparse"] = current
        for name in ("parse_known_args", "parse_known_intermixed_args"):
            if hasattr(argparse.ArgumentParser, name):
                _patch(argparse.ArgumentParser, name, _wrap_parse)


def last_parsed_arguments() -> tuple[dict[str, Any], dict[str, str]] | None:
    """The last top-level parse as (JSON-friendly values by dest, type names), None if none."""
    with _lock:
        parsed = _state.last_parsed
    if parsed is None:
        return None
    return copy.deepcopy(parsed.values), dict(parsed.types)


def apply_pending_arguments(sink: FrameworkSink) -> None:
    """Connect the last parse made while no run was current to `sink`, and write the values it
    returns into that parse's Namespace object. A pending parse is applied once; without one
    this does nothing. Never raises because of the sink (failures are logged)."""
    with _lock:
        parsed, _state.pending = _state.pending, None
    if parsed is not None:
        _connect(sink, parsed)


def _wrap_parse(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def parse(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        inner: list[argparse.ArgumentParser] | None = getattr(_local, "parsers", None)
        if inner is not None:  # a sub-parser's call inside a top-level parse
            inner.append(self)
            return original(self, *args, **kwargs)
        if "sink" in _busy():
            return original(self, *args, **kwargs)
        _local.parsers = inner = []
        try:
            result = original(self, *args, **kwargs)
        finally:
            _local.parsers = None
        _on_parsed(self, result[0], inner)
        return result

    return parse


def _on_parsed(parser: argparse.ArgumentParser, namespace: Any,
               inner: list[argparse.ArgumentParser]) -> None:
    try:
        parsed = _read_arguments(parser, namespace, inner)
    except Exception as error:
        _tolerate("argparse", error)
        return
    sink = _current("argparse", "argparse")
    with _lock:
        _state.last_parsed = parsed
        _state.pending = parsed if sink is None else None
    if sink is not None:
        _connect(sink, parsed)


def _connect(sink: FrameworkSink, parsed: _ParsedArguments) -> None:
    returned = _deliver("argparse", functools.partial(_ask_values, sink, parsed)) or {}
    for dest, value in returned.items():
        if dest in parsed.values and _equal(value, parsed.values[dest]):
            continue  # unchanged: the parsed Python value stays
        try:
            setattr(parsed.namespace, dest, _coerce(parsed, dest, value))
        except Exception as error:
            _tolerate("argparse", error)


def _ask_values(sink: FrameworkSink, parsed: _ParsedArguments) -> Mapping[str, Any]:
    returned = sink.connect_arguments(copy.deepcopy(parsed.values), dict(parsed.types))
    if not isinstance(returned, Mapping):
        raise TypeError(f"connect_arguments returned {type(returned).__name__}; expected a dict "
                        "of the values to use, by dest")
    return returned


def _equal(left: Any, right: Any) -> bool:
    try:
        return bool(left == right)
    except Exception:  # an odd __eq__ counts as a change; the edit is then applied
        return False


def _read_arguments(parser: argparse.ArgumentParser, namespace: Any,
                    inner: list[argparse.ArgumentParser]) -> _ParsedArguments:
    actions = _actions_by_dest([parser, *inner])
    own = getattr(namespace, "__dict__", None)
    if isinstance(own, dict):
        originals = dict(own)
    else:
        originals = {dest: getattr(namespace, dest) for dest in actions
                     if hasattr(namespace, dest)}
    return _ParsedArguments(
        namespace=namespace,
        values={dest: _jsonable(value) for dest, value in originals.items()},
        types={dest: _type_name(actions.get(dest), value) for dest, value in originals.items()},
        originals=originals,
        actions=actions,
    )


def _actions_by_dest(parsers: list[argparse.ArgumentParser]) -> dict[str, argparse.Action]:
    """The actions of `parsers` by dest, help and version left out. The parsers are the
    top-level one then the sub-parsers it ran (each sub-command calls parse_known_args on its
    parser, Python 3.10 to 3.13), whose values also win in the Namespace."""
    found: dict[str, argparse.Action] = {}
    for parser in parsers:
        for action in parser._actions:
            hidden = isinstance(action, (argparse._HelpAction, argparse._VersionAction))
            if not hidden and action.dest != argparse.SUPPRESS:
                found[action.dest] = action
    return found


def _is_bool(action: argparse.Action) -> bool:
    return isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                               argparse.BooleanOptionalAction))


def _is_list(action: argparse.Action) -> bool:
    if isinstance(action, argparse._SubParsersAction):
        return False
    if isinstance(action, (argparse._AppendAction, argparse._AppendConstAction)):
        return True
    nargs = action.nargs  # 0 for flags, counts and constants: no list
    return (isinstance(nargs, int) and nargs > 0) or nargs in (
        argparse.ONE_OR_MORE, argparse.ZERO_OR_MORE, argparse.REMAINDER)


def _type_name(action: argparse.Action | None, value: Any) -> str:
    if action is None:
        return _label(type(value))
    if _is_bool(action):
        return "bool"
    if _is_list(action):
        return "list"
    if isinstance(action.type, str):  # a name registered with parser.register("type", ...)
        return action.type
    if action.type is not None:
        return _label(action.type)
    if isinstance(action, argparse._CountAction):
        return "int"
    if action.default is not None:
        return _label(type(action.default))
    if isinstance(action, argparse._StoreConstAction) and action.const is not None:
        return _label(type(action.const))
    return "str"


def _label(kind: Any) -> str:
    name = getattr(kind, "__name__", None)
    return name if isinstance(name, str) else type(kind).__name__


def _jsonable(value: Any) -> Any:
    """`value` as JSON can hold it: paths as str, enums by value, sets and tuples as lists,
    functions and classes by qualified name (no memory address), anything else as str()."""
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fsdecode(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (set, frozenset)):
        items = [_jsonable(item) for item in value]
        with contextlib.suppress(TypeError):  # mixed kinds keep the set's order
            items.sort()
        return items
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (FunctionType, BuiltinFunctionType, type)):
        return f"{value.__module__}.{value.__qualname__}"
    return str(value)


def _coerce(parsed: _ParsedArguments, dest: str, value: Any) -> Any:
    """The value the run returned for `dest`, converted by the argument's `type` (each item
    for a list argument, "true"/"false" for a flag). One that cannot be converted, or is
    outside the argument's choices, is logged and the parsed value is kept."""
    action = parsed.actions.get(dest)
    if action is None or value is None:
        return value
    kept = parsed.originals.get(dest, value)
    new: Any
    try:
        if _is_bool(action):
            new = _as_bool(value)
        elif _is_list(action) and isinstance(value, list):
            new = [_convert(action, item) for item in value]
        else:
            new = _convert(action, value)
    except Exception as error:
        _log.warning("etude tracking: argument %r: the run returned %r, which %s cannot convert "
                     "(%s: %s); keeping the parsed value %r. Fix the value in the run's Args.",
                     dest, value, _label(action.type or bool), type(error).__name__, error, kept)
        return kept
    choices = action.choices
    if choices is not None and not isinstance(action, argparse._SubParsersAction):
        items = new if isinstance(new, list) else [new]
        if any(item not in choices for item in items):
            _log.warning("etude tracking: argument %r: the run returned %r, outside the choices "
                         "%s; keeping the parsed value %r. Pick one of the choices in the "
                         "run's Args.", dest, value, list(choices), kept)
            return kept
    return new


def _convert(action: argparse.Action, value: Any) -> Any:
    convert = action.type
    if not callable(convert):
        return value
    if isinstance(value, str) or (isinstance(convert, type) and not isinstance(value, convert)):
        return convert(value)
    return value


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("true", "1", "yes", "on"):
            return True
        if word in ("false", "0", "no", "off", ""):
            return False
        raise ValueError(f"{value!r} is not a boolean; use true or false")
    if isinstance(value, (bool, int, float)):
        return bool(value)
    raise TypeError(f"{type(value).__name__} is not a boolean; use true or false")


# ---------------------------------------------------------------------------------------------
# Frameworks: install, and patch on import


def install_framework_hooks(current: CurrentRun) -> None:
    """Hook matplotlib, tensorboardX (and torch's) SummaryWriter, joblib.dump, torch.save and
    pickle.dump: now for those already imported, right after their import for the others.
    Idempotent: a second call only replaces `current`."""
    with _lock:
        _state.getters["frameworks"] = current
        if _state.frameworks_installed:
            return
        _state.frameworks_installed = True
        ready = {name: sys.modules[name] for name in _PATCHERS if name in sys.modules}
        _state.watched.update(name for name in _PATCHERS if name not in ready)
        if _state.watched and _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
    for name, module in ready.items():
        _patch_module(name, module)


def _patch_module(name: str, module: ModuleType) -> None:
    try:
        _PATCHERS[name](module)
    except Exception as error:
        _tolerate(f"the patching of {name}", error)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds no module itself. For a watched name it returns the spec the other finders give,
    with the loader's `exec_module` wrapped so that the module is patched right after its code
    ran."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        with _lock:
            if fullname not in _state.watched:
                return None
        if getattr(_local, "finding", False):  # another finder asked the import system back
            return None
        _local.finding = True
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
            _local.finding = False
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
    with _lock:
        if fullname not in _state.watched:  # uninstalled meanwhile
            return
        _state.watched.discard(fullname)
        if not _state.watched:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(_finder)
    _patch_module(fullname, module)


_finder = _PostImportFinder()


# ---------------------------------------------------------------------------------------------
# matplotlib


def _patch_figure_module(module: ModuleType) -> None:
    _patch(module.Figure, "savefig", _wrap_savefig)


def _patch_pyplot(module: ModuleType) -> None:
    _patch(module, "show", _wrap_show)


def _wrap_savefig(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def savefig(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _called_from_etude():
            return original(self, *args, **kwargs)
        with _hook_scope("matplotlib", "Figure.savefig") as sink:
            result = original(self, *args, **kwargs)
            if sink is not None:
                _deliver("Figure.savefig", functools.partial(_send_figure, sink, self))
        return result

    return savefig


def _wrap_show(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def show(*args: Any, **kwargs: Any) -> Any:
        with _hook_scope("matplotlib", "pyplot.show") as sink:
            if sink is not None:  # before showing: a blocking show closes the figures
                for figure in _open_figures():
                    _deliver("pyplot.show", functools.partial(_send_figure, sink, figure))
            return original(*args, **kwargs)

    return show


def _open_figures() -> list[Any]:
    helpers = sys.modules.get("matplotlib._pylab_helpers")  # imported by pyplot
    if helpers is None:
        return []
    return [manager.canvas.figure for manager in helpers.Gcf.get_all_fig_managers()]


def _send_figure(sink: FrameworkSink, figure: Any) -> None:
    title, series = _figure_labels(figure)
    iteration = _iteration(("matplotlib", title, series))
    sink.report_matplotlib_figure(title, series, iteration, figure)


def _figure_labels(figure: Any) -> tuple[str, str]:
    """(the suptitle, else the first axes' title, else "matplotlib"; "figure N" for a pyplot
    figure numbered N, else "figure")."""
    suptitle = getattr(figure, "_suptitle", None)  # get_suptitle() only from matplotlib 3.8
    title = suptitle.get_text() if suptitle is not None else ""
    if not title and figure.axes:
        axes = figure.axes[0]
        title = next((t for t in (axes.get_title(loc=loc) for loc in ("center", "left", "right"))
                      if t), "")
    number = getattr(figure, "number", None)
    series = f"figure {number}" if number is not None else "figure"
    return title or "matplotlib", series


# ---------------------------------------------------------------------------------------------
# TensorBoard SummaryWriter (tensorboardX, torch.utils.tensorboard)


def _patch_summary_writer(module: ModuleType) -> None:
    writer = module.SummaryWriter
    for name, send in _SUMMARY_SENDERS.items():
        if hasattr(writer, name):
            _patch(writer, name, functools.partial(_wrap_summary, name, send))


def _wrap_summary(name: str, send: Callable[[FrameworkSink, dict[str, Any]], None],
                  original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)
    hook = f"SummaryWriter.{name}"

    @functools.wraps(original)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _hook_scope("tensorboard", hook) as sink:
            result = original(self, *args, **kwargs)
            if sink is not None:
                _deliver(hook, functools.partial(
                    _send_summary, send, sink, signature, (self, *args), kwargs))
        return result

    return method


def _send_summary(send: Callable[[FrameworkSink, dict[str, Any]], None], sink: FrameworkSink,
                  signature: inspect.Signature, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> None:
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    send(sink, bound.arguments)


def _split_tag(tag: str) -> tuple[str, str]:
    """"a/b/c" -> ("a/b", "c"); a tag without "/" (or with an empty part) is both."""
    title, _, series = tag.rpartition("/")
    return (title, series) if title and series else (tag, tag)


def _send_scalar(sink: FrameworkSink, a: dict[str, Any]) -> None:
    tag, value = str(a["tag"]), float(a["scalar_value"])
    sink.report_scalar(*_split_tag(tag), value, _iteration(("add_scalar", tag), a["global_step"]))


def _send_scalars(sink: FrameworkSink, a: dict[str, Any]) -> None:
    main_tag = str(a["main_tag"])
    values = {str(series): float(value) for series, value in a["tag_scalar_dict"].items()}
    iteration = _iteration(("add_scalars", main_tag), a["global_step"])
    for series, value in values.items():
        sink.report_scalar(main_tag, series, value, iteration)


def _send_image(sink: FrameworkSink, a: dict[str, Any]) -> None:
    tag, image = str(a["tag"]), _to_hwc(a["img_tensor"], a.get("dataformats"))
    title, series = _split_tag(tag)
    sink.report_image(title, series, _iteration(("add_image", tag), a["global_step"]), image)


def _send_text(sink: FrameworkSink, a: dict[str, Any]) -> None:
    sink.report_text(f"{a['tag']}: {a['text_string']}")


def _send_histogram(sink: FrameworkSink, a: dict[str, Any]) -> None:
    tag, values = str(a["tag"]), _to_numpy(a["values"])
    title, series = _split_tag(tag)
    iteration = _iteration(("add_histogram", tag), a["global_step"])
    sink.report_histogram(title, series, iteration, values)


_SUMMARY_SENDERS: dict[str, Callable[[FrameworkSink, dict[str, Any]], None]] = {
    "add_scalar": _send_scalar,
    "add_scalars": _send_scalars,
    "add_image": _send_image,
    "add_text": _send_text,
    "add_histogram": _send_histogram,
}


def _to_numpy(value: Any) -> Any:
    # Lazy import: reached only once the user's SummaryWriter is in use, which needs numpy.
    import numpy

    for step in ("detach", "cpu", "numpy"):  # a torch tensor, possibly on a GPU
        if not isinstance(value, numpy.ndarray) and callable(getattr(value, step, None)):
            value = getattr(value, step)()
    return numpy.asarray(value)


def _to_hwc(image: Any, dataformats: str | None) -> Any:
    """`image` laid out as `dataformats` (CHW, HWC, HW, NCHW, ...) as an HWC (HW for one
    channel) numpy array; a batch is laid side by side."""
    import numpy  # lazy, as in _to_numpy

    array = _to_numpy(image)
    layout = (dataformats or "CHW").upper()
    if len(layout) != array.ndim or len(set(layout)) != len(layout) or not (
            {"H", "W"} <= set(layout) <= set("NCHW")):
        raise ValueError(f"add_image: dataformats {layout!r} does not fit an image of shape "
                         f"{array.shape}; use one of CHW, HWC, HW, NCHW, NHWC")
    axes = [axis for axis in "NHWC" if axis in layout]
    array = array.transpose([layout.index(axis) for axis in axes])
    if axes[0] == "N":
        array = numpy.concatenate(list(array), axis=1)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return array


# ---------------------------------------------------------------------------------------------
# Saved models: joblib.dump, torch.save, pickle.dump


def _patch_joblib(module: ModuleType) -> None:
    _patch(module, "dump", functools.partial(
        _wrap_model_save, "joblib.dump", "joblib", functools.partial(_path_target, "filename")))


def _patch_torch(module: ModuleType) -> None:
    _patch(module, "save", functools.partial(
        _wrap_model_save, "torch.save", "torch", functools.partial(_path_target, "f")))


def _patch_pickle(module: ModuleType) -> None:
    _patch(module, "dump", functools.partial(
        _wrap_model_save, "pickle.dump", "pickle", _pickle_target))


def _wrap_model_save(hook: str, framework: str,
                     target: Callable[[tuple[Any, ...], dict[str, Any]], str | None],
                     original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def save(*args: Any, **kwargs: Any) -> Any:
        path = None if _called_from_etude() else _safe_target(hook, target, args, kwargs)
        if path is None or ".etude" in pathlib.PurePath(path).parts:
            return original(*args, **kwargs)
        with _hook_scope("model", hook) as sink:
            result = original(*args, **kwargs)
            if sink is not None:
                log = functools.partial(sink.log_model, path, name=None, framework=framework)
                _deliver(hook, log)
        return result

    return save


def _safe_target(hook: str, target: Callable[[tuple[Any, ...], dict[str, Any]], str | None],
                 args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    try:
        return target(args, kwargs)
    except Exception as error:
        _tolerate(hook, error)
        return None


def _path_target(keyword: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The absolute path the file argument (2nd, or `keyword`) names; None for a file object."""
    where = args[1] if len(args) > 1 else kwargs.get(keyword)
    if isinstance(where, (str, bytes, os.PathLike)):
        return os.path.abspath(os.fsdecode(where))
    return None


def _pickle_target(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The absolute path of the open file pickled into, when its name looks like a model's."""
    file = args[1] if len(args) > 1 else kwargs.get("file")
    name = getattr(file, "name", None)
    if isinstance(name, str) and name.lower().endswith(_MODEL_SUFFIXES):
        return os.path.abspath(name)
    return None


_PATCHERS: dict[str, Callable[[ModuleType], None]] = {
    "matplotlib.figure": _patch_figure_module,
    "matplotlib.pyplot": _patch_pyplot,
    "tensorboardX": _patch_summary_writer,
    "torch.utils.tensorboard": _patch_summary_writer,
    "torch": _patch_torch,
    "joblib": _patch_joblib,
    "pickle": _patch_pickle,
}
