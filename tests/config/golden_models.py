"""Configuration classes for the golden and cross-process identity tests.

Every class (and the enum) declares a fixed `__etude_name__`, so the pinned identifiers depend
neither on this file's module name nor on how pytest imports it. Do not edit these classes:
the golden identifiers in `test_golden.py` are computed from them.
"""

import enum
from pathlib import Path
from typing import Annotated

from etude.config import (
    Config,
    Constant,
    InstanceConfig,
    LightweightTask,
    Meta,
    Param,
    PathGenerator,
    Task,
    field,
    pathgenerator,
)


class Color(enum.Enum):
    __etude_name__ = "golden.Color"
    RED = "red"
    GREEN = "green"


class Empty(Config):
    __etude_name__ = "golden.Empty"


class Scalars(Config):
    __etude_name__ = "golden.Scalars"
    flag: Param[bool] = False
    count: Param[int] = 0
    ratio: Param[float] = 0.5
    name: Param[str] = ""
    color: Param[Color] = Color.RED
    maybe: Param[int | None] = None


class Containers(Config):
    __etude_name__ = "golden.Containers"
    items: Param[list[int]] = field(default_factory=list)
    pair: Param[tuple[int, str]] = (0, "")
    mapping: Param[dict[str, float]] = field(default_factory=dict)
    labels: Param[set[str]] = field(default_factory=set)
    frozen: Param[frozenset[int]] = frozenset()
    anything: Param[object] = None


class Model(Config):
    __etude_name__ = "golden.Model"
    hidden: Param[int] = 64
    dropout: Param[float] = 0.1


class InstanceModel(InstanceConfig, Model):
    """`golden.Model` counting by object: used once in a graph, it has `Model`'s identifiers."""

    __etude_name__ = "golden.Model"


class Learn(Task):
    __etude_name__ = "golden.Learn"
    model: Param[Model]
    lr: Param[float]
    epochs: Param[int] = 100
    version: Constant[str] = "2"
    device: Meta[str] = "cpu"
    data: Param[Path] = Path("data")
    parameters: Meta[Path] = field(default_factory=PathGenerator("parameters.pth"))
    log: Annotated[Path, pathgenerator("log.txt")]


class LearnV3(Learn):
    """`golden.Learn` after its author bumped the Constant `version`."""

    __etude_name__ = "golden.Learn"
    version = "3"


class Ensemble(Config):
    __etude_name__ = "golden.Ensemble"
    members: Param[list[Model]] = field(default_factory=list)
    by_name: Param[dict[str, Model]] = field(default_factory=dict)


class Warmup(LightweightTask):
    __etude_name__ = "golden.Warmup"
    checkpoint: Param[str] = "init.pth"


class Evaluate(Task):
    __etude_name__ = "golden.Evaluate"
    learned: Param[Learn]
    split: Param[str] = "test"


def hash_sensitive_sample() -> Config:
    """A configuration whose containers iterate in a hash-seed-dependent order."""
    return Containers.C(
        labels={f"label-{i}" for i in range(20)},
        mapping={f"key-{i}": float(i) for i in range(20)},
        anything=frozenset({"a", "b", "c", ("d", 1)}),
    )
