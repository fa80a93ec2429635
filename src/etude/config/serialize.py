"""Writing a configuration graph to JSON and rebuilding it in another process.

The JSON lists every configuration object once (children before parents) and refers to them by
index, so an object used in several places (a task and its init tasks) is one object again after
loading. Every value carries its type where JSON alone would lose it (tuple, set, Path, Enum,
non-finite floats).
"""

from __future__ import annotations

import enum
import math
import struct
from pathlib import Path, PurePath
from typing import Any

from .base import Config, ConfigState, LightweightTask, schema_of
from .errors import CycleError, SerializationError
from .identity import _DECIMAL_BITS, encode_value
from .naming import class_reference, load_class, module_root

FORMAT = 1


class _Writer:
    def __init__(self) -> None:
        self.objects: list[dict[str, Any]] = []
        self.index: dict[int, int] = {}
        self.on_stack: set[int] = set()
        self.classes: dict[type, dict[str, Any]] = {}
        self.roots: dict[str, None] = {}

    def cls_ref(self, cls: type, where: str) -> dict[str, Any]:
        ref = self.classes.get(cls)
        if ref is None:
            ref = class_reference(cls, where)
            self.classes[cls] = ref
            root = module_root(cls.__module__)
            if root is not None:
                self.roots[root] = None
        return ref

    def config(self, cfg: Config, path: str) -> int:
        key = id(cfg)
        found = self.index.get(key)
        if found is not None:
            return found
        if key in self.on_stack:
            raise CycleError(f"{path}: this configuration contains itself; break the cycle.")
        self.on_stack.add(key)
        state = cfg._etude
        record: dict[str, Any] = {"class": self.cls_ref(type(cfg), path)}
        values = cfg.__dict__
        fields = {}
        for name in schema_of(type(cfg)).fields:
            if name in values:
                fields[name] = self.value(values[name], f"{path}.{name}")
        record["fields"] = fields
        if state.init_tasks:
            record["init"] = [
                self.config(t, f"{path}.init_tasks[{i}]") for i, t in enumerate(state.init_tasks)
            ]
        if state.dep_digest is not None:
            record["output_of"] = state.dep_digest.hex()
        if state.tags:
            record["tags"] = {k: self.value(v, f"{path}.{k}") for k, v in state.tags.items()}
        self.on_stack.discard(key)
        self.index[key] = len(self.objects)
        self.objects.append(record)
        return self.index[key]

    def value(self, value: Any, path: str) -> Any:
        kind = type(value)
        if value is None or kind is str or kind is bool:
            return value
        if kind is int:
            # JSON numbers are exact for ints, but Python limits int-to-text conversion.
            return value if value.bit_length() <= _DECIMAL_BITS else {"int": format(value, "x")}
        if kind is float:
            if math.isfinite(value):
                return value
            return {"float_bits": struct.pack(">d", value).hex()}  # keeps NaN sign and payload
        if isinstance(value, Config):
            return {"ref": self.config(value, path)}
        if isinstance(value, enum.Enum):
            return {"enum": self.cls_ref(type(value), path), "name": value.name}
        if isinstance(value, PurePath):
            return {"path": str(value)}
        if isinstance(value, list):
            return [self.value(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {"tuple": [self.value(v, f"{path}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, (set, frozenset)):
            written = [(self.value(v, f"{path}{{}}"), v) for v in value]
            written.sort(key=lambda pair: encode_value(pair[1]))
            tag = "set" if isinstance(value, set) else "frozenset"
            return {tag: [w for w, _ in written]}
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise SerializationError(
                        f"{path}[{key!r}]: dictionary keys must be strings to be stored in the "
                        f"job's parameters, got {type(key).__name__}."
                    )
            return {"dict": {k: self.value(v, f"{path}[{k!r}]") for k, v in value.items()}}
        if isinstance(value, (bool, int, str)):
            return self.value(kind.__mro__[1](value), path)
        if isinstance(value, float):
            return self.value(float(value), path)
        raise SerializationError(
            f"{path}: a value of type {kind.__name__} cannot be stored in the job's parameters. "
            "Use bool, int, float, str, Path, an Enum, a Config or containers of those (save "
            "large objects to a file and pass its Path)."
        )


def dump(root: Config, *, root_path: str) -> dict[str, Any]:
    """JSON-able description of `root` with everything a job process needs to rebuild it.

    Raises `SerializationError` for a value or class the job process could not rebuild.
    """
    writer = _Writer()
    top = writer.config(root, root_path)
    return {
        "format": FORMAT,
        "objects": writer.objects,
        "root": top,
        "sys_path": list(writer.roots),
    }


class _Reader:
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.objects: list[Config] = []
        self.classes: dict[tuple[str, str], type] = {}

    def cls(self, ref: dict[str, Any]) -> type:
        key = (ref["module"], ref["qualname"])
        found = self.classes.get(key)
        if found is None:
            found = load_class(ref)
            self.classes[key] = found
        return found

    def build(self) -> list[Config]:
        for index, record in enumerate(self.records):
            cls = self.cls(record["class"])
            if not (isinstance(cls, type) and issubclass(cls, Config)):
                raise SerializationError(f"object {index}: {cls!r} is not a Config class.")
            obj = cls.__new__(cls)
            state = ConfigState()
            state.runtime = True
            state.sealed = True
            object.__setattr__(obj, "_etude", state)
            values = obj.__dict__
            for name, raw in record["fields"].items():
                values[name] = self.value(raw)
            for name, f in schema_of(cls).fields.items():
                if name not in values and f.has_default():
                    values[name] = f.make_default()
            if "init" in record:
                state.init_tasks = tuple(
                    t
                    for t in (self.objects[i] for i in record["init"])
                    if isinstance(t, LightweightTask)
                )
            if "output_of" in record:
                state.dep_digest = bytes.fromhex(record["output_of"])
            if "tags" in record:
                state.tags = {k: self.value(v) for k, v in record["tags"].items()}
            self.objects.append(obj)
        return self.objects

    def value(self, raw: Any) -> Any:
        if isinstance(raw, list):
            return [self.value(v) for v in raw]
        if not isinstance(raw, dict):
            return raw
        if "ref" in raw:
            return self.objects[raw["ref"]]
        if "path" in raw:
            return Path(raw["path"])
        if "float_bits" in raw:
            return struct.unpack(">d", bytes.fromhex(raw["float_bits"]))[0]
        if "float" in raw:
            return float(raw["float"])
        if "int" in raw:
            return int(raw["int"], 16)
        if "enum" in raw:
            enum_cls: Any = self.cls(raw["enum"])
            return enum_cls[raw["name"]]
        if "tuple" in raw:
            return tuple(self.value(v) for v in raw["tuple"])
        if "set" in raw:
            return {self.value(v) for v in raw["set"]}
        if "frozenset" in raw:
            return frozenset(self.value(v) for v in raw["frozenset"])
        if "dict" in raw:
            return {k: self.value(v) for k, v in raw["dict"].items()}
        raise SerializationError(f"unknown value encoding {sorted(raw)} in job parameters.")


def load(data: dict[str, Any]) -> tuple[Config, list[Config]]:
    """Rebuild the objects written by `dump()`; returns the root and all objects (in order).

    Objects are in runtime mode: values are not validated again and they may carry extra
    attributes. Each object's `__post_init__()`, if defined, runs after the whole graph is built,
    children first. Raises `SerializationError` for an unknown format or a missing class.
    """
    if data.get("format") != FORMAT:
        raise SerializationError(
            f"job parameters have format {data.get('format')!r}; this etude reads format "
            f"{FORMAT}. Run the job with the etude version that submitted it."
        )
    objects = _Reader(data["objects"]).build()
    for obj in objects:
        post = getattr(type(obj), "__post_init__", None)
        if post is not None:
            post(obj)
    return objects[data["root"]], objects
