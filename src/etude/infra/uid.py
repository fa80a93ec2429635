"""Uids of pydantic models: which values make up a configuration, and its readable name.

Pure: no I/O. A model's uid config holds every field except those excluded (class or cache
exclusions) and, of each infra field, only its `version`. Two encodings are built in one walk:

- the *short* config leaves out values equal to their declared default (a new field added with
  a default keeps every old uid), except the discriminators of discriminated unions;
- the *full* config keeps them, so that a change of a default value can be detected.

The uid string is the short config as `key=value,...` (nested keys joined by dots), cut to a
readable length, then `-` and 8 hex digits of the SHA-256 of the canonical JSON of the short
config. A model whose values are all defaults has the uid `default`.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import hashlib
import json
import re
import types
import typing
import uuid
from collections.abc import Callable, Iterable
from pathlib import PurePath
from typing import Any

import pydantic
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .errors import InfraConfigError

#: Names a class may use to leave fields out of its uid (class variable, private attribute,
#: or a method returning names). The second spelling is the one used in the seed's prose.
CLASS_EXCLUSION_NAMES = ("_exclude_from_cls_uid", "_exclude_from_class_uid")
#: A class-wide exclusion from the cache uids of all its infra methods.
CACHE_EXCLUSION_NAME = "_exclude_from_cache_uid"
MAX_READABLE = 128
SUPPORTED = (
    "None, bool, int, float, str, Path, Enum, datetime, UUID, Decimal, numpy scalars, "
    "list, tuple, set, dict, pydantic models"
)

_MISSING = object()
_SCALARS = (str, int, float, bool, type(None))
_UNSAFE = re.compile(r"[^A-Za-z0-9_.,=+\-\[\]{}()@%~]")

#: An exclusion tree: a name maps to None (leave the whole field out) or to a sub-tree.
Exclusions = dict[str, Any]


class FieldSpec:
    """What the uid walk needs to know about one field of a model class."""

    __slots__ = ("_default_full", "default", "infra", "keep", "name")

    def __init__(self, name: str, default: Any, infra: bool, keep: frozenset[str]) -> None:
        self.name = name
        self.default = default
        self.infra = infra
        self.keep = keep
        self._default_full: Any = _MISSING

    def default_full(self, where: str) -> Any:
        """The full encoding of the default (computed once), or `_MISSING` if required."""
        if self._default_full is _MISSING and self.default is not _MISSING:
            if self.infra:
                self._default_full = getattr(self.default, "version", None)
            else:
                self._default_full = encode(self.default, f"{where}.{self.name}")[1]
        return self._default_full


class ModelSpec:
    """Per-class facts for the uid walk, computed once per class."""

    __slots__ = ("cls", "exclusion", "fields", "names")

    def __init__(self, cls: type[pydantic.BaseModel]) -> None:
        self.cls = cls
        fields = []
        for name, info in cls.model_fields.items():
            fields.append(_field_spec(cls, name, info))
        self.fields = tuple(fields)
        self.names = frozenset(cls.model_fields)
        self.exclusion = Exclusion.from_class(cls, CLASS_EXCLUSION_NAMES, cls.__qualname__)


_SPECS: dict[type, ModelSpec] = {}


def model_spec(cls: type[pydantic.BaseModel]) -> ModelSpec:
    spec = _SPECS.get(cls)
    if spec is None:
        spec = _SPECS[cls] = ModelSpec(cls)
    return spec


def _field_spec(cls: type, name: str, info: FieldInfo) -> FieldSpec:
    annotation = info.annotation
    infra = isinstance(annotation, type) and getattr(annotation, "__etude_infra__", False)
    keep: set[str] = set()
    if not infra:
        where = f"{cls.__qualname__}.{name}"
        _check_unions(annotation, info.discriminator, where, keep)
    if info.default is not PydanticUndefined:
        default = info.default
    elif info.default_factory is not None:
        default = info.default_factory()  # type: ignore[call-arg]
    else:
        default = _MISSING
    return FieldSpec(name, default, bool(infra), frozenset(keep))


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


def _check_unions(annotation: Any, discriminator: Any, where: str, keep: set[str]) -> None:
    """Raise if `annotation` holds a union of models without a discriminator; collect those."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        for meta in args[1:]:
            found = getattr(meta, "discriminator", None)
            if found is not None:
                discriminator = found
        _check_unions(args[0], discriminator, where, keep)
        return
    if origin in (typing.Union, types.UnionType):
        models = [a for a in args if _is_model(a)]
        if len(models) >= 2:
            if discriminator is None:
                names = " | ".join(m.__qualname__ for m in models)
                raise InfraConfigError(
                    f"{where}: the union {names} has no discriminator, so the uid cannot tell "
                    "which class was chosen. Give each class a Literal field (e.g. `kind: "
                    "Literal['a'] = 'a'`) and declare it on the field: `pydantic.Field(..., "
                    "discriminator='kind')`."
                )
            if isinstance(discriminator, str):
                keep.add(discriminator)
            else:  # a callable pydantic.Discriminator: keep every Literal field of the members
                keep.update(_literal_fields(models))
        for arg in args:
            _check_unions(arg, None, where, keep)
        return
    for arg in args:
        _check_unions(arg, None, where, keep)


def _literal_fields(models: Iterable[type[pydantic.BaseModel]]) -> set[str]:
    return {
        name
        for model in models
        for name, info in model.model_fields.items()
        if typing.get_origin(info.annotation) is typing.Literal
    }


class Exclusion:
    """Names left out of a uid: fixed (a list) or computed by a method of the model."""

    __slots__ = ("method", "owner", "static")

    def __init__(self, owner: str, static: Exclusions | None, method: Callable[..., Any] | None):
        self.owner = owner
        self.static = static
        self.method = method

    @classmethod
    def from_class(cls, model: type, names: Iterable[str], owner: str) -> Exclusion:
        """The exclusion a class declares under one of `names` (or an empty one)."""
        for name in names:
            private = getattr(model, "__private_attributes__", {}).get(name)
            value = private.get_default() if private is not None else getattr(model, name, None)
            if value is None:
                continue
            if callable(value):
                return cls(f"{owner}.{name}()", None, value)
            return cls(f"{owner}.{name}", parse_names(value, f"{owner}.{name}", model), None)
        return cls(owner, {}, None)

    def resolve(self, obj: pydantic.BaseModel) -> Exclusions:
        if self.static is not None:
            return self.static
        assert self.method is not None
        return parse_names(self.method(obj), self.owner, type(obj))


def parse_names(value: Any, where: str, model: type) -> Exclusions:
    """An exclusion tree from a list of (possibly dotted) field names; checks the first part."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise InfraConfigError(
            f"{where}: expected a list of field names, got {value!r} "
            f"({type(value).__name__}). Write e.g. ('device',)."
        )
    tree: Exclusions = {}
    fields = getattr(model, "model_fields", {})
    for name in value:
        if not isinstance(name, str) or name.split(".", 1)[0] not in fields:
            raise InfraConfigError(
                f"{where}: {name!r} is not a field of {model.__qualname__} "
                f"(fields: {', '.join(fields) or 'none'})."
            )
        node = tree
        parts = name.split(".")
        for part in parts[:-1]:
            child: Any = node.get(part, {})
            if child is None:
                break
            node = node.setdefault(part, child)
        else:
            node[parts[-1]] = None
    return tree


def merge(*trees: Exclusions) -> Exclusions:
    """The union of exclusion trees (a whole-field exclusion wins over a partial one)."""
    trees = tuple(t for t in trees if t)
    if len(trees) <= 1:
        return trees[0] if trees else {}
    out: Exclusions = {}
    for tree in trees:
        for name, sub in tree.items():
            if name in out and (out[name] is None or sub is None):
                out[name] = None
            elif name in out:
                out[name] = merge(out[name], sub)
            else:
                out[name] = sub
    return out


def encode_model(
    obj: pydantic.BaseModel,
    where: str,
    keep: frozenset[str] = frozenset(),
    exclude: Exclusions | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(short, full) JSON-able encodings of `obj`'s uid config; `where` names it in errors."""
    spec = _SPECS.get(type(obj)) or model_spec(type(obj))
    own = spec.exclusion.resolve(obj)
    if exclude and own:
        exclude = merge(own, exclude)
    elif own:
        exclude = own
    sub: Exclusions | None
    values = obj.__dict__
    if getattr(obj, "__pydantic_extra__", None):
        extra = ", ".join(obj.__pydantic_extra__ or ())
        raise InfraConfigError(
            f"{where}: {type(obj).__qualname__} holds extra fields ({extra}) that a uid cannot "
            "account for. Declare them as fields, or set model_config extra='forbid'."
        )
    short: dict[str, Any] = {}
    full: dict[str, Any] = {}
    for field in spec.fields:
        name = field.name
        sub = None
        if exclude and name in exclude:
            sub = exclude[name]
            if sub is None:
                continue
        value = values[name]
        if field.infra:
            version = value.version
            full[name] = {"version": version}
            if version != field.default_full(where):
                short[name] = {"version": version}
            continue
        if type(value) in _SCALARS and sub is None:
            s = f = value
        else:
            s, f = encode(value, f"{where}.{name}", field.keep, sub)
        full[name] = f
        if name in keep:
            short[name] = f
        elif field.default is _MISSING or f != field.default_full(where):
            short[name] = s
    return short, full


def encode(
    value: Any, where: str, keep: frozenset[str] = frozenset(), exclude: Exclusions | None = None
) -> tuple[Any, Any]:
    """(short, full) encodings of one value; raises `InfraConfigError` naming `where`."""
    if type(value) in _SCALARS:
        return value, value
    if isinstance(value, pydantic.BaseModel):
        return encode_model(value, where, keep, exclude)
    if isinstance(value, (list, tuple)):
        pairs = [encode(v, f"{where}[{i}]", keep) for i, v in enumerate(value)]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    if isinstance(value, dict):
        short, full = {}, {}
        for key, item in value.items():
            text = key if isinstance(key, str) else _key(key, where)
            short[text], full[text] = encode(item, f"{where}[{key!r}]", keep)
        return short, full
    if isinstance(value, (set, frozenset)):
        pairs = sorted(
            (encode(v, f"{where}{{}}", keep) for v in value), key=lambda p: canonical(p[1])
        )
        return [p[0] for p in pairs], [p[1] for p in pairs]
    if isinstance(value, enum.Enum):
        return encode(value.value, where)
    if isinstance(value, (str, int, float)):  # subclasses of the scalars
        for base in (bool, int, float, str):
            if isinstance(value, base):
                return base(value), base(value)
    if isinstance(value, PurePath):
        return str(value), str(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat(), value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value), str(value)
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return encode(value.item(), where)
    field = where.split(".", 1)[1].split(".")[0].split("[")[0] if "." in where else where
    raise InfraConfigError(
        f"{where}: a value of type {type(value).__qualname__} cannot be part of a uid "
        f"(supported: {SUPPORTED}). Convert it to one of these types, or leave the field out "
        f"of the uid with `_exclude_from_cls_uid = ({field!r},)`."
    )


def _key(key: Any, where: str) -> str:
    if isinstance(key, (int, float, bool, enum.Enum, PurePath)) or key is None:
        return repr(encode(key, where)[1])
    raise InfraConfigError(
        f"{where}: dict key {key!r} of type {type(key).__qualname__} cannot be part of a uid; "
        "use str, int, float, bool or Enum keys."
    )


def canonical(encoded: Any) -> str:
    """The canonical JSON text of an encoded config (sorted keys, no spaces)."""
    return json.dumps(encoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(encoded: Any) -> str:
    """SHA-256 hex digest of the canonical JSON of `encoded`."""
    return hashlib.sha256(canonical(encoded).encode()).hexdigest()


def uid_string(short: dict[str, Any]) -> str:
    """The readable uid of a short config: `key=value,...-HASH8`, or `default` when empty."""
    if not short:
        return "default"
    parts: list[str] = []
    _flatten(short, "", parts)
    readable = _UNSAFE.sub("_", ",".join(parts))
    if len(readable) > MAX_READABLE:
        readable = readable[: MAX_READABLE - 3] + "..."
    return f"{readable}-{digest(short)[:8]}"


def _flatten(config: dict[str, Any], prefix: str, parts: list[str]) -> None:
    for key, value in config.items():
        if isinstance(value, dict) and value:
            _flatten(value, f"{prefix}{key}.", parts)
        else:
            parts.append(f"{prefix}{key}={_text(value)}")


def _text(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def python_config(
    obj: pydantic.BaseModel,
    *,
    uid: bool,
    exclude_defaults: bool,
    exclude: Exclusions | None = None,
) -> dict[str, Any]:
    """`obj`'s config as Python values (tuples stay tuples), for `infra.config()`.

    With `uid`, the same fields as the uid (class exclusions applied, infra reduced to its
    version); with `exclude_defaults`, only the fields that the short config keeps.
    """
    where = type(obj).__qualname__
    if not uid:
        return obj.model_dump(exclude_defaults=exclude_defaults)
    short, full = encode_model(obj, where, exclude=exclude)
    kept = short if exclude_defaults else full
    return _python(obj, kept)


def _python(obj: Any, kept: Any) -> Any:
    """The Python values of `obj` for the keys present in the encoded `kept`."""
    if isinstance(obj, pydantic.BaseModel) and isinstance(kept, dict):
        return {name: _python(getattr(obj, name), sub) for name, sub in kept.items()}
    if isinstance(obj, (list, tuple)) and isinstance(kept, list):
        return type(obj)(_python(v, k) for v, k in zip(obj, kept, strict=False))
    if isinstance(obj, dict) and isinstance(kept, dict):
        return {
            k: _python(v, kept[k if isinstance(k, str) else _key(k, "")]) for k, v in obj.items()
        }
    return obj
