"""Explicit sealing with seal(), and sets kept as frozensets once sealed."""

from __future__ import annotations

from pathlib import Path

import pytest

from etude import (
    Config,
    ConfigError,
    LightweightTask,
    Meta,
    Param,
    PathGenerator,
    Task,
    experiment,
    field,
    identifier,
)
from etude.config import SealedError


class Labels(Config):
    names: Param[set[str]] = field(default_factory=set)
    nested: Param[list[set[int]]] = field(default_factory=list)


class Train(Task):
    labels: Param[Labels]
    out: Meta[Path] = field(default_factory=PathGenerator("out"))

    def execute(self) -> None:
        pass


def test_seal_freezes_the_graph_and_its_sets_without_changing_the_identifier():
    labels = Labels.C(names={"b", "a"}, nested=[{1, 2}])
    train = Train.C(labels=labels)
    before = identifier(train)
    assert train.seal() is train
    assert labels.names == frozenset({"a", "b"}) and isinstance(labels.names, frozenset)
    assert isinstance(labels.nested[0], frozenset)
    assert identifier(train) == before
    with pytest.raises(SealedError):
        labels.names = {"c"}
    train.seal()  # twice: nothing happens


def test_a_task_sealed_before_submit_gets_its_generated_paths(tmp_path: Path):
    train = Train.C(labels=Labels.C()).seal()
    with experiment(tmp_path, "xp", dry_run=True):
        train.submit()
    assert train.out == train.jobpath / "out"


def test_a_task_sealed_before_submit_refuses_init_tasks(tmp_path: Path):
    class Load(LightweightTask):
        def execute(self) -> None:
            pass

    train = Train.C(labels=Labels.C()).seal()
    with experiment(tmp_path, "xp", dry_run=True):
        with pytest.raises(ConfigError, match="is sealed"):
            train.submit(init_tasks=[Load.C()])


def test_submit_seals_sets_too(tmp_path: Path):
    labels = Labels.C(names={"x"})
    with experiment(tmp_path, "xp", dry_run=True):
        Train.C(labels=labels).submit()
    assert isinstance(labels.names, frozenset)
