"""Models shared by the infra tests; job processes import them from here (by class reference).

`log` and `gate` are paths used to observe and steer computations from the test; they are
left out of the uid.
"""

from __future__ import annotations

import os
import time
import typing as tp
from collections.abc import Iterator, Sequence
from pathlib import Path

import pydantic

from etude.infra import MapInfra, TaskInfra


def wait_for(condition: tp.Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll `condition` until it holds; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(pause)
        pause = min(pause * 1.5, 0.1)


def _note(log: str, text: str) -> None:
    if log:
        with open(log, "a") as out:
            out.write(text + "\n")


class Counted(pydantic.BaseModel):
    """Doubles `x`; each computation appends a line to `log`, and waits for `gate` if set."""

    x: int = 1
    fail: bool = False
    log: str = ""
    gate: str = ""
    infra: TaskInfra = TaskInfra(version="1")
    _exclude_from_cls_uid = ("log", "gate")

    @infra.apply
    def process(self) -> int:
        _note(self.log, f"{os.getpid()} {self.x}")
        if self.gate:
            wait_for(lambda: Path(self.gate).exists(), what=self.gate)
        if self.fail:
            raise ValueError(f"failing on purpose for x={self.x}")
        return self.x * 2


class Squares(pydantic.BaseModel):
    """Maps items to `item ** 2 + offset`; each computed item appends a line to `log`."""

    offset: int = 0
    fail_on: int | None = None
    log: str = ""
    infra: MapInfra = MapInfra(version="1")
    _exclude_from_cls_uid = ("log",)

    @infra.apply(item_uid=str)
    def process(self, items: Sequence[int]) -> Iterator[int]:
        for item in items:
            _note(self.log, str(item))
            if item == self.fail_on:
                raise ValueError(f"item {item} fails on purpose")
            yield item**2 + self.offset


def log_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
