"""Identifiers: SHA-256 over a canonical, type-tagged encoding of a configuration.

Each value is encoded with a one-letter tag and a length or terminator, so that two different
values never share an encoding. A nested configuration contributes its own 32-byte digest
(Merkle style). A `Param` equal to its declared default is left out, so adding a parameter with
a default keeps every old identifier; `Meta` values, tags and `Path` values are never in it.
Changing this encoding changes every identifier: the golden tests pin it.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from .base import Config, schema_of
from .errors import CycleError, MissingParameterError, SerializationError
from .fields import MISSING, Kind
from .naming import type_name
from .schema import Field, Schema

_pack_double = struct.Struct(">d").pack
_DECIMAL_BITS = 12_000  # ints below 2**12000 (~3600 digits) are written in decimal


def _str_key(text: str) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    return b"%d:" % len(data) + data


def _encode(value: Any, stack: set[int]) -> bytes:
    kind = type(value)
    if kind is str:
        return b"s" + _str_key(value)
    if kind is int:
        if value.bit_length() > _DECIMAL_BITS:
            return b"I%x;" % value  # beyond Python's int-to-text limit: hexadecimal
        return b"i%d;" % value
    if kind is float:
        return b"f" + _pack_double(value)
    if kind is bool:
        return b"T" if value else b"F"
    if value is None:
        return b"N"
    if isinstance(value, Config):
        return b"c" + _digest(value, stack)
    if isinstance(value, enum.Enum):
        return b"e" + _str_key(type_name(type(value))) + _str_key(value.name)
    if isinstance(value, PurePath):
        return b"P"  # a path says where, not what
    if isinstance(value, list):
        return b"l%d:" % len(value) + b"".join(_encode(v, stack) for v in value)
    if isinstance(value, tuple):
        return b"t%d:" % len(value) + b"".join(_encode(v, stack) for v in value)
    if isinstance(value, (set, frozenset)):
        items = sorted(_encode(v, stack) for v in value)
        return b"S%d:" % len(items) + b"".join(b"%d:" % len(i) + i for i in items)
    if isinstance(value, dict):
        parts = [b"d%d:" % len(value)]
        for key in value:
            if not isinstance(key, str):
                raise SerializationError(
                    f"dictionary key {key!r} ({type(key).__name__}) cannot be part of an "
                    "identifier: keys must be strings."
                )
        for key in sorted(value):
            parts.append(_str_key(key))
            parts.append(_encode(value[key], stack))
        return b"".join(parts)
    if isinstance(value, bool):
        return b"T" if value else b"F"
    if isinstance(value, int):
        return _encode(int(value), stack)
    if isinstance(value, float):
        return b"f" + _pack_double(float(value))
    if isinstance(value, str):
        return b"s" + _str_key(str(value))
    raise SerializationError(
        f"a value of type {kind.__name__} ({value!r:.40}) cannot be part of an identifier; use "
        "bool, int, float, str, Path, an Enum, a Config or containers of those."
    )


def _default_keys(schema: Schema) -> dict[str, bytes | None]:
    keys = schema.default_keys
    if keys is None:
        keys = {}
        for f in schema.identity_fields:
            if f.kind is Kind.PARAM and f.has_default():
                keys[f.name] = _encode(f.make_default(), set())
            else:
                keys[f.name] = None
        schema.default_keys = keys
    return keys


def _digest(cfg: Config, stack: set[int], skip: Callable[[Field], bool] | None = None) -> bytes:
    """`skip(field)`: leave that field of `cfg` (not of nested configurations) out."""
    state = cfg._etude
    if state.digest is not None and skip is None:
        return state.digest
    key = id(cfg)
    if key in stack:
        raise CycleError(
            f"{type(cfg).__qualname__} contains itself through its parameters; a configuration "
            "graph must not have cycles. Break the loop (use a Meta value or a new object)."
        )
    stack.add(key)
    cls = type(cfg)
    schema = schema_of(cls)
    defaults = schema.default_keys or _default_keys(schema)
    values = cfg.__dict__
    parts = [b"C", _str_key(type_name(cls))]
    for f in schema.identity_fields:
        if skip is not None and skip(f):
            continue
        value = values.get(f.name, MISSING)
        if value is MISSING:
            raise MissingParameterError(
                f"{cls.__qualname__}.{f.name} has no value: it is required. "
                f"Pass {f.name}=... to {cls.__qualname__}.C()."
            )
        encoded = _encode(value, stack)
        if encoded == defaults[f.name]:
            continue
        parts.append(f.name_key)
        parts.append(encoded)
    if state.init_tasks:
        parts.append(b"I%d:" % len(state.init_tasks))
        parts.extend(_digest(t, stack) for t in state.init_tasks)
    if state.dep_digest is not None:
        parts.append(b"O")
        parts.append(state.dep_digest)
    stack.discard(key)
    digest = hashlib.sha256(b"".join(parts)).digest()
    if state.sealed and skip is None:
        state.digest = digest
    return digest


def digest(cfg: Config) -> bytes:
    """The 32-byte identity of `cfg`. Raises `MissingParameterError` or `CycleError`."""
    return _digest(cfg, set())


def identifier(cfg: Config) -> str:
    """The identifier of a configuration: 64 lowercase hexadecimal characters."""
    if not isinstance(cfg, Config):
        raise TypeError(f"identifier() takes a Config, got {type(cfg).__name__}.")
    return _digest(cfg, set()).hex()


def partial_identifier(
    cfg: Config, name: str, excluded: Callable[[Field], bool] | frozenset[str]
) -> str:
    """The identifier of `cfg` without its own parameters for which `excluded` is true (or,
    given group names, the parameters in those groups), for partial `name`.

    Configurations that differ only in those parameters share it (e.g. runs that differ only
    in their number of epochs share a checkpoint folder). Nested configurations count whole.
    """
    if isinstance(excluded, frozenset):
        groups = excluded
        excluded = lambda f: bool(groups.intersection(f.groups))  # noqa: E731
    inner = _digest(cfg, set(), excluded)
    return hashlib.sha256(b"P" + _str_key(name) + inner).hexdigest()
