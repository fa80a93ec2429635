"""Field declarations: `Param`, `Meta`, `Constant`, `field()`, generated paths and tags."""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar

T = TypeVar("T")


class Kind(enum.Enum):
    """How a field takes part in a configuration."""

    PARAM = "param"  # part of the identity when it differs from its default
    META = "meta"  # never part of the identity
    CONSTANT = "constant"  # always part of the identity, never set by users


class _KindMarker:
    __slots__ = ("kind",)

    def __init__(self, kind: Kind) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"<{self.kind.value}>"


PARAM_MARK = _KindMarker(Kind.PARAM)
META_MARK = _KindMarker(Kind.META)
CONSTANT_MARK = _KindMarker(Kind.CONSTANT)

# Generic aliases: `Param[int]` is `Annotated[int, PARAM_MARK]`, which type checkers read as `int`.
Param = Annotated[T, PARAM_MARK]
Meta = Annotated[T, META_MARK]
Constant = Annotated[T, CONSTANT_MARK]


class PathGenerator:
    """Default factory giving a path inside the job directory of the task that owns the config.

    The path is set when the task is submitted: `jobpath / relative`. Reading the field before
    that raises `PathGeneratorError`.
    """

    __slots__ = ("partial", "relative")

    def __init__(self, relative: str | Path = "", *, partial: PartialFolder | None = None) -> None:
        self.relative = Path(relative)
        self.partial = partial
        if self.relative.is_absolute():
            raise ValueError(
                f"PathGenerator({str(relative)!r}): the path must be relative to the job "
                "directory; drop the leading '/'."
            )

    def generate(self, jobpath: Path, owner: Any = None) -> Path:
        """The path for configuration `owner` of the task whose folder is `jobpath`: in that
        folder, or in the partial folder of `owner` (in the same workspace) if one is given."""
        if self.partial is None:
            return jobpath / self.relative
        if owner is None:
            raise ValueError(f"{self!r}.generate(): a partial path needs its configuration.")
        workspace = jobpath.parents[2]  # WORKSPACE/jobs/NAME/ID
        return self.partial.folder_in(workspace, owner) / self.relative

    def __repr__(self) -> str:
        where = f", partial={self.partial.name!r}" if self.partial is not None else ""
        return f"PathGenerator({str(self.relative)!r}{where})"


class PartialFolder(Protocol):
    """What `PathGenerator(partial=...)` needs of a partial folder (see `etude.partial`)."""

    name: str

    def folder_in(self, workspace: Path, owner: Any) -> Path: ...


def pathgenerator(relative: str | Path = "") -> PathGenerator:
    """Older spelling (`Annotated[Path, pathgenerator("x")]`) of a generated path."""
    return PathGenerator(relative)


_MISSING: Any = type("MISSING", (), {"__repr__": lambda self: "MISSING"})()
MISSING: Any = _MISSING


class ParamGroup:
    """A named group of parameters (see `field(groups=...)` and `etude.partial`).

    Groups compare by name: `param_group("iter")` and the string `"iter"` are the same group.
    Holding the object in a variable lets a typo fail at import rather than silently.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"param_group({name!r}): a group needs a non-empty name.")
        self.name = name

    def __repr__(self) -> str:
        return f"param_group({self.name!r})"


def param_group(name: str) -> ParamGroup:
    """A parameter group object, usable wherever a group name is (`field`, `partial`)."""
    return ParamGroup(name)


def group_names(groups: Any, where: str) -> tuple[str, ...]:
    """Names of `groups`: one group or an iterable of groups, each a name or a `ParamGroup`."""
    items = [groups] if isinstance(groups, (str, ParamGroup)) else list(groups)
    names = []
    for item in items:
        name = item.name if isinstance(item, ParamGroup) else item
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"{where}: {item!r} is not a group; give names or param_group(...) objects."
            )
        names.append(name)
    return tuple(names)


class FieldSpec:
    """What `field(...)` returns: a default, or a factory, for a declared parameter."""

    __slots__ = ("default", "default_factory", "groups")

    def __init__(
        self,
        default: Any = MISSING,
        default_factory: Callable[[], Any] | None = None,
        groups: tuple[str, ...] = (),
    ) -> None:
        if default is not MISSING and default_factory is not None:
            raise ValueError("field(): give either default= or default_factory=, not both.")
        self.default = default
        self.default_factory = default_factory
        self.groups = groups


def field(
    *,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | None = None,
    groups: str | ParamGroup | Iterable[str | ParamGroup] = (),
) -> Any:
    """Declare the default of a parameter: `lr: Param[float] = field(default=0.1)`.

    `default_factory` is called for each new configuration (use it for mutable values, or a
    `PathGenerator` for a path inside the job directory). `groups` names the parameter groups
    the field belongs to (see `etude.partial`).
    """
    names = group_names(groups, "field(groups=...)")
    return FieldSpec(default=default, default_factory=default_factory, groups=names)


class Tagged:
    """A value marked as a tag by `tag(value)`; unwrapped when assigned."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def tag(value: Any) -> Any:
    """Mark a value given to `.C(...)` as a tag: shown with the job, not part of the identity."""
    return Tagged(value)


def copy_default(value: Any) -> Any:
    """Defaults that are containers are copied so that configs never share them."""
    if isinstance(value, (list, dict, set)):
        return copy.deepcopy(value)
    return value
