"""cfg.instance(): the plain object of a configuration, outside any job."""

from __future__ import annotations

import pytest

from etude import Config, Param, identifier
from etude.config import MissingParameterError


class Vocabulary(Config):
    words: Param[list[str]]

    def __post_init__(self) -> None:
        self.index = {word: i for i, word in enumerate(self.words)}


class Encoder(Config):
    vocabulary: Param[Vocabulary]
    width: Param[int] = 4

    def __post_init__(self) -> None:
        # Nested configurations are ready first.
        self.size = len(self.vocabulary.index) * self.width


class Pair(Config):
    source: Param[Encoder]
    target: Param[Encoder]
    extra: Param[dict[str, Vocabulary]] = {}


def test_instance_runs_post_init_children_first_and_leaves_the_configuration_alone():
    cfg = Encoder.C(vocabulary=Vocabulary.C(words=["a", "b"]))
    before = identifier(cfg)
    obj = cfg.instance()
    assert obj.size == 8 and obj.vocabulary.index == {"a": 0, "b": 1}
    assert obj is not cfg and not hasattr(cfg, "size")
    assert identifier(cfg) == before


def test_a_configuration_shared_in_the_graph_is_one_object():
    vocabulary = Vocabulary.C(words=["a"])
    shared = Encoder.C(vocabulary=vocabulary)
    pair = Pair.C(source=shared, target=shared, extra={"v": vocabulary}).instance()
    assert pair.source is pair.target
    assert pair.extra["v"] is pair.source.vocabulary


def test_an_instance_accepts_runtime_attributes():
    obj = Vocabulary.C(words=["a"]).instance()
    obj.cache = {}  # refused on a configuration, fine on its instance
    assert obj.cache == {}


def test_instance_reports_a_missing_value_with_its_path():
    with pytest.raises(MissingParameterError, match=r"encoder\.vocabulary has no value"):
        Encoder.C().instance()
