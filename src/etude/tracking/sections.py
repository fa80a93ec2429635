"""Parameters and configuration objects: what `connect()` records and what it hands back.

Parameters live in sections (`General`, `Args`, `Config`, ...), each a flat mapping of keys to
JSON values with their types kept (numbers stay numbers, NaN stays NaN). Nested dicts are
flattened with dots (`{"opt": {"lr": 0.1}}` is `opt.lr`); lists stay lists. Queries name a
parameter `params.KEY` (any section) or `params."Section/KEY"`.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .errors import ReportError

_PATH_LIKE = re.compile(r"[\\/]|\.\w{1,5}$")


def plain_values(mutable: Any, where: str) -> dict[str, Any]:
    """The values of a dict, an argparse Namespace or an object with attributes."""
    if isinstance(mutable, Mapping):
        values = dict(mutable)
    elif hasattr(mutable, "__dict__") and not isinstance(mutable, type):
        values = {k: v for k, v in vars(mutable).items() if not k.startswith("_")}
    elif isinstance(mutable, type):
        values = {
            k: v for k, v in vars(mutable).items() if not k.startswith("_") and not callable(v)
        }
    else:
        raise ReportError(
            f"{where}: expected a dict, an argparse Namespace or an object with "
            f"attributes, got {type(mutable).__name__}."
        )
    for key in values:
        if not isinstance(key, str) or not key:
            raise ReportError(f"{where}: parameter names must be non-empty strings, got {key!r}.")
        if "/" in key:
            raise ReportError(
                f"{where}: parameter name {key!r} holds '/', which separates "
                "sections from keys. Use another name, or a nested dict."
            )
    return values


def json_value(value: Any) -> Any:
    """`value` as JSON keeps it: numbers, text, bools, None and lists of them; other objects
    by their text (Path, enum values...)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [json_value(item) for item in items]
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return json_value(value.item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "value") and type(value).__module__ != "builtins":  # enums
        return json_value(value.value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def flatten_section(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flat `{key: JSON value}`; nested mappings become dotted keys."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_section(value, f"{name}."))
        else:
            flat[name] = json_value(value)
    return flat


def merge_edited(mutable: Any, values: dict[str, Any], edited: dict[str, Any]) -> Any:
    """`mutable` with the edited values (flat keys) applied, of the same kind; the original
    object is updated in place too when it is a dict or an object with attributes."""
    if not edited:
        return mutable
    for key, value in edited.items():
        _set_path(values, key.split("."), value)
    if isinstance(mutable, dict):
        mutable.update(values)
        return mutable
    if isinstance(mutable, Mapping):
        return type(mutable)(values)  # type: ignore[call-arg]
    for key, value in values.items():
        setattr(mutable, key, value)
    return mutable


def _set_path(values: dict[str, Any], parts: list[str], value: Any) -> None:
    head = parts[0]
    if len(parts) > 1 and isinstance(values.get(head), Mapping):
        inner = dict(values[head])
        _set_path(inner, parts[1:], value)
        values[head] = inner
        return
    key = ".".join(parts)
    old = values.get(key)
    values[key] = as_type_of(old, value)


def as_type_of(old: Any, value: Any) -> Any:
    """An edited value given as text turned back into the type of the original."""
    if not isinstance(value, str) or old is None or isinstance(old, str):
        return value
    try:
        if isinstance(old, bool):
            return value.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(old, int):
            return int(value)
        if isinstance(old, float):
            return float(value)
    except ValueError:
        return value
    return value


def params_view(sections: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """`{"Section/key": value}` from the stored sections."""
    return {
        f"{section}/{key}": value
        for section, values in sections.items()
        for key, value in values.items()
    }


def configuration_value(configuration: Any, name: str) -> tuple[Any, Callable[[Any], Any]]:
    """(what to store, how to turn the stored value back into what `connect_configuration`
    returns). A path (str or PathLike naming a file) stores the file's text and returns the
    path (rewritten with the edited text when the text was edited)."""
    if isinstance(configuration, (str, os.PathLike)) and Path(configuration).is_file():
        path = Path(configuration)
        text = path.read_text(errors="replace")

        def as_path(stored: Any) -> Any:
            if isinstance(stored, dict) and stored.get("text") != text:
                path.write_text(str(stored.get("text", "")))
            return configuration

        return {"file": path.name, "text": text}, as_path
    if isinstance(configuration, (str, os.PathLike)) and _PATH_LIKE.search(str(configuration)):
        raise ReportError(
            f"connect_configuration(name={name!r}): {configuration} is not a "
            "file. Pass the path of an existing file, or a dict."
        )
    value = configuration_data(configuration, f"connect_configuration(name={name!r})",
                               "a file path")
    return value, lambda stored: copy.deepcopy(stored)


def configuration_data(configuration: Any, where: str, or_what: str = "a text") -> Any:
    """What to store for a configuration given as data: a dict, a list, or a text kept as
    text (never read as a file path). Raises ReportError for anything else."""
    value = json_value(configuration)
    if not isinstance(value, (dict, list, str)):
        raise ReportError(
            f"{where}: expected a dict, a list or {or_what}, got "
            f"{type(configuration).__name__}."
        )
    return value


def check_tags(tags: list[str]) -> list[str]:
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or tag != tag.strip():
            raise ValueError(
                f"tag {tag!r}: tags are non-empty strings without leading or "
                "trailing spaces, e.g. tags=['cnn', 'lr=0.1']."
            )
        if tag.startswith("-"):
            raise ValueError(
                f"tag {tag!r}: a tag cannot start with '-' (queries use -tag to exclude it)."
            )
    return tags


def finite_or_text(value: Any) -> Any:
    """For display: NaN and infinities as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value
