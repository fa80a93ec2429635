"""Serializers of MapInfra's item store: how one value becomes bytes and back.

A registry keyed by name; `register_serializer(name, dump=, load=, default_for=)` adds one
and, with `default_for`, makes it the choice for values of those types (classes, or
`"module.QualName"` strings so that a library need not be imported to name its types).
Built in: `json` (numbers, strings, None, and JSON containers), `numpy` (arrays and numpy
scalars, raw bytes with dtype and shape), `bytes`, and `pickle` (only when asked for).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

_NAME_RE = re.compile(r"^[A-Za-z0-9_.:+-]+$")


class SerializerError(TypeError):
    """A value has no serializer, or a record names a serializer this process does not know."""


class CorruptItemError(ValueError):
    """A record's payload cannot be decoded by the serializer that wrote it."""


# -- serializers ---------------------------------------------------------------------------
Dump = Callable[[Any], "bytes | bytearray | memoryview"]
Load = Callable[[memoryview], Any]
LoadMany = Callable[[list[memoryview]], list[Any]]


class Serializer(NamedTuple):
    """How one kind of value becomes bytes and back; `load` gets a memoryview of the payload."""

    name: str
    dump: Dump
    load: Load
    load_many: LoadMany | None = None  # optional: decode many payloads in one call, faster


_SERIALIZERS: dict[str, Serializer] = {}
# type, or "module.QualName" for types whose module we do not want to import -> serializer
_DEFAULTS: dict[type | str, str] = {}
_RESOLVED: dict[type, str | None] = {}  # cache of the MRO walk in `default_serializer`


def register_serializer(
    name: str,
    *,
    dump: Dump,
    load: Load,
    default_for: Iterable[type | str] = (),
    load_many: LoadMany | None = None,
) -> None:
    """Register (or replace) the serializer `name`, the default for the types in `default_for`.

    `dump(value)` returns bytes (or any bytes-like object); `load(data)` receives a memoryview
    of those bytes (`bytes(data)`, `io.BytesIO(data)` and `numpy.frombuffer(data)` accept it)
    and returns the value. A type in `default_for` may be given as a class or as its
    "module.QualName" string, so that registering it needs no import of its module (for
    example "torch.Tensor"). `load_many(list_of_views)`, optional, decodes many payloads at
    once (a list of the same length) where that is faster than one by one. Stored records
    keep the serializer name: a process that reads them must have registered the same name.
    """
    if not _NAME_RE.match(name):
        raise ValueError(
            f"serializer name {name!r}: use letters, digits and '_.:+-' only, e.g. 'torch'"
        )
    _SERIALIZERS[name] = Serializer(name, dump, load, load_many)
    for kind in default_for:
        if not isinstance(kind, (type, str)):
            raise TypeError(
                f"register_serializer({name!r}, default_for=...): expected classes or "
                f"'module.QualName' strings, got {kind!r} ({type(kind).__name__})"
            )
        _DEFAULTS[kind] = name
    _RESOLVED.clear()


def get_serializer(name: str) -> Serializer:
    """The serializer registered as `name`; SerializerError listing the known ones if none."""
    try:
        return _SERIALIZERS[name]
    except KeyError:
        known = ", ".join(sorted(_SERIALIZERS))
        raise SerializerError(
            f"no serializer named {name!r} (known: {known}); register it with "
            f"etude.infra.itemstore.register_serializer({name!r}, dump=..., load=...)"
        ) from None


def default_serializer(value: Any, fallback: str | None = None) -> Serializer:
    """The serializer registered for the type of `value` (nearest class in its MRO first).

    Raises SerializerError naming the type and how to register a serializer, unless
    `fallback` names one to use for unregistered types.
    """
    cls = type(value)
    try:
        name = _RESOLVED[cls]
    except KeyError:
        name = None
        for klass in cls.__mro__:
            found = _DEFAULTS.get(klass) or _DEFAULTS.get(
                f"{klass.__module__}.{klass.__qualname__}"
            )
            if found is not None:
                name = found
                break
        _RESOLVED[cls] = name
    if name is None:
        if fallback is not None:
            return get_serializer(fallback)
        qualified = f"{cls.__module__}.{cls.__qualname__}"
        raise SerializerError(
            f"no serializer for values of type {qualified}: register one with "
            f"register_serializer('my-name', dump=..., load=..., default_for=[{qualified!r}]) "
            f"from etude.infra, or store with serializer='pickle'"
        )
    return _SERIALIZERS[name]


def _check_json(value: Any, where: str) -> None:
    """Refuse what JSON would not give back: non-str dict keys and non-JSON leaves."""
    if value is None or isinstance(value, (str, int, float)):  # bool is an int
        return
    if isinstance(value, (list, tuple)):  # a tuple comes back as a list
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializerError(
                    f"{where}: dict key {key!r} ({type(key).__name__}) would come back from "
                    "JSON as a str; use str keys or serializer='pickle'"
                )
            _check_json(item, f"{where}[{key!r}]")
        return
    raise SerializerError(
        f"{where}: {type(value).__module__}.{type(value).__qualname__} is not JSON "
        "(str, int, float, bool, None, list, tuple, dict with str keys); use "
        "serializer='pickle' or register a serializer for the whole value"
    )


def _dump_json(value: Any) -> bytes:
    _check_json(value, "value")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _load_json(data: memoryview) -> Any:
    return json.loads(str(data, "utf-8"))


def _load_json_many(payloads: list[memoryview]) -> list[Any]:
    values: list[Any] = json.loads(b"[" + b",".join(payloads) + b"]")
    if len(values) != len(payloads):  # a damaged payload; the caller goes one by one
        raise ValueError("payloads do not decode to one value each")
    return values


def _dump_numpy(value: Any) -> bytes:
    import numpy as np  # lazily: numpy is imported only when an array is stored

    array = np.asarray(value)
    if array.dtype.hasobject or array.dtype.fields is not None:
        raise SerializerError(
            f"numpy arrays of dtype {array.dtype} (objects or fields) cannot be stored as raw "
            "bytes; use serializer='pickle'"
        )
    shape = "scalar" if isinstance(value, np.generic) else ",".join(map(str, array.shape))
    header = f"{array.dtype.str} {shape}\n".encode()
    return header + np.ascontiguousarray(array).tobytes()


_NUMPY_HEADERS: dict[bytes, tuple[Any, tuple[int, ...], bool]] = {}  # parsed header cache


def _load_numpy(data: memoryview) -> Any:
    import numpy as np  # lazily, as in _dump_numpy

    head = data[:64].tobytes()
    cut = head.find(b"\n")
    if cut < 0:
        head = data[:4096].tobytes()
        cut = head.index(b"\n")
    head = head[:cut]
    parsed = _NUMPY_HEADERS.get(head)
    if parsed is None:
        dtype_text, _, shape = head.decode().partition(" ")
        scalar = shape == "scalar"
        dims = () if scalar or not shape else tuple(int(n) for n in shape.split(","))
        parsed = (np.dtype(dtype_text), dims, scalar)
        if len(_NUMPY_HEADERS) > 4096:
            _NUMPY_HEADERS.clear()
        _NUMPY_HEADERS[head] = parsed
    dtype, dims, scalar = parsed
    array = np.ndarray(dims, dtype, data, cut + 1)
    return array[()] if scalar else array


register_serializer(
    "json",
    dump=_dump_json,
    load=_load_json,
    load_many=_load_json_many,
    default_for=(type(None), bool, int, float, str, list, tuple, dict),
)
register_serializer(
    "numpy", dump=_dump_numpy, load=_load_numpy, default_for=("numpy.ndarray", "numpy.generic")
)
register_serializer("bytes", dump=bytes, load=bytes, default_for=(bytes,))


def _dump_pickle(value: Any) -> bytes:
    import pickle  # lazily, as everything not needed to read the index

    return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def _load_pickle(data: memoryview) -> Any:
    import pickle

    return pickle.loads(data)


register_serializer("pickle", dump=_dump_pickle, load=_load_pickle)
