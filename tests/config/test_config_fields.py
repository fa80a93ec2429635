"""Declaration forms of configuration parameters (`etude.config.fields`, `schema`, `base`)."""

from pathlib import Path
from typing import Annotated, ClassVar

import pytest

from etude.config import (
    Config,
    ConfigError,
    Constant,
    Meta,
    Param,
    PathGenerator,
    PathGeneratorError,
    SerializationError,
    Task,
    field,
    identifier,
    pathgenerator,
    schema_of,
    tag,
    type_name,
)
from etude.config.fields import Kind


class Model(Config):
    hidden: Param[int] = field(default=64)
    dropout: Param[float] = field(default=0.1)


class Forms(Task):
    required: Param[int]
    bare: Param[int] = 3
    with_field: Param[str] = field(default="x")
    items: Param[list[int]] = field(default_factory=list)
    bare_list: Param[list[int]] = [1, 2]  # copied for each config
    device: Meta[str] = "cpu"
    version: Constant[str] = "2"
    old_style: Annotated[Path, pathgenerator("old.txt")]
    generated: Meta[Path] = field(default_factory=PathGenerator("new/params.pth"))
    grouped: Param[int] = field(default=1, groups=("training",))
    note: str = "a plain annotation"
    registry: ClassVar[dict[str, int]] = {}


class Named(Config):
    __etude_name__ = "project.Named"
    x: Param[int] = 0


class NamedChild(Named):
    pass


def test_required_param_has_no_default() -> None:
    assert schema_of(Forms).fields["required"].required


def test_required_param_takes_the_given_value() -> None:
    assert Forms.C(required=5).required == 5


def test_bare_class_default_is_the_default() -> None:
    assert Forms.C().bare == 3


def test_field_default_is_the_default() -> None:
    assert Forms.C().with_field == "x"


def test_default_factory_gives_each_config_its_own_value() -> None:
    first, second = Forms.C(), Forms.C()
    first.items.append(1)
    assert second.items == []


def test_bare_mutable_default_is_copied_for_each_config() -> None:
    first, second = Forms.C(), Forms.C()
    first.bare_list.append(3)
    assert second.bare_list == [1, 2]


def test_meta_field_is_declared_meta_and_keeps_its_value() -> None:
    assert schema_of(Forms).fields["device"].kind is Kind.META
    assert Forms.C(device="cuda").device == "cuda"


def test_constant_field_holds_its_class_value() -> None:
    assert schema_of(Forms).fields["version"].kind is Kind.CONSTANT
    assert Forms.C().version == "2"


def test_old_style_pathgenerator_annotation_declares_a_generated_path() -> None:
    f = schema_of(Forms).fields["old_style"]
    assert f.generator is not None
    assert f.generator.generate(Path("/job")) == Path("/job/old.txt")
    assert not f.required


def test_pathgenerator_default_factory_declares_a_generated_path() -> None:
    f = schema_of(Forms).fields["generated"]
    assert f.generator is not None
    assert f.generator.generate(Path("/job")) == Path("/job/new/params.pth")
    assert not f.required


def test_reading_a_generated_path_before_submit_raises() -> None:
    with pytest.raises(PathGeneratorError, match=r"Forms\.generated is a generated path"):
        _ = Forms.C().generated


def test_pathgenerator_rejects_an_absolute_path() -> None:
    with pytest.raises(ValueError, match="relative to the job directory"):
        PathGenerator("/abs/file")


def test_field_groups_are_recorded() -> None:
    assert schema_of(Forms).fields["grouped"].groups == ("training",)


def test_plain_annotation_is_not_a_parameter() -> None:
    assert "note" not in schema_of(Forms).fields


def test_classvar_is_not_a_parameter() -> None:
    assert "registry" not in schema_of(Forms).fields


def test_fields_keep_declaration_order() -> None:
    assert list(schema_of(Model).fields) == ["hidden", "dropout"]


def test_field_rejects_both_default_and_factory() -> None:
    with pytest.raises(ValueError, match="not both"):
        field(default=1, default_factory=list)


def test_C_and_constructor_build_the_same_config() -> None:
    """`Model(...)` is the older spelling of `Model.C(...)` (seed 001)."""
    built_c, built_call = Model.C(hidden=128), Model(hidden=128)
    assert type(built_c) is type(built_call)
    assert (built_c.hidden, built_c.dropout) == (built_call.hidden, built_call.dropout)
    assert identifier(built_c) == identifier(built_call)


def test_default_is_converted_to_the_declared_type() -> None:
    class Rate(Config):
        lr: Param[float] = 1

    value = Rate.C().lr
    assert type(value) is float and value == 1.0


def test_invalid_default_raises_at_first_use() -> None:
    class Broken(Config):
        hidden: Param[int] = "64"  # type: ignore[assignment]

    with pytest.raises(ConfigError, match=r"Broken\.hidden: expected int"):
        Broken.C()


def test_constant_without_value_is_rejected_at_first_use() -> None:
    class NoValue(Config):
        version: Constant[str]

    with pytest.raises(ConfigError, match=r"NoValue\.version: a Constant needs a value"):
        NoValue.C()


def test_subclass_adds_a_parameter() -> None:
    class Base(Config):
        a: Param[int] = 1

    class Child(Base):
        b: Param[str] = "b"

    child = Child.C(a=2)
    assert (child.a, child.b) == (2, "b")
    assert list(schema_of(Child).fields) == ["a", "b"]
    assert "b" not in schema_of(Base).fields


@pytest.mark.parametrize("base_used_first", [True, False], ids=["base-first", "child-first"])
def test_subclass_overrides_a_field_default(base_used_first: bool) -> None:
    """The override holds whichever class is used first (schemas are built lazily)."""

    class Base(Config):
        a: Param[int] = field(default=1)
        b: Param[int] = 10

    class Child(Base):
        a = field(default=2)
        b = 20

    if base_used_first:
        Base.C()
    assert (Child.C().a, Child.C().b) == (2, 20)
    assert (Base.C().a, Base.C().b) == (1, 10)


def test_subclass_override_of_a_default_is_validated() -> None:
    class Base(Config):
        a: Param[int] = 1

    class Child(Base):
        a = "two"

    with pytest.raises(ConfigError, match=r"Child\.a: expected int"):
        Child.C()


def test_tag_inside_C_sets_the_value_and_records_the_tag() -> None:
    model = Model.C(hidden=tag(128))
    assert model.hidden == 128
    assert model._etude.tags == {"hidden": 128}


def test_tag_method_sets_the_value_records_the_tag_and_returns_the_config() -> None:
    model = Model.C()
    assert model.tag("dropout", 0.5) is model
    assert model.dropout == 0.5
    assert model._etude.tags == {"dropout": 0.5}


def test_declared_etude_name_names_the_type() -> None:
    assert type_name(Named) == "project.Named"


def test_type_name_defaults_to_module_and_qualified_name() -> None:
    assert type_name(Model) == f"{Model.__module__}.Model"


def test_declared_etude_name_is_not_inherited() -> None:
    assert type_name(NamedChild) == f"{NamedChild.__module__}.NamedChild"


@pytest.mark.parametrize("name", [pytest.param("", id="empty"), pytest.param(3, id="not-str")])
def test_declared_etude_name_must_be_a_non_empty_string(name: object) -> None:
    class BadName(Config):
        __etude_name__ = name

    with pytest.raises(SerializationError, match=r"BadName\.__etude_name__ must be"):
        type_name(BadName)
