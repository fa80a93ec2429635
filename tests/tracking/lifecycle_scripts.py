"""Child processes of test_run_lifecycle.py: each scenario records a run the way a user's
script would, and ends the way the test asks (normal exit, exception, signal, kill).

Run as `python lifecycle_scripts.py SCENARIO SPEC`, SPEC a JSON object with at least
`workspace`. The first line on stdout is `id RUN_ID`; scenarios that the parent must
synchronise with print `ready` once what they announce is on disk. Every scenario stops by
itself within `LIMIT_S` seconds, so that a test that fails does not leave processes behind.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from etude.tracking import Run

LIMIT_S = 60.0
QUIET = {
    "auto_connect_arg_parser": False,
    "auto_connect_frameworks": False,
    "auto_resource_monitoring": False,
}


def say(line: str) -> None:
    print(line, flush=True)


def start(spec: dict[str, Any], **options: Any) -> Run:
    """`Run.init` as the spec says; console capture stays on (the default), unless asked."""
    kwargs = {
        "project": spec.get("project", "lifecycle"),
        "name": spec.get("name", "run"),
        "workspace": spec["workspace"],
        "reuse_last": spec.get("reuse_last", True),
        "continue_last": spec.get("continue_last", False),
        "auto_connect_streams": spec.get("streams", True),
        **QUIET,
        **options,
    }
    return Run.init(**kwargs)


def report(run: Run, first: int, count: int) -> None:
    """Points `first .. first+count-1` of loss/train, value = iteration / 2."""
    for iteration in range(first, first + count):
        run.logger.report_scalar("loss", "train", iteration / 2, iteration)


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + LIMIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("lifecycle script: condition not met in time")
        time.sleep(0.01)


# -- how a run ends ------------------------------------------------------------------------------
def ending(spec: dict[str, Any]) -> None:
    """Report 10 points, then end as `spec["end"]` says."""
    end = spec["end"]
    if end.startswith("with"):
        with start(spec) as run:
            say(f"id {run.id}")
            report(run, 0, 10)
            finish(end.removeprefix("with-"), spec)
        return
    run = start(spec)
    say(f"id {run.id}")
    report(run, 0, 10)
    if end == "close":
        run.close()
        say(f"closed {run.state}")
        return
    finish(end, spec)


def finish(end: str, spec: dict[str, Any]) -> None:
    if end == "exception":
        raise ValueError(spec["message"])
    if end == "keyboard-interrupt":
        raise KeyboardInterrupt
    if end == "sys-exit":
        sys.exit(int(spec["code"]))
    if end == "raise-system-exit":
        raise SystemExit(int(spec["code"]))
    if end == "caught-sys-exit":  # as a script that catches argparse's exit on bad arguments
        try:
            sys.exit(int(spec["code"]))
        except SystemExit:
            say("caught")
        return
    assert end == "normal", end


# -- signals -------------------------------------------------------------------------------------
def loop(spec: dict[str, Any]) -> None:
    """Report loss/train as fast as possible (iteration i, value i / 2). Say `ready` once the
    first points are in scalars.bin (with `settle`, also once the environment is captured, so
    that the capture thread is idle when a signal comes). With `progress`, append
    `TIME COUNT` to that file every ~0.1 s: COUNT points were reported by TIME."""
    run = start(spec)
    say(f"id {run.id}")
    if spec.get("settle"):
        run.environment  # noqa: B018 -- waits for the capture thread
    report_scalar = run.logger.report_scalar
    scalars = run.folder / "scalars.bin"
    progress = open(spec["progress"], "a", buffering=1) if spec.get("progress") else None  # noqa: SIM115
    ready = False
    started = time.monotonic()
    next_note = 0.0
    iteration = 0
    while time.monotonic() - started < LIMIT_S:
        for _ in range(256):
            report_scalar("loss", "train", iteration / 2, iteration)
            iteration += 1
        now = time.monotonic()
        if progress is not None and now >= next_note:
            progress.write(f"{time.time()!r} {iteration}\n")
            next_note = now + 0.1
        if not ready and scalars.exists() and scalars.stat().st_size > 0:
            ready = True
            say("ready")


def idle(spec: dict[str, Any]) -> None:
    """Hold a run open (in a `with` block if `with`) with 5 points flushed, say `ready`,
    then wait for a line on stdin and end normally (completed)."""
    run = start(spec)
    with run if spec.get("with") else contextlib.nullcontext(run):
        say(f"id {run.id}")
        report(run, 0, 5)
        run.logger.flush()
        run.environment  # noqa: B018 -- waits for the capture thread
        say("ready")
        sys.stdin.readline()


def closing(spec: dict[str, Any]) -> None:
    """Report 5 points and close the run (which waits for the environment capture, which a
    slow `git` may hold up); say `closing` once the close has begun (the logger says it is
    closed), from another thread, and `closed` after it."""
    run = start(spec)
    say(f"id {run.id}")
    report(run, 0, 5)
    run.logger.flush()
    log = run.logger

    def announce() -> None:
        wait_until(lambda: log.closed)
        say("closing")

    threading.Thread(target=announce, daemon=True).start()
    run.close()
    say("closed")


class SignalingIteration:
    """An iteration number (like a numpy integer) that receives a signal when `report_scalar`
    adds the run's offset to it: the signal arrives in the middle of `report_scalar`."""

    def __init__(self, value: int, signum: int) -> None:
        self.value, self.signum = value, signum

    def __add__(self, other: int) -> int:
        signal.raise_signal(self.signum)
        return self.value + other


class SignalingValue:
    """A value (like a tensor) whose conversion to float receives a signal."""

    def __init__(self, value: float, signum: int) -> None:
        self.value, self.signum = value, signum

    def __float__(self) -> float:
        signal.raise_signal(self.signum)
        return self.value


def interrupted_report(spec: dict[str, Any]) -> None:
    """Report 0..99, flush, Ctrl-C during the report of 100 (caught, as a training loop that
    stops an epoch early does), then report 101..199 and end normally."""
    run = start(spec)
    say(f"id {run.id}")
    report(run, 0, 100)
    run.logger.flush()
    try:
        run.logger.report_scalar("loss", "train", 50.0, SignalingIteration(100, signal.SIGINT))
    except KeyboardInterrupt:
        say("interrupted")
    report(run, 101, 99)


def terminated_report(spec: dict[str, Any]) -> None:
    """Report 0..9, then receive SIGTERM while reporting point 10."""
    run = start(spec)
    say(f"id {run.id}")
    report(run, 0, 10)
    run.logger.report_scalar("loss", "train", SignalingValue(5.0, signal.SIGTERM), 10)
    say("survived")


# -- many processes, reuse -----------------------------------------------------------------------
def concurrent(spec: dict[str, Any]) -> None:
    """Report `count` points over 2 series (loss/train and loss/test, iterations 0 ..
    count/2 - 1), then end normally."""
    run = start(spec)
    say(f"id {run.id}")
    report_scalar = run.logger.report_scalar
    for iteration in range(spec["count"] // 2):
        report_scalar("loss", "train", iteration / 2, iteration)
        report_scalar("loss", "test", -iteration / 2, iteration)


def record(spec: dict[str, Any]) -> None:
    """One complete run: parameters, a console line, points `first .. first+count-1` and an
    artifact if asked; ends normally."""
    run = start(spec)
    say(f"id {run.id}")
    if spec.get("params"):
        run.connect(spec["params"])
    if spec.get("console"):
        say(spec["console"])
    report(run, spec.get("first", 0), spec.get("count", 0))
    if spec.get("artifact"):
        run.upload_artifact(spec["artifact"], {"kept": True})
    if spec.get("publish"):
        run.close()
        Run.get(run.id, workspace=spec["workspace"]).publish()


SCENARIOS: dict[str, Callable[[dict[str, Any]], None]] = {
    "ending": ending,
    "loop": loop,
    "idle": idle,
    "closing": closing,
    "interrupted-report": interrupted_report,
    "terminated-report": terminated_report,
    "concurrent": concurrent,
    "record": record,
}


if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](json.loads(sys.argv[2]))
