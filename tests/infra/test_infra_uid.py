"""Uids and configs: readable names, golden values, exclusions, versions, unions."""

from __future__ import annotations

import typing as tp
from enum import Enum
from pathlib import Path

import pydantic
import pytest

from etude.infra import InfraConfigError, TaskInfra


class UidTask(pydantic.BaseModel):
    seed: int = 12
    shape: tuple[int, int] = (3, 4)
    coeff: float = 12.0
    device: str = "cpu"
    infra: TaskInfra = TaskInfra(version="1")

    @infra.apply
    def process(self) -> float:
        return self.seed * self.coeff


class Color(Enum):
    RED = "red"


class Sub(pydantic.BaseModel):
    a: int = 1
    b: list[float] = [0.5]


class Rich(pydantic.BaseModel):
    sub: Sub = Sub()
    color: Color = Color.RED
    tags: dict[str, int] = {}
    names: set[str] = set()
    path: Path | None = None
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def process(self) -> int:
        return 1


def test_seed_config_examples() -> None:
    """The seed's config(uid=True) and config(uid=True, exclude_defaults=True) values."""
    task = UidTask(device="cuda", coeff=3)
    assert task.infra.config(uid=True) == {
        "seed": 12,
        "shape": (3, 4),
        "coeff": 3.0,
        "device": "cuda",
        "infra": {"version": "1"},
    }
    assert task.infra.config(uid=True, exclude_defaults=True) == {"coeff": 3.0, "device": "cuda"}


@pytest.mark.parametrize(
    ("kwargs", "uid"),
    [
        pytest.param({}, "default", id="defaults"),
        pytest.param({"device": "cuda", "coeff": 3}, "coeff=3,device=cuda-b364b8da", id="seed"),
        pytest.param({"seed": 1}, "seed=1-fbe47f6d", id="int"),
        pytest.param({"coeff": 0.1}, "coeff=0.1-832c94cb", id="float"),
        pytest.param({"shape": (5, 6)}, "shape=[5,6]-bc77e397", id="tuple"),
        pytest.param({"device": "a/b c"}, "device=a_b_c-2a9e53b9", id="unsafe-chars"),
        pytest.param({"infra": {"version": "2"}}, "infra.version=2-c00485f9", id="version"),
    ],
)
def test_golden_uids(kwargs: dict[str, tp.Any], uid: str) -> None:
    """Uids never change silently: these values are pinned."""
    assert UidTask(**kwargs).infra.uid() == uid


def test_golden_uid_of_nested_and_containers() -> None:
    rich = Rich(sub={"b": [1.5, 2]}, tags={"x": 1}, names={"z", "a"}, path=Path("/tmp/x"))
    assert rich.infra.uid() == "sub.b=[1.5,2],tags.x=1,names=[a,z],path=_tmp_x-40b51a3c"


def test_uid_is_independent_of_infra_fields_except_version(tmp_path: Path) -> None:
    plain = UidTask(seed=3)
    other = UidTask(seed=3, infra={"folder": tmp_path, "cluster": "local", "cpus_per_task": 4})
    assert plain.infra.uid() == other.infra.uid()
    bumped = UidTask(seed=3, infra={"folder": tmp_path, "version": "2"})
    assert bumped.infra.uid() != plain.infra.uid()


def test_version_changes_uid_and_folder(tmp_path: Path) -> None:
    one = UidTask(infra={"folder": tmp_path})
    two = UidTask(infra={"folder": tmp_path, "version": "2"})
    assert one.infra.uid_folder() == tmp_path / "test_infra_uid.UidTask.process,1" / "default"
    folder = two.infra.uid_folder()
    assert folder is not None and folder.parent.name == "test_infra_uid.UidTask.process,2"
    assert folder.name == "infra.version=2-c00485f9"


def test_default_version_is_inherited_from_class_infra(tmp_path: Path) -> None:
    """Seed: the class's default infra seeds each instance's infra."""
    task = UidTask(infra={"folder": tmp_path, "mode": "force"})
    assert task.infra.version == "1"
    assert task.infra.mode == "force"
    assert TaskInfra(folder=tmp_path).version == "0"


def test_uid_adding_a_defaulted_field_keeps_old_uids() -> None:
    class Before(pydantic.BaseModel):
        x: int = 1
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def process(self) -> int:
            return self.x

    class After(pydantic.BaseModel):
        x: int = 1
        new: str = "n"
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def process(self) -> int:
            return self.x

    assert Before(x=2).infra.uid() == After(x=2).infra.uid()


class ClassVarExcluded(UidTask):
    _exclude_from_cls_uid = ("device",)


class MethodExcluded(UidTask):
    def _exclude_from_cls_uid(self) -> list[str]:
        return ["device"]


@pytest.mark.parametrize("cls", [ClassVarExcluded, MethodExcluded], ids=["classvar", "method"])
def test_class_uid_exclusion(cls: type[UidTask]) -> None:
    task = cls(device="cuda", coeff=3)
    assert task.infra.config(uid=True, exclude_defaults=True) == {"coeff": 3.0}
    assert task.infra.uid() == cls(device="cpu", coeff=3).infra.uid()


class CacheList(pydantic.BaseModel):
    seed: int = 12
    coeff: float = 12.0
    device: str = "cpu"
    infra: TaskInfra = TaskInfra(version="1")
    _exclude_from_cache_uid = ("device",)

    @infra.apply(exclude_from_cache_uid=("coeff",))
    def process(self) -> int:
        return self.seed


class CacheMethod(pydantic.BaseModel):
    seed: int = 12
    coeff: float = 12.0
    device: str = "cpu"
    infra: TaskInfra = TaskInfra(version="1")

    def _exclude_from_cache_uid(self) -> list[str]:
        return ["device"]

    def _cache_exclusion(self) -> list[str]:
        return ["coeff"]

    @infra.apply(exclude_from_cache_uid="method:_cache_exclusion")
    def process(self) -> int:
        return self.seed


@pytest.mark.parametrize("cls", [CacheList, CacheMethod], ids=["lists", "methods"])
def test_cache_uid_exclusions_of_the_seed(cls: type[pydantic.BaseModel]) -> None:
    task = cls(seed=3, coeff=2, device="cuda")
    assert task.infra.uid() == cls(seed=3).infra.uid() == "seed=3-4d687b64"  # type: ignore[attr-defined]
    assert "coeff" in task.infra.config(uid=True)  # type: ignore[attr-defined]


class NamedMethodBase(pydantic.BaseModel):
    a: int = 0
    b: int = 0
    infra: TaskInfra = TaskInfra()

    def _skip(self) -> list[str]:
        return ["a"]

    def _skip_direct(self) -> list[str]:
        return ["a"]

    @infra.apply(exclude_from_cache_uid="method:_skip")
    def process(self) -> int:
        return self.a


class NamedMethodChild(NamedMethodBase):
    def _skip(self) -> list[str]:
        return ["b"]


def test_method_name_exclusion_follows_subclass_override() -> None:
    child = NamedMethodChild(a=1, b=2)
    assert child.infra.uid() == NamedMethodChild(a=1, b=5).infra.uid()
    assert child.infra.uid() != NamedMethodChild(a=2, b=2).infra.uid()
    base = NamedMethodBase(a=1, b=2)
    assert base.infra.uid() == NamedMethodBase(a=7, b=2).infra.uid()


def test_callable_exclusion_does_not_follow_override() -> None:
    def skip(self: tp.Any) -> list[str]:
        return ["a"]

    class Base(pydantic.BaseModel):
        a: int = 0
        b: int = 0
        infra: TaskInfra = TaskInfra()

        @infra.apply(exclude_from_cache_uid=skip)
        def process(self) -> int:
            return self.b

    assert Base(a=1, b=2).infra.uid() == Base(a=3, b=2).infra.uid()


class Dog(pydantic.BaseModel):
    name: tp.Literal["dog"] = "dog"
    dog_param: int = 12


class Cat(pydantic.BaseModel):
    name: tp.Literal["cat"] = "cat"
    cat_param: str = "mew"


class Household(pydantic.BaseModel):
    pet: Dog | Cat = pydantic.Field(..., discriminator="name")
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def process(self) -> str:
        return self.pet.name


def test_discriminator_is_kept_in_uid() -> None:
    dog = Household(pet={"name": "dog"})
    cat = Household(pet={"name": "cat"})
    assert dog.infra.config(uid=True, exclude_defaults=True) == {"pet": {"name": "dog"}}
    assert dog.infra.uid() == "pet.name=dog-6e74b438"
    assert cat.infra.uid() != dog.infra.uid()


def test_union_without_discriminator_is_refused() -> None:
    class Loose(pydantic.BaseModel):
        pet: Dog | Cat = Dog()
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def process(self) -> int:
            return 1

    with pytest.raises(InfraConfigError, match=r"Loose.pet: the union Dog \| Cat has no discrim"):
        Loose().infra.uid()


def test_unsupported_value_names_the_field() -> None:
    class Holder(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
        thing: tp.Any = None
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def process(self) -> int:
            return 1

    with pytest.raises(InfraConfigError, match=r"Holder.thing: a value of type object cannot"):
        Holder(thing=object()).infra.uid()


def test_numpy_scalars_and_enums_are_supported() -> None:
    import numpy as np

    class Numbers(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
        value: tp.Any = None
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def process(self) -> int:
            return 1

    assert Numbers(value=np.int64(3)).infra.uid() == Numbers(value=3).infra.uid()
    assert Numbers(value=Color.RED).infra.uid() == Numbers(value="red").infra.uid()
