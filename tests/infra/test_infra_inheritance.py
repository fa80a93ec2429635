"""Infra methods and subclasses: overrides calling super(), infras redefined in subclasses."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pydantic
import pytest

from etude.infra import InfraConfigError, TaskInfra


class Base(pydantic.BaseModel):
    param: int = 12
    infra: TaskInfra = TaskInfra(version="12")

    @infra.apply
    def func(self) -> int:
        return 2 * self.param


class SubInfraFunc(Base):
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def func(self) -> int:
        return 3 * super().func()


class SubInfra2Func(Base):
    infra2: TaskInfra = TaskInfra()

    @infra2.apply
    def func(self) -> int:
        return 3 * super().func()


def test_override_calling_super_returns_under_a_timeout(tmp_path: Path) -> None:
    """An infra method calling the decorated method of its base class returned never (lock)."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(
        """
        import pydantic
        from etude.infra import TaskInfra

        class Base(pydantic.BaseModel):
            param: int = 12
            infra: TaskInfra = TaskInfra(version="12")

            @infra.apply
            def func(self):
                return 2 * self.param

        class Sub(Base):
            infra: TaskInfra = TaskInfra()

            @infra.apply
            def func(self):
                return 3 * super().func()

        print(Sub(param=13, infra={"folder": "c"}).func())
        """
    ))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "78"


def test_super_call_is_part_of_the_override_and_cached_once(tmp_path: Path) -> None:
    obj = SubInfraFunc(param=13, infra={"folder": tmp_path})
    assert obj.func() == 78
    assert [p.name for p in tmp_path.iterdir()] == ["test_infra_inheritance.SubInfraFunc.func,0"]
    assert SubInfraFunc(param=13, infra={"folder": tmp_path, "mode": "read-only"}).func() == 78


def test_super_call_through_another_infra_uses_the_base_cache(tmp_path: Path) -> None:
    """The base method keeps its own infra field: its result is cached in its own folder."""
    obj = SubInfra2Func(param=13, infra={"folder": tmp_path}, infra2={"folder": tmp_path})
    assert obj.func() == 78
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "test_infra_inheritance.SubInfra2Func.func,0",
        "test_infra_inheritance.SubInfra2Func.func,12",
    ]


def test_subclass_redeclaring_the_infra_without_applying_it_is_refused() -> None:
    """Raised when the class is created (a RuntimeError, as exca users catch)."""
    with pytest.raises(RuntimeError, match=r"SubInfra redeclares the infra field 'infra' of Base"):

        class SubInfra(Base):
            infra: TaskInfra = TaskInfra()


def test_subclass_keeping_or_reapplying_the_infra_is_accepted(tmp_path: Path) -> None:
    class SubBase(Base):
        other: int = 0

    class SubVersion(Base):
        infra: TaskInfra = TaskInfra(version="13")

        @infra.apply
        def func(self) -> int:
            return super().func()

    assert SubBase(param=2, infra={"folder": tmp_path}).func() == 4
    assert SubVersion(param=2, infra={"folder": tmp_path}).func() == 4


def test_method_decorated_by_two_infras_is_refused() -> None:
    with pytest.raises(RuntimeError, match="already decorated by another infra's apply"):

        class Twice(pydantic.BaseModel):
            infra: TaskInfra = TaskInfra()
            infra2: TaskInfra = TaskInfra()

            @infra2.apply
            @infra.apply
            def func(self) -> int:
                return 1


def test_infra_on_a_class_that_is_not_a_pydantic_model_is_refused() -> None:
    """Even without a decorated method, as soon as the class is created (Python 3.11 wraps
    errors of `__set_name__` in a RuntimeError; later versions raise them as they are)."""
    with pytest.raises(RuntimeError) as info:

        class NotAModel:
            infra = TaskInfra(version="12")

    error: BaseException | None = info.value
    while error is not None and not isinstance(error, InfraConfigError):
        error = error.__cause__
    assert error is not None and "NotAModel is not a pydantic model" in str(error)
