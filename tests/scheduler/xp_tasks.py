"""Task classes used by the scheduler tests (importable by job processes)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from etude import (
    Config,
    InstanceConfig,
    LightweightTask,
    Meta,
    Param,
    PathGenerator,
    SubmitHook,
    Task,
    cache,
    field,
)


def record(log: Path, line: str) -> None:
    """Append a line to a shared side-effect log (one write call, so lines never interleave)."""
    with open(log, "a") as out:
        out.write(line + "\n")


class Model(Config):
    hidden: Param[int] = 4


class Seeded(InstanceConfig, Model):
    """A model initialised at random: two objects are two models, even with equal values."""


class Learn(Task):
    model: Param[Model]
    lr: Param[float]
    log: Meta[Path]
    weights: Meta[Path] = field(default_factory=PathGenerator("weights.txt"))

    def execute(self) -> None:
        record(self.log, f"learn {self.lr}")
        self.weights.write_text(str(self.lr * 10))


class LoadWeights(LightweightTask):
    model: Param[Model]
    path: Meta[Path]

    def execute(self) -> None:
        self.model.loaded = float(self.path.read_text())


class LearnAndLoad(Learn):
    def task_outputs(self, dep):
        return dep(LoadWeights.C(model=self.model, path=self.weights))


class LearnedWeights(Config):
    path: Meta[Path]


class LearnWrapped(Learn):
    def task_outputs(self, dep):
        return dep(LearnedWeights.C(path=self.weights))


class EvaluateModel(Task):
    model: Param[Model]
    log: Meta[Path]

    def execute(self) -> None:
        record(self.log, f"evaluate {self.model.loaded}")
        Path("result.txt").write_text(str(self.model.loaded))


class EvaluateWeights(Task):
    weights: Param[LearnedWeights]
    log: Meta[Path]

    def execute(self) -> None:
        value = self.weights.path.read_text()
        record(self.log, f"evaluate-wrapped {value}")


class Flaky(Task):
    """Fails while `flag` exists."""

    name: Param[str]
    flag: Meta[Path]
    log: Meta[Path]

    def execute(self) -> None:
        record(self.log, f"flaky {self.name}")
        if self.flag.exists():
            raise RuntimeError(f"flag {self.flag} is set")


class After(Task):
    before: Param[Task]
    log: Meta[Path]

    def execute(self) -> None:
        record(self.log, "after")


class Slow(Task):
    name: Param[str]
    seconds: Meta[float] = 0.5
    log: Meta[Path]

    def execute(self) -> None:
        record(self.log, f"start {self.name} {time.time()}")
        time.sleep(self.seconds)
        record(self.log, f"end {self.name} {time.time()}")


class Inspect(Task):
    """Writes what it sees at run time."""

    x: Param[int]
    label: Meta[str] = "plain"

    def execute(self) -> None:
        facts = {
            "cwd": os.getcwd(),
            "taskdir": str(self.__taskdir__),
            "tags": self.__tags__,
            "env": os.environ.get("ETUDE_TEST_VAR"),
            "hook": os.environ.get("ETUDE_HOOK_VAR"),
            "jobpath": str(self.jobpath),
        }
        Path("facts.json").write_text(__import__("json").dumps(facts))


class SelfKill(Task):
    x: Param[int] = 0

    def execute(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


class needs_var(SubmitHook):
    calls: list[str] = []

    def __init__(self, value: str) -> None:
        self.value = value

    def spec(self):
        return self.value

    def process(self, job, launcher) -> None:
        needs_var.calls.append(self.value)
        job.environ["ETUDE_HOOK_VAR"] = self.value


@needs_var("java-11")
class Collection(Config):
    name: Param[str] = "c"


@needs_var("java-11")
class OtherCollection(Config):
    name: Param[str] = "o"


class Index(Task):
    collection: Param[Collection]
    other: Param[OtherCollection]

    def execute(self) -> None:
        Path("hook.txt").write_text(os.environ.get("ETUDE_HOOK_VAR", ""))


class Terms(Config):
    n: Param[int]

    @cache("terms.txt")
    def load(self, path: Path, log: Path) -> str:
        if path.exists():
            return path.read_text()
        record(log, f"compute {self.n}")
        path.write_text("t" * self.n)
        return path.read_text()


class UseTerms(Task):
    terms: Param[Terms]
    log: Meta[Path]

    def execute(self) -> None:
        Path("terms.txt").write_text(self.terms.load(self.log))


class Inner(Config):
    hidden: Param[int]


class Holder(Config):
    inner: Param[Inner]
    child: Param[Config | None] = None


class UsesHolder(Task):
    holder: Param[Holder]
    anything: Param[object] = None

    def execute(self) -> None:
        Path("ran").touch()


class Documents(Config):
    path: Meta[Path]


class Topics(Config):
    path: Meta[Path]


class Dataset(Config):
    documents: Param[Documents]
    topics: Param[Topics]


class RandomFold(Task):
    """Samples topics; the documents stay those of the source dataset (seed 000 pattern)."""

    dataset: Param[Dataset]
    seed: Param[int] = 0
    topics: Param[Path] = field(default_factory=PathGenerator("topics.tsv"))

    def task_outputs(self, dep):
        return dep(
            Dataset.C(topics=dep(Topics.C(path=self.topics)), documents=self.dataset.documents)
        )

    def execute(self) -> None:
        lines = self.dataset.topics.path.read_text().splitlines()
        self.topics.write_text("\n".join(lines[self.seed :: 2]))


class CountTopics(Task):
    dataset: Param[Dataset]

    def execute(self) -> None:
        count = len(self.dataset.topics.path.read_text().splitlines())
        Path("count.txt").write_text(f"{count} {self.dataset.documents.path.name}")


class TrainV1(Task):
    """Two classes sharing one declared type name (see test_shared_type_name_*)."""

    __etude_name__ = "xp_tasks.SharedTrain"
    lr: Param[float]
    log: Meta[Path]

    def execute(self) -> None:
        record(self.log, f"v1 {self.lr}")


class TrainV2(Task):
    __etude_name__ = "xp_tasks.SharedTrain"
    lr: Param[float]
    log: Meta[Path]
    warmup: Param[int] = 0  # new, with a default: identifiers of TrainV1 are kept

    def execute(self) -> None:
        record(self.log, f"v2 {self.lr} {self.warmup}")
