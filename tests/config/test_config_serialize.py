"""Round trips through `etude.config.serialize.dump` / `load`, as between an experiment and a job.

Each round trip goes through real JSON text, as the job's parameters file does.
"""

import enum
import json
import math
from pathlib import Path
from typing import Any

import pytest

from etude.config import (
    Config,
    CycleError,
    LightweightTask,
    Meta,
    Param,
    PathGenerator,
    PathGeneratorError,
    SerializationError,
    Task,
    digest,
    field,
    identifier,
    tag,
)
from etude.config.serialize import dump, load

HERE = Path(__file__).parent


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Model(Config):
    hidden: Param[int] = 64


class Holder(Config):
    value: Param[object] = None


class Typed(Config):
    pair: Param[tuple[int, str]] = (0, "")
    seq: Param[tuple[float, ...]] = ()
    names: Param[set[str]] = field(default_factory=set)
    frozen: Param[frozenset[int]] = frozenset()
    data: Param[Path] = Path(".")
    color: Param[Color] = Color.RED
    ratio: Param[float] = 0.0
    count: Param[int] = 0
    models: Param[list[Model]] = field(default_factory=list)
    by_name: Param[dict[str, Model]] = field(default_factory=dict)
    maybe: Param[Model | None] = None
    device: Meta[str] = "cpu"


class Warmup(LightweightTask):
    model: Param[Model]


class Learn(Task):
    model: Param[Model]
    lr: Param[float] = 0.1
    output: Meta[Path] = field(default_factory=PathGenerator("output"))


class Ready(Config):
    x: Param[int] = 0

    def __post_init__(self) -> None:
        self.ready = True


class Parent(Config):
    child: Param[Ready]

    def __post_init__(self) -> None:
        self.child_was_ready = getattr(self.child, "ready", False)


class Node(Config):
    child: Param["Node | None"] = None


def _round_trip(root: Config) -> tuple[Any, list[Config]]:
    text = json.dumps(dump(root, root_path="root"))
    return load(json.loads(text))


def _shape(value: Any) -> Any:
    """The value with every container replaced by (type, items): equality then checks types."""
    if isinstance(value, (list, tuple)):
        return (type(value), [_shape(v) for v in value])
    if isinstance(value, (set, frozenset)):
        return (type(value), sorted(repr(_shape(v)) for v in value))
    if isinstance(value, dict):
        return (type(value), {k: _shape(v) for k, v in value.items()})
    return (type(value), value)


VALUES = [
    pytest.param(None, id="none"),
    pytest.param(True, id="bool"),
    pytest.param(-3, id="int"),
    pytest.param(2**100, id="big-int"),
    pytest.param(-(2**70), id="big-negative-int"),
    pytest.param(0.1, id="float"),
    pytest.param(1e-300, id="tiny-float"),
    pytest.param(float("inf"), id="inf"),
    pytest.param(float("-inf"), id="minus-inf"),
    pytest.param("héllo 日本 🙂", id="unicode-str"),
    pytest.param((1, "a"), id="tuple"),
    pytest.param((), id="empty-tuple"),
    pytest.param([1, [2, (3,)]], id="nested-list"),
    pytest.param([], id="empty-list"),
    pytest.param({"b", "a"}, id="set"),
    pytest.param(set(), id="empty-set"),
    pytest.param(frozenset({1, 2}), id="frozenset"),
    pytest.param({"k": {"inner": (1, {2})}}, id="nested-dict"),
    pytest.param({}, id="empty-dict"),
    pytest.param(Path("/data/train"), id="path"),
    pytest.param(Color.BLUE, id="enum"),
    pytest.param({"path": "not a Path", "ref": 0}, id="dict-with-encoding-keys"),
]


@pytest.mark.parametrize("value", VALUES)
def test_value_survives_round_trip_with_its_type(value: Any) -> None:
    loaded, _ = _round_trip(Holder.C(value=value))
    assert _shape(loaded.value) == _shape(value)


def test_nan_survives_round_trip() -> None:
    loaded, _ = _round_trip(Holder.C(value=float("nan")))
    assert type(loaded.value) is float and math.isnan(loaded.value)


def test_negative_zero_survives_round_trip() -> None:
    loaded, _ = _round_trip(Holder.C(value=-0.0))
    assert math.copysign(1.0, loaded.value) == -1.0


def test_typed_fields_survive_round_trip() -> None:
    original = Typed.C(
        pair=(1, "a"),
        seq=(0.5, 1.5),
        names={"x", "y"},
        frozen=frozenset({3}),
        data="relative/file.txt",
        color=Color.BLUE,
        ratio=float("inf"),
        count=2**80,
        device="cuda",
    )
    loaded, _ = _round_trip(original)
    for name in ["pair", "seq", "names", "frozen", "data", "color", "ratio", "count", "device"]:
        assert _shape(getattr(loaded, name)) == _shape(getattr(original, name)), name


def test_nested_configs_are_rebuilt_with_their_class_and_values() -> None:
    loaded, _ = _round_trip(
        Typed.C(
            models=[Model.C(hidden=1)], by_name={"big": Model.C(hidden=2)}, maybe=Model.C(hidden=3)
        )
    )
    assert [type(m) for m in loaded.models] == [Model]
    assert (loaded.models[0].hidden, loaded.by_name["big"].hidden, loaded.maybe.hidden) == (1, 2, 3)


def test_config_used_twice_is_one_object_after_load() -> None:
    shared = Model.C()
    loaded, _ = _round_trip(Typed.C(models=[shared, shared], maybe=shared))
    assert loaded.models[0] is loaded.models[1] is loaded.maybe


def test_config_shared_by_a_task_and_its_init_task_is_one_object_after_load() -> None:
    model = Model.C()
    learn = Learn.C(model=model)
    learn._etude.init_tasks = (Warmup.C(model=model),)
    loaded, _ = _round_trip(learn)
    assert loaded._etude.init_tasks[0].model is loaded.model


def test_init_tasks_are_restored_in_order() -> None:
    learn = Learn.C(model=Model.C())
    learn._etude.init_tasks = (Warmup.C(model=Model.C(hidden=1)), Warmup.C(model=Model.C(hidden=2)))
    loaded, _ = _round_trip(learn)
    assert [type(t) for t in loaded._etude.init_tasks] == [Warmup, Warmup]
    assert [t.model.hidden for t in loaded._etude.init_tasks] == [1, 2]


def test_task_output_marker_is_restored() -> None:
    model = Model.C()
    model._etude.dep_digest = digest(Learn.C(model=Model.C()))
    loaded, _ = _round_trip(Holder.C(value=model))
    assert loaded.value._etude.dep_digest == model._etude.dep_digest


def test_tags_are_restored() -> None:
    loaded, _ = _round_trip(Model.C(hidden=tag(3)))
    assert loaded._etude.tags == {"hidden": 3}


def test_identifier_after_load_equals_identifier_before() -> None:
    model = Model.C(hidden=tag(32))
    model._etude.dep_digest = digest(Learn.C(model=Model.C(hidden=7)))
    learn = Learn.C(model=model, lr=float("inf"))
    learn._etude.init_tasks = (Warmup.C(model=model),)
    learn.output = Path("/ws/jobs/learn/output")
    root = Holder.C(
        value=[
            learn,
            Typed.C(pair=(1, "a"), names={"x"}, color=Color.BLUE, count=-(2**70), ratio=-0.0),
            {"nested": (frozenset({1}), None, float("nan"))},
        ]
    )
    before = identifier(root)
    loaded, _ = _round_trip(root)
    assert identifier(loaded) == before


def test_loaded_objects_are_sealed_and_in_runtime_mode() -> None:
    _, objects = _round_trip(Learn.C(model=Model.C()))
    assert all(obj._etude.sealed and obj._etude.runtime for obj in objects)


def test_loaded_objects_accept_runtime_attributes() -> None:
    loaded, _ = _round_trip(Learn.C(model=Model.C()))
    loaded.model.weights = 3
    assert loaded.model.weights == 3


def test_load_returns_every_object_children_before_parents() -> None:
    model = Model.C()
    learn = Learn.C(model=model)
    loaded, objects = _round_trip(learn)
    assert objects == [loaded.model, loaded]


def test_post_init_is_called_after_load_children_first() -> None:
    loaded, _ = _round_trip(Parent.C(child=Ready.C()))
    assert loaded.child.ready is True
    assert loaded.child_was_ready is True


def test_post_init_is_not_called_when_building_with_C() -> None:
    assert not hasattr(Ready.C(), "ready")


def test_set_generated_path_survives_round_trip() -> None:
    learn = Learn.C(model=Model.C())
    learn.output = Path("/ws/jobs/learn/output")
    loaded, _ = _round_trip(learn)
    assert loaded.output == Path("/ws/jobs/learn/output")


def test_unset_generated_path_stays_unset_after_load() -> None:
    loaded, _ = _round_trip(Learn.C(model=Model.C()))
    with pytest.raises(PathGeneratorError):
        _ = loaded.output


def test_parameter_missing_from_old_parameters_gets_its_default() -> None:
    """A job dumped before a defaulted parameter was added still loads."""
    data = dump(Learn.C(model=Model.C(), lr=0.5), root_path="root")
    for record in data["objects"]:
        record["fields"].pop("lr", None)
        record["fields"].pop("hidden", None)
    loaded, _ = load(data)
    assert (loaded.lr, loaded.model.hidden) == (0.1, 64)


def test_dump_lists_the_import_root_of_each_class_module() -> None:
    assert str(HERE) in dump(Model.C(), root_path="root")["sys_path"]


def test_load_rejects_another_format() -> None:
    data = dump(Model.C(), root_path="root")
    data["format"] = 999
    with pytest.raises(SerializationError, match="format 999; this etude reads format 1"):
        load(data)


def test_load_of_a_renamed_class_says_how_to_keep_a_stable_name() -> None:
    data = dump(Model.C(), root_path="root")
    data["objects"][0]["class"]["qualname"] = "RenamedModel"
    with pytest.raises(SerializationError, match=r"class RenamedModel not found.*__etude_name__"):
        load(data)


UNSERIALIZABLE = [
    pytest.param(object(), "root.value:", id="object"),
    pytest.param([1, {"k": object()}], "root.value[1]['k']:", id="inside-containers"),
    pytest.param(len, "root.value:", id="function"),
    pytest.param(Model, "root.value:", id="config-class"),
]


@pytest.mark.parametrize(("value", "path"), UNSERIALIZABLE)
def test_unserializable_value_raises_naming_its_path(value: Any, path: str) -> None:
    with pytest.raises(SerializationError) as caught:
        dump(Holder.C(value=value), root_path="root")
    message = str(caught.value)
    assert message.startswith(path)
    assert "cannot be stored in the job's parameters" in message
    assert "save large objects to a file and pass its Path" in message


def test_class_defined_in_a_function_raises_asking_to_move_it_to_module_level() -> None:
    class Local(Config):
        x: Param[int] = 0

    with pytest.raises(SerializationError) as caught:
        dump(Holder.C(value=Local.C()), root_path="root")
    message = str(caught.value)
    assert message.startswith("root.value: class")
    assert "is defined inside a function" in message
    assert "Define it at the top level of a module" in message


def test_cycle_raises_cycle_error_from_dump() -> None:
    first, second = Node.C(), Node.C()
    first.child = second
    second.child = first
    with pytest.raises(CycleError, match=r"root\.child\.child: this configuration contains itself"):
        dump(first, root_path="root")


# Bugs found while writing these tests.


def test_identifier_of_negative_nan_survives_round_trip() -> None:
    root = Holder.C(value=math.copysign(float("nan"), -1.0))
    before = identifier(root)
    loaded, _ = _round_trip(root)
    assert identifier(loaded) == before


def test_dict_with_non_str_keys_raises_serialization_error_naming_its_path() -> None:
    with pytest.raises(SerializationError, match=r"^root\.value"):
        dump(Holder.C(value={1: "a"}), root_path="root")


def test_unserializable_value_in_a_set_raises_naming_its_path() -> None:
    with pytest.raises(SerializationError, match=r"^root\.value"):
        dump(Holder.C(value={object()}), root_path="root")
