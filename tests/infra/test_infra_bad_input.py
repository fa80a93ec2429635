"""Bad input gets a clear error that says what, where and how to fix it."""

from __future__ import annotations

import re
import typing as tp
from pathlib import Path

import pydantic
import pytest
from infra_models import Counted

from etude.infra import (
    CacheMismatchError,
    DuplicateConfigError,
    InfraConfigError,
    JobError,
    MapInfra,
    ReadOnlyError,
    TaskInfra,
)


def _raises_config_error(define: tp.Callable[[], object], pattern: str) -> None:
    """Class-definition errors surface directly (3.12+) or as the cause of a RuntimeError."""
    with pytest.raises((InfraConfigError, RuntimeError)) as info:
        define()
    error: BaseException | None = info.value
    if isinstance(error, RuntimeError) and not isinstance(error, InfraConfigError):
        error = error.__cause__
    assert isinstance(error, InfraConfigError), info.value
    assert re.search(pattern, str(error)), str(error)


def test_owner_must_be_a_pydantic_model() -> None:
    def define() -> object:
        class Plain:
            infra = TaskInfra()

            @infra.apply
            def process(self) -> int:
                return 1

        return Plain

    _raises_config_error(define, r"Plain is not a pydantic model.*pydantic.BaseModel")


def test_task_method_takes_no_arguments() -> None:
    def define() -> object:
        class WithArgs(pydantic.BaseModel):
            infra: TaskInfra = TaskInfra()

            @infra.apply
            def process(self, scale: int) -> int:
                return scale

        return WithArgs

    _raises_config_error(define, r"WithArgs.process: a TaskInfra method takes no argument .*scale")


def test_map_method_takes_the_items() -> None:
    def define() -> object:
        class NoItems(pydantic.BaseModel):
            infra: MapInfra = MapInfra()

            @infra.apply(item_uid=str)
            def process(self) -> list[int]:
                return []

        return NoItems

    _raises_config_error(define, r"NoItems.process: a MapInfra method takes exactly one argument")


def test_extra_allowed_by_the_model_is_refused() -> None:
    def define() -> object:
        class Loose(pydantic.BaseModel):
            model_config = pydantic.ConfigDict(extra="allow")
            infra: TaskInfra = TaskInfra()

            @infra.apply
            def process(self) -> int:
                return 1

        return Loose

    _raises_config_error(define, r"Loose: model_config extra='allow'.*extra='forbid'")


def test_one_infra_serves_one_method() -> None:
    def define() -> object:
        class Twice(pydantic.BaseModel):
            infra: TaskInfra = TaskInfra()

            @infra.apply
            def one(self) -> int:
                return 1

            @infra.apply
            def two(self) -> int:
                return 2

        return Twice

    with pytest.raises(InfraConfigError, match=r"already decorates .*one.*Declare another field"):
        define()


def test_infra_must_be_a_field_default() -> None:
    shared = TaskInfra()

    def define() -> object:
        class Elsewhere(pydantic.BaseModel):
            x: int = 1

            @shared.apply
            def process(self) -> int:
                return 1

        return Elsewhere

    _raises_config_error(define, r"must be the default value of a field of .*Elsewhere")


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        pytest.param({"xx": 1}, r"xx\n  Extra inputs are not permitted", id="misspelt-field"),
        pytest.param({"infra": {"clsuter": "local"}}, r"infra.clsuter\n  Extra", id="infra-field"),
        pytest.param({"infra": {"mode": "cache"}}, r"'cached', 'force', 'retry'", id="mode"),
        pytest.param({"infra": {"cluster": "gpu"}}, r"'debug', 'local', 'slurm'", id="cluster"),
        pytest.param({"infra": {"version": "a/b"}}, r"version 'a/b' must be made of", id="version"),
        pytest.param({"infra": {"cpus_per_task": 0}}, r"greater than 0", id="cpus"),
    ],
)
def test_invalid_values_are_refused_at_construction(
    kwargs: dict[str, tp.Any], pattern: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=pattern):
        Counted(**kwargs)


def test_unknown_cache_exclusion_names_the_field() -> None:
    class Typo(pydantic.BaseModel):
        device: str = "cpu"
        infra: TaskInfra = TaskInfra()

        @infra.apply(exclude_from_cache_uid=("devise",))
        def process(self) -> int:
            return 1

    with pytest.raises(
        InfraConfigError, match=r"'devise' is not a field of .*Typo \(fields: device"
    ):
        Typo().infra.uid()


def test_unhashable_value_in_uid_names_the_field() -> None:
    class Holder(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
        table: dict[str, tp.Any] = {}
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def process(self) -> int:
            return 1

    with pytest.raises(InfraConfigError, match=r"Holder.table\['f'\]: a value of type function"):
        Holder(table={"f": lambda: 1}).infra.uid()


def test_cluster_without_folder_is_refused() -> None:
    with pytest.raises(InfraConfigError, match=r"cluster='local' needs a folder"):
        Counted(infra={"cluster": "local"}).process()


def test_missing_workdir_source_is_refused(tmp_path: Path) -> None:
    task = Counted(
        infra={"folder": tmp_path, "cluster": "local", "workdir": {"copied": ["no_such_dir_x"]}}
    )
    with pytest.raises(InfraConfigError, match=r"'no_such_dir_x' is neither a file or folder"):
        task.infra.job()


def test_infra_alone_is_not_attached() -> None:
    with pytest.raises(InfraConfigError, match="not attached to an object"):
        TaskInfra().uid()


def test_uid_configuration_errors_are_raised_when_the_model_is_built() -> None:
    class Holder(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
        thing: tp.Any = None
        infra: TaskInfra = TaskInfra()

        @infra.apply(exclude_from_cache_uid="method:no_such_method")
        def process(self) -> int:
            return 1

    with pytest.raises(InfraConfigError, match=r"names no method of .*Holder"):
        Holder()

    class Loose(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
        thing: tp.Any = None
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def process(self) -> int:
            return 1

    assert Loose(thing=1).thing == 1  # a supported value: built
    with pytest.raises(InfraConfigError, match=r"Loose.thing: a value of type object"):
        Loose(thing=object())


def test_job_array_refuses_duplicate_configurations(tmp_path: Path) -> None:
    """Nothing starts: the error (a ValueError, as in exca) comes first."""
    base = Counted(log=str(tmp_path / "log"), infra={"folder": tmp_path / "cache"})
    with pytest.raises(DuplicateConfigError, match=r"objects 0 and 2 have the same uid x=0"):
        with base.infra.job_array() as array:
            array.extend(base.infra.clone_obj({"x": x % 2}) for x in range(3))
    assert not (tmp_path / "log").exists()
    assert issubclass(DuplicateConfigError, ValueError)


@pytest.mark.parametrize(
    ("error", "bases"),
    [
        pytest.param(ReadOnlyError, (LookupError, RuntimeError), id="read-only"),
        pytest.param(InfraConfigError, (TypeError, RuntimeError), id="config"),
        pytest.param(DuplicateConfigError, (InfraConfigError, ValueError), id="duplicate"),
        pytest.param(CacheMismatchError, (RuntimeError,), id="mismatch"),
        pytest.param(JobError, (RuntimeError,), id="job"),
    ],
)
def test_errors_match_the_except_clauses_of_exca_users(
    error: type[Exception], bases: tuple[type[Exception], ...]
) -> None:
    assert all(issubclass(error, base) for base in bases)


def test_read_only_error_is_caught_as_runtime_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="read-only"):
        Counted(x=31, infra={"folder": tmp_path, "mode": "read-only"}).process()
