"""The automatic hooks: real argparse, matplotlib (Agg), tensorboardX writing event files,
joblib and pickle writing files; the run is a recording fake (the run object is not needed
to test what the hooks send it)."""

from __future__ import annotations

import argparse
import enum
import io
import json
import logging
import pickle
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure
from tensorboardX import SummaryWriter

from etude.tracking import hook_state, import_hook
from etude.tracking.frameworks import (
    FrameworkSink,
    apply_pending_arguments,
    install_argparse_hook,
    install_framework_hooks,
    last_parsed_arguments,
    uninstall_all,
)


class RecordingSink:
    """Records every call as a tuple (kind, *arguments); `edits` simulate an agent's edits of
    the arguments; with `fail`, every call raises after being recorded."""

    def __init__(self, edits: dict[str, Any] | None = None, fail: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.edits = edits or {}
        self.fail = fail

    def _record(self, *call: Any) -> None:
        self.calls.append(call)
        if self.fail:
            raise RuntimeError("the run's store is gone")

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [call[1:] for call in self.calls if call[0] == kind]

    def connect_arguments(self, values: dict[str, Any], types: dict[str, str]) -> dict[str, Any]:
        self._record("arguments", values, types)
        return {**values, **self.edits}

    def report_scalar(self, title: str, series: str, value: float, iteration: int) -> None:
        self._record("scalar", title, series, value, iteration)

    def report_text(self, text: str) -> None:
        self._record("text", text)

    def report_image(self, title: str, series: str, iteration: int, image: Any) -> None:
        self._record("image", title, series, iteration, image)

    def report_histogram(self, title: str, series: str, iteration: int, values: Any) -> None:
        self._record("histogram", title, series, iteration, values)

    def report_matplotlib_figure(
        self, title: str, series: str, iteration: int, figure: Any
    ) -> None:
        self._record("figure", title, series, iteration, figure)

    def log_model(self, path: str, name: str | None = None, framework: str | None = None) -> None:
        self._record("model", path, name, framework)


class Current:
    """The getter of the current run; counts how often the hooks asked."""

    def __init__(self, sink: FrameworkSink | None = None) -> None:
        self.sink = sink
        self.asked = 0

    def __call__(self) -> FrameworkSink | None:
        self.asked += 1
        return self.sink


@pytest.fixture(autouse=True)
def clean_hooks() -> Iterator[None]:
    """Each test starts unhooked; afterwards the hooks `import etude.tracking` installed come
    back, so that other test modules see the process as they expect."""
    saved = dict(hook_state.state.getters)
    uninstall_all()
    yield
    uninstall_all()
    plt.close("all")
    if "argparse" in saved:
        install_argparse_hook(saved["argparse"])
    if "frameworks" in saved:
        install_framework_hooks(saved["frameworks"])


@pytest.fixture
def sink() -> RecordingSink:
    """A recording run, current for the framework hooks."""
    recording = RecordingSink()
    install_framework_hooks(Current(recording))
    return recording


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--name", default="base")
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--layers", type=int, nargs="+", default=[16])
    parser.add_argument("--out", type=Path, default=Path("out"))
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    return parser


PARSED_VALUES = {
    "lr": 0.01,
    "epochs": 10,
    "name": "base",
    "fast": False,
    "layers": [32, 64],
    "out": "out",
    "optimizer": "adam",
}
PARSED_TYPES = {
    "lr": "float",
    "epochs": "int",
    "name": "str",
    "fast": "bool",
    "layers": "list",
    "out": "Path",
    "optimizer": "str",
}


# ---------------------------------------------------------------------------------------------
# argparse


def test_parse_before_run_is_connected_by_apply_pending_arguments() -> None:
    """Values and types are remembered; the run's edits are written back, coerced."""
    install_argparse_hook(Current())
    args = make_parser().parse_args(["--lr", "0.01", "--layers", "32", "64"])
    assert last_parsed_arguments() == (PARSED_VALUES, PARSED_TYPES)

    run = RecordingSink(
        edits={
            "epochs": "5",
            "layers": ["8", "4"],
            "out": "/data/run",
            "fast": "true",
            "optimizer": "sgd",
        }
    )
    apply_pending_arguments(run)
    assert run.calls == [("arguments", PARSED_VALUES, PARSED_TYPES)]
    assert (args.epochs, args.layers, args.out, args.fast, args.optimizer) == (
        5,
        [8, 4],
        Path("/data/run"),
        True,
        "sgd",
    )
    assert type(args.epochs) is int and isinstance(args.out, Path)
    assert args.lr == 0.01 and args.name == "base"

    apply_pending_arguments(run)
    assert len(run.calls) == 1, "a pending parse is applied once"


def test_parse_while_run_is_current_connects_and_edits_at_once() -> None:
    run = RecordingSink(edits={"lr": "0.5"})
    install_argparse_hook(Current(run))
    args = make_parser().parse_args(["--lr", "0.01", "--layers", "32", "64"])
    assert run.calls == [("arguments", PARSED_VALUES, PARSED_TYPES)]
    assert args.lr == 0.5
    assert isinstance(args.out, Path), "an unchanged value keeps its parsed type"

    apply_pending_arguments(other := RecordingSink())
    assert other.calls == [], "a parse connected at once is not pending"


def test_subparsers_record_one_call_with_the_chosen_command() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--verbose", action="store_true")
    commands = parser.add_subparsers(dest="command")
    train = commands.add_parser("train")
    train.add_argument("--epochs", type=int, default=1)
    evaluate = commands.add_parser("eval")
    evaluate.add_argument("--split", default="test")
    run = RecordingSink(edits={"epochs": "7"})
    install_argparse_hook(Current(run))

    args = parser.parse_args(["--verbose", "train", "--epochs", "3"])

    assert run.calls == [
        (
            "arguments",
            {"verbose": True, "command": "train", "epochs": 3},
            {"verbose": "bool", "command": "str", "epochs": "int"},
        )
    ]
    assert args.epochs == 7


@pytest.mark.parametrize(
    ("edits", "dest", "kept"),
    [
        pytest.param({"epochs": "many"}, "epochs", 10, id="not-convertible"),
        pytest.param({"optimizer": "rmsprop"}, "optimizer", "adam", id="outside-choices"),
        pytest.param({"fast": "maybe"}, "fast", False, id="not-a-boolean"),
        pytest.param({"layers": ["8", "x"]}, "layers", [16], id="list-item-not-convertible"),
    ],
)
def test_an_edit_that_does_not_fit_keeps_the_parsed_value(
    edits: dict[str, Any], dest: str, kept: Any, caplog: pytest.LogCaptureFixture
) -> None:
    install_argparse_hook(Current(RecordingSink(edits=edits)))
    args = make_parser().parse_args([])
    assert getattr(args, dest) == kept
    assert any(
        f"argument {dest!r}" in r.getMessage() and r.levelno == logging.WARNING
        for r in caplog.records
    )


def test_no_run_leaves_argparse_results_unchanged() -> None:
    argv = ["--lr", "2", "--fast", "--out", "x/y", "--unknown", "1"]
    current = Current()
    install_argparse_hook(current)
    hooked = make_parser().parse_known_args(argv)
    assert current.asked == 1, "the hook ran"
    uninstall_all()
    plain = make_parser().parse_known_args(argv)
    assert vars(hooked[0]) == vars(plain[0]) and hooked[1] == plain[1] == ["--unknown", "1"]


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def handle() -> None:
    """A sub-command handler, as set_defaults(func=...) stores it."""


def test_values_are_json_friendly_and_edits_come_back_typed() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--color", type=Color, default=Color.RED)
    parser.add_argument("--tags", default={"b", "a"})
    parser.add_argument("--size", default=(3, 4))
    parser.add_argument("-v", action="count", default=0)
    parser.set_defaults(handler=handle)
    install_argparse_hook(Current())
    args = parser.parse_args(["-vv"])

    parsed = last_parsed_arguments()
    assert parsed == (
        {
            "color": "red",
            "tags": ["a", "b"],
            "size": [3, 4],
            "v": 2,
            "handler": f"{__name__}.handle",
        },
        {"color": "Color", "tags": "set", "size": "tuple", "v": "int", "handler": "function"},
    )
    json.dumps(parsed[0])

    apply_pending_arguments(RecordingSink(edits={"color": "blue"}))
    assert args.color is Color.BLUE
    assert args.tags == {"a", "b"} and args.handler is handle


def test_help_version_and_suppressed_defaults_are_left_out() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", action="version", version="1.0")
    parser.add_argument("--hidden", default=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0)
    install_argparse_hook(Current())
    parser.parse_args([])
    assert last_parsed_arguments() == ({"seed": 0}, {"seed": "int"})


def test_a_parse_that_exits_records_nothing_and_the_next_one_is_recorded(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = RecordingSink()
    install_argparse_hook(Current(run))
    for argv in (["--help"], ["--epochs", "x"]):
        with pytest.raises(SystemExit):
            make_parser().parse_args(argv)
    assert run.calls == []
    make_parser().parse_args([])
    assert len(run.calls) == 1


def test_a_run_returning_no_dict_is_logged_and_the_parse_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class NoneSink(RecordingSink):
        def connect_arguments(self, values: dict[str, Any], types: dict[str, str]) -> Any:
            return None

    install_argparse_hook(Current(NoneSink()))
    assert make_parser().parse_args(["--epochs", "3"]).epochs == 3
    assert "TypeError: connect_arguments returned NoneType" in caplog.text


def test_install_argparse_hook_twice_connects_once() -> None:
    first, second = RecordingSink(), RecordingSink()
    install_argparse_hook(Current(first))
    install_argparse_hook(Current(second))
    make_parser().parse_args([])
    assert (len(first.calls), len(second.calls)) == (0, 1)


def test_a_failing_connect_is_logged_once_and_parse_works(caplog: pytest.LogCaptureFixture) -> None:
    install_argparse_hook(Current(RecordingSink(fail=True)))
    assert make_parser().parse_args(["--epochs", "3"]).epochs == 3
    assert make_parser().parse_args(["--epochs", "4"]).epochs == 4
    warnings_ = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings_) == 1 and "RuntimeError: the run's store is gone" in warnings_[0].message


# ---------------------------------------------------------------------------------------------
# matplotlib


def test_savefig_reports_each_figure_with_its_title_and_counter(
    sink: RecordingSink, tmp_path: Path
) -> None:
    loss = plt.figure()
    loss.suptitle("Loss")
    loss.savefig(tmp_path / "a.png")
    loss.savefig(tmp_path / "b.png")
    accuracy = plt.figure()
    accuracy.add_subplot().set_title("accuracy")
    plt.savefig(tmp_path / "c.png")
    plain = Figure()
    plain.add_subplot()
    plain.savefig(tmp_path / "d.png")

    assert sink.of("figure") == [
        ("Loss", f"figure {loss.number}", 0, loss),
        ("Loss", f"figure {loss.number}", 1, loss),
        ("accuracy", f"figure {accuracy.number}", 0, accuracy),
        ("matplotlib", "figure", 0, plain),
    ]
    assert all((tmp_path / name).stat().st_size > 0 for name in ("a.png", "b.png", "d.png"))


def test_show_reports_every_open_figure(sink: RecordingSink) -> None:
    first = plt.figure()
    first.suptitle("one")
    second = plt.figure()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Agg: "non-interactive, cannot be shown"
        assert plt.show() is None
    assert [call[:3] for call in sink.of("figure")] == [
        ("one", f"figure {first.number}", 0),
        ("matplotlib", f"figure {second.number}", 0),
    ]


def test_what_the_run_saves_while_reporting_is_not_recorded(tmp_path: Path) -> None:
    """The run saving the figure (savefig) or a file of its own (joblib) inside a report."""
    saved = io.BytesIO()

    class SavingSink(RecordingSink):
        def report_matplotlib_figure(
            self, title: str, series: str, iteration: int, figure: Any
        ) -> None:
            super().report_matplotlib_figure(title, series, iteration, figure)
            figure.savefig(saved, format="png")
            joblib.dump(title, tmp_path / "index.joblib")

    run = SavingSink()
    install_framework_hooks(Current(run))
    plt.figure().savefig(tmp_path / "a.png")
    assert len(run.calls) == 1 and saved.getvalue().startswith(b"\x89PNG")
    assert (tmp_path / "index.joblib").exists()


def test_savefig_called_from_etude_is_not_reported(sink: RecordingSink, tmp_path: Path) -> None:
    figure = plt.figure()
    code = compile("figure.savefig(path)", "<etude module>", "exec")
    exec(code, {"__name__": "etude.tracking.fake", "figure": figure, "path": tmp_path / "a.png"})
    assert sink.calls == [] and (tmp_path / "a.png").exists()


POST_IMPORT_SCRIPT = """
import sys
import etude.tracking.frameworks as module
heavy = {"matplotlib", "tensorboardX", "joblib", "torch", "numpy"}
print("HEAVY", sorted(m for m in sys.modules if m.split(".")[0] in heavy))

class PrintingSink:
    def report_matplotlib_figure(self, title, series, iteration, figure):
        print("FIGURE", title, series, iteration)
    def log_model(self, path, name=None, framework=None):
        print("MODEL", framework, path)

sink = PrintingSink()
module.install_framework_hooks(lambda: sink)
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
figure = plt.figure()
figure.suptitle("late")
figure.savefig(sys.argv[1] + "/late.png")
import joblib
joblib.dump([1, 2], sys.argv[1] + "/late.joblib")
"""


def test_libraries_imported_after_install_are_hooked_on_import(tmp_path: Path) -> None:
    """In a fresh process: importing etude.tracking.frameworks imports no library; matplotlib
    and joblib imported after install_framework_hooks are hooked by their import."""
    result = subprocess.run(
        [sys.executable, "-c", POST_IMPORT_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "HEAVY []",
        "FIGURE late figure 1 0",
        f"MODEL joblib {tmp_path / 'late.joblib'}",
    ]


# ---------------------------------------------------------------------------------------------
# TensorBoard


def test_summary_writer_calls_are_reported_and_still_written(
    sink: RecordingSink, tmp_path: Path
) -> None:
    writer = SummaryWriter(logdir=str(tmp_path / "tb"))
    writer.add_scalar("loss/train/step", 1.5, 3)
    writer.add_scalar("lr", np.float32(0.25))
    writer.add_scalar("lr", 0.5)
    writer.add_scalars("metrics", {"a": 1, "b": 2.5}, 7)
    writer.add_scalars("metrics", {"a": 3})
    writer.add_image("samples/input", np.zeros((3, 4, 5)), 2)
    writer.add_image("gray", np.ones((4, 5), dtype=np.uint8), dataformats="HW")
    writer.add_image("batch", np.zeros((2, 4, 5, 3)), 1, dataformats="NHWC")
    writer.add_text("notes", "hello", 1)
    writer.add_histogram("weights/w", np.arange(10.0), 4)
    writer.add_histogram("weights/w", np.arange(10.0))
    writer.close()

    assert sink.of("scalar") == [
        ("loss/train", "step", 1.5, 3),
        ("lr", "lr", 0.25, 0),
        ("lr", "lr", 0.5, 1),
        ("metrics", "a", 1.0, 7),
        ("metrics", "b", 2.5, 7),
        ("metrics", "a", 3.0, 0),
    ]
    assert [(t, s, i, image.shape) for t, s, i, image in sink.of("image")] == [
        ("samples", "input", 2, (4, 5, 3)),
        ("gray", "gray", 0, (4, 5)),
        ("batch", "batch", 1, (4, 10, 3)),
    ]
    assert sink.of("text") == [("notes: hello",)]
    assert [(t, s, i, list(v)) for t, s, i, v in sink.of("histogram")] == [
        ("weights", "w", 4, list(range(10))),
        ("weights", "w", 0, list(range(10))),
    ]
    events = list((tmp_path / "tb").rglob("events.out.tfevents*"))
    assert events and all(path.stat().st_size > 0 for path in events)


def test_steps_counted_from_threads_are_unique(sink: RecordingSink, tmp_path: Path) -> None:
    writer = SummaryWriter(logdir=str(tmp_path / "tb"))

    def write() -> None:
        for _ in range(50):
            writer.add_scalar("t", 1.0)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    assert sorted(call[3] for call in sink.of("scalar")) == list(range(200))


# ---------------------------------------------------------------------------------------------
# Saved models


def test_joblib_dump_of_a_model_to_a_path_is_logged(sink: RecordingSink, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    path = tmp_path / "model.joblib"
    assert joblib.dump(model, path) == [str(path)]
    joblib.dump(model, io.BytesIO())
    assert sink.calls == [("model", str(path), None, "joblib")]
    assert joblib.load(path).predict([[3.0]]).tolist() == [1]


def test_pickle_dump_to_a_model_file_is_logged(sink: RecordingSink, tmp_path: Path) -> None:
    (tmp_path / ".etude").mkdir()
    for name in ("model.pkl", "data.bin", ".etude/state.pkl"):
        with open(tmp_path / name, "wb") as file:
            pickle.dump({"w": 1}, file)
    pickle.dump({"w": 1}, io.BytesIO())
    assert sink.calls == [("model", str(tmp_path / "model.pkl"), None, "pickle")]
    assert pickle.loads((tmp_path / "model.pkl").read_bytes()) == {"w": 1}


def test_pickle_dump_from_etude_is_not_logged(sink: RecordingSink, tmp_path: Path) -> None:
    code = compile("with open(path, 'wb') as f:\n    pickle.dump(1, f)", "<etude>", "exec")
    exec(
        code, {"__name__": "etude.tracking.fake", "pickle": pickle, "path": tmp_path / "model.pkl"}
    )
    assert sink.calls == [] and (tmp_path / "model.pkl").exists()


# ---------------------------------------------------------------------------------------------
# Failures, no run, uninstall


def test_a_failing_sink_is_logged_once_per_hook_and_calls_work(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="etude.tracking")
    install_framework_hooks(Current(RecordingSink(fail=True)))
    writer = SummaryWriter(logdir=str(tmp_path / "tb"))
    writer.add_scalar("loss", 1.0, 0)
    writer.add_scalar("loss", 2.0, 1)
    writer.close()
    assert joblib.dump(1, tmp_path / "a.joblib") == [str(tmp_path / "a.joblib")]
    assert joblib.dump(2, tmp_path / "b.joblib") == [str(tmp_path / "b.joblib")]

    records = [r for r in caplog.records if r.name == "etude.tracking"]
    assert [(r.levelno, r.args[0]) for r in records] == [  # type: ignore[index]
        (logging.WARNING, "SummaryWriter.add_scalar"),
        (logging.DEBUG, "SummaryWriter.add_scalar"),
        (logging.WARNING, "joblib.dump"),
        (logging.DEBUG, "joblib.dump"),
    ]
    assert all(r.exc_info is not None for r in records), "the cause comes with the log"


def test_without_a_run_the_hooks_only_call_the_originals(tmp_path: Path) -> None:
    current = Current()
    install_framework_hooks(current)
    plt.figure().savefig(tmp_path / "a.png")
    writer = SummaryWriter(logdir=str(tmp_path / "tb"))
    writer.add_scalar("loss", 1.0, 0)
    writer.close()
    assert joblib.dump(1, tmp_path / "a.joblib") == [str(tmp_path / "a.joblib")]
    assert current.asked == 3, "each hook asked for the run, found none, and went on"
    assert (tmp_path / "a.png").exists() and joblib.load(tmp_path / "a.joblib") == 1


def test_uninstall_all_restores_the_originals() -> None:
    targets = [
        (argparse.ArgumentParser, "parse_known_args"),
        (Figure, "savefig"),
        (plt, "show"),
        (SummaryWriter, "add_scalar"),
        (joblib, "dump"),
        (pickle, "dump"),
    ]
    originals = [getattr(owner, name) for owner, name in targets]
    install_argparse_hook(Current())
    install_framework_hooks(Current())
    assert all(getattr(o, n) is not orig for (o, n), orig in zip(targets, originals, strict=True))

    uninstall_all()
    assert all(getattr(o, n) is orig for (o, n), orig in zip(targets, originals, strict=True))
    assert not any(isinstance(f, import_hook._PostImportFinder) for f in sys.meta_path)
