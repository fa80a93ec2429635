"""The argparse hook (see `frameworks`): every top-level parse of any ArgumentParser is
remembered, and connected to the run current at parse time, or to the next run started
(`apply_pending_arguments`). The run's edits are written back into the Namespace.

`import etude.tracking` installs this hook, so this module imports only what parsing needs.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import enum
import functools
import logging
import os
import threading
from collections.abc import Callable, Mapping
from types import BuiltinFunctionType, FunctionType
from typing import Any

from .hook_state import (
    CurrentRun,
    FrameworkSink,
    ParsedArguments,
    busy_kinds,
    current_sink,
    deliver,
    lock,
    patch_attribute,
    state,
    tolerate,
)

_log = logging.getLogger("etude.tracking")
_parsing = threading.local()  # .parsers: the sub-parsers run inside this thread's parse


def install_argparse_hook(current: CurrentRun) -> None:
    """Remember every top-level parse of any ArgumentParser (see `last_parsed_arguments`) and
    connect it to the run current at parse time, writing the run's edits into the Namespace
    before the parse returns; without a current run the parse waits for
    `apply_pending_arguments`. Idempotent: a second call only replaces `current`."""
    with lock:
        state.getters["argparse"] = current
        for name in ("parse_known_args", "parse_known_intermixed_args"):
            if hasattr(argparse.ArgumentParser, name):
                patch_attribute(argparse.ArgumentParser, name, _wrap_parse)


def last_parsed_arguments() -> tuple[dict[str, Any], dict[str, str]] | None:
    """The last top-level parse as (JSON-friendly values by dest, type names), None if none."""
    with lock:
        parsed = state.last_parsed
    if parsed is None:
        return None
    return copy.deepcopy(parsed.values), dict(parsed.types)


def apply_pending_arguments(sink: FrameworkSink) -> None:
    """Connect the last parse made while no run was current to `sink`, and write the values it
    returns into that parse's Namespace object. A pending parse is applied once; without one
    this does nothing. Never raises because of the sink (failures are logged)."""
    with lock:
        parsed, state.pending = state.pending, None
    if parsed is not None:
        _connect(sink, parsed)


def _wrap_parse(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def parse(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        inner: list[argparse.ArgumentParser] | None = getattr(_parsing, "parsers", None)
        if inner is not None:  # a sub-parser's call inside a top-level parse
            inner.append(self)
            return original(self, *args, **kwargs)
        if "sink" in busy_kinds():
            return original(self, *args, **kwargs)
        _parsing.parsers = inner = []
        try:
            result = original(self, *args, **kwargs)
        finally:
            _parsing.parsers = None
        _on_parsed(self, result[0], inner)
        return result

    return parse


def _on_parsed(parser: argparse.ArgumentParser, namespace: Any,
               inner: list[argparse.ArgumentParser]) -> None:
    try:
        parsed = _read_arguments(parser, namespace, inner)
    except Exception as error:
        tolerate("argparse", error)
        return
    sink = current_sink("argparse", "argparse")
    with lock:
        state.last_parsed = parsed
        state.pending = parsed if sink is None else None
    if sink is not None:
        _connect(sink, parsed)


def _connect(sink: FrameworkSink, parsed: ParsedArguments) -> None:
    returned = deliver("argparse", functools.partial(_ask_values, sink, parsed)) or {}
    for dest, value in returned.items():
        if dest in parsed.values and _equal(value, parsed.values[dest]):
            continue  # unchanged: the parsed Python value stays
        try:
            setattr(parsed.namespace, dest, _coerce(parsed, dest, value))
        except Exception as error:
            tolerate("argparse", error)


def _ask_values(sink: FrameworkSink, parsed: ParsedArguments) -> Mapping[str, Any]:
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
                    inner: list[argparse.ArgumentParser]) -> ParsedArguments:
    actions = _actions_by_dest([parser, *inner])
    own = getattr(namespace, "__dict__", None)
    if isinstance(own, dict):
        originals = dict(own)
    else:
        originals = {dest: getattr(namespace, dest) for dest in actions
                     if hasattr(namespace, dest)}
    return ParsedArguments(
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


def _coerce(parsed: ParsedArguments, dest: str, value: Any) -> Any:
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
