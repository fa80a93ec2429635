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
from .schema import Field, Schema

_pack_double = struct.Struct(">d").pack
_sha256 = hashlib.sha256
_DECIMAL_BITS = 12_000  # ints below 2**12000 (~3600 digits) are written in decimal


def _str_key(text: str) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    return b"%d:" % len(data) + data


class _InstanceInSet(SerializationError):
    """An `InstanceConfig` reached through a set; reported by the field that holds the set."""

    def __init__(self) -> None:
        super().__init__(
            "an InstanceConfig is reached through a set; a set has no order, so which of its "
            "equal instances is which would differ between runs. Use a list or a tuple."
        )


class _Hasher:
    """One identifier computation over the graph reachable from its root.

    `found` is true once an `InstanceConfig` was reached in the part of the graph being
    encoded: such a part is "contextual", its digest depends on the graph around it. `memo`
    keeps the digest of each contextual object in this graph, so an object used twice counts
    once (and keeps its rank); `ranks` counts the `InstanceConfig` objects seen for each
    value. Both are made on first use: most graphs have no instance.
    """

    __slots__ = ("found", "memo", "ranks", "stack")

    def __init__(self) -> None:
        self.stack: set[int] = set()
        self.memo: dict[int, bytes] | None = None
        self.ranks: dict[bytes, int] | None = None
        self.found = False

    def value(self, value: Any) -> bytes:
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
            return b"c" + self.config(value, True)
        if isinstance(value, enum.Enum):
            return b"e" + _str_key(type_name(type(value))) + _str_key(value.name)
        if isinstance(value, PurePath):
            return b"P"  # a path says where, not what
        if isinstance(value, list):
            return b"l%d:" % len(value) + b"".join(self.value(v) for v in value)
        if isinstance(value, tuple):
            return b"t%d:" % len(value) + b"".join(self.value(v) for v in value)
        if isinstance(value, (set, frozenset)):
            return self.set(value)
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
                parts.append(self.value(value[key]))
            return b"".join(parts)
        if isinstance(value, bool):
            return b"T" if value else b"F"
        if isinstance(value, int):
            return self.value(int(value))
        if isinstance(value, float):
            return b"f" + _pack_double(float(value))
        if isinstance(value, str):
            return b"s" + _str_key(str(value))
        raise SerializationError(
            f"a value of type {kind.__name__} ({value!r:.40}) cannot be part of an identifier; "
            "use bool, int, float, str, Path, an Enum, a Config or containers of those."
        )

    def set(self, value: set[Any] | frozenset[Any]) -> bytes:
        outer, self.found = self.found, False
        items = sorted(self.value(v) for v in value)
        if self.found:
            # Items are reached in an order that differs between processes, and so would
            # the ranks of equal instances.
            raise _InstanceInSet()
        self.found = outer
        return b"S%d:" % len(items) + b"".join(b"%d:" % len(i) + i for i in items)

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
        schema = schema_of(cls)
        defaults = schema.default_keys or _default_keys(schema)
        values = cfg.__dict__
        encode = self.value
        parts = [b"C", _str_key(type_name(cls))]
        for f in schema.identity_fields:
            if skip is not None and skip(f):
                continue
            value = values.get(f.name, MISSING)
            if value is MISSING:
                raise _missing(cls, f)
            try:
                encoded = encode(value)
            except _InstanceInSet:
                raise _instance_in_set(cls, f) from None
            if encoded == defaults[f.name]:
                continue
            parts.append(f.name_key)
            parts.append(encoded)
        if state.init_tasks:
            parts.append(b"I%d:" % len(state.init_tasks))
            parts.extend(self.config(t, True) for t in state.init_tasks)
        if state.dep_digest is not None:
            parts.append(b"O")
            parts.append(state.dep_digest)
        digest = _sha256(b"".join(parts)).digest()
        if isinstance(cfg, InstanceConfig):
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


def _default_keys(schema: Schema) -> dict[str, bytes | None]:
    keys = schema.default_keys
    if keys is None:
        keys = {}
        for f in schema.identity_fields:
            if f.kind is Kind.PARAM and f.has_default():
                keys[f.name] = _Hasher().value(f.make_default())
            else:
                keys[f.name] = None
        schema.default_keys = keys
    return keys


def encode_value(value: Any) -> bytes:
    """The canonical encoding of one value, alone (serialization sorts set items by it)."""
    return _Hasher().value(value)


def digest(cfg: Config) -> bytes:
    """The 32-byte identity of `cfg`. Raises `MissingParameterError`, `CycleError`, or
    `SerializationError` for a value that cannot be part of an identifier."""
    return _Hasher().config(cfg, False)


def identifier(cfg: Config) -> str:
    """The identifier of a configuration: 64 lowercase hexadecimal characters."""
    if not isinstance(cfg, Config):
        raise TypeError(f"identifier() takes a Config, got {type(cfg).__name__}.")
    return _Hasher().config(cfg, False).hex()


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
    inner = _Hasher().config(cfg, False, excluded)
    return hashlib.sha256(b"P" + _str_key(name) + inner).hexdigest()
