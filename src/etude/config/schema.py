"""The fields a configuration class declares, collected once per class from its annotations."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, ClassVar

from .errors import ConfigError
from .fields import (
    MISSING,
    FieldSpec,
    Kind,
    PathGenerator,
    _KindMarker,
    copy_default,
)
from .types import Validator, compile_validator, is_path_type


class Field:
    """One declared parameter of a configuration class."""

    __slots__ = (
        "default",
        "default_factory",
        "generator",
        "groups",
        "in_identity",
        "kind",
        "name",
        "name_key",
        "type",
        "validate",
    )

    def __init__(
        self,
        name: str,
        kind: Kind,
        tp: Any,
        validate: Validator,
        default: Any,
        default_factory: Callable[[], Any] | PathGenerator | None,
        groups: tuple[str, ...],
    ) -> None:
        self.name = name
        self.kind = kind
        self.type = tp
        self.validate = validate
        self.groups = groups
        self.generator = default_factory if isinstance(default_factory, PathGenerator) else None
        self.default = default
        self.default_factory: Callable[[], Any] | None = (
            None if isinstance(default_factory, PathGenerator) else default_factory
        )
        self.in_identity = kind is not Kind.META and not is_path_type(tp)
        encoded = name.encode()
        self.name_key = b"%d:" % len(encoded) + encoded

    @property
    def required(self) -> bool:
        return self.default is MISSING and self.default_factory is None and self.generator is None

    def has_default(self) -> bool:
        return self.default is not MISSING or self.default_factory is not None

    def make_default(self) -> Any:
        if self.default_factory is not None:
            return self.default_factory()
        return copy_default(self.default)


class Schema:
    """Fields of a class, in declaration order, plus what identity hashing needs."""

    __slots__ = ("fields", "identity_fields")

    def __init__(self, fields: dict[str, Field]) -> None:
        self.fields = fields
        self.identity_fields = tuple(f for _, f in sorted(fields.items()) if f.in_identity)


def _marker_of(tp: Any) -> tuple[Any, Kind | None, PathGenerator | None]:
    """Split `Annotated[T, marks...]` into T, its kind and an old-style path generator."""
    if typing.get_origin(tp) is not typing.Annotated:
        return tp, None, None
    base, *marks = typing.get_args(tp)
    kind: Kind | None = None
    generator: PathGenerator | None = None
    for mark in marks:
        if isinstance(mark, _KindMarker):
            kind = mark.kind
        elif isinstance(mark, PathGenerator):
            generator = mark
    if typing.get_origin(base) is typing.Annotated:
        inner, inner_kind, inner_gen = _marker_of(base)
        return inner, kind or inner_kind, generator or inner_gen
    return base, kind, generator


def collect_fields(cls: type, is_config: Callable[[type], bool]) -> dict[str, Field]:
    """Read the parameters that `cls` and its bases declare.

    Raises `ConfigError` for an annotation etude cannot resolve or a type it cannot store.
    """
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except NameError as exc:
        raise ConfigError(
            f"{cls.__qualname__}: cannot resolve an annotation ({exc}). Define the class it "
            "names before this one is used, at module level."
        ) from exc
    fields: dict[str, Field] = {}
    for name, hint in hints.items():
        if typing.get_origin(hint) is ClassVar or hint is ClassVar or name.startswith("_"):
            continue
        tp, kind, generator = _marker_of(hint)
        if kind is None and generator is None:
            continue  # a plain annotation, not a parameter
        kind = kind or Kind.META
        raw = _class_default(cls, name)
        spec = raw if isinstance(raw, FieldSpec) else FieldSpec(default=raw)
        factory = generator or spec.default_factory
        try:
            validate = compile_validator(tp, is_config)
        except TypeError as exc:
            raise ConfigError(f"{cls.__qualname__}.{name}: {exc}.") from exc
        default = spec.default
        where = f"{cls.__qualname__}.{name}"
        if default is not MISSING:
            default = validate(default, where)
        if kind is Kind.CONSTANT and default is MISSING and factory is None:
            raise ConfigError(
                f"{where}: a Constant needs a value, e.g. version: Constant[str] = '1'."
            )
        fields[name] = Field(name, kind, tp, validate, default, factory, spec.groups)
    return fields


def _class_default(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
        stash = klass.__dict__.get("__etude_defaults__")
        if stash is not None and name in stash:
            return stash[name]
    return MISSING
