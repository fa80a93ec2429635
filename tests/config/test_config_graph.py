"""Walking configuration graphs (`etude.config.graph`): paths, required values, tags."""

from collections.abc import Callable
from pathlib import Path

import pytest

from etude.config import (
    Config,
    CycleError,
    LightweightTask,
    Meta,
    MissingParameterError,
    Param,
    PathGenerator,
    Task,
    check_required,
    collect_tags,
    field,
    tag,
    walk,
)


class Encoder(Config):
    layers: Param[int]


class Model(Config):
    hidden: Param[int]
    encoder: Param[Encoder | None] = None


class Warmup(LightweightTask):
    model: Param[Model]


class Learn(Task):
    model: Param[Model]
    extra: Param[list[Model]] = field(default_factory=list)
    named: Param[dict[str, Model]] = field(default_factory=dict)
    pair: Param[tuple[Model, Model] | None] = None
    pool: Param[set[Model]] = field(default_factory=set)
    epochs: Param[int] = 10
    output: Meta[Path] = field(default_factory=PathGenerator("output"))


class Wrapper(Config):
    hidden: Param[int] = 0
    inner: Param[Model | None] = None


class Node(Config):
    child: Param["Node | None"] = None


def _paths(root: Config) -> dict[int, str]:
    return {id(cfg): path for path, cfg in walk(root, "learn")}


def test_walk_starts_with_the_root_under_its_path() -> None:
    learn = Learn.C(model=Model.C(hidden=1))
    assert walk(learn, "learn")[0] == ("learn", learn)


def test_walk_names_a_nested_config_by_its_attribute_path() -> None:
    encoder = Encoder.C(layers=2)
    learn = Learn.C(model=Model.C(hidden=1, encoder=encoder))
    assert _paths(learn)[id(encoder)] == "learn.model.encoder"


def test_walk_names_configs_inside_containers_by_index_and_key() -> None:
    first, second, keyed, left, right, pooled = (Model.C(hidden=i) for i in range(6))
    learn = Learn.C(
        model=Model.C(hidden=9),
        extra=[first, second],
        named={"big": keyed},
        pair=(left, right),
        pool={pooled},
    )
    paths = _paths(learn)
    assert [paths[id(c)] for c in (first, second, keyed, left, right, pooled)] == [
        "learn.extra[0]",
        "learn.extra[1]",
        "learn.named['big']",
        "learn.pair[0]",
        "learn.pair[1]",
        "learn.pool{}",
    ]


def test_walk_follows_init_tasks() -> None:
    model = Model.C(hidden=1)
    learn = Learn.C(model=Model.C(hidden=2))
    warmup = Warmup.C(model=model)
    learn._etude.init_tasks = (warmup,)
    paths = _paths(learn)
    assert (paths[id(warmup)], paths[id(model)]) == (
        "learn.init_tasks[0]",
        "learn.init_tasks[0].model",
    )


def test_walk_lists_a_shared_config_once_under_its_first_path() -> None:
    shared = Model.C(hidden=1)
    learn = Learn.C(model=shared, extra=[shared, shared])
    found = [path for path, cfg in walk(learn, "learn") if cfg is shared]
    assert found == ["learn.model"]


def test_walk_lists_parents_before_children() -> None:
    encoder = Encoder.C(layers=1)
    model = Model.C(hidden=1, encoder=encoder)
    learn = Learn.C(model=model)
    assert [cfg for _, cfg in walk(learn, "learn")] == [learn, model, encoder]


def test_walk_accepts_configs_with_missing_required_values() -> None:
    assert [path for path, _ in walk(Learn.C(model=Model.C()), "learn")] == [
        "learn",
        "learn.model",
    ]


def test_walk_raises_cycle_error_naming_the_path_back_to_an_ancestor() -> None:
    first, second = Node.C(), Node.C()
    first.child = second
    second.child = first
    with pytest.raises(CycleError, match=r"^a\.child\.child: this configuration contains itself"):
        walk(first, "a")


def test_walk_raises_cycle_error_for_a_config_containing_itself() -> None:
    node = Node.C()
    node.child = node
    with pytest.raises(CycleError, match=r"^a\.child: this configuration contains itself"):
        walk(node, "a")


def test_check_required_accepts_a_complete_graph() -> None:
    learn = Learn.C(model=Model.C(hidden=1, encoder=Encoder.C(layers=1)))
    check_required(walk(learn, "learn"))


def test_check_required_ignores_defaults_and_generated_paths() -> None:
    """`epochs` has a default and `output` is generated at submit: neither is missing."""
    check_required(walk(Learn.C(model=Model.C(hidden=1)), "learn"))


MISSING = [
    pytest.param(
        lambda: Learn.C(),
        "learn.model has no value: it is required. Pass model=... to Learn.C().",
        id="root",
    ),
    pytest.param(
        lambda: Learn.C(model=Model.C()),
        "learn.model.hidden has no value: it is required. Pass hidden=... to Model.C().",
        id="nested",
    ),
    pytest.param(
        lambda: Learn.C(model=Model.C(hidden=1, encoder=Encoder.C())),
        "learn.model.encoder.layers has no value: it is required. Pass layers=... to Encoder.C().",
        id="two-levels-deep",
    ),
    pytest.param(
        lambda: Learn.C(model=Model.C(hidden=1), extra=[Model.C(hidden=2), Model.C()]),
        "learn.extra[1].hidden has no value",
        id="in-a-list",
    ),
    pytest.param(
        lambda: Learn.C(model=Model.C(hidden=1), named={"big": Model.C()}),
        "learn.named['big'].hidden has no value",
        id="in-a-dict",
    ),
]


@pytest.mark.parametrize(("build", "message"), MISSING)
def test_check_required_names_the_full_path_of_a_missing_value(
    build: Callable[[], Config], message: str
) -> None:
    with pytest.raises(MissingParameterError) as caught:
        check_required(walk(build(), "learn"))
    assert str(caught.value).startswith(message)


def test_check_required_names_the_path_through_an_init_task() -> None:
    learn = Learn.C(model=Model.C(hidden=1))
    learn._etude.init_tasks = (Warmup.C(),)
    with pytest.raises(MissingParameterError, match=r"^learn\.init_tasks\[0\]\.model has no value"):
        check_required(walk(learn, "learn"))


def test_check_required_reports_the_parent_before_its_children() -> None:
    learn = Learn.C(model=Model.C(encoder=Encoder.C()))
    with pytest.raises(MissingParameterError, match=r"^learn\.model\.hidden has no value"):
        check_required(walk(learn, "learn"))


def test_collect_tags_gathers_tags_of_the_whole_graph() -> None:
    learn = Learn.C(model=Model.C(hidden=tag(1)), epochs=tag(5))
    assert collect_tags(walk(learn, "learn")) == {"hidden": 1, "epochs": 5}


def test_collect_tags_prefers_the_tag_of_the_user_over_its_dependency() -> None:
    wrapper = Wrapper.C(inner=Model.C(hidden=tag(2))).tag("hidden", 3)
    assert collect_tags(walk(wrapper, "wrapper")) == {"hidden": 3}
