"""Identifiers: SHA-256 over a canonical, type-tagged encoding of a configuration.

Each value is encoded with a one-letter tag and a length or terminator, so that two different
values never share an encoding. A nested configuration contributes its own 32-byte digest
(Merkle style). A `Param` equal to its declared default is left out, so adding a parameter with
a default keeps every old identifier; `Meta` values, tags and `Path` values are never in it.
Changing this encoding changes every identifier: the golden tests pin it.

An `InstanceConfig` also counts by object: within the graph of one identifier computation,
the n-th distinct object (in the order the encoding reaches them) among those of equal value
ends its encoding with its rank, `#n-1;` (n >= 2); the first one is encoded as a plain
configuration of the same values would be.

Two passes compute this. The plain pass (`_encode`, `_digest`) knows nothing of ranks: it is
the hot path, and gives up with `_HoldsInstance` as soon as it reaches an `InstanceConfig`.
Only then does the ranking pass (`_Hasher`) encode the graph again, from its root. A graph
without an instance, by far the most common, thus pays one flag test per configuration for
the feature; one with an instance pays the plain pass up to its first instance twice (little
once sealed, as `submit()` does: the digests of the parts without an instance are cached).
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from .base import Config, InstanceConfig, schema_of
from .errors import CycleError, MissingParameterError, SerializationError
from .fields import MISSING, Kind
from .naming import type_name
from .schema import Field

_pack_double = struct.Struct(">d").pack
_sha256 = hashlib.sha256
_DECIMAL_BITS = 12_000  # ints below 2**12000 (~3600 digits) are written in decimal


def _str_key(text: str) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    return b"%d:" % len(data) + data


#: One identity field of a class: its name, its encoded name, the encoding of its declared
#: default (None without one: then every value counts), and the field itself.
_FieldKey = tuple[str, bytes, bytes | None, Field]

#: What the digest of a configuration class needs, made on its first digest (`_class_keys`):
#: the start of its encoding (b"C" and its encoded type name), its identity fields in name
#: order, and whether it is an `InstanceConfig`.
_ClassKeys = tuple[bytes, tuple[_FieldKey, ...], bool]
_class_keys_cache: dict[type, _ClassKeys] = {}


def _class_keys(cls: type[Config]) -> _ClassKeys:
    """The keys of `cls`, made once: its schema, type name and defaults never change. (The
    plain pass reads `_class_keys_cache` itself first, saving a call per configuration.)"""
    keys = _class_keys_cache.get(cls)
    if keys is None:
        fields = []
        for f in schema_of(cls).identity_fields:
            default = None
            if f.kind is Kind.PARAM and f.has_default():
                default = encode_value(f.make_default())
            fields.append((f.name, f.name_key, default, f))
        keys = (b"C" + _str_key(type_name(cls)), tuple(fields), issubclass(cls, InstanceConfig))
        _class_keys_cache[cls] = keys
    return keys


class _HoldsInstance(Exception):
    """Raised by the plain pass when the graph holds an `InstanceConfig`: the ranking pass
    (`_Hasher`) encodes it instead."""


def _encode(value: Any, stack: set[int]) -> bytes:
    """The encoding of `value` in the plain pass (`stack`: the configurations being encoded,
    to find cycles). Raises `_HoldsInstance` on reaching an `InstanceConfig`."""
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
        return _set_encoding(sorted(_encode(v, stack) for v in value))
    if isinstance(value, dict):
        parts = [b"d%d:" % len(value)]
        for key in _dict_keys(value):
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


def _set_encoding(items: list[bytes]) -> bytes:
    """A set, from the sorted encodings of its items."""
    return b"S%d:" % len(items) + b"".join(b"%d:" % len(i) + i for i in items)


def _dict_keys(value: dict[Any, Any]) -> list[str]:
    """The keys of a dictionary in encoding order; raises unless they are all strings."""
    for key in value:
        if not isinstance(key, str):
            raise SerializationError(
                f"dictionary key {key!r} ({type(key).__name__}) cannot be part of an "
                "identifier: keys must be strings."
            )
    return sorted(value)


def _digest(cfg: Config, stack: set[int], skip: Callable[[Field], bool] | None = None) -> bytes:
    """The digest of `cfg` in a graph without instances. `skip(field)`: leave that field of
    `cfg` (not of nested configurations) out. Raises `_HoldsInstance` on reaching one."""
    state = cfg._etude
    cached = state.digest
    if cached is not None and skip is None:
        if state.contextual:
            raise _HoldsInstance()  # even as the root: the ranking pass has it cached
        return cached
    cls = type(cfg)
    type_key, fields, by_object = _class_keys_cache.get(cls) or _class_keys(cls)
    if by_object:
        raise _HoldsInstance()
    key = id(cfg)
    if key in stack:
        raise _cycle(cfg)
    stack.add(key)
    values = cfg.__dict__
    parts = [type_key]
    for name, name_key, default, f in fields:
        if skip is not None and skip(f):
            continue
        value = values.get(name, MISSING)
        if value is MISSING:
            raise _missing(cls, f)
        encoded = _encode(value, stack)
        if encoded != default:
            parts.append(name_key)
            parts.append(encoded)
    init_tasks = state.init_tasks
    if init_tasks:
        parts.append(b"I%d:" % len(init_tasks))
        parts.extend(_digest(t, stack) for t in init_tasks)
    if state.dep_digest is not None:
        parts.append(b"O")
        parts.append(state.dep_digest)
    stack.discard(key)
    digest = _sha256(b"".join(parts)).digest()
    if state.sealed and skip is None:
        state.digest = digest
        state.contextual = False  # the same in every graph
    return digest


class _InstanceInSet(SerializationError):
    """An `InstanceConfig` reached through a set; reported by the field that holds the set."""

    def __init__(self) -> None:
        super().__init__(
            "an InstanceConfig is reached through a set; a set has no order, so which of its "
            "equal instances is which would differ between runs. Use a list or a tuple."
        )


#: Values the ranking pass encodes itself: they may hold configurations.
_CONTAINERS = (list, tuple, set, frozenset, dict)


class _Hasher:
    """The ranking pass: one identifier computation over a graph that holds an instance.

    `found` is true once an `InstanceConfig` was reached in the part of the graph being
    encoded: such a part is "contextual", its digest depends on the graph around it. `memo`
    keeps the digest of each contextual object in this graph, so an object used twice counts
    once (and keeps its rank); `ranks` counts the `InstanceConfig` objects seen for each
    value. Both are made on first use: parts of the graph may hold no instance.
    """

    __slots__ = ("found", "memo", "ranks", "stack")

    def __init__(self) -> None:
        self.stack: set[int] = set()
        self.memo: dict[int, bytes] | None = None
        self.ranks: dict[bytes, int] | None = None
        self.found = False

    def value(self, value: Any) -> bytes:
        """As `_encode`, with the configurations in `value` (itself, or inside containers)
        reached through this pass; every other value is left to `_encode`."""
        if isinstance(value, Config):
            return b"c" + self.config(value, True)
        if isinstance(value, (enum.Enum, PurePath)) or not isinstance(value, _CONTAINERS):
            return _encode(value, self.stack)  # no configuration below it
        if isinstance(value, list):
            return b"l%d:" % len(value) + b"".join(self.value(v) for v in value)
        if isinstance(value, tuple):
            return b"t%d:" % len(value) + b"".join(self.value(v) for v in value)
        if isinstance(value, (set, frozenset)):
            return self.set(value)
        parts = [b"d%d:" % len(value)]
        for key in _dict_keys(value):
            parts.append(_str_key(key))
            parts.append(self.value(value[key]))
        return b"".join(parts)

    def set(self, value: set[Any] | frozenset[Any]) -> bytes:
        outer, self.found = self.found, False
        items = sorted(self.value(v) for v in value)
        if self.found:
            # Items are reached in an order that differs between processes, and so would
            # the ranks of equal instances.
            raise _InstanceInSet()
        self.found = outer
        return _set_encoding(items)

    def config(
        self, cfg: Config, nested: bool, skip: Callable[[Field], bool] | None = None
    ) -> bytes:
        """The digest of `cfg` in this graph (`nested`: not its root). `skip(field)`: leave
        that field of `cfg` (not of nested configurations) out."""
        state = cfg._etude
        cached = state.digest
        if cached is not None and skip is None and not (nested and state.contextual):
            return cached
        key = id(cfg)
        memo = self.memo
        if memo is not None and key in memo:
            self.found = True
            return memo[key]
        if key in self.stack:
            raise _cycle(cfg)
        self.stack.add(key)
        outer = self.found
        self.found = False
        cls = type(cfg)
        type_key, fields, by_object = _class_keys(cls)
        values = cfg.__dict__
        parts = [type_key]
        for name, name_key, default, f in fields:
            if skip is not None and skip(f):
                continue
            value = values.get(name, MISSING)
            if value is MISSING:
                raise _missing(cls, f)
            try:
                encoded = self.value(value)
            except _InstanceInSet:
                raise _instance_in_set(cls, f) from None
            if encoded != default:
                parts.append(name_key)
                parts.append(encoded)
        if state.init_tasks:
            parts.append(b"I%d:" % len(state.init_tasks))
            parts.extend(self.config(t, True) for t in state.init_tasks)
        if state.dep_digest is not None:
            parts.append(b"O")
            parts.append(state.dep_digest)
        digest = _sha256(b"".join(parts)).digest()
        if by_object:
            digest = self.ranked(digest, parts)
        contextual = self.found
        self.stack.discard(key)
        if contextual:
            if self.memo is None:
                self.memo = {}
            self.memo[key] = digest
        else:
            self.found = outer
        if state.sealed and skip is None and not (nested and contextual):
            # As the root of its own graph, or the same in every graph: cached.
            state.digest = digest
            state.contextual = contextual
        return digest

    def ranked(self, digest: bytes, parts: list[bytes]) -> bytes:
        """The digest of an instance whose digest by value is `digest`: the same for the first
        instance of that value in this graph, marked with its rank for the next ones."""
        self.found = True
        if self.ranks is None:
            self.ranks = {}
        rank = self.ranks.get(digest, 0)
        self.ranks[digest] = rank + 1
        if not rank:
            return digest
        parts.append(b"#%d;" % rank)
        return _sha256(b"".join(parts)).digest()


def _cycle(cfg: Config) -> CycleError:
    return CycleError(
        f"{type(cfg).__qualname__} contains itself through its parameters; a configuration "
        "graph must not have cycles. Break the loop (use a Meta value or a new object)."
    )


def _missing(cls: type, f: Field) -> MissingParameterError:
    return MissingParameterError(
        f"{cls.__qualname__}.{f.name} has no value: it is required. "
        f"Pass {f.name}=... to {cls.__qualname__}.C()."
    )


def _instance_in_set(cls: type, f: Field) -> SerializationError:
    return SerializationError(
        f"{cls.__qualname__}.{f.name}: an InstanceConfig is reached through a set. A set has "
        "no order, so which of its equal instances is which would differ between runs. Use a "
        "list or a tuple."
    )


def _root_digest(cfg: Config, skip: Callable[[Field], bool] | None = None) -> bytes:
    """The digest of `cfg` as the root of its graph: the plain pass, or the ranking pass where
    the graph holds an instance (nothing the plain pass cached is wrong for the ranking one:
    it caches only digests without an instance below them)."""
    try:
        return _digest(cfg, set(), skip)
    except _HoldsInstance:
        return _Hasher().config(cfg, False, skip)


def encode_value(value: Any) -> bytes:
    """The canonical encoding of one value, alone (serialization sorts set items by it)."""
    try:
        return _encode(value, set())
    except _HoldsInstance:
        return _Hasher().value(value)


def digest(cfg: Config) -> bytes:
    """The 32-byte identity of `cfg`. Raises `MissingParameterError`, `CycleError`, or
    `SerializationError` for a value that cannot be part of an identifier."""
    return _root_digest(cfg)


def identifier(cfg: Config) -> str:
    """The identifier of a configuration: 64 lowercase hexadecimal characters."""
    if not isinstance(cfg, Config):
        raise TypeError(f"identifier() takes a Config, got {type(cfg).__name__}.")
    return _root_digest(cfg).hex()


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
    inner = _root_digest(cfg, excluded)
    return hashlib.sha256(b"P" + _str_key(name) + inner).hexdigest()
