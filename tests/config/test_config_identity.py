"""Identity rules of configurations (`etude.config.identity`)."""

import enum
import json
import os
import re
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import golden_models
import pytest

from etude.config import (
    Config,
    Constant,
    CycleError,
    LightweightTask,
    Meta,
    MissingParameterError,
    Param,
    PathGenerator,
    SerializationError,
    Task,
    digest,
    field,
    identifier,
    tag,
)

HERE = Path(__file__).parent


class Color(enum.Enum):
    RED = 1
    BLUE = 2


class Shade(enum.Enum):
    RED = 1


class ReversedSet(set):  # type: ignore[type-arg]
    """A set that iterates in the opposite order of a plain set with the same items."""

    def __iter__(self) -> Iterator[Any]:
        return reversed(list(super().__iter__()))


class Model(Config):
    hidden: Param[int] = 64
    dropout: Param[float] = 0.1


class Holder(Config):
    value: Param[object] = None


class Learn(Task):
    model: Param[Model]
    lr: Param[float] = 0.1
    epochs: Param[int] = 100
    device: Meta[str] = "cpu"
    data: Param[Path] = Path("data")
    cache: Param[Path | None] = None
    parameters: Meta[Path] = field(default_factory=PathGenerator("parameters.pth"))
    checkpoint: Param[Path] = field(default_factory=PathGenerator("checkpoint.pth"))


class Warmup(LightweightTask):
    steps: Param[int] = 10


class Node(Config):
    child: Param["Node | None"] = None


class Required(Config):
    size: Param[int]


def _learn(**values: Any) -> Learn:
    return Learn.C(**{"model": Model.C(), **values})


def test_identifier_is_64_lowercase_hex_characters() -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", identifier(_learn()))


def test_identifier_is_the_hex_of_digest() -> None:
    learn = _learn()
    assert identifier(learn) == digest(learn).hex()


def test_identifier_rejects_a_value_that_is_not_a_config() -> None:
    with pytest.raises(TypeError, match="identifier\\(\\) takes a Config, got dict"):
        identifier({"hidden": 3})  # type: ignore[arg-type]


def test_identifier_does_not_depend_on_keyword_order() -> None:
    assert identifier(Model.C(hidden=3, dropout=0.5)) == identifier(Model.C(dropout=0.5, hidden=3))


def test_default_given_explicitly_equals_default_omitted() -> None:
    assert identifier(Model.C(hidden=64, dropout=0.1)) == identifier(Model.C())


def test_value_converted_to_the_declared_type_equals_its_default() -> None:
    """`dropout=0` for a float parameter is stored as 0.0, the same value as `dropout=0.0`."""
    assert identifier(Model.C(dropout=0)) == identifier(Model.C(dropout=0.0))


def test_value_different_from_default_changes_identifier() -> None:
    assert identifier(Model.C(hidden=65)) != identifier(Model.C())


def test_new_parameter_with_default_keeps_old_identifiers() -> None:
    class Before(Config):
        __etude_name__ = "tests.identity.Evolving"
        a: Param[int] = 1

    class After(Config):
        __etude_name__ = "tests.identity.Evolving"
        a: Param[int] = 1
        added: Param[str] = "new"

    assert identifier(After.C(a=5)) == identifier(Before.C(a=5))
    assert identifier(After.C(a=5, added="other")) != identifier(Before.C(a=5))


def test_class_name_is_part_of_identifier() -> None:
    class First(Config):
        a: Param[int] = 1

    class Second(Config):
        a: Param[int] = 1

    assert identifier(First.C()) != identifier(Second.C())


def test_declared_etude_name_keeps_identifier_when_the_class_is_renamed() -> None:
    class OldName(Config):
        __etude_name__ = "tests.identity.Stable"
        a: Param[int] = 1

    class NewName(Config):
        __etude_name__ = "tests.identity.Stable"
        a: Param[int] = 1

    assert identifier(OldName.C(a=2)) == identifier(NewName.C(a=2))


def test_meta_value_is_not_in_identifier() -> None:
    assert identifier(_learn(device="cuda:3")) == identifier(_learn())


def test_tag_given_in_C_is_not_in_identifier() -> None:
    assert identifier(Model.C(hidden=tag(64))) == identifier(Model.C())


def test_tag_method_is_not_in_identifier() -> None:
    assert identifier(Model.C().tag("hidden", 64)) == identifier(Model.C())


def test_path_value_is_not_in_identifier() -> None:
    assert identifier(_learn(data=Path("/other/data"))) == identifier(_learn())


def test_optional_path_value_is_not_in_identifier() -> None:
    assert identifier(_learn(cache=Path("/tmp/cache"))) == identifier(_learn())


def test_generated_paths_are_not_in_identifier() -> None:
    """The scheduler fills generated paths at submit; the identifier must not move then."""
    learn = _learn()
    before = identifier(learn)
    learn.parameters = Path("/ws/jobs/x/parameters.pth")
    learn.checkpoint = Path("/ws/jobs/x/checkpoint.pth")
    assert identifier(learn) == before


def test_constant_value_is_in_identifier() -> None:
    class Version1(Config):
        __etude_name__ = "tests.identity.Constant"
        version: Constant[str] = "1"

    class Version2(Config):
        __etude_name__ = "tests.identity.Constant"
        version: Constant[str] = "2"

    assert identifier(Version1.C()) != identifier(Version2.C())


def test_constant_is_in_identifier_even_when_the_class_had_none_before() -> None:
    """Unlike a Param, a new Constant always changes the identifier (it is never 'default')."""

    class Before(Config):
        __etude_name__ = "tests.identity.NewConstant"

    class After(Config):
        __etude_name__ = "tests.identity.NewConstant"
        version: Constant[str] = "1"

    assert identifier(After.C()) != identifier(Before.C())


DIFFERENT = [
    pytest.param(0.0, -0.0, id="negative-zero"),
    pytest.param(0.1, 0.1000000000000001, id="floats-one-ulp-apart"),
    pytest.param(1, 1.0, id="int-vs-float"),
    pytest.param(1, True, id="int-vs-bool"),
    pytest.param("1", 1, id="str-vs-int"),
    pytest.param("", None, id="empty-str-vs-none"),
    pytest.param(2**100, 2**100 + 1, id="big-ints"),
    pytest.param(2**70, -(2**70), id="big-int-sign"),
    pytest.param(2**64, 0, id="int-beyond-64-bits"),
    pytest.param(
        unicodedata.normalize("NFC", "héllo"),
        unicodedata.normalize("NFD", "héllo"),
        id="nfc-vs-nfd",
    ),
    pytest.param("日本", "日本語", id="unicode-prefix"),
    pytest.param([1, 2], [2, 1], id="list-order"),
    pytest.param([1, 2], (1, 2), id="list-vs-tuple"),
    pytest.param([], (), id="empty-list-vs-empty-tuple"),
    pytest.param([1, 2], {1, 2}, id="list-vs-set"),
    pytest.param(["ab", "c"], ["a", "bc"], id="string-boundaries"),
    pytest.param([[1], 2], [1, [2]], id="nesting"),
    pytest.param({"a": 1}, {"a": 2}, id="dict-value"),
    pytest.param({"a": 1}, {"b": 1}, id="dict-key"),
    pytest.param({"a": 1}, [("a", 1)], id="dict-vs-pairs"),
    pytest.param(Color.RED, Color.BLUE, id="enum-member"),
    pytest.param(Color.RED, Shade.RED, id="enum-class"),
    pytest.param(Color.RED, 1, id="enum-vs-its-value"),
    pytest.param(Model.C(), Model.C(hidden=1), id="nested-config"),
]


@pytest.mark.parametrize(("first", "second"), DIFFERENT)
def test_different_values_give_different_identifiers(first: Any, second: Any) -> None:
    assert identifier(Holder.C(value=first)) != identifier(Holder.C(value=second))


SAME = [
    pytest.param({"a": 1, "b": 2}, {"b": 2, "a": 1}, id="dict-insertion-order"),
    pytest.param({3, 1, 2}, ReversedSet({3, 1, 2}), id="set-iteration-order"),
    pytest.param(float("nan"), float("nan"), id="same-nan-bits"),
    pytest.param(Path("a"), Path("b"), id="path"),
    pytest.param([Path("a")], [Path("b")], id="path-in-list"),
    pytest.param(Model.C(), Model.C(hidden=64), id="equal-nested-configs"),
]


@pytest.mark.parametrize(("first", "second"), SAME)
def test_equal_values_give_equal_identifiers(first: Any, second: Any) -> None:
    assert identifier(Holder.C(value=first)) == identifier(Holder.C(value=second))


def test_enum_is_identified_by_qualified_name_and_member_name_not_value() -> None:
    class Before(enum.Enum):
        __etude_name__ = "tests.identity.Mode"
        FAST = 1

    class After(enum.Enum):
        __etude_name__ = "tests.identity.Mode"
        FAST = "fast"

    assert identifier(Holder.C(value=Before.FAST)) == identifier(Holder.C(value=After.FAST))


def test_nested_config_change_changes_every_ancestor() -> None:
    """Merkle: a change deep in the graph reaches the root."""
    model = Model.C()
    outer = Holder.C(value=[Holder.C(value=_learn(model=model))])
    before = identifier(outer)
    model.hidden = 1
    assert identifier(outer) != before


def test_init_tasks_are_in_identifier() -> None:
    learn = _learn()
    before = identifier(learn)
    learn._etude.init_tasks = (Warmup.C(),)
    assert identifier(learn) != before


def test_init_task_values_are_in_identifier() -> None:
    first, second = _learn(), _learn()
    first._etude.init_tasks = (Warmup.C(steps=1),)
    second._etude.init_tasks = (Warmup.C(steps=2),)
    assert identifier(first) != identifier(second)


def test_init_task_order_is_in_identifier() -> None:
    first, second = _learn(), _learn()
    first._etude.init_tasks = (Warmup.C(steps=1), Warmup.C(steps=2))
    second._etude.init_tasks = (Warmup.C(steps=2), Warmup.C(steps=1))
    assert identifier(first) != identifier(second)


def test_task_output_differs_from_the_same_value_unmarked() -> None:
    plain, output = _learn(), _learn()
    output._etude.dep_digest = digest(_learn())
    assert identifier(Holder.C(value=output)) != identifier(Holder.C(value=plain))


def test_task_outputs_of_different_tasks_differ() -> None:
    first, second = Model.C(), Model.C()
    first._etude.dep_digest = digest(_learn(lr=0.1))
    second._etude.dep_digest = digest(_learn(lr=0.2))
    assert identifier(first) != identifier(second)


def test_missing_required_value_raises_naming_it() -> None:
    with pytest.raises(MissingParameterError, match=r"Required\.size has no value: it is "
                       r"required\. Pass size=\.\.\. to Required\.C\(\)"):  # fmt: skip
        identifier(Required.C())


def test_cycle_raises_cycle_error() -> None:
    first, second = Node.C(), Node.C()
    first.child = second
    second.child = first
    with pytest.raises(CycleError, match="Node contains itself"):
        identifier(first)


def test_config_used_twice_is_not_a_cycle() -> None:
    """A graph may share a node (a DAG); only a path back to an ancestor is a cycle."""
    shared = Model.C()
    identifier(Holder.C(value=[shared, shared]))


_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
import golden_models
from etude.config import identifier
sample = golden_models.hash_sensitive_sample()
print(json.dumps({"id": identifier(sample), "order": list(sample.labels)}))
"""


def _identifier_in_child_process(hash_seed: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(HERE)],
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_identifier_is_identical_across_processes_and_hash_seeds() -> None:
    first = _identifier_in_child_process("1")
    second = _identifier_in_child_process("2")
    # The seeds give the set of labels different iteration orders: the test is meaningful.
    assert first["order"] != second["order"]
    expected = identifier(golden_models.hash_sensitive_sample())
    assert first["id"] == second["id"] == expected


# Bugs found while writing these tests.


def test_int_of_any_size_has_an_identifier() -> None:
    huge = 10**5000
    assert identifier(Holder.C(value=huge)) != identifier(Holder.C(value=huge + 1))


def test_dict_with_non_str_keys_in_untyped_param_raises_serialization_error() -> None:
    with pytest.raises(SerializationError, match="key"):
        identifier(Holder.C(value={1: "a"}))
