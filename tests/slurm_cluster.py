"""A real single-node Slurm cluster on this machine, for tests (Debian, root, no systemd).

    python tests/slurm_cluster.py up|down|status [--dir DIR]      (default DIR /tmp/etude-slurm)

Everything the cluster writes (config, state, spool, logs, pid files) lives in DIR. The
config is DIR/slurm.conf; /etc/slurm/slurm.conf is made a symlink to it (unless a real file
is already there), so plain `sbatch`/`squeue` find it, and `Cluster.env` carries SLURM_CONF
for clients that are given an explicit environment. munged is a system service: it is
started if needed and left running by `stop()`. Daemons are detached (own session), so
they outlive the process that started them.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DIR = Path("/tmp/etude-slurm")
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
READY_TIMEOUT = 60.0
# PATH of a non-login shell may lack the sbin folders where the daemons live.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
# Node states in which the node can run (or is running) jobs; a trailing '*' means
# "not responding" and is not in this set.
USABLE_STATES = {"idle", "mixed", "allocated", "completing"}


class SlurmClusterError(RuntimeError):
    """The cluster could not be started or stopped; the message names the log to read."""


class ClusterUnavailable(SlurmClusterError):
    """This machine cannot host a cluster (not root, no apt-get, packages not installable)."""


@dataclass(frozen=True)
class Cluster:
    dir: Path
    node: str
    cpus: int
    mem_mb: int
    partition: str = "debug"
    short_partition: str = "short"  # MaxTime=1 minute: `--time=5 -p short` pends forever
    env: dict[str, str] = field(default_factory=dict)


def install() -> None:
    """Install the Debian packages unless slurmctld is already on PATH.

    Raises ClusterUnavailable (with apt-get's output) when that is impossible here.
    """
    if shutil.which("slurmctld", path=SEARCH_PATH):
        return
    if os.geteuid() != 0:
        raise ClusterUnavailable("installing Slurm needs root (apt-get); run the tests as root")
    if not shutil.which("apt-get"):
        raise ClusterUnavailable(f"no apt-get on this machine: install {' '.join(PACKAGES)}")
    install_cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    result = _apt(install_cmd)
    if result.returncode != 0:  # a fresh machine may have no package lists yet
        _apt(["apt-get", "update", "-q"])
        result = _apt(install_cmd)
    if result.returncode != 0:
        raise ClusterUnavailable(
            f"`{' '.join(install_cmd)}` failed ({result.returncode}):\n{_tail(result.stdout)}"
        )


def start(dir: Path = DEFAULT_DIR) -> Cluster:
    """Return the cluster of `dir`, starting it (and installing Slurm) if it is not up.

    Safe to call from several processes at once: one starts, the others wait and reuse.
    Raises ClusterUnavailable (cannot run here) or SlurmClusterError (a daemon failed).
    """
    dir = dir.resolve()
    dir.mkdir(parents=True, exist_ok=True)
    with _locked(dir):
        cluster = _describe(dir)
        if is_up(cluster):
            return cluster
        install()
        _stop_daemons(dir)  # half-up leftovers (one daemon dead, node down)
        for sub in ("state", "spool", "log"):
            (dir / sub).mkdir(exist_ok=True)
        _write_config(cluster)
        _start_munge()
        # -c: forget jobs of a previous run, so a fresh start has an empty queue.
        _daemon(dir, ["slurmctld", "-c", "-f", str(dir / "slurm.conf")], "slurmctld")
        _daemon(dir, ["slurmd", "-f", str(dir / "slurm.conf")], "slurmd")
        _wait_ready(cluster)
        return cluster


def stop(dir: Path = DEFAULT_DIR) -> None:
    """Cancel the cluster's jobs and stop its daemons; a no-op if it is not running."""
    dir = dir.resolve()
    if not dir.is_dir():
        return
    with _locked(dir):
        cluster = _describe(dir)
        if _pid(dir, "slurmctld") is not None:
            _cancel_all(cluster)
        _stop_daemons(dir)


def is_up(cluster: Cluster) -> bool:
    """Both daemons of this folder run and the node is usable."""
    if _pid(cluster.dir, "slurmctld") is None or _pid(cluster.dir, "slurmd") is None:
        return False
    states = _node_states(cluster)
    return bool(states) and all(state in USABLE_STATES for state in states)


def _describe(dir: Path) -> Cluster:
    mem_total_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return Cluster(
        dir=dir,
        node=socket.gethostname().split(".")[0],
        cpus=max(4, os.cpu_count() or 1),
        mem_mb=max(1024, mem_total_kb // 1024 - 1024),
        env={"SLURM_CONF": str(dir / "slurm.conf")},
    )


def _write_config(cluster: Cluster) -> None:
    d, node, cpus = cluster.dir, cluster.node, cluster.cpus
    lines = [
        "ClusterName=etude",
        f"SlurmctldHost={node}(127.0.0.1)",
        "SlurmUser=root",
        "AuthType=auth/munge",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "MpiDefault=none",
        "MailProg=/bin/true",
        "ReturnToService=2",
        # The node may declare more CPUs than the machine has (several 1-cpu test jobs).
        "SlurmdParameters=config_overrides",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "KillWait=5",
        "OverTimeLimit=0",
        "EnforcePartLimits=NO",
        "DependencyParameters=kill_invalid_depend",
        "SchedulerParameters=batch_sched_delay=0,sched_interval=1,bf_interval=1",
        f"StateSaveLocation={d}/state",
        f"SlurmdSpoolDir={d}/spool",
        f"SlurmctldLogFile={d}/log/slurmctld.log",
        f"SlurmdLogFile={d}/log/slurmd.log",
        f"SlurmctldPidFile={d}/slurmctld.pid",
        f"SlurmdPidFile={d}/slurmd.pid",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} Sockets=1 CoresPerSocket={cpus}"
        f" ThreadsPerCore=1 RealMemory={cluster.mem_mb} State=UNKNOWN",
        f"PartitionName={cluster.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        f"PartitionName={cluster.short_partition} Nodes=ALL MaxTime=1 State=UP",
    ]
    conf = d / "slurm.conf"
    conf.write_text("\n".join(lines) + "\n")
    if SYSTEM_CONF.is_symlink() or not SYSTEM_CONF.exists():
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.unlink(missing_ok=True)
        SYSTEM_CONF.symlink_to(conf)


def _start_munge() -> None:
    if _munge_works():
        return
    run_dir = Path("/run/munge")
    run_dir.mkdir(mode=0o755, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    result = subprocess.run(
        ["runuser", "-u", "munge", "--", "munged", "--force"],
        capture_output=True, text=True, start_new_session=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if result.returncode != 0 or not _munge_works():
        raise SlurmClusterError(
            f"munged did not start ({result.returncode}): {result.stderr.strip()}; "
            "read /var/log/munge/munged.log"
        )


def _munge_works() -> bool:
    cred = subprocess.run(["munge", "-n"], capture_output=True)
    if cred.returncode != 0:
        return False
    return subprocess.run(["unmunge"], input=cred.stdout, capture_output=True).returncode == 0


def _daemon(dir: Path, argv: list[str], name: str) -> None:
    """Start a daemon that forks into the background and writes DIR/NAME.pid."""
    exe = shutil.which(argv[0], path=SEARCH_PATH) or argv[0]
    with open(dir / "log" / f"{name}.out", "ab") as out:
        result = subprocess.run(
            [exe, *argv[1:]], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True, timeout=30,
        )  # fmt: skip
    if result.returncode != 0:
        raise SlurmClusterError(f"{name} exited {result.returncode} at start\n{_logs(dir, name)}")


def _wait_ready(cluster: Cluster) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    states: list[str] = []
    while time.monotonic() < deadline:
        states = _node_states(cluster)
        if states == ["idle"]:
            return
        for name in ("slurmctld", "slurmd"):
            if _pid(cluster.dir, name) is None:
                raise SlurmClusterError(f"{name} died at start\n{_logs(cluster.dir, name)}")
        time.sleep(0.2)
    raise SlurmClusterError(
        f"node {cluster.node} not idle after {READY_TIMEOUT:.0f} s (sinfo says {states})\n"
        + _logs(cluster.dir, "slurmctld")
        + _logs(cluster.dir, "slurmd")
    )


def _node_states(cluster: Cluster) -> list[str]:
    result = _client(cluster, ["sinfo", "-h", "-N", "-o", "%T"])
    if result.returncode != 0:
        return []
    return sorted(set(result.stdout.split()))


def _cancel_all(cluster: Cluster) -> None:
    """Cancel every job and wait (bounded) until none runs, so no job outlives slurmd."""
    _client(cluster, ["scancel", f"--nodelist={cluster.node}"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = _client(cluster, ["squeue", "-h", "-o", "%i"])
        if result.returncode != 0 or not result.stdout.strip():
            return
        time.sleep(0.2)
    raise SlurmClusterError(
        f"jobs {result.stdout.split()} still listed 30 s after scancel; "
        f"read {cluster.dir}/log/slurmd.log, or stop the daemons by their pid files"
    )


def _stop_daemons(dir: Path) -> None:
    for name in ("slurmd", "slurmctld"):
        pid = _pid(dir, name)
        if pid is None:
            continue
        with contextlib.suppress(ProcessLookupError):  # it may exit between check and kill
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, 15):
            os.kill(pid, signal.SIGKILL)
            if not _wait_gone(pid, 5):
                raise SlurmClusterError(f"{name} (pid {pid}) survives SIGKILL")
        (dir / f"{name}.pid").unlink(missing_ok=True)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def _pid(dir: Path, name: str) -> int | None:
    """The pid in DIR/NAME.pid if that process is alive and is NAME (pids get reused)."""
    try:
        pid = int((dir / f"{name}.pid").read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if comm == name and _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"  # a zombie is gone for our purposes


def _client(cluster: Cluster, argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cluster.env}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)


def _apt(argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _logs(dir: Path, name: str) -> str:
    parts = []
    for path in (dir / "log" / f"{name}.log", dir / "log" / f"{name}.out"):
        text = path.read_text(errors="replace") if path.exists() else "(missing)"
        parts.append(f"--- tail of {path}\n{_tail(text)}\n")
    return "".join(parts)


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@contextlib.contextmanager
def _locked(dir: Path) -> Iterator[None]:
    with open(dir / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A single-node Slurm cluster for etude's tests.")
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    if args.action == "down":
        stop(args.dir)
        print(f"slurm cluster in {args.dir} stopped")
        return 0
    if args.action == "status":
        cluster = _describe(args.dir.resolve())
        up = is_up(cluster)
        print(f"slurm cluster in {cluster.dir}: {'up' if up else 'down'}")
        return 0 if up else 1
    began = time.monotonic()
    try:
        cluster = start(args.dir)
    except SlurmClusterError as error:
        print(f"slurm cluster: {error}", file=sys.stderr)
        return 1
    print(
        f"slurm cluster up in {time.monotonic() - began:.2f} s: node {cluster.node}, "
        f"{cluster.cpus} cpus, {cluster.mem_mb} MB, partitions {cluster.partition} (default) "
        f"and {cluster.short_partition}\nexport SLURM_CONF={cluster.env['SLURM_CONF']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
