"""Tags: on parameters or as labels, in effect on a configuration, stopped with stop_tags()."""

from __future__ import annotations

from pathlib import Path

import pytest

from etude import Config, ConfigError, Param, Task, experiment, identifier, stop_tags, tag
from etude.config import SealedError


class Model(Config):
    hidden: Param[int] = 64


class Train(Task):
    model: Param[Model]
    lr: Param[float] = 0.1

    def execute(self) -> None:
        pass


class Evaluate(Task):
    trained: Param[Train]

    def execute(self) -> None:
        pass


def test_a_tag_that_is_not_a_parameter_labels_without_changing_values_or_identity():
    model = Model.C()
    before = identifier(model)
    assert model.tag("variant", "wide") is model
    assert model.tags() == {"variant": "wide"}
    assert identifier(model) == before
    assert not hasattr(model, "variant")


def test_tag_on_a_parameter_sets_and_tags_it():
    model = Model.C().tag("hidden", 128)
    assert model.hidden == 128 and model.tags() == {"hidden": 128}


def test_tags_include_inherited_ones_and_the_outer_tag_wins():
    model = Model.C(hidden=tag(32)).tag("name", "inner")
    train = Train.C(model=model, lr=tag(0.5)).tag("name", "outer")
    assert train.tags() == {"hidden": 32, "lr": 0.5, "name": "outer"}
    assert model.tags() == {"hidden": 32, "name": "inner"}


def test_stop_tags_keeps_a_configurations_tags_from_its_users():
    model = Model.C(hidden=tag(32)).tag("name", "inner").stop_tags()
    train = Train.C(model=model, lr=tag(0.5))
    assert train.tags() == {"lr": 0.5}
    assert model.tags() == {"hidden": 32, "name": "inner"}  # its own are unchanged


class Ensemble(Config):
    members: Param[dict[str, Model]]
    extra: Param[list[Model]] = []
    size: Param[int] = 2


def test_the_function_form_stops_the_tags_of_every_configuration_in_a_container():
    members = {"a": Model.C(hidden=tag(8)), "b": Model.C(hidden=16).tag("kind", "wide")}
    extra = [Model.C(hidden=tag(4))]
    ensemble = Ensemble.C(members=stop_tags(members), extra=extra, size=tag(3))
    assert ensemble.tags() == {"size": 3, "hidden": 4}  # the list was not stopped
    assert members["a"].tags() == {"hidden": 8}  # their own tags are unchanged
    single = Model.C(hidden=tag(2))
    assert stop_tags(single) is single
    assert Train.C(model=single).tags() == {}


@pytest.mark.parametrize("value", [3, "model", [1, 2], {}], ids=["int", "str", "list", "empty"])
def test_the_function_form_refuses_a_value_without_configurations(value):
    with pytest.raises(TypeError, match="stop_tags: expected a configuration"):
        stop_tags(value)


@pytest.mark.parametrize(
    "value", [pytest.param([1], id="list"), pytest.param(Path("/x"), id="path")]
)
def test_a_label_tag_takes_only_plain_values(value):
    with pytest.raises(ConfigError, match=r"Model.tag\('variant', ...\): a tag that is not"):
        Model.C().tag("variant", value)


def test_tagging_a_submitted_configuration_is_refused(tmp_path: Path):
    with experiment(tmp_path, "tags", dry_run=True):
        train = Train.C(model=Model.C())
        train.submit()
        with pytest.raises(SealedError):
            train.tag("late", 1)


def test_job_tags_follow_dependencies_unless_stopped(tmp_path: Path):
    with experiment(tmp_path, "tags", dry_run=True) as xp:
        trained = Train.C(model=Model.C(hidden=tag(32))).tag("run", "a").submit()
        Evaluate.C(trained=trained).tag("split", "test").submit()
        quiet = Train.C(model=Model.C(hidden=tag(16))).stop_tags().submit()
        Evaluate.C(trained=quiet).tag("split", "dev").submit()
    assert [job.tags for job in xp.jobs] == [
        {"hidden": 32, "run": "a"},
        {"hidden": 32, "run": "a", "split": "test"},
        {"hidden": 16},
        {"split": "dev"},
    ]
