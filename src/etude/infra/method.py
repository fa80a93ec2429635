"""`@infra.apply`: the decorated method, and how an infra field is tied to its owner object.

Decorating a method in the class body installs two things on the owner class: `extra="forbid"`
(an unknown keyword would otherwise be dropped silently and leave the uid unchanged), and an
`__init__` that gives each new object its own infra, tied to it and seeded from the class's
default infra (every field the default set explicitly, `version` included, unless the object
sets it). pydantic calls that `__init__` for nested validation too.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pydantic
from pydantic_core import PydanticUndefined

from .errors import InfraConfigError
from .uid import CACHE_EXCLUSION_NAME, Exclusion, Exclusions, merge, parse_names

if TYPE_CHECKING:
    from .base import BaseInfra

ExclusionOption = Callable[..., Any] | str | list[str] | tuple[str, ...] | None


class Runtime:
    """An infra's tie to its owner, and what it remembers while the owner lives.

    Only the tie survives pickling: a job process starts with empty memories.
    """

    __slots__ = ("checked", "field", "forced", "items", "jobs", "method", "owner", "results")

    def __init__(self, owner: pydantic.BaseModel, field: str, method: InfraMethod | None) -> None:
        self.owner = owner
        self.field = field
        self.method = method
        self.results: dict[str, Any] = {}  # uid -> result, kept in memory
        self.jobs: dict[str, Any] = {}  # uid -> job submitted through this infra
        self.forced: set[str] = set()  # uids recomputed once already in mode "force"
        self.items: dict[str, dict[str, Any]] = {}  # MapInfra without folder: uid -> items
        self.checked: set[str] = set()  # uid folders whose config files were checked

    def __getstate__(self) -> tuple[Any, str]:
        return (self.owner, self.field)

    def __setstate__(self, state: tuple[Any, str]) -> None:
        self.__init__(state[0], state[1], None)  # type: ignore[misc]

    def get_method(self) -> InfraMethod:
        if self.method is None:
            self.method = method_for(type(self.owner), self.field)
        return self.method


class InfraMethod(property):
    """The descriptor `@infra.apply` returns (a property, so that pydantic leaves it alone)."""

    def __init__(
        self,
        infra: BaseInfra,
        func: Callable[..., Any],
        *,
        arguments: int,
        exclude_from_cache_uid: ExclusionOption = None,
        item_uid: Callable[[Any], str] | None = None,
        item_uid_max_length: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(func, InfraMethod):
            raise InfraConfigError(
                f"@infra.apply on {func.where}: the method is already decorated by another "
                "infra's apply; one infra caches one method. Remove one of the decorators, or "
                "decorate a second method that calls the first."
            )
        if not callable(func):
            raise InfraConfigError(f"@infra.apply decorates a method, got {func!r}.")
        self.infra = infra
        self.func = func
        self.name = func.__name__
        self.arguments = arguments
        self.option = exclude_from_cache_uid
        self.item_uid = item_uid
        self.item_uid_max_length = item_uid_max_length
        self.field = ""
        self.owner: type | None = None
        self.where = func.__qualname__
        self._exclusions: dict[type, Exclusion] = {}
        self.__doc__ = func.__doc__
        _check_option(exclude_from_cache_uid, self.where)

    def __set_name__(self, owner: type, name: str) -> None:
        where = f"{owner.__qualname__}.{name}"
        self.where = where
        if not (isinstance(owner, type) and issubclass(owner, pydantic.BaseModel)):
            raise InfraConfigError(
                f"@infra.apply on {where}: {owner.__qualname__} is not a pydantic model. Derive "
                "it from pydantic.BaseModel and declare the infra as a field, e.g. "
                "`infra: TaskInfra = TaskInfra()`."
            )
        self._check_signature(where)
        self.field = _field_of(owner, self.infra, where)
        self.owner = owner
        install(owner)

    def _check_signature(self, where: str) -> None:
        params = list(inspect.signature(self.func).parameters.values())[1:]
        if self.arguments == 0 and params:
            names = ", ".join(p.name for p in params)
            raise InfraConfigError(
                f"{where}: a TaskInfra method takes no argument but self (it has: {names}). "
                "Make them fields of the model, so that they are part of the uid."
            )
        if self.arguments == 1 and (
            len(params) != 1 or params[0].kind not in (params[0].POSITIONAL_OR_KEYWORD,)
        ):
            raise InfraConfigError(
                f"{where}: a MapInfra method takes exactly one argument besides self, the "
                "items to process (e.g. `def process(self, items)`), and yields one result "
                "per item."
            )

    def __get__(self, obj: Any, cls: type | None = None) -> Any:
        if obj is None:
            return self
        return functools.partial(self._call, obj)

    def _call(self, obj: pydantic.BaseModel, *args: Any) -> Any:
        if method_for(type(obj), self.field) is not self:
            # An override of this method, decorated by the same infra field, calls it through
            # `super()`: this call is part of the override's computation, cached under the
            # override's uid; caching it again under the same uid would wait for itself.
            return self.func(obj, *args)
        infra = obj.__dict__[self.field]
        runtime = infra.__pydantic_private__["_rt"]
        if runtime is None or runtime.owner is not obj:
            infra = link(obj, self.field)
        return infra._call(*args)

    def cache_exclusion(self, obj: pydantic.BaseModel) -> Exclusions:
        """Fields left out of the cache uid (on top of the class exclusions)."""
        cls = type(obj)
        exclusion = self._exclusions.get(cls)
        if exclusion is None:
            exclusion = self._exclusions[cls] = self._build_exclusion(cls)
        return exclusion.resolve(obj)

    def _build_exclusion(self, cls: type) -> Exclusion:
        where = f"{cls.__qualname__}.{self.name}"
        own = Exclusion.from_class(cls, (CACHE_EXCLUSION_NAME,), cls.__qualname__)
        option = self.option
        if option is None:
            return own
        if isinstance(option, str) and option.startswith("method:"):
            method_name = option[len("method:") :]
            if not callable(getattr(cls, method_name, None)):
                raise InfraConfigError(
                    f"{where}: exclude_from_cache_uid={option!r} names no method of "
                    f"{cls.__qualname__}. Define `def {method_name}(self) -> list[str]`."
                )

            def call(obj: Any) -> Any:
                return getattr(obj, method_name)()

            fixed = None
        elif callable(option):
            call, fixed = option, None
        else:
            fixed = parse_names(option, f"{where}: exclude_from_cache_uid", cls)
        if fixed is not None and own.static is not None:
            return Exclusion(where, merge(own.static, fixed), None)

        def names(obj: Any) -> Exclusions:
            mine = fixed if fixed is not None else parse_names(call(obj), where, cls)
            return merge(own.resolve(obj), mine)

        return _DynamicExclusion(where, names)


class _DynamicExclusion(Exclusion):
    """An exclusion computed for each object (the tree itself, not a list of names)."""

    def __init__(self, owner: str, tree: Callable[[Any], Exclusions]) -> None:
        super().__init__(owner, None, None)
        self.tree = tree

    def resolve(self, obj: pydantic.BaseModel) -> Exclusions:
        return self.tree(obj)


def _check_option(option: ExclusionOption, where: str) -> None:
    if option is None or callable(option) or isinstance(option, (str, list, tuple)):
        return
    raise InfraConfigError(
        f"{where}: exclude_from_cache_uid must be a list of field names, a method, or "
        f"'method:NAME'; got {option!r}."
    )


def _field_of(owner: type, infra: Any, where: str) -> str:
    for name, value in owner.__dict__.items():
        if value is infra or getattr(value, "default", None) is infra:
            return name
    raise InfraConfigError(
        f"@infra.apply on {where}: the infra must be the default value of a field of "
        f"{owner.__qualname__} declared above the method, e.g. `infra: TaskInfra = "
        "TaskInfra(version='1')`."
    )


def install(owner: type[pydantic.BaseModel]) -> None:
    """Forbid unknown fields on `owner` and tie infras to new objects (once per class)."""
    config = owner.model_config
    extra = config.get("extra")
    if extra is None:
        config["extra"] = "forbid"  # read by pydantic when it builds the schema, just after
    elif extra != "forbid":
        raise InfraConfigError(
            f"{owner.__qualname__}: model_config extra={extra!r} lets unknown fields through, "
            "so a misspelt field would be ignored and leave the uid unchanged. Remove the "
            "setting (the infra sets extra='forbid') or set extra='forbid'."
        )
    init = owner.__init__
    if getattr(init, "__etude_infra_init__", False):
        return

    def __init__(self: pydantic.BaseModel, /, **data: Any) -> None:
        init(self, **data)
        cls = type(self)
        for field in infra_fields(cls):
            infra = link(self, field)
            if _find_method(cls, field) is not None:
                infra._keys()  # a uid configuration error is raised now, not at the first call

    __init__.__etude_infra_init__ = True  # type: ignore[attr-defined]
    __init__.__qualname__ = f"{owner.__qualname__}.__init__"
    __init__.__doc__ = init.__doc__
    owner.__init__ = __init__  # type: ignore[method-assign]
    shallow = owner.__copy__

    def __copy__(self: pydantic.BaseModel) -> pydantic.BaseModel:
        new = shallow(self)  # model_copy(): the copy gets an infra of its own
        for field in infra_fields(type(new)):
            link(new, field)
        return new

    setattr(owner, "__copy__", __copy__)
    own = owner.__dict__.get("__pydantic_init_subclass__")  # the class's own hook, if any

    def __pydantic_init_subclass__(cls: type[pydantic.BaseModel], **kwargs: Any) -> None:
        if isinstance(own, classmethod):
            own.__func__(cls, **kwargs)
        else:
            super(owner, cls).__pydantic_init_subclass__(**kwargs)  # type: ignore[misc]
        check_subclass(cls)  # subclasses are checked once pydantic has built them

    setattr(owner, "__pydantic_init_subclass__", classmethod(__pydantic_init_subclass__))


def check_subclass(cls: type[pydantic.BaseModel]) -> None:
    """Refuse a subclass that redeclares an applied infra field without applying it."""
    # not `infra_fields(cls)`: it caches, and an annotation may resolve only later
    for field, info in cls.model_fields.items():
        if not getattr(info.annotation, "__etude_infra__", False):
            continue
        default = info.default
        parent: Any = next(
            (base for base in cls.__mro__[1:] if field in getattr(base, "model_fields", {})),
            None,
        )
        if parent is None or parent.model_fields[field].default is default:
            continue
        inherited = _find_method(parent, field)
        if inherited is None:
            continue
        if any(isinstance(v, InfraMethod) and v.infra is default for v in vars(cls).values()):
            continue
        raise InfraConfigError(
            f"{cls.__qualname__} redeclares the infra field {field!r} of "
            f"{parent.__qualname__} without decorating a method with it, so "
            f"{inherited.where} would be cached by an infra that does not apply it. Set the "
            f"infra's values per object ({cls.__qualname__}({field}={{...}})) instead, or "
            f"override the method too: `@{field}.apply` above `def {inherited.name}(self): "
            f"return super().{inherited.name}()`."
        )


_INFRA_FIELDS: dict[type, tuple[str, ...]] = {}
_METHODS: dict[tuple[type, str], InfraMethod | None] = {}


def infra_fields(cls: type[pydantic.BaseModel]) -> tuple[str, ...]:
    fields = _INFRA_FIELDS.get(cls)
    if fields is None:
        fields = _INFRA_FIELDS[cls] = tuple(
            name
            for name, info in cls.model_fields.items()
            if getattr(info.annotation, "__etude_infra__", False)
        )
    return fields


def method_for(cls: type, field: str) -> InfraMethod:
    """The method decorated by the infra in `field` (the most derived one)."""
    method = _find_method(cls, field)
    if method is None:
        raise InfraConfigError(
            f"{cls.__qualname__}.{field}: no method is decorated with @{field}.apply, so this "
            "infra has nothing to compute or cache. Decorate one, e.g. `@infra.apply` above "
            "`def process(self): ...`."
        )
    return method


def _find_method(cls: type, field: str) -> InfraMethod | None:
    key = (cls, field)
    if key not in _METHODS:
        found = None
        for klass in cls.__mro__:
            for value in vars(klass).values():
                if isinstance(value, InfraMethod) and value.field == field:
                    found = value
                    break
            if found is not None:
                break
        _METHODS[key] = found
    return _METHODS[key]


def link(obj: pydantic.BaseModel, field: str) -> BaseInfra:
    """Give `obj` its own infra in `field`, seeded from the class default; return it."""
    infra = obj.__dict__[field]
    runtime = infra.__pydantic_private__.get("_rt")
    if runtime is not None and runtime.owner is not None and runtime.owner is not obj:
        infra = infra.model_copy()  # shared with another object (passed as an instance)
    default = type(obj).model_fields[field].default
    if default is not PydanticUndefined and default is not infra:
        for name in default.model_fields_set - infra.model_fields_set:
            infra.__dict__[name] = default.__dict__[name]
    infra.__pydantic_private__["_rt"] = Runtime(obj, field, None)
    obj.__dict__[field] = infra
    return infra
