"""`etude jobs ...` on real workspaces made by running experiment scripts."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from etude.cli.jobs import _delete
from etude.workspace import FileLock, JobDir, Workspace, read_status

from .support import gone, job_ids, list_json, run_cli

HEX64 = set("0123456789abcdef")


def _job(workspace: Path, job_id: str) -> JobDir:
    return Workspace(workspace).find_job(job_id)


def _cli(*argv: str | os.PathLike[str], **kwargs) -> subprocess.CompletedProcess[str]:
    """Run `python -m etude.cli ARGV` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "etude.cli", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


# -- list ------------------------------------------------------------------------------------
def test_list_json_describes_every_job(demo, capsys):
    rows = {row["id"]: row for row in list_json(capsys, demo)}
    ids = job_ids(demo)
    assert set(rows) == set(ids.values())
    for row in rows.values():
        assert len(row["id"]) == 64 and set(row["id"]) <= HEX64
        assert Path(row["path"]).is_dir() and Path(row["path"]).name == row["id"]
        assert row["problems"] == []
    done = rows[ids["x0"]]
    assert {key: done[key] for key in ("id", "task", "state", "reason", "message")} == {
        "id": ids["x0"],
        "task": "xp.Hello",
        "state": "done",
        "reason": None,
        "message": None,
    }
    assert (done["experiment"], done["tags"], done["kind"], done["launcher"]) == (
        "demo",
        {"x": 0},
        "task",
        "direct",
    )
    assert done["submitted"] <= done["started"] <= done["ended"]
    failed = rows[ids["x2"]]
    assert (failed["state"], failed["reason"]) == ("error", "error")
    assert failed["message"] == "ValueError: boom", "the exception's type is kept"
    assert rows[ids["b"]]["task"] == "xp.Other" and rows[ids["b"]]["tags"] == {"name": "b"}


def test_list_table_shows_short_ids_states_and_tags(demo, capsys):
    status, out, _ = run_cli(capsys, "jobs", "list", "-w", demo)
    assert status == 0
    ids = job_ids(demo)
    lines = {key: next(line for line in out.splitlines() if ids[key][:12] in line) for key in ids}
    assert ids["x0"][:13] not in out, "ids are shortened to 12 characters"
    assert lines["x2"].split()[1:5] == ["xp.Hello", "error", "error", "x=2"]
    assert lines["b"].split()[1:4] == ["xp.Other", "done", "name=b"]
    assert lines["b"].split()[4].endswith("s"), "the duration"


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param(["--state", "done"], {"x0", "x1", "b"}, id="state"),
        pytest.param(["--state", "failed"], {"x2"}, id="failed-is-error"),
        pytest.param(["--state", "ERROR"], {"x2"}, id="state-case"),
        pytest.param(["--state", "running"], set(), id="state-none"),
        pytest.param(
            ["--state", "error", "--state", "done"], {"x0", "x1", "x2", "b"}, id="states-or"
        ),
        pytest.param(["--task", "hello"], {"x0", "x1", "x2"}, id="task-last-part"),
        pytest.param(["--task", "XP.OTHER"], {"b"}, id="task-qualified"),
        pytest.param(["--task", "xp"], set(), id="task-not-a-prefix"),
        pytest.param(["--tag", "x=1"], {"x1"}, id="tag-value"),
        pytest.param(["--tag", "x=1e0"], {"x1"}, id="tag-value-compared-as-a-number"),
        pytest.param(["--tag", "x"], {"x0", "x1", "x2"}, id="tag-exists"),
        pytest.param(["--tag", "x=1", "--tag", "name"], set(), id="tags-and"),
        pytest.param(
            ["--tag", "name=b", "--state", "done", "--task", "other"], {"b"}, id="all-filters"
        ),
    ],
)
def test_list_filters(demo, capsys, filters, expected):
    ids = {job_id: key for key, job_id in job_ids(demo).items()}
    assert {ids[row["id"]] for row in list_json(capsys, demo, *filters)} == expected


def test_list_rejects_an_unknown_state_listing_the_valid_ones(demo, capsys):
    status, out, err = run_cli(capsys, "jobs", "list", "--state", "finished", "-w", demo)
    assert status == 2 and out == ""
    assert "unknown state 'finished'" in err and "done, error, running" in err


def test_list_survives_corrupt_params(demo, capsys):
    """Once `index check` has read the folder again, the task comes from the folder name, tags
    are empty and the problem is listed (until then the index keeps what it knew)."""
    ids = job_ids(demo)
    _job(demo, ids["x1"]).params.write_text('{"id": "trunc')
    status, out, _ = run_cli(capsys, "index", "check", "-w", demo)
    assert status == 1 and "params.json: is not valid JSON" in out
    rows = {row["id"]: row for row in list_json(capsys, demo)}
    assert len(rows) == 4
    broken = rows[ids["x1"]]
    assert (broken["task"], broken["state"], broken["tags"]) == ("xp.hello", "done", {})
    assert len(broken["problems"]) == 1 and "params.json" in broken["problems"][0]
    status, out, _ = run_cli(capsys, "jobs", "list", "-w", demo)
    assert status == 0 and "params.json: is not valid JSON" in out.replace("\n", "")


def test_list_survives_truncated_done_marker(demo, capsys):
    ids = job_ids(demo)
    _job(demo, ids["x0"]).done.write_bytes(b'{"star')
    status, out, _ = run_cli(capsys, "index", "check", "-w", demo)
    assert status == 1 and "done.json" in out
    row = next(row for row in list_json(capsys, demo) if row["id"] == ids["x0"])
    assert row["state"] != "done" and row["tags"] == {"x": 0}
    assert any("done.json" in problem for problem in row["problems"])


def test_list_where_sort_and_limit(demo, capsys):
    ids = {job_id: key for key, job_id in job_ids(demo).items()}
    rows = list_json(capsys, demo, "--where", "tags.x >= 1 or tags.name = b", "--sort", "-tags.x")
    assert [ids[row["id"]] for row in rows] == ["x2", "x1", "b"]
    rows = list_json(capsys, demo, "--sort", "-tags.x", "--limit", "2", "--offset", "1")
    assert [ids[row["id"]] for row in rows] == ["x1", "x0"]


def test_list_count_per_state(demo, capsys):
    status, out, _ = run_cli(capsys, "jobs", "list", "--count", "--json", "-w", demo)
    assert status == 0 and json.loads(out) == {"done": 3, "error": 1}
    status, out, _ = run_cli(capsys, "jobs", "list", "--count", "--task", "hello", "-w", demo)
    assert status == 0
    assert [line.split() for line in out.splitlines()] == [
        ["done", "2"],
        ["error", "1"],
        ["total", "3"],
    ]


def test_list_columns_show_parameters_tags_and_fields(demo, capsys):
    ids = {job_id: key for key, job_id in job_ids(demo).items()}
    rows = list_json(capsys, demo, "--columns", "params.x,tags.name,experiment")
    columns = {ids[row["id"]]: row["columns"] for row in rows}
    assert columns["x1"] == {"params.x": 1, "tags.name": None, "experiment": "demo"}
    assert columns["b"] == {"params.x": None, "tags.name": "b", "experiment": "demo"}
    status, out, _ = run_cli(capsys, "jobs", "list", "--columns", "params.x", "-w", demo)
    short = job_ids(demo)["x2"][:12]
    line = next(line for line in out.splitlines() if line.startswith(f" {short}"))
    assert line.split()[-1] == "2"
    status, _, err = run_cli(capsys, "jobs", "list", "--columns", "lr", "-w", demo)
    assert status == 2 and "unknown column 'lr'" in err and "params.PATH" in err


def test_diff_prints_the_parameters_two_jobs_differ_in(demo, capsys):
    ids = job_ids(demo)
    status, out, _ = run_cli(capsys, "jobs", "diff", ids["x0"][:8], ids["x2"][:8], "-w", demo)
    assert status == 0
    assert out.splitlines()[1:] == ["  x: 0 -> 2"]
    status, out, _ = run_cli(
        capsys, "jobs", "diff", ids["x0"][:8], ids["b"][:8], "--json", "-w", demo
    )
    data = json.loads(out)
    assert (data["first"]["task"], data["second"]["task"]) == ("xp.Hello", "xp.Other")
    assert {(c["path"], c["only_in"]) for c in data["changes"]} == {
        ("x", "first"),
        ("name", "second"),
    }


def test_list_bad_where_points_at_the_mistake(demo, capsys):
    status, out, err = run_cli(capsys, "jobs", "list", "--where", "stat = done", "-w", demo)
    assert status == 2 and out == ""
    assert "unknown field 'stat'" in err and "state" in err and "^" in err


def test_list_shows_a_folder_without_etude_files(demo, capsys):
    orphan = demo / "jobs" / "xp.hello" / ("f" * 64)
    orphan.mkdir()
    row = next(row for row in list_json(capsys, demo) if row["id"] == "f" * 64)
    assert (row["task"], row["state"], row["tags"]) == ("xp.hello", "unscheduled", {})
    assert "params.json: missing" in row["problems"][0]


def test_list_in_a_real_process_with_workspace_from_environment(demo):
    result = _cli(
        "jobs",
        "list",
        "--json",
        "--state",
        "done",
        env={**os.environ, "ETUDE_WORKSPACE": str(demo)},
    )
    assert result.returncode == 0, result.stderr
    assert sorted(row["task"] for row in json.loads(result.stdout)) == [
        "xp.Hello",
        "xp.Hello",
        "xp.Other",
    ]


def test_workspace_defaults_to_the_current_folder(demo, capsys, monkeypatch):
    monkeypatch.delenv("ETUDE_WORKSPACE", raising=False)
    monkeypatch.chdir(demo)
    status, out, _ = run_cli(capsys, "jobs", "list", "--json")
    assert status == 0 and len(json.loads(out)) == 4


def test_workspace_option_before_the_command(demo, capsys):
    status, out, _ = run_cli(capsys, "-w", demo, "jobs", "list", "--json")
    assert status == 0 and len(json.loads(out)) == 4


def test_missing_workspace_is_a_one_line_error(tmp_path):
    result = _cli("jobs", "list", "-w", tmp_path / "nowhere")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "nowhere" in result.stderr
    assert "does not exist" in result.stderr


# -- path ------------------------------------------------------------------------------------
def test_path_prints_the_job_folder(demo, capsys):
    job_id = job_ids(demo)["x2"]
    status, out, _ = run_cli(capsys, "jobs", "path", job_id[:6], "-w", demo)
    assert status == 0
    assert out == f"{demo.resolve() / 'jobs' / 'xp.hello' / job_id}\n"


def test_unknown_id_is_a_one_line_error(demo):
    result = _cli("jobs", "path", "zzzz", "-w", demo)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("etude: no job id starts with 'zzzz'")
    assert result.stderr.count("\n") == 1


def test_ambiguous_prefix_is_a_one_line_error(demo, capsys):
    for digit in "01":
        (demo / "jobs" / "xp.fake" / ("ab" + digit * 62) / ".etude").mkdir(parents=True)
    status, out, err = run_cli(capsys, "jobs", "log", "ab", "-w", demo)
    assert status == 2 and out == ""
    assert "'ab' matches 2 jobs" in err and err.count("\n") == 1


# -- log -------------------------------------------------------------------------------------
def test_log_prints_both_streams_with_headers(demo, capsys):
    job = _job(demo, job_ids(demo)["x2"])
    status, out, _ = run_cli(capsys, "jobs", "log", job.job_id[:10], "-w", demo)
    assert status == 0
    header_out, header_err = f"==> {job.stdout} <==", f"==> {job.stderr} <=="
    assert out.index(header_out) < out.index("hello 2") < out.index(header_err)
    assert out.index(header_err) < out.index("ValueError: boom")


@pytest.mark.parametrize(
    ("option", "present", "absent"),
    [("--stdout", "hello 2", "ValueError"), ("--stderr", "ValueError: boom", "hello 2")],
)
def test_log_prints_one_stream(demo, capsys, option, present, absent):
    job_id = job_ids(demo)["x2"]
    status, out, _ = run_cli(capsys, "jobs", "log", job_id, option, "-w", demo)
    assert status == 0 and present in out and absent not in out and "==>" not in out


def test_follow_of_an_ended_job_prints_and_returns(demo, capsys):
    status, out, err = run_cli(capsys, "jobs", "log", "-f", job_ids(demo)["x1"], "-w", demo)
    assert status == 0 and "hello 1" in out and "is done" in err


def test_follow_prints_new_output_until_the_job_ends(start_sleepy, workspace):
    running = start_sleepy()
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "etude.cli",
            "jobs",
            "log",
            "--follow",
            "--stdout",
            running.job.job_id,
            "-w",
            str(workspace),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "first\n"
        assert follower.poll() is None, "still following while the job runs"
        running.release.touch()  # the job now prints "last" and ends
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert follower.returncode == 0, err
    assert out == "last\n" and "is done" in err


# -- kill ------------------------------------------------------------------------------------
# A job stopped by a signal ends in state error: reason "killed" when the process died of the
# signal, "cancelled" when the job runner caught it and recorded the cancellation.
STOPPED = {"killed", "cancelled"}


def test_kill_stops_a_running_job_and_its_children(start_sleepy, workspace, capsys):
    running = start_sleepy()
    job_pid, child_pid = running.job_pid, running.child_pid
    status, out, err = run_cli(capsys, "jobs", "kill", running.job.job_id[:8], "-w", workspace)
    assert status == 0, err
    assert out.startswith(f"Stopped {running.job.task_name}/") and "it is now error" in out
    assert gone(job_pid) and gone(child_pid)
    after = read_status(running.job)
    assert after.state == "error" and after.reason in STOPPED
    log, _ = running.experiment.communicate(timeout=60)
    assert "failed: 1 job(s) failed" in log


def test_kill_force_ends_a_job_that_ignores_sigterm(start_sleepy, workspace, capsys):
    running = start_sleepy(stubborn=True)
    job_id, job_pid = running.job.job_id, running.job_pid
    status, _, err = run_cli(capsys, "jobs", "kill", job_id, "--timeout", "0.5", "-w", workspace)
    assert status == 1 and "still runs after SIGTERM; pass --force" in err
    assert read_status(running.job).state == "running" and not gone(job_pid)
    argv = ["jobs", "kill", job_id, "--timeout", "0.5", "--force", "-w", workspace]
    status, out, err = run_cli(capsys, *argv)
    assert status == 0, err
    assert gone(job_pid) and "(killed)" in out
    assert (read_status(running.job).state, read_status(running.job).reason) == ("error", "killed")


def test_kill_of_a_job_that_is_not_running_fails(demo, capsys):
    status, out, err = run_cli(capsys, "jobs", "kill", job_ids(demo)["x0"], "-w", demo)
    assert status == 1 and out == ""
    assert "is not running (state done)" in err


# -- clean -----------------------------------------------------------------------------------
def _add_orphans(workspace: Path) -> tuple[Path, Path]:
    """A folder without .etude, and an unscheduled job (parameters but no marker)."""
    bare = workspace / "jobs" / "xp.hello" / ("e" * 64)
    bare.mkdir()
    unscheduled = workspace / "jobs" / "xp.other" / ("d" * 64)
    (unscheduled / ".etude").mkdir(parents=True)
    (unscheduled / ".etude" / "params.json").write_text(
        json.dumps({"id": "d" * 64, "type": "xp.Other", "tags": {}})
    )
    return bare, unscheduled


def _folders(workspace: Path) -> set[str]:
    return {path.name for path in workspace.glob("jobs/*/*")}


def test_clean_yes_deletes_failed_and_orphan_folders_only(demo, capsys):
    ids = job_ids(demo)
    bare, unscheduled = _add_orphans(demo)
    status, out, _ = run_cli(capsys, "jobs", "clean", "--yes", "-w", demo)
    assert status == 0
    assert _folders(demo) == {ids["x0"], ids["x1"], ids["b"]}
    for name in (ids["x2"][:12], bare.name[:12], unscheduled.name[:12]):
        assert name in out
    assert "Deleted 3 folders." in out


def test_clean_by_state(demo, capsys):
    ids = job_ids(demo)
    _add_orphans(demo)
    status, _, _ = run_cli(capsys, "jobs", "clean", "--yes", "--state", "unscheduled", "-w", demo)
    assert status == 0
    assert _folders(demo) == {ids["x0"], ids["x1"], ids["x2"], ids["b"]}


def test_clean_refuses_done_as_a_state(demo, capsys):
    status, _, err = run_cli(capsys, "jobs", "clean", "--yes", "--state", "done", "-w", demo)
    assert status == 2 and "never cleaned" in err
    assert len(_folders(demo)) == 4


def test_clean_without_yes_and_without_a_terminal_refuses(demo):
    result = _cli("jobs", "clean", "-w", demo, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert "pass --yes" in result.stderr and job_ids(demo)["x2"][:12] in result.stdout
    assert len(_folders(demo)) == 4


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "status", "left"), [("y\n", 0, 3), ("\n", 1, 4), ("", 1, 4)])
def test_clean_asks_on_a_terminal(demo, capsys, monkeypatch, answer, status, left):
    monkeypatch.setattr(sys, "stdin", _Terminal(answer))
    code, out, _ = run_cli(capsys, "jobs", "clean", "-w", demo)
    assert code == status and "Delete 1 folders? [y/N]" in out
    assert len(_folders(demo)) == left


def test_clean_never_touches_a_running_job(start_sleepy, workspace, capsys):
    running = start_sleepy()
    bare = workspace / "jobs" / "sleepy.sleepy" / ("c" * 64)
    bare.mkdir()
    status, out, _ = run_cli(capsys, "jobs", "clean", "--yes", "-w", workspace)
    assert status == 0 and "Deleted 1 folders." in out
    assert running.job.path.is_dir() and not bare.exists()
    assert read_status(running.job).state == "running"


def test_clean_keeps_failed_jobs_of_a_live_experiment(demo, capsys):
    """A live experiment may retry its failed jobs: their folders stay."""
    import socket

    import psutil

    job = _job(demo, job_ids(demo)["x2"])
    me = psutil.Process()
    record = {
        "pid": me.pid,
        "host": socket.gethostname(),
        "create_time": me.create_time(),
        "experiment": "live",
    }
    job.scheduled.write_text(json.dumps(record))
    status, out, _ = run_cli(capsys, "jobs", "clean", "--yes", "-w", demo)
    assert status == 0 and "Keeping xp.Hello/" in out and "'live'" in out
    assert job.path.is_dir()


def test_delete_skips_a_job_whose_lock_is_held(demo):
    job = _job(demo, job_ids(demo)["x2"])
    lock = FileLock(job.lock)
    assert lock.try_acquire()
    try:
        assert "lock is held" in (_delete(Workspace(demo), job) or "")
        assert job.path.is_dir()
    finally:
        lock.release()
    assert _delete(Workspace(demo), job) is None and not job.path.exists()


FLOAT_TAGS = """
import sys

from etude import Param, Task, experiment, tag


class Fit(Task):
    lr: Param[float]

    def execute(self):
        pass


if __name__ == "__main__":
    with experiment(sys.argv[1], "fit"):
        for lr in (0.01, 0.1):
            Fit.C(lr=tag(lr)).submit()
"""


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        pytest.param("lr=1e-2", [0.01], id="exponent"),
        pytest.param("lr=0.010", [0.01], id="trailing-zero"),
        pytest.param("lr=0.1", [0.1], id="plain"),
        pytest.param("lr=1e-3", [], id="other-value"),
    ],
)
def test_tag_values_are_compared_as_numbers(workspace, run_script, capsys, option, expected):
    run_script(FLOAT_TAGS, str(workspace), name="fit.py")
    rows = list_json(capsys, workspace, "--tag", option)
    assert sorted(row["tags"]["lr"] for row in rows) == expected
