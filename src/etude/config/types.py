"""Validation of values against declared types.

`compile_validator(tp)` turns a type hint into a function `(value, path) -> value` that returns
the (possibly converted) value or raises `ValidationError` naming the path and the fix.
Validators are compiled once per field.
"""

from __future__ import annotations

import enum
import numbers
import types
import typing
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any

from .errors import ValidationError

Validator = Callable[[Any, str], Any]

_NoneType = type(None)


def describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def type_label(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _fail(path: str, tp: Any, value: Any, hint: str = "") -> typing.NoReturn:
    name = path.rsplit(".", 1)[-1]
    fix = hint or f"Pass a value of type {type_label(tp)} for {name}."
    raise ValidationError(f"{path}: expected {type_label(tp)}, got {describe(value)}. {fix}")


def plain_scalar(value: Any) -> Any:
    """A NumPy scalar (or 0-d array) as the Python value it prints as; anything else as is.

    `np.float32(0.1)` is 0.10000000149011612 as a Python float, so `float()` would give it
    another identifier than the `0.1` the user meant; its shortest text reads back as 0.1.
    Integers, booleans and strings become `int`, `bool` and `str`. NumPy is not imported:
    its values are recognised by their module and `dtype`.
    """
    if type(value).__module__ != "numpy" or getattr(value, "ndim", None) != 0:
        return value
    kind = value.dtype.kind
    if kind == "f":
        return float(str(value))
    if kind in "iubU":
        return value.item()
    return value


def _validate_bool(value: Any, path: str) -> Any:
    if type(value) is bool:
        return value
    value = plain_scalar(value)
    if type(value) is bool:
        return value
    _fail(path, bool, value, f"Pass {path.rsplit('.', 1)[-1]}=True or False.")


def _validate_int(value: Any, path: str) -> Any:
    if type(value) is int:
        return value
    value = plain_scalar(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    hint = ""
    if isinstance(value, str):
        try:
            hint = f"Pass {path.rsplit('.', 1)[-1]}={int(value)}."
        except ValueError:
            pass
    _fail(path, int, value, hint)


def _validate_float(value: Any, path: str) -> Any:
    if type(value) is float:
        return value
    value = plain_scalar(value)
    if type(value) is float:
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            _fail(path, float, value, "The value is too large for a float.")
    hint = ""
    if isinstance(value, str):
        try:
            hint = f"Pass {path.rsplit('.', 1)[-1]}={float(value)!r}."
        except ValueError:
            pass
    _fail(path, float, value, hint)


def _validate_str(value: Any, path: str) -> Any:
    if isinstance(value, str):  # np.str_ is a str
        return str(value)
    _fail(path, str, value)


def _validate_path(value: Any, path: str) -> Any:
    if isinstance(value, Path):
        return value
    if isinstance(value, (str, PurePath)):
        return Path(value)
    _fail(path, Path, value)


def _validate_any(value: Any, path: str) -> Any:
    return plain_scalar(value)


def _config_validator(cls: type) -> Validator:
    def validate(value: Any, path: str) -> Any:
        if isinstance(value, cls):
            return value
        hint = f"Pass a {cls.__name__} built with {cls.__name__}.C(...)."
        if isinstance(value, dict):
            hint = f"Build it with {cls.__name__}.C(**{{...}}) instead of passing a dict."
        _fail(path, cls, value, hint)

    return validate


def _enum_validator(cls: type[enum.Enum]) -> Validator:
    def validate(value: Any, path: str) -> Any:
        if isinstance(value, cls):
            return value
        names = ", ".join(f"{cls.__name__}.{m.name}" for m in cls)
        _fail(path, cls, value, f"Use one of {names}.")

    return validate


def _sequence_validator(origin: type, item: Validator, label: Any) -> Validator:
    def validate(value: Any, path: str) -> Any:
        if isinstance(value, (list, tuple)) and not isinstance(value, str):
            return origin(item(v, f"{path}[{i}]") for i, v in enumerate(value))
        _fail(path, label, value)

    return validate


def _fixed_tuple_validator(items: list[Validator], label: Any) -> Validator:
    def validate(value: Any, path: str) -> Any:
        if isinstance(value, (list, tuple)) and len(value) == len(items):
            return tuple(
                check(v, f"{path}[{i}]")
                for i, (check, v) in enumerate(zip(items, value, strict=False))
            )
        _fail(path, label, value, f"Pass a tuple of {len(items)} values.")

    return validate


def _set_validator(origin: type, item: Validator, label: Any) -> Validator:
    def validate(value: Any, path: str) -> Any:
        if isinstance(value, (set, frozenset, list, tuple)):
            return origin(item(v, f"{path}{{}}") for v in value)
        _fail(path, label, value)

    return validate


def _dict_validator(item: Validator, label: Any) -> Validator:
    def validate(value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            _fail(path, label, value)
        result = {}
        for k, v in value.items():
            if not isinstance(k, str):
                _fail(f"{path}[{k!r}]", str, k, "Dictionary keys must be strings.")
            result[k] = item(v, f"{path}[{k!r}]")
        return result

    return validate


def _union_validator(options: list[Validator], allows_none: bool, label: Any) -> Validator:
    def validate(value: Any, path: str) -> Any:
        if value is None:
            if allows_none:
                return None
            _fail(path, label, value)
        errors = []
        for option in options:
            try:
                return option(value, path)
            except ValidationError as exc:
                errors.append(str(exc))
        _fail(path, label, value)

    return validate


def _literal_validator(choices: tuple[Any, ...], label: Any) -> Validator:
    def validate(value: Any, path: str) -> Any:
        if any(type(value) is type(c) and value == c for c in choices):
            return value
        _fail(path, label, value, f"Use one of {', '.join(repr(c) for c in choices)}.")

    return validate


_SIMPLE: dict[Any, Validator] = {
    bool: _validate_bool,
    int: _validate_int,
    float: _validate_float,
    str: _validate_str,
    Path: _validate_path,
    Any: _validate_any,
    object: _validate_any,
}


def compile_validator(tp: Any, is_config: Callable[[type], bool]) -> Validator:
    """Return a validator for `tp`; `is_config(cls)` tells configuration classes apart.

    Raises `TypeError` for a type etude cannot store (the caller adds the field's name).
    """
    if tp in _SIMPLE:
        return _SIMPLE[tp]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return compile_validator(args[0], is_config)
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return _enum_validator(tp)
        if is_config(tp):
            return _config_validator(tp)
        if issubclass(tp, PurePath):
            return _validate_path
        bare = {
            list: list[Any],
            tuple: tuple[Any, ...],
            set: set[Any],
            frozenset: frozenset[Any],
            dict: dict[str, Any],
        }
        if tp in bare:
            return compile_validator(bare[tp], is_config)
    if origin in (list, tuple) and (origin is list or (len(args) == 2 and args[1] is Ellipsis)):
        return _sequence_validator(
            origin, compile_validator(args[0] if args else Any, is_config), tp
        )
    if origin is tuple:
        return _fixed_tuple_validator([compile_validator(a, is_config) for a in args], tp)
    if origin in (set, frozenset):
        return _set_validator(origin, compile_validator(args[0] if args else Any, is_config), tp)
    if origin is dict:
        if args and args[0] is not str:
            raise TypeError(f"dictionary keys must be str, not {type_label(args[0])}")
        return _dict_validator(compile_validator(args[1] if args else Any, is_config), tp)
    if origin is typing.Union or origin is types.UnionType:
        allows_none = _NoneType in args
        options = [compile_validator(a, is_config) for a in args if a is not _NoneType]
        if len(options) == 1 and allows_none:
            only = options[0]
            return lambda v, path: None if v is None else only(v, path)
        return _union_validator(options, allows_none, tp)
    if origin is typing.Literal:
        return _literal_validator(args, tp)
    raise TypeError(
        f"unsupported type {type_label(tp)}; use bool, int, float, str, Path, an Enum, "
        "a Config, or list/tuple/set/dict/Optional of those"
    )


def is_path_type(tp: Any) -> bool:
    """True for `Path` and `Path | None`: such values say where, not what, and stay out of ids."""
    if isinstance(tp, type) and issubclass(tp, PurePath):
        return True
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return is_path_type(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not _NoneType]
        return bool(args) and all(is_path_type(a) for a in args)
    return False
