"""Validation of values when they are set (`etude.config.types` through `Config.__setattr__`).

Every rejection names the full parameter path and says how to fix the value.
"""

import enum
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
import pytest

from etude.config import (
    Config,
    ConfigError,
    Constant,
    Meta,
    Param,
    SealedError,
    UnknownParameterError,
    ValidationError,
    field,
)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Shade(enum.Enum):
    RED = "red"


class Model(Config):
    hidden: Param[int] = 64


class Other(Config):
    pass


class Values(Config):
    hidden: Param[int] = 64
    lr: Param[float] = 0.1
    flag: Param[bool] = False
    data: Param[Path] = Path(".")
    color: Param[Color] = Color.RED
    xs: Param[list[int]] = field(default_factory=list)
    pair: Param[tuple[int, str]] = (0, "")
    seq: Param[tuple[int, ...]] = ()
    names: Param[set[str]] = field(default_factory=set)
    table: Param[dict[str, int]] = field(default_factory=dict)
    maybe: Param[int | None] = None
    mode: Param[Literal["train", "eval"]] = "train"
    either: Param[int | str] = 0
    model: Param[Model] = field(default_factory=Model)
    models: Param[list[Model]] = field(default_factory=list)
    version: Constant[str] = "1"
    device: Meta[str] = "cpu"


class Required(Config):
    size: Param[int]


class Choice(Config):
    level: Param[Literal[1, 2]] = 1


class BareTuple(Config):
    items: Param[tuple] = ()  # type: ignore[type-arg]


class BareDict(Config):
    mapping: Param[dict] = field(default_factory=dict)  # type: ignore[type-arg]


REJECTED = [
    pytest.param(
        {"hidden": "64"},
        ["Values.hidden: expected int, got '64' (str).", "Pass hidden=64."],
        id="int-given-numeric-str",
    ),
    pytest.param(
        {"hidden": 1.5},
        ["Values.hidden: expected int, got 1.5 (float).", "Pass a value of type int for hidden."],
        id="int-given-float",
    ),
    pytest.param(
        {"hidden": True},
        ["Values.hidden: expected int, got True (bool)."],
        id="int-given-bool",
    ),
    pytest.param(
        {"lr": "0.5"},
        ["Values.lr: expected float, got '0.5' (str).", "Pass lr=0.5."],
        id="float-given-numeric-str",
    ),
    pytest.param(
        {"lr": False},
        ["Values.lr: expected float, got False (bool)."],
        id="float-given-bool",
    ),
    pytest.param(
        {"flag": 1},
        ["Values.flag: expected bool, got 1 (int).", "Pass flag=True or False."],
        id="bool-given-int",
    ),
    pytest.param(
        {"flag": "true"},
        ["Values.flag: expected bool, got 'true' (str).", "Pass flag=True or False."],
        id="bool-given-str",
    ),
    pytest.param(
        {"data": 3},
        ["Values.data: expected Path, got 3 (int).", "Pass a value of type Path for data."],
        id="path-given-int",
    ),
    pytest.param(
        {"color": "red"},
        ["Values.color: expected Color, got 'red' (str).", "Use one of Color.RED, Color.BLUE."],
        id="enum-given-its-value",
    ),
    pytest.param(
        {"color": Shade.RED},
        ["Values.color: expected Color", "Use one of Color.RED, Color.BLUE."],
        id="enum-given-another-enum",
    ),
    pytest.param(
        {"xs": [1, "x"]},
        ["Values.xs[1]: expected int, got 'x' (str).", "Pass a value of type int for xs[1]."],
        id="list-element",
    ),
    pytest.param(
        {"xs": "12"},
        ["Values.xs: expected list[int], got '12' (str)."],
        id="list-given-str",
    ),
    pytest.param(
        {"pair": (1,)},
        ["Values.pair: expected tuple[int, str]", "Pass a tuple of 2 values."],
        id="fixed-tuple-length",
    ),
    pytest.param(
        {"pair": (1, 2)},
        ["Values.pair[1]: expected str, got 2 (int)."],
        id="fixed-tuple-element",
    ),
    pytest.param(
        {"seq": (1, "a")},
        ["Values.seq[1]: expected int, got 'a' (str)."],
        id="variadic-tuple-element",
    ),
    pytest.param(
        {"names": {1}},
        ["Values.names{}: expected str, got 1 (int)."],
        id="set-element",
    ),
    pytest.param(
        {"table": {1: 2}},
        ["Values.table[1]: expected str, got 1 (int).", "Dictionary keys must be strings."],
        id="dict-non-str-key",
    ),
    pytest.param(
        {"table": {"a": "b"}},
        ["Values.table['a']: expected int, got 'b' (str)."],
        id="dict-value",
    ),
    pytest.param(
        {"table": [("a", 1)]},
        ["Values.table: expected dict[str, int], got [('a', 1)] (list)."],
        id="dict-given-list",
    ),
    pytest.param(
        {"maybe": "x"},
        ["Values.maybe: expected int, got 'x' (str)."],
        id="optional-wrong-type",
    ),
    pytest.param(
        {"mode": "test"},
        [
            "Values.mode: expected Literal['train', 'eval'], got 'test' (str).",
            "Use one of 'train', 'eval'.",
        ],
        id="literal-not-a-choice",
    ),
    pytest.param(
        {"either": 1.5},
        ["Values.either: expected int | str, got 1.5 (float)."],
        id="union-no-option-fits",
    ),
    pytest.param(
        {"either": None},
        ["Values.either: expected int | str, got None (NoneType)."],
        id="union-without-none-given-none",
    ),
    pytest.param(
        {"model": Other.C()},
        [
            "Values.model: expected Model, got Other.C() (Other).",
            "Pass a Model built with Model.C(...).",
        ],
        id="nested-config-other-class",
    ),
    pytest.param(
        {"model": {"hidden": 3}},
        [
            "Values.model: expected Model",
            "Build it with Model.C(**{...}) instead of passing a dict.",
        ],
        id="nested-config-given-dict",
    ),
    pytest.param(
        {"models": [Model.C(), 3]},
        ["Values.models[1]: expected Model, got 3 (int)."],
        id="list-of-configs-element",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("values", "fragments"), REJECTED)
def test_invalid_value_is_rejected_with_path_and_fix(
    values: dict[str, Any], fragments: list[str]
) -> None:
    with pytest.raises(ValidationError) as caught:
        Values.C(**values)
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize(("values", "fragments"), REJECTED)
def test_invalid_assignment_keeps_the_previous_value(
    values: dict[str, Any], fragments: list[str]
) -> None:
    cfg = Values.C()
    ((name, value),) = values.items()
    before = getattr(cfg, name)
    with pytest.raises(ValidationError):
        setattr(cfg, name, value)
    assert getattr(cfg, name) == before


CONCRETE_PATH = type(Path())  # PosixPath or WindowsPath

ACCEPTED = [
    pytest.param("lr", 3, 3.0, float, id="float-accepts-int"),
    pytest.param("lr", np.float32(0.5), 0.5, float, id="float-accepts-numpy-float"),
    pytest.param("hidden", np.int64(7), 7, int, id="int-accepts-numpy-int"),
    pytest.param("data", "a/b", Path("a/b"), CONCRETE_PATH, id="path-accepts-str"),
    pytest.param("data", PurePosixPath("a"), Path("a"), CONCRETE_PATH, id="path-accepts-purepath"),
    pytest.param("color", Color.BLUE, Color.BLUE, Color, id="enum-member"),
    pytest.param("xs", (1, 2), [1, 2], list, id="list-accepts-tuple"),
    pytest.param("seq", [1, 2], (1, 2), tuple, id="variadic-tuple-accepts-list"),
    pytest.param("pair", [1, "a"], (1, "a"), tuple, id="fixed-tuple-accepts-list"),
    pytest.param("names", ["a", "a"], {"a"}, set, id="set-accepts-list"),
    pytest.param("maybe", None, None, type(None), id="optional-accepts-none"),
    pytest.param("maybe", 4, 4, int, id="optional-accepts-its-type"),
    pytest.param("mode", "eval", "eval", str, id="literal-choice"),
    pytest.param("either", "a", "a", str, id="union-second-option"),
]


@pytest.mark.parametrize(("name", "given", "stored", "stored_type"), ACCEPTED)
def test_valid_value_is_stored_converted(
    name: str, given: Any, stored: Any, stored_type: type
) -> None:
    value = getattr(Values.C(**{name: given}), name)
    assert value == stored
    assert type(value) is stored_type


def test_validation_error_is_a_type_error() -> None:
    assert issubclass(ValidationError, ConfigError)
    assert issubclass(ValidationError, TypeError)


def test_unknown_parameter_suggests_the_closest_name() -> None:
    with pytest.raises(UnknownParameterError, match=r"Values\.hiden: no such parameter\. "
                       r"Did you mean 'hidden'\?"):  # fmt: skip
        Values.C(hiden=3)


def test_unknown_parameter_assignment_suggests_the_closest_name() -> None:
    cfg = Values.C()
    with pytest.raises(UnknownParameterError, match="Did you mean 'device'"):
        cfg.devise = "cuda"


def test_unknown_parameter_without_close_match_lists_valid_names() -> None:
    with pytest.raises(UnknownParameterError, match=r"Valid parameters: hidden\."):
        Model.C(zzz=1)


def test_unknown_parameter_error_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        Model.C(zzz=1)


def test_private_attribute_may_be_set_on_a_config() -> None:
    cfg = Model.C()
    cfg._cache = 3
    assert cfg._cache == 3


def test_constant_cannot_be_set_in_C() -> None:
    with pytest.raises(ConfigError, match=r"Values\.version is a Constant \('1'\); it cannot be "
                       r"set\. Change it in the class definition"):  # fmt: skip
        Values.C(version="2")


def test_constant_cannot_be_assigned() -> None:
    cfg = Values.C()
    with pytest.raises(ConfigError, match=r"Values\.version is a Constant"):
        cfg.version = "2"
    assert cfg.version == "1"


def test_sealed_config_rejects_assignment() -> None:
    cfg = Values.C()
    cfg._etude.sealed = True
    with pytest.raises(SealedError, match=r"Values\.hidden: the configuration was submitted and "
                       r"is sealed\. Build a new one"):  # fmt: skip
        cfg.hidden = 3
    assert cfg.hidden == 64


def test_sealed_config_rejects_tag() -> None:
    cfg = Values.C()
    cfg._etude.sealed = True
    with pytest.raises(SealedError):
        cfg.tag("hidden", 3)


def test_sealed_config_still_rejects_unknown_names() -> None:
    cfg = Values.C()
    cfg._etude.sealed = True
    with pytest.raises(UnknownParameterError):
        cfg.hiden = 3


SUPPORTED_TYPES = "use bool, int, float, str, Path, an Enum, a Config"

UNSUPPORTED = [
    pytest.param(bytes, ["Blob.payload: unsupported type bytes;", SUPPORTED_TYPES], id="bytes"),
    pytest.param(
        complex, ["Blob.payload: unsupported type complex;", SUPPORTED_TYPES], id="complex"
    ),
    pytest.param(
        list[bytes], ["Blob.payload: unsupported type bytes;", SUPPORTED_TYPES], id="list"
    ),
    pytest.param(
        dict[int, str], ["Blob.payload: dictionary keys must be str, not int."], id="dict"
    ),
]


@pytest.mark.parametrize(("declared", "fragments"), UNSUPPORTED)
def test_unsupported_declared_type_raises_at_first_use_naming_the_field(
    declared: Any, fragments: list[str]
) -> None:
    class Blob(Config):  # defining the class is fine: fields are read on first use
        __annotations__ = {"payload": Param[declared]}  # the declared type comes from the table

    with pytest.raises(ConfigError) as caught:
        Blob.C()
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_reading_a_missing_required_value_names_it() -> None:
    with pytest.raises(AttributeError, match=r"Required\.size has no value: it is required\. "
                       r"Pass size=\.\.\. to \.C\(\)"):  # fmt: skip
        _ = Required.C().size


def test_reading_an_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"Required\.other: no such parameter or attribute"):
        _ = Required.C().other  # type: ignore[attr-defined]


# Bugs found while writing these tests: each test states the behaviour etude promises.


def test_bare_tuple_annotation_accepts_any_tuple() -> None:
    assert BareTuple.C(items=(1, "a", 2.0)).items == (1, "a", 2.0)


def test_bare_dict_annotation_accepts_a_str_keyed_dict() -> None:
    assert BareDict.C(mapping={"a": 1}).mapping == {"a": 1}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("+-5", id="two-signs"),
        pytest.param("²", id="superscript-digit"),
    ],
)
def test_int_given_digit_like_str_raises_validation_error(text: str) -> None:
    with pytest.raises(ValidationError, match=r"Values\.hidden: expected int"):
        Values.C(hidden=text)


def test_float_given_int_too_large_raises_validation_error() -> None:
    with pytest.raises(ValidationError, match=r"Values\.lr: expected float"):
        Values.C(lr=10**400)


def test_literal_of_ints_rejects_bool() -> None:
    with pytest.raises(ValidationError, match=r"Choice\.level"):
        Choice.C(level=True)


def test_rejected_tag_is_not_recorded() -> None:
    cfg = Model.C()
    with pytest.raises(ValidationError):
        cfg.tag("hidden", "sixty-four")
    assert not cfg._etude.tags
