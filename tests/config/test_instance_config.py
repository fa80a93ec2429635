"""InstanceConfig: configurations that count by object as well as by value."""

from __future__ import annotations

import collections
import enum
from pathlib import PurePosixPath
from typing import Any, NamedTuple

import pytest

from etude import Config, InstanceConfig, Param, Task, identifier
from etude.config import ConfigError, LightweightTask, SerializationError, partial_identifier
from etude.config.serialize import dump, load


class Weights(InstanceConfig):
    """Randomly initialised: two objects are two draws, even with equal values."""

    size: Param[int] = 4


class PlainWeights(Config):
    """The same values, counted by value only (it declares the same type name)."""

    __etude_name__ = f"{Weights.__module__}.Weights"
    size: Param[int] = 4


class Pair(Config):
    left: Param[Config]
    right: Param[Config]


class Triple(Config):
    a: Param[Weights]
    b: Param[Weights]
    c: Param[Weights]


class Many(Config):
    items: Param[list[Config]] = []
    named: Param[dict[str, Config]] = {}


class Bag(Config):
    items: Param[frozenset[Config]]


class Warm(LightweightTask):
    weights: Param[Weights]


def ident(cfg: Config) -> str:
    return identifier(cfg)


def test_two_equal_instances_in_one_graph_differ_from_one_instance_used_twice():
    first, second = Weights.C(), Weights.C()
    assert ident(Pair.C(left=first, right=second)) != ident(Pair.C(left=first, right=first))


def test_the_identifier_records_which_uses_are_one_object_not_which_objects():
    w1, w2, w3, w4 = (Weights.C() for _ in range(4))
    separate = ident(Pair.C(left=w1, right=w2))
    assert ident(Pair.C(left=w3, right=w4)) == separate  # new objects, e.g. a second run
    assert ident(Pair.C(left=w2, right=w1)) == separate  # equal values: no order among them
    assert ident(Pair.C(left=w2, right=w2)) == ident(Pair.C(left=w1, right=w1))


def test_each_way_of_sharing_three_equal_instances_is_its_own_identifier():
    x, y, z = Weights.C(), Weights.C(), Weights.C()
    patterns = [(x, x, x), (x, x, y), (x, y, x), (y, x, x), (x, y, z)]
    assert len({ident(Triple.C(a=a, b=b, c=c)) for a, b, c in patterns}) == 5


def test_an_instance_used_once_counts_as_a_plain_configuration_would():
    assert ident(Weights.C(size=8)) == ident(PlainWeights.C(size=8))
    # Alone in a graph, or one object used twice: the identifiers of plain configurations.
    shared = Weights.C()
    assert ident(Pair.C(left=shared, right=shared)) == ident(
        Pair.C(left=PlainWeights.C(), right=PlainWeights.C())
    )
    # Instances of different values never interact.
    assert ident(Pair.C(left=Weights.C(size=1), right=Weights.C(size=2))) == ident(
        Pair.C(left=PlainWeights.C(size=1), right=PlainWeights.C(size=2))
    )


def test_ranks_count_instances_only_and_the_first_one_reached_has_none():
    """`left` is reached before `right` (fields count in name order)."""
    first, second = Weights.C(), Weights.C()
    plain = Pair.C(left=PlainWeights.C(), right=PlainWeights.C())
    # A plain configuration of equal value takes no rank: `second` is the first instance.
    assert ident(Pair.C(left=PlainWeights.C(), right=second)) == ident(plain)
    assert ident(Pair.C(left=first, right=PlainWeights.C())) == ident(plain)
    assert ident(Pair.C(left=first, right=second)) != ident(plain)
    assert ident(first) == ident(second) == ident(PlainWeights.C())  # outside a graph


def test_sharing_counts_through_lists_dicts_nested_configurations_and_init_tasks():
    w1, w2 = Weights.C(), Weights.C()
    assert ident(Many.C(items=[w1, w2])) != ident(Many.C(items=[w1, w1]))
    assert ident(Many.C(named={"a": w1, "b": w2})) != ident(Many.C(named={"a": w1, "b": w1}))
    # Across containers and nesting levels: the whole graph is one scope.
    shared = Many.C(items=[w1], named={"inner": Pair.C(left=w1, right=PlainWeights.C())})
    separate = Many.C(items=[w1], named={"inner": Pair.C(left=w2, right=PlainWeights.C())})
    assert ident(shared) != ident(separate)
    with_shared_init, with_other_init = Pair.C(left=w1, right=w1), Pair.C(left=w1, right=w1)
    with_shared_init._etude.init_tasks = (Warm.C(weights=w1),)
    with_other_init._etude.init_tasks = (Warm.C(weights=w2),)
    assert ident(with_shared_init) != ident(with_other_init)


def test_only_instance_configurations_count_by_object():
    w1, w2 = Weights.C(), Weights.C()
    pair = Pair.C(left=w1, right=w2)  # a plain Config: two equal copies count as one
    assert ident(Many.C(items=[pair, pair])) == ident(
        Many.C(items=[pair, Pair.C(left=w1, right=w2)])
    )
    assert ident(Many.C(items=[pair, pair])) != ident(
        Many.C(items=[pair, Pair.C(left=Weights.C(), right=Weights.C())])
    )


def test_sealing_and_cached_identifiers_keep_identifiers_in_every_graph():
    w1, w2 = Weights.C(), Weights.C()
    inner = Pair.C(left=w1, right=w2)
    fresh = ident(Many.C(items=[w2, inner]))
    inner.seal()
    assert ident(inner) == ident(Pair.C(left=Weights.C(), right=Weights.C()))  # cached now
    assert ident(w2) == ident(PlainWeights.C())
    assert ident(Many.C(items=[w2, inner])) == fresh
    assert ident(Many.C(items=[w2, inner]).seal()) == fresh


def test_a_rebuilt_graph_keeps_its_objects_apart_and_its_identifier():
    """What a job process reads back from params.json."""
    w1, w2 = Weights.C(), Weights.C()
    for pair in (Pair.C(left=w1, right=w2), Pair.C(left=w1, right=w1)):
        rebuilt, _ = load(dump(pair, root_path="pair"))
        assert (rebuilt.left is rebuilt.right) == (pair.left is pair.right)
        assert ident(rebuilt) == ident(pair)


def test_partial_identifiers_count_the_instances_they_keep():
    w1, w2 = Weights.C(), Weights.C()
    keep_left = frozenset({"nothing"})
    assert partial_identifier(Pair.C(left=w1, right=w2), "p", keep_left) != partial_identifier(
        Pair.C(left=w1, right=w1), "p", keep_left
    )


def test_a_task_cannot_be_an_instance_configuration():
    with pytest.raises(ConfigError) as error:

        class Train(InstanceConfig, Task):
            def execute(self) -> None:
                pass

    assert str(error.value).endswith(
        "<locals>.Train derives from both InstanceConfig and Task; a task's identifier names "
        "its job folder, so it counts by value only. Derive it from Task alone; to run it twice "
        "with equal values, give it a parameter that tells the runs apart (e.g. seed: "
        "Param[int])."
    )


def test_an_instance_in_a_set_is_refused_naming_the_field():
    with pytest.raises(SerializationError) as error:
        inner = Pair.C(left=Weights.C(), right=Weights.C())
        ident(Pair.C(left=PlainWeights.C(), right=Bag.C(items={inner})))
    assert str(error.value) == (
        "Bag.items: an InstanceConfig is reached through a set. A set has no order, so which "
        "of its equal instances is which would differ between runs. Use a list or a tuple."
    )
    # Plain configurations in a set are fine.
    ident(Bag.C(items={PlainWeights.C(), Pair.C(left=PlainWeights.C(), right=PlainWeights.C())}))


class Holder(Config):
    """`model` counts first (fields count in name order): the plain pass stops there."""

    model: Param[Config]
    value: Param[object] = None


class Shade(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    HIGH = 3


class Corner(tuple, enum.Enum):
    """An enumeration that is also a tuple: encoded as an enumeration, not as a tuple."""

    TOP = (0, 1)


class Point(NamedTuple):
    x: int
    y: float


class Text(str):
    pass


class Count(int):
    pass


class Ratio(float):
    pass


VALUES: list[Any] = [
    "text",
    Text("text"),
    7,
    -3,
    2**12_001,
    Count(5),
    True,
    False,
    0.5,
    Ratio(1.5),
    None,
    Shade.RED,
    Level.HIGH,
    Corner.TOP,
    PurePosixPath("data/train"),
    [1, "a", None],
    (1, 2.0),
    Point(1, 2.0),
    {1, 2},
    frozenset({"a"}),
    {"b": 1, "a": [2, (3,)]},
    collections.OrderedDict(z=1, a=2),
    [PlainWeights.C(size=2), (PlainWeights.C(size=3),), {"w": PlainWeights.C()}],
    {PlainWeights.C(size=5), "x"},
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_the_ranking_pass_encodes_every_value_as_the_plain_pass_does(value: Any):
    """A graph that holds an instance is encoded by the ranking pass, one without by the plain
    pass (see identity.py); a lone instance counts as a plain configuration of its values, so
    these agree exactly when both passes encode `value` alike."""
    assert ident(Holder.C(value=value, model=Weights.C())) == ident(
        Holder.C(value=value, model=PlainWeights.C())
    )


@pytest.mark.parametrize("value", [object(), {1: "a"}], ids=["object", "int-key"])
def test_both_passes_refuse_a_value_alike(value: Any):
    with pytest.raises(SerializationError) as ranked:
        ident(Holder.C(value=value, model=Weights.C()))
    with pytest.raises(SerializationError) as plain:
        ident(Holder.C(value=value, model=PlainWeights.C()))
    assert str(ranked.value) == str(plain.value)
