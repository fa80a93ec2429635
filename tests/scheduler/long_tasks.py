"""Long-running task classes for the long-jobs tests (importable by job processes)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from etude import (
    GracefulTimeout,
    Meta,
    Param,
    PathGenerator,
    ResumableTask,
    Task,
    TaskCancelled,
    field,
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
