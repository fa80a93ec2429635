"""Editing a draft from the UI before it is enqueued: its parameters and its configuration
objects, through the tracking layer's draft editing (`Run.update_parameters`,
`lifecycle.edit_configuration`), whose state table refuses anything but a draft
(RunStateError, answered 409 with its reason).

The UI sends what is typed, as text; a text takes the type of the value it replaces:

    current value        text accepted                     example
    int                  an integer                        "64"
    float                a number, nan, inf, -inf          "0.01", "1e-3", "3"
    bool                 true/false, yes/no, on/off, 1/0   "false"
    list, dict           JSON of a list, of an object      "[32, 64]"
    str                  anything, kept as it is           "adam"
    null, or a new key   JSON, else the text itself        "5" -> 5, "relu" -> "relu"

A value sent as JSON that is not text (a script's `{"General/lr": 0.01}`) is taken as it is.
A value equal to the current one (same type too) is not an edit: a job's clone can be saved
with its values that could not be set back (a nested configuration's type name) unchanged.

Configuration objects: a dict or a list is replaced by the JSON text of a dict or a list; a
text configuration by the new text; a file's configuration (`{"file", "text"}`, recorded
from a path) by its new text, under the same file name. Texts are never read as paths here.

Blocking code (files, the index), called from worker threads.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from .source import Source

if TYPE_CHECKING:
    from ..tracking import Run

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
MAX_NAME = 200


class EditError(ValueError):
    """Parameter values that cannot be set; `problems` maps each parameter (as it was
    given) to what is wrong with it."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__(" ".join(problems.values()))
        self.problems = problems


def kind_of(value: Any) -> str:
    """The name of a value's type as the UI shows it beside the value, and as errors say."""
    if isinstance(value, bool):
        return "bool"
    for kind, name in ((int, "int"), (float, "float"), (str, "text"), (list, "list"),
                       (dict, "dict")):
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def edit_text(value: Any) -> str:
    """`value` as text that parse_text() turns back into the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, allow_nan=True)


def parse_text(path: str, text: str, current: Any) -> Any:
    """The value typed as `text` for parameter `path`, as the type of `current` (the rule in
    the module's docstring). Raises ValueError naming the parameter and the type expected."""
    kind = kind_of(current)
    stripped = text.strip()
    try:
        if kind == "bool":
            if stripped.lower() in _TRUE + _FALSE:
                return stripped.lower() in _TRUE
            raise ValueError
        if kind == "int":
            return int(stripped)
        if kind == "float":
            return float(stripped)
        if kind in ("list", "dict"):
            value = json.loads(text)
            if kind_of(value) != kind:
                raise ValueError
            return value
    except ValueError:
        noun, hint = _EXPECTED[kind]
        shown = edit_text(current)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise ValueError(f"{path}: expected {noun} (its current value is {shown}), got "
                         f"{text!r}. {hint}") from None
    if kind == "text":
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


_EXPECTED = {
    "bool": ("a bool", "Type true or false."),
    "int": ("an int", "Type a whole number, e.g. 64."),
    "float": ("a float", "Type a number, e.g. 0.01 or 1e-3."),
    "list": ("a list", "Type it as JSON, e.g. [1, 2]."),
    "dict": ("a dict", 'Type it as JSON, e.g. {"key": 1}.'),
}


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same JSON type (1, 1.0 and true differ; NaN equals NaN)."""
    def text(value: Any) -> str:
        return json.dumps(value, sort_keys=True, allow_nan=True, default=str)

    return text(a) == text(b)


def set_parameters(source: Source, reference: str, values: dict[str, Any],
                   remove: list[str] | None = None) -> dict[str, Any]:
    """Set (or add) parameters of the draft `reference` ({"Section/key": value or text}; a
    bare key is in General) and remove those in `remove`: {"id", "changed" (the paths set),
    "removed", "params", "texts" (each value as edit_text shows it)}. Nothing is changed
    when anything is refused: EditError (400) lists every problem by parameter;
    RunStateError (409) when the run is not a draft."""
    from ..tracking.lifecycle import edit_parameters, require

    run = source.run(reference)
    require(run, "edit")
    remove = remove or []
    if not values and not remove:
        raise ValueError('nothing to change: send {"set": {"Section/key": value}} or '
                         '{"remove": ["Section/key"]}, e.g. {"set": {"General/lr": 0.01}}.')
    current = run.params
    changed: dict[str, Any] = {}
    named: set[str] = set()  # every path given a value, changed or not
    removed: list[str] = []
    problems: dict[str, str] = {}
    for given, value in values.items():
        try:
            path = _path(given)
            _check_name(path)
            old = current.get(path)
            new = parse_text(path, value, old) if isinstance(value, str) else value
        except ValueError as error:
            problems[given] = str(error)
            continue
        named.add(path)
        if path not in current or not _same(new, old):
            changed[path] = new
    for given in remove:
        try:
            path = _path(given)
        except ValueError as error:
            problems[given] = str(error)
            continue
        if path not in current:
            problems[given] = f"{path}: the draft has no such parameter to remove."
        elif path in named:
            problems[given] = f"{path}: both set and removed; do one or the other."
        else:
            removed.append(path)
    if problems:
        raise EditError(problems)
    try:
        if changed or removed:  # one edit: all of it is saved, or none
            edit_parameters(run, changed, replace=False, where="parameters", remove=removed)
    finally:
        source.invalidate()
    params = run.reload().params
    return {"id": run.id, "changed": sorted(changed), "removed": sorted(removed),
            "params": params,
            "texts": {path: edit_text(value) for path, value in params.items()}}


def _path(given: str) -> str:
    """`given` as "Section/key" (a bare key is in General); ValueError when malformed."""
    from ..tracking.lifecycle import split_path

    section, key = split_path(given, "parameters")
    return f"{section}/{key}"


def _check_name(path: str) -> None:
    """A parameter name typed in the UI: not too long, no control characters."""
    if len(path) > MAX_NAME:
        raise ValueError(f"{path[:40]}...: a parameter name has at most {MAX_NAME} "
                         "characters.")
    if any(ord(c) < 32 for c in path):
        raise ValueError(f"{path!r}: a parameter name cannot hold control characters "
                         "(a new line, a tab).")


def is_file_configuration(value: Any) -> bool:
    """A configuration recorded from a file: {"file": name, "text": its text}."""
    return (isinstance(value, dict) and set(value) == {"file", "text"}
            and isinstance(value.get("text"), str))


def configuration_text(value: Any) -> str:
    """A configuration object as the UI edits it: a file's text, a text, else JSON."""
    if is_file_configuration(value):
        return str(value["text"])
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, allow_nan=True)


def parse_configuration(name: str, value: Any, current: Any) -> Any:
    """What to store for configuration `name` given `value` (text as the UI sends it, or a
    dict or list), by the kind of `current` (module docstring). Raises ValueError."""
    if not isinstance(value, str):
        if not isinstance(value, (dict, list)):
            raise ValueError(f"configuration {name!r}: expected a dict, a list or a text, "
                             f"got {kind_of(value)}.")
        return value
    if is_file_configuration(current):
        return {"file": current["file"], "text": value}
    if isinstance(current, str):
        return value
    try:
        parsed = json.loads(value)
    except ValueError as error:
        raise ValueError(f"configuration {name!r}: not JSON ({error}); write a JSON object "
                         'or list, e.g. {"layers": [64, 32]}.') from None
    if not isinstance(parsed, (dict, list)):
        raise ValueError(f"configuration {name!r}: expected a JSON object or list, got "
                         f"{kind_of(parsed)}.")
    return parsed


def set_configuration(source: Source, reference: str, name: str, value: Any
                      ) -> dict[str, Any]:
    """Replace the configuration object `name` of the draft `reference`: {"id", "name",
    "configuration" (the stored value), "text" (as the UI edits it)}. Raises ValueError
    (400) for a bad name or value, RunStateError (409) when the run is not a draft."""
    from ..tracking.lifecycle import edit_configuration, require

    run: Run = source.run(reference)
    require(run, "edit")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise ValueError(f"configuration name {name!r}: give a non-empty name of up to "
                         f"{MAX_NAME} characters, e.g. 'model'.")
    stored = parse_configuration(name, value, run.configuration.get(name))
    try:
        edit_configuration(run, name, stored, read_files=False)
    finally:
        source.invalidate()
    saved = run.reload().configuration.get(name)
    return {"id": run.id, "name": name, "configuration": saved,
            "text": configuration_text(saved)}
