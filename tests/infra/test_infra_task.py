"""TaskInfra in this process: caching, modes, kept errors, folders, and two racing processes."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pydantic
import pytest
from infra_models import Counted, log_lines, wait_for

from etude.infra import CacheMismatchError, InfraConfigError, JobError, ReadOnlyError, TaskInfra


class TutorialTask(pydantic.BaseModel):
    param: int = 12
    infra: TaskInfra = TaskInfra(version="1")

    @infra.apply
    def process(self) -> float:
        return self.param * 1.5


def counted(tmp_path: Path, **kwargs: object) -> Counted:
    infra = kwargs.pop("infra", {})
    return Counted(
        log=str(tmp_path / "log"), infra={"folder": tmp_path / "cache", **infra}, **kwargs
    )  # type: ignore[arg-type, dict-item]


def test_seed_job_example(tmp_path: Path) -> None:
    """Seed: the method's value equals the job's result."""
    task = TutorialTask(infra={"folder": tmp_path})
    assert task.process() == task.infra.job().result() == 18.0
    assert task.infra.status() == "completed"


def test_result_is_computed_once_and_read_back(tmp_path: Path) -> None:
    assert counted(tmp_path, x=3).process() == 6
    assert counted(tmp_path, x=3).process() == 6
    assert len(log_lines(tmp_path / "log")) == 1


def test_folder_layout(tmp_path: Path) -> None:
    task = counted(tmp_path, x=3)
    task.process()
    folder = tmp_path / "cache" / "infra_models.Counted.process,1" / "x=3-54afd0d5"
    assert task.infra.uid_folder() == folder
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "uid.json", "full-uid.json", "result.pkl", ".etude"} <= names
    assert json.loads((folder / "uid.json").read_text()) == {"x": 3}
    config = json.loads((folder / "config.json").read_text())
    assert config["x"] == 3 and config["infra"] == {"version": "1"}
    assert (folder / ".etude" / "done.json").exists()


def test_without_folder_results_stay_in_memory(tmp_path: Path) -> None:
    task = Counted(x=2, log=str(tmp_path / "log"))
    assert task.process() == task.process() == 4
    assert len(log_lines(tmp_path / "log")) == 1
    assert Counted(x=2, log=str(tmp_path / "log")).process() == 4
    assert len(log_lines(tmp_path / "log")) == 2


def test_error_is_kept_and_reraised_with_traceback(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="failing on purpose"):
        counted(tmp_path, fail=True).process()
    again = counted(tmp_path, fail=True)
    assert again.infra.status() == "failed"
    with pytest.raises(JobError) as info:
        again.process()
    message = str(info.value)
    assert "ValueError: failing on purpose for x=1" in message
    assert "Traceback of the failed computation" in message and "infra_models.py" in message
    assert isinstance(info.value.__cause__, ValueError)
    assert len(log_lines(tmp_path / "log")) == 1


def test_retry_mode_recomputes_failures_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        counted(tmp_path, fail=True).process()
    retried = counted(tmp_path, fail=True, infra={"mode": "retry"})
    with pytest.raises(ValueError):
        retried.process()
    assert len(log_lines(tmp_path / "log")) == 2
    counted(tmp_path, x=5).process()
    assert counted(tmp_path, x=5, infra={"mode": "retry"}).process() == 10
    assert len(log_lines(tmp_path / "log")) == 3


def test_force_mode_recomputes_once_per_object(tmp_path: Path) -> None:
    counted(tmp_path).process()
    forced = counted(tmp_path, infra={"mode": "force"})
    assert forced.process() == forced.process() == 2
    assert len(log_lines(tmp_path / "log")) == 2


def test_read_only_mode_errors_when_missing(tmp_path: Path) -> None:
    with pytest.raises(ReadOnlyError, match=r"no cached result for uid x=4-.*'read-only'"):
        counted(tmp_path, x=4, infra={"mode": "read-only"}).process()
    counted(tmp_path, x=4).process()
    assert counted(tmp_path, x=4, infra={"mode": "read-only"}).process() == 8


def test_changed_default_gives_a_mismatch_error(tmp_path: Path) -> None:
    class Versioned(pydantic.BaseModel):
        x: int = 1
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def process(self) -> int:
            return self.x

    Versioned(infra={"folder": tmp_path}).process()
    full = next(tmp_path.glob("*/default/full-uid.json"))
    full.write_text(json.dumps({"x": 0, "infra": {"version": "0"}}))
    (full.parent / "result.pkl").unlink()
    with pytest.raises(CacheMismatchError, match=r"x: 0 cached, 1 now.*version"):
        Versioned(infra={"folder": tmp_path}).process()


def test_status_clear_job_and_iter_cached(tmp_path: Path) -> None:
    task = counted(tmp_path, x=7)
    assert task.infra.status() == "not submitted"
    task.process()
    assert task.infra.status() == "completed"
    cached = list(task.infra.iter_cached())
    assert [c.x for c in cached] == [7]
    assert cached[0].infra.folder == tmp_path / "cache"
    task.infra.clear_job()
    assert task.infra.status() == "not submitted"
    assert task.process() == 14
    assert len(log_lines(tmp_path / "log")) == 2


def test_clone_obj_with_dotted_keys(tmp_path: Path) -> None:
    task = counted(tmp_path, x=1)
    clone = task.infra.clone_obj({"x": 4, "infra.mode": "force"})
    assert (clone.x, clone.infra.mode, clone.infra.folder) == (4, "force", tmp_path / "cache")
    assert clone.infra.version == "1" and task.infra.mode == "cached"
    assert clone.infra.uid() == counted(tmp_path, x=4).infra.uid()


def test_copies_get_their_own_infra(tmp_path: Path) -> None:
    task = counted(tmp_path, x=1)
    copy = task.model_copy(update={"x": 5})
    assert copy.infra is not task.infra
    assert copy.infra.uid() != task.infra.uid()
    assert copy.process() == 10


def test_model_with_arguments_is_pickled_with_its_infra(tmp_path: Path) -> None:
    import pickle

    task = counted(tmp_path, x=9)
    loaded = pickle.loads(pickle.dumps(task))
    assert loaded.infra.uid() == task.infra.uid()
    assert loaded.process() == 18


RACE = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from infra_models import Counted
    task = Counted(x=6, log={log!r}, gate={gate!r}, infra={{"folder": {folder!r}}})
    print(task.process())
    """
)


def test_two_processes_compute_one_result(tmp_path: Path) -> None:
    """Two real processes ask for one uid at once: one computes, the other reads its result."""
    script = tmp_path / "race.py"
    log, gate = tmp_path / "log", tmp_path / "gate"
    tests = str(Path(__file__).parent)
    script.write_text(RACE.format(tests=tests, log=str(log), gate=str(gate), folder=str(tmp_path)))
    env = {**os.environ, "PYTHONPATH": tests}
    procs = [
        subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env, text=True)
        for _ in range(2)
    ]
    wait_for(lambda: len(log_lines(log)) >= 1, what="a computation to start")
    lock = next(tmp_path.glob("*/x=6-*/.etude/lock"))
    wait_for(lambda: all(p.poll() is None for p in procs) and lock.exists(), what="both running")
    gate.touch()
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert outputs == ["12", "12"]
    assert [p.returncode for p in procs] == [0, 0]
    assert len(log_lines(log)) == 1


class Holder(pydantic.BaseModel):
    values: list[Any] = []
    other: int = 0


class OrderedCfg(pydantic.BaseModel):
    d: collections.OrderedDict[str, Any] = collections.OrderedDict()
    sub: Holder = Holder()
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def build(self) -> str:
        return ",".join(self.d)


@pytest.mark.parametrize(
    "updates",
    [pytest.param({}, id="no-update"), pytest.param({"sub.other": 1}, id="dotted-update")],
)
def test_clone_obj_shares_no_mutable_value(tmp_path: Path, updates: dict[str, Any]) -> None:
    w = OrderedCfg(
        d={str(k): [1] for k in range(3)}, sub={"values": [1]}, infra={"folder": tmp_path}
    )
    clone = w.infra.clone_obj(updates)
    assert (clone.infra.uid() == w.infra.uid()) == (not updates)
    clone.d["0"][0] = 12
    clone.sub.values.append(2)
    assert w.d["0"] == [1] and w.sub.values == [1]
    assert isinstance(clone.d, collections.OrderedDict) and list(clone.d) == ["0", "1", "2"]


class WithHandle(pydantic.BaseModel):
    handle: Any = None
    infra: TaskInfra = TaskInfra()
    _exclude_from_cls_uid = ("handle",)

    @infra.apply
    def build(self) -> int:
        return 1


def test_clone_obj_names_a_field_that_cannot_be_copied() -> None:
    w = WithHandle(handle=threading.Lock())
    with pytest.raises(InfraConfigError, match="field 'handle' cannot be deep-copied"):
        w.infra.clone_obj()
