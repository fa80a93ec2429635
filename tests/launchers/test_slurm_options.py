"""SlurmLauncher without a cluster: options, validation, and Slurm's words mapped to reasons."""

from __future__ import annotations

import pytest

from etude.launchers import SlurmLauncher
from etude.launchers.requirements import parse_requirements
from etude.launchers.slurm_queue import hopeless, outcome, parse_time_left


def test_options_map_to_sbatch_flags():
    launcher = SlurmLauncher(
        time="1h30m", cpus_per_task=4, mem="16G", gpus=2, partition="gpu", account="team",
        qos="high", constraint="a100", nodes=1, extra_options=["--exclusive"], signal_delay=60,
    )
    assert launcher.options() == [
        "--time=90", "--cpus-per-task=4", "--mem=16384M", "--gpus=2", "--partition=gpu",
        "--account=team", "--qos=high", "--constraint=a100", "--nodes=1",
        "--signal=B:TERM@60", "--exclusive",
    ]


def test_requirements_replace_the_launcher_defaults():
    launcher = SlurmLauncher(time=60, cpus_per_task=1, mem=1000)
    needs = parse_requirements("duration=4h & cpu(cores=8, mem=2G) & gpu(mem=24G)*2")
    assert launcher.options(needs) == ["--time=240", "--cpus-per-task=8", "--mem=2048M",
                                       "--gpus=2"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param({"time": "soon"}, "time='soon'", id="time"),
        pytest.param({"mem": "lots"}, "mem='lots'", id="mem"),
        pytest.param({"cpus_per_task": 0}, "positive integer", id="cpus"),
        pytest.param({"extra_options": "--exclusive"}, "list of sbatch options", id="extra-str"),
        pytest.param({"extra_options": ["exclusive"]}, "is not an sbatch option", id="extra"),
        pytest.param({"partition": ""}, "non-empty string", id="partition"),
        pytest.param({"poll_interval": (5, 1)}, "min <= max", id="poll"),
    ],
)
def test_bad_options_are_clear_errors(kwargs, expected):
    with pytest.raises(ValueError, match="SlurmLauncher") as caught:
        SlurmLauncher(**kwargs)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        pytest.param("TIMEOUT", "timeout", id="timeout"),
        pytest.param("DEADLINE", "timeout", id="deadline"),
        pytest.param("CANCELLED", "cancelled", id="cancelled"),
        pytest.param("OUT_OF_MEMORY", "killed", id="oom"),
        pytest.param("NODE_FAIL", "killed", id="node-fail"),
        pytest.param("PREEMPTED", "killed", id="preempted"),
        pytest.param("FAILED", "killed", id="failed"),
        pytest.param(None, "killed", id="forgotten"),
    ],
)
def test_slurm_states_map_to_reasons(state, reason):
    record = outcome(state, "42_3")
    assert record["reason"] == reason
    assert "42_3" in record["message"]
    if state:
        assert state in record["message"]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("PartitionTimeLimit", True),
        ("BadConstraints", True),
        ("QOSMaxWallDurationPerJobLimit", True),
        ("Resources", False),
        ("Priority", False),
        ("BeginTime", False),
        ("PartitionConfig", False),  # shown for a moment before PartitionTimeLimit
    ],
)
def test_hopeless_pending_reasons(reason, expected):
    assert hopeless(reason) is expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("59:58", 3598), ("1:00:00", 3600), ("2-03:04:05", 183845), ("UNLIMITED", None),
     ("INVALID", None), ("0:05", 5)],
)
def test_time_left_of_squeue(text, seconds):
    assert parse_time_left(text) == seconds
