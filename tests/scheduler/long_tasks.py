"""Long-running task classes for the long-jobs tests (importable by job processes)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from etude import (
    Config,
    GracefulTimeout,
    LightweightTask,
    Meta,
    Param,
    PathGenerator,
    ResumableTask,
    Task,
    TaskCancelled,
    field,
    param_group,
    partial,
)


class Training(ResumableTask):
    """Counts epochs into a checkpoint; each epoch takes `epoch_seconds`."""

    epochs: Param[int]
    epoch_seconds: Meta[float] = 0.3
    graceful: Meta[bool] = False
    checkpoint: Meta[Path] = field(default_factory=PathGenerator("checkpoint.json"))

    def execute(self) -> None:
        state = {"epoch": 0, "attempts": 0, "sum": 0}
        if self.checkpoint.exists():
            state = json.loads(self.checkpoint.read_text())
        state["attempts"] += 1
        self._save(state)
        print(f"attempt {state['attempts']} from epoch {state['epoch']}", flush=True)
        while state["epoch"] < self.epochs:
            left = self.remaining_time()
            if self.graceful and left is not None and left < 2 * self.epoch_seconds:
                raise GracefulTimeout(f"{left:.1f}s left, not enough for another epoch")
            time.sleep(self.epoch_seconds)
            state["epoch"] += 1
            state["sum"] += state["epoch"]
            self._save(state)
        Path("result.txt").write_text(str(state["sum"]))

    def _save(self, state: dict[str, int]) -> None:
        tmp = self.checkpoint.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.checkpoint)


class Sleeper(Task):
    """Sleeps; records remaining_time(); on TaskCancelled optionally swallows it."""

    seconds: Param[float]
    swallow: Meta[bool] = False

    def execute(self) -> None:
        Path("remaining.json").write_text(json.dumps(self.remaining_time()))
        Path("started").touch()
        try:
            time.sleep(self.seconds)
        except TaskCancelled as exc:
            Path("cancelled.json").write_text(json.dumps(exc.remaining_time))
            if not self.swallow:
                raise


class Net(Config):
    width: Param[int] = 2


class Checkpoint(Config):
    step: Param[int]
    model: Param[Net]


class Validation(Config):
    model: Param[Net]

    def checkpoint(self, dep, *, step: int) -> Checkpoint:
        return dep(Checkpoint.C(model=self.model, step=step))

    def compute(self, step: int) -> None:
        self.register_task_output(self.checkpoint, step=step)

    def loader(self, dep, *, step: int) -> LoadCheckpoint:
        return dep(LoadCheckpoint.C(checkpoint=self.checkpoint(dep, step=step)))


class LoadCheckpoint(LightweightTask):
    """An init task loading an announced checkpoint into the evaluated model."""

    checkpoint: Param[Checkpoint]

    def execute(self) -> None:
        self.checkpoint.model.loaded_step = self.checkpoint.step


class LearnUntilEvaluated(ResumableTask):
    """Announces a checkpoint, then goes on only once its evaluation has written `evaluated`."""

    model: Param[Net]
    validation: Param[Validation]
    evaluated: Meta[Path]
    deadline: Meta[float] = 30.0

    def execute(self) -> None:
        self.validation.register_task_output(self.validation.loader, step=0)
        end = time.monotonic() + self.deadline
        while not self.evaluated.exists():
            if time.monotonic() > end:
                raise RuntimeError(f"{self.evaluated} not written within {self.deadline} s")
            time.sleep(0.05)
        Path("saw-evaluation").touch()


class CompareToLearned(Task):
    learned: Param[Learn]
    checkpoint: Param[Checkpoint]

    def execute(self) -> None:
        pass


class EvaluateLoaded(Task):
    model: Param[Net]
    evaluated: Meta[Path]

    def execute(self) -> None:
        self.evaluated.write_text(f"evaluated step {self.model.loaded_step}")


class Learn(ResumableTask):
    model: Param[Net]
    validation: Param[Validation]
    steps: Param[int] = 3

    def execute(self) -> None:
        for step in range(self.steps):
            Path(f"step-{step}").touch()
            self.validation.compute(step)


class PlainLearn(Task):
    model: Param[Net]
    validation: Param[Validation]

    def execute(self) -> None:
        self.validation.compute(0)


class EvaluateCheckpoint(Task):
    checkpoint: Param[Checkpoint]
    log: Meta[Path]

    def execute(self) -> None:
        with open(self.log, "a") as out:
            out.write(f"evaluate {self.checkpoint.step}\n")


class Pretrain(ResumableTask):
    """Continues from the checkpoint shared by runs that differ only in `epochs`."""

    lr: Param[float]
    epochs: Param[int] = field(default=2, groups="training")
    checkpoints = partial(exclude_groups=["training"])

    def execute(self) -> None:
        state = self.checkpoints / "state.json"
        start = json.loads(state.read_text())["epoch"] if state.exists() else 0
        Path("started-at").write_text(str(start))
        for epoch in range(start, self.epochs):
            tmp = state.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"epoch": epoch + 1}))
            os.replace(tmp, state)
        assert self.__maintaskdir__ == self.__taskdir__


ITER = param_group("iter")


class Sweep(ResumableTask):
    """Parameters in a group object, in no group, and in a kept group (partial selections)."""

    lr: Param[float]
    epochs: Param[int] = field(default=2, groups=ITER)
    seed: Param[int] = field(default=0, groups="seed")
    every: Param[int] = field(default=1, groups=[ITER, "seed"])
    by_iter = partial(exclude_groups=[ITER])
    only_seed = partial(exclude_all=True, include_groups=["seed"])
    ungrouped = partial(exclude_no_group=True)
    state: Meta[Path] = field(default_factory=PathGenerator("state.json", partial=by_iter))

    def execute(self) -> None:
        self.state.parent.mkdir(parents=True, exist_ok=True)
        count = json.loads(self.state.read_text())["runs"] if self.state.exists() else 0
        self.state.write_text(json.dumps({"runs": count + 1}))
