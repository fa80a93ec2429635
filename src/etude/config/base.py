"""`Config`, `Task` and `LightweightTask`: typed configurations that validate on assignment."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from . import runtime
from .errors import (
    ConfigError,
    MissingParameterError,
    PathGeneratorError,
    SealedError,
    UnknownParameterError,
    did_you_mean,
)
from .fields import MISSING, FieldSpec, Kind, Tagged
from .schema import Schema, collect_fields

if TYPE_CHECKING:
    from typing_extensions import Self

T = TypeVar("T")

#: A function marking a value as an output of the task being submitted (see `Task.task_outputs`).
DependentMarker = Callable[[T], T]


class ConfigState:
    """Book-keeping etude keeps on each configuration object, apart from its values."""

    __slots__ = (
        "completed_callbacks",
        "contextual",
        "dep_announced",
        "dep_digest",
        "dep_task",
        "digest",
        "init_tasks",
        "job",
        "runtime",
        "sealed",
        "tags",
        "tags_stopped",
        "watchers",
    )

    def __init__(self) -> None:
        self.sealed = False
        self.runtime = False  # rebuilt in a job process: free attributes allowed
        self.tags: dict[str, Any] | None = None
        self.tags_stopped = False  # see Config.stop_tags
        self.dep_task: Task | None = None  # task whose output this object is
        self.dep_digest: bytes | None = None  # that task's identity (kept in the job process)
        # A dynamic output (see `watch_output`): it exists once announced, so a task using it
        # need not wait for `dep_task` to end.
        self.dep_announced = False
        self.init_tasks: tuple[LightweightTask, ...] = ()
        self.digest: bytes | None = None  # cached identity once sealed
        # Whether `digest` depends on the graph around this object (it holds an
        # InstanceConfig): then it is its identity as a root only (see identity.py).
        self.contextual = False
        self.job: Any = None  # the scheduler's job, once submitted
        self.completed_callbacks: list[Callable[[], Any]] | None = None
        self.watchers: list[tuple[Config, str, Callable[[Any], Any]]] | None = None


def is_config_class(cls: type) -> bool:
    return isinstance(cls, type) and issubclass(cls, Config)


_schemas: dict[type, Schema] = {}


def schema_of(cls: type[Config]) -> Schema:
    """The fields of `cls`, collected on first use (annotations may name later classes)."""
    schema = _schemas.get(cls)
    if schema is None:
        fields = collect_fields(cls, is_config_class)
        for klass in cls.__mro__:
            for name in fields:
                value = klass.__dict__.get(name)
                if isinstance(value, FieldSpec):
                    # Remove `field(...)` objects so reading an unset field reaches __getattr__.
                    stash = dict(klass.__dict__.get("__etude_defaults__") or {})
                    stash[name] = value
                    type.__setattr__(klass, "__etude_defaults__", stash)
                    type.__delattr__(klass, name)
        schema = Schema(fields)
        _schemas[cls] = schema
    return schema


class Config:
    """A typed configuration. Declare parameters with `Param`, `Meta` and `Constant` annotations.

    Build one with `MyConfig.C(name=value, ...)` (or `MyConfig(...)`). Values are validated when
    set; unknown names raise `UnknownParameterError`; after submission the object is sealed.
    """

    _etude: ConfigState

    def __init__(self, **values: Any) -> None:
        object.__setattr__(self, "_etude", ConfigState())
        fields = schema_of(type(self)).fields
        for name, value in values.items():
            self.__setattr__(name, value)
        d = self.__dict__
        for name, f in fields.items():
            if name not in d and (f.default is not MISSING or f.default_factory is not None):
                d[name] = f.make_default()

    @classmethod
    def C(cls, **values: Any) -> Self:
        """Build a configuration of this class from parameter values."""
        return cls(**values)

    def __setattr__(self, name: str, value: Any) -> None:
        state: ConfigState = self._etude
        fields = schema_of(type(self)).fields
        f = fields.get(name)
        if f is None:
            if state.runtime or name.startswith("_"):
                object.__setattr__(self, name, value)
                return
            raise UnknownParameterError(
                f"{type(self).__qualname__}.{name}: no such parameter.{did_you_mean(name, fields)}"
            )
        if state.runtime:
            self.__dict__[name] = value
            return
        if state.sealed:
            raise SealedError(
                f"{type(self).__qualname__}.{name}: the configuration was submitted and is "
                "sealed. Build a new one (or set the value before submit())."
            )
        if f.kind is Kind.CONSTANT:
            raise ConfigError(
                f"{type(self).__qualname__}.{name} is a Constant ({f.default!r}); it cannot be "
                "set. Change it in the class definition instead."
            )
        tagged = isinstance(value, Tagged)
        if tagged:
            value = value.value
        value = f.validate(value, f"{type(self).__qualname__}.{name}")
        if tagged:
            if state.tags is None:
                state.tags = {}
            state.tags[name] = value
        self.__dict__[name] = value

    def __getattr__(self, name: str) -> Any:
        # Only reached when `name` is not in the instance: a required or generated field unset.
        if name.startswith("__"):
            raise AttributeError(name)
        fields = schema_of(type(self)).fields
        f = fields.get(name)
        where = f"{type(self).__qualname__}.{name}"
        if f is None:
            raise AttributeError(f"{where}: no such parameter or attribute.")
        if f.generator is not None:
            raise PathGeneratorError(
                f"{where} is a generated path ({f.generator!r}); it exists only once the task "
                "that uses this configuration is submitted. Read it inside execute(), or after "
                "submit()."
            )
        raise AttributeError(f"{where} has no value: it is required. Pass {name}=... to .C().")

    def register_task_output(self, method: Callable[..., Any], **kwargs: Any) -> None:
        """Inside a running `ResumableTask`: announce an output made by `method(dep, **kwargs)`.

        The event is appended to the job's `.etude/task-outputs.jsonl`; the experiment calls
        the callbacks given to `watch_output(method, ...)` with the output. `kwargs` must be
        JSON values. Raises `ConfigError` outside a resumable task's job process.
        """
        runtime.emit_output(self, method, kwargs)

    def tag(self, name: str, value: Any) -> Self:
        """Tag this configuration with `name` = `value`; returns the configuration.

        When `name` is a parameter, the parameter is set to `value` (validated as usual) and
        tagged. Otherwise the tag is a label only: it is shown with the jobs that use this
        configuration and changes no value. Tags never change the identifier. Raises
        `SealedError` once submitted, `ConfigError` for a value that is not a str, int, float,
        bool or None.
        """
        if name in schema_of(type(self)).fields:
            self.__setattr__(name, Tagged(value))
            return self
        where = f"{type(self).__qualname__}.tag({name!r}, ...)"
        if self._etude.sealed:
            raise SealedError(f"{where}: the configuration was submitted and is sealed.")
        if not isinstance(value, (str, int, float, bool)) and value is not None:
            raise ConfigError(
                f"{where}: a tag that is not a parameter takes a str, int, float, bool or "
                f"None, got {type(value).__name__}. Pass str(value) to show it as text."
            )
        if self._etude.tags is None:
            self._etude.tags = {}
        self._etude.tags[name] = value
        return self

    def tags(self) -> dict[str, Any]:
        """The tags in effect on this configuration: its own, and those of the configurations
        (and task outputs) it contains, unless they stop them; its own win on a clash."""
        return tags_in_effect(self)

    def stop_tags(self) -> Self:
        """Keep this configuration's tags (own and inherited) from flowing to the
        configurations that contain it. Its own `tags()` are unchanged. Returns it."""
        self._etude.tags_stopped = True
        return self

    def seal(self) -> Self:
        """Seal this configuration and every configuration it contains; returns it.

        From then on setting a value raises `SealedError`, and a set value is kept as a
        `frozenset` (its identity is unchanged: sets count without order either way).
        `submit()` seals the task the same way. A task sealed before `submit()` must be
        submitted without init tasks (they are part of its identity). Sealing twice is a no-op.
        """
        stack: list[Config] = [self]
        seen: set[int] = set()
        while stack:
            cfg = stack.pop()
            if id(cfg) in seen:
                continue
            seen.add(id(cfg))
            if not cfg._etude.sealed:
                values = cfg.__dict__
                for name in schema_of(type(cfg)).fields:
                    if name in values:
                        values[name] = _frozen_sets(values[name])
                cfg._etude.sealed = True
            stack.extend(_direct_children(cfg))
        return self

    def instance(self) -> Self:
        """The plain Python object of this configuration, built as in a job process.

        For notebooks and quick checks, outside any job: the result is a new graph of objects
        in runtime mode (values are not validated again, any attribute may be set), in which a
        configuration used in several places is one object; each object's `__post_init__()`
        runs, nested ones first. Init tasks are not run. Generated paths of a configuration
        not yet submitted stay unknown. The configuration itself is unchanged. Raises
        `MissingParameterError` for a required parameter without a value.
        """
        return _Instances().of(self, type(self).__qualname__.lower())

    def __repr__(self) -> str:
        fields = schema_of(type(self)).fields
        shown = []
        for name in fields:
            if name in self.__dict__:
                value = self.__dict__[name]
                text = f"<{type(value).__name__}>" if isinstance(value, Config) else repr(value)
                shown.append(f"{name}={text}")
        return f"{type(self).__qualname__}.C({', '.join(shown)})"


class InstanceConfig(Config):
    """A configuration that counts by object as well as by value.

    Within one configuration graph (a task and everything reachable from it through parameter
    values and init tasks), distinct objects of an `InstanceConfig` class with equal values
    have distinct identities, while one object used in several places stays one: so
    `Ensemble.C(a=m1, b=m2)` and `Ensemble.C(a=m1, b=m1)` are two jobs. The identifier records
    which uses are one object, not which Python objects they are: among equal instances, the
    first one the identity encoding reaches counts exactly as a plain `Config` with those
    values would, the n-th distinct one also by its rank, n-1. Outside a graph,
    `identifier(m2)` is that of its values. A task cannot be one (`ConfigError` when the class
    is defined), and an instance cannot be inside a set (`SerializationError` when its
    identifier is computed).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if issubclass(cls, Task):
            raise ConfigError(
                f"{cls.__qualname__} derives from both InstanceConfig and Task; a task's "
                "identifier names its job folder, so it counts by value only. Derive it from "
                "Task alone; to run it twice with equal values, give it a parameter that tells "
                "the runs apart (e.g. seed: Param[int])."
            )


class LightweightTask(Config):
    """A configuration run inside a job process before the task (see `submit(init_tasks=...)`)."""

    def execute(self) -> None:
        raise NotImplementedError(f"{type(self).__qualname__} must define execute().")


class Submitter(Protocol):
    """What `Task.submit()` hands the task to: the current experiment."""

    def submit(
        self,
        task: Task,
        *,
        launcher: Any,
        init_tasks: Iterable[LightweightTask],
        max_retries: int | None,
        requirements: Any,
        rerun: bool | str = False,
    ) -> Any: ...


#: The experiment of the enclosing `with experiment(...)` block, if any.
current_submitter: ContextVar[Submitter | None] = ContextVar("etude_submitter", default=None)

#: Builds the submitter of `submit(dry_run=WORKDIR)` outside an experiment. The scheduler
#: registers it when imported (this layer cannot import the scheduler).
_dry_run_submitter: Callable[[str | os.PathLike[str]], Submitter] | None = None


def register_dry_run_submitter(factory: Callable[[str | os.PathLike[str]], Submitter]) -> None:
    """Set what `Task.submit(dry_run=...)` uses outside an experiment (called by the scheduler)."""
    global _dry_run_submitter
    _dry_run_submitter = factory


class Task(Config):
    """A configuration that runs: `execute()` is called in its own job process after submit()."""

    def execute(self) -> None:
        raise NotImplementedError(f"{type(self).__qualname__} must define execute().")

    def submit(
        self,
        *,
        launcher: Any = None,
        init_tasks: Iterable[LightweightTask] = (),
        max_retries: int | None = None,
        requirements: Any = None,
        rerun: bool | str = False,
        dry_run: bool | str | os.PathLike[str] = False,
    ) -> Any:
        """Hand the task to the current experiment; return `task_outputs(dep)`.

        `launcher`: where the job runs (default: the experiment's). `init_tasks`: lightweight
        tasks run in the job process before `execute()`. `max_retries`: how many times a
        `ResumableTask` is started again after a timeout. `requirements`: what the job needs,
        e.g. `"duration=2h"` (overrides the class's `__requirements__`). `rerun`: run the job
        again even if it is done (True), or only if its code changed since it ran ("changed").
        `dry_run`: outside an experiment only, compute the identifier, job folder, generated
        paths and outputs as if in the workspace `dry_run` (a folder or workspace id; True for
        the current folder), writing and running nothing; the task is sealed.
        Raises `ConfigError` outside `with experiment(...)` without `dry_run`, with `dry_run`
        inside one, or for a missing or bad value.
        """
        submitter = current_submitter.get()
        name = type(self).__qualname__
        if submitter is not None and dry_run is not False:
            raise ConfigError(
                f"{name}.submit(dry_run=...) inside an experiment: a dry run is the "
                "experiment's choice. Use `experiment(workdir, name, dry_run=True)`."
            )
        if submitter is None and dry_run is not False and _dry_run_submitter is not None:
            submitter = _dry_run_submitter("." if dry_run is True else dry_run)
        if submitter is None:
            raise ConfigError(
                f"{name}.submit() was called outside an experiment. Wrap it in "
                "`with experiment(workdir, name):`, or pass dry_run=WORKDIR to only compute "
                "its identifier and paths."
            )
        return submitter.submit(
            self,
            launcher=launcher,
            init_tasks=init_tasks,
            max_retries=max_retries,
            requirements=requirements,
            rerun=rerun,
        )

    def task_outputs(self, dep: DependentMarker[Any]) -> Any:
        """What `submit()` returns; `dep(x)` marks `x` as depending on this task."""
        return dep(self)

    @property
    def jobpath(self) -> Path:
        """The job directory of this task (known once submitted)."""
        job = self._etude.job
        if job is None:
            taskdir = self.__dict__.get("__taskdir__")
            if taskdir is not None:
                return Path(taskdir)
            raise ConfigError(
                f"{type(self).__qualname__}.jobpath is known only once the task is submitted."
            )
        return Path(job.path)

    def remaining_time(self) -> float | None:
        """Seconds left before the launcher stops this job (None without a time limit)."""
        return runtime.remaining_time()

    def on_completed(self, callback: Callable[[], Any]) -> None:
        """Call `callback()` in the experiment process once this task's job is done."""
        state = self._etude
        if state.job is not None:
            state.job.add_completed_callback(callback)
        else:
            if state.completed_callbacks is None:
                state.completed_callbacks = []
            state.completed_callbacks.append(callback)

    def watch_output(self, method: Callable[..., Any], callback: Callable[[Any], Any]) -> None:
        """Call `callback(output)` in the experiment for each output `method` announces.

        `method` is a method of a configuration used by this task (e.g.
        `validation.checkpoint`), called as `method(dep, **kwargs)` with the keywords the
        job passed to `register_task_output`; `dep` marks its result as depending on this
        task. Events are kept in the job folder and replayed when the experiment runs again.
        """
        owner = getattr(method, "__self__", None)
        if not isinstance(owner, Config) or not callable(method):
            raise ConfigError(
                f"{type(self).__qualname__}.watch_output: expected a method of a configuration "
                f"used by the task (e.g. validation.checkpoint), got {method!r}."
            )
        state = self._etude
        if state.watchers is None:
            state.watchers = []
        state.watchers.append((owner, method.__name__, callback))
        if state.job is not None:
            state.job.add_output_watcher(owner, method.__name__, callback)


class ResumableTask(Task):
    """A task that can be stopped and started again in the same folder.

    When it ends by timeout (its time limit, or `GracefulTimeout` raised by the task), the
    scheduler starts it again, keeping the folder (checkpoints), up to `max_retries` times.
    Its `execute()` should resume from what an earlier attempt saved.
    """


def _frozen_sets(value: Any) -> Any:
    """`value` with every set in it (also inside lists, tuples and dicts) as a frozenset."""
    if isinstance(value, set):
        return frozenset(_frozen_sets(item) for item in value)
    if isinstance(value, list):
        return [_frozen_sets(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_frozen_sets(item) for item in value)
    if isinstance(value, dict):
        return {key: _frozen_sets(item) for key, item in value.items()}
    return value


def _children(value: Any, path: str) -> Iterator[tuple[str, Config]]:
    """The configurations in a parameter value (itself, or inside lists, sets and dicts)."""
    if isinstance(value, Config):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _children(item, f"{path}[{i}]")
    elif isinstance(value, (set, frozenset)):
        for item in value:
            yield from _children(item, f"{path}{{}}")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _children(item, f"{path}[{key!r}]")


def stop_tags(value: T) -> T:
    """`cfg.stop_tags()` on a configuration, or on every configuration in a list, tuple, set or
    dict of them (experimaestro's function form, e.g. `listeners=stop_tags(validations)`).
    Returns `value` itself. A value holding no configuration is refused: there would be no
    tags to stop, and a silent no-op would hide the mistake."""
    found = [cfg for _, cfg in _children(value, "value")]
    if not found:
        raise TypeError(
            f"stop_tags: expected a configuration, or a list, tuple, set or dict of "
            f"configurations; got {type(value).__name__} {value!r:.60}"
        )
    for cfg in found:
        cfg.stop_tags()
    return value


def tags_in_effect(root: Config) -> dict[str, Any]:
    """Tags of `root` and of every configuration it contains, except below one whose tags are
    stopped (`stop_tags()`); an outer configuration's tag wins over an inner one's."""
    memo: dict[int, dict[str, Any]] = {}

    def of(cfg: Config) -> dict[str, Any]:
        key = id(cfg)
        if key not in memo:
            memo[key] = {}  # a cycle is reported by walk(); here it only must not recurse
            tags: dict[str, Any] = {}
            for child in reversed(_direct_children(cfg)):
                if not child._etude.tags_stopped:
                    tags.update(of(child))
            tags.update(cfg._etude.tags or {})
            memo[key] = tags
        return memo[key]

    return dict(of(root))


def _direct_children(cfg: Config) -> list[Config]:
    values = cfg.__dict__
    children: list[Config] = []
    for name in schema_of(type(cfg)).fields:
        value = values.get(name, MISSING)
        if value is not MISSING:
            children.extend(child for _, child in _children(value, name))
    children.extend(cfg._etude.init_tasks)
    return children


class _Instances:
    """Copies of a configuration graph in runtime mode (see `Config.instance`)."""

    def __init__(self) -> None:
        self.copies: dict[int, Config] = {}
        self.order: list[Config] = []  # children before the configurations containing them

    def of(self, root: T, path: str) -> T:
        result = self.config(root, path)  # type: ignore[arg-type]
        for obj in self.order:
            post = getattr(type(obj), "__post_init__", None)
            if post is not None:
                post(obj)
        return result  # type: ignore[return-value]

    def config(self, cfg: Config, path: str) -> Config:
        copy = self.copies.get(id(cfg))
        if copy is not None:
            return copy
        copy = object.__new__(type(cfg))
        state = ConfigState()
        state.runtime = state.sealed = True
        state.tags = dict(cfg._etude.tags) if cfg._etude.tags else None
        state.dep_digest = cfg._etude.dep_digest
        object.__setattr__(copy, "_etude", state)
        self.copies[id(cfg)] = copy
        values = cfg.__dict__
        for name, f in schema_of(type(cfg)).fields.items():
            if name in values:
                copy.__dict__[name] = self.value(values[name], f"{path}.{name}")
            elif f.required:
                raise MissingParameterError(
                    f"{path}.{name} has no value: it is required. "
                    f"Pass {name}=... to {type(cfg).__qualname__}.C()."
                )
        state.init_tasks = tuple(
            self.config(init, f"{path}.init_tasks[{i}]")  # type: ignore[misc]
            for i, init in enumerate(cfg._etude.init_tasks)
        )
        self.order.append(copy)
        return copy

    def value(self, value: Any, path: str) -> Any:
        if isinstance(value, Config):
            return self.config(value, path)
        if isinstance(value, (list, tuple)):
            items = [self.value(item, f"{path}[{i}]") for i, item in enumerate(value)]
            return items if isinstance(value, list) else tuple(items)
        if isinstance(value, (set, frozenset)):
            return type(value)(self.value(item, f"{path}{{}}") for item in value)
        if isinstance(value, dict):
            return {k: self.value(v, f"{path}[{k!r}]") for k, v in value.items()}
        return value  # scalars, paths, enum members: immutable
