"""`etude agent`: take queued runs and run them, on this machine or through a launcher.

For each run it claims (atomically, `store/queue.py`), the agent marks it running, rebuilds its
code state in a fresh folder (`codestate.py`), and starts `python SCRIPT ARGV...` there with
`ETUDE_RUN_FOLDER` set, so that `Run.init()` in the script takes that run (edited parameters
and all) instead of making a new one. Until the script's `Run.init()` takes it, the agent owns
the run's status.json (field `starter`, heartbeat every two seconds); a script that exits before
that is recorded failed with its output in the run's console.

Processes started by the direct launcher die with the agent (kill -9 included); the runs a dead
agent held are recorded failed (`killed`) by the next agent that looks, and the runs it had
claimed but not started go back to their queue.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..launchers.base import LaunchedJob, Launcher, LaunchRequest
from ..workspace.run_folder import (
    RunFolder,
    append_edit,
    heartbeat_timeout,
    owner_alive,
    runs_root,
)
from ..workspace.status import process_alive

logger = logging.getLogger("etude.agent")
AGENTS_DIR = "agents"
HEARTBEAT_SECONDS = 2.0
HEAL_SECONDS = 5.0
OUTPUT_TAIL = 20_000
FULL_POLL = 0.05  # seconds between looks at the running runs when no slot is free


@dataclass
class AgentOptions:
    queues: list[str]
    launcher: Launcher
    launcher_name: str = "direct"
    max_jobs: int = 1
    once: bool = False
    install: bool = False
    on_stop: str = "abort"  # or "finish": let running runs end before stopping
    poll: float = 0.5


@dataclass
class Started:
    """A run this agent started."""

    run_id: str
    folder: RunFolder
    job: LaunchedJob
    code: Any  # codestate.PreparedCode
    output: Path
    terminated: bool = False
    notes: list[str] = field(default_factory=list)


class Agent:
    def __init__(self, workspace: Path, options: AgentOptions) -> None:
        from ..store import open_store

        self.root = workspace
        self.options = options
        self.store = open_store(workspace)
        self.host = socket.gethostname()
        self.id = f"{self.host}-{os.getpid()}-{os.urandom(2).hex()}"
        self.work = workspace / AGENTS_DIR / self.id
        self.running: dict[str, Started] = {}
        self.stopping = False
        self._aborting = False
        self._installed: dict[str, str] | None = None

    # -- the loop -----------------------------------------------------------------------------
    def serve(self) -> int:
        from ..store.queue import AgentInfo, agent_heartbeat, register_agent

        now = time.time()
        register_agent(self.store, AgentInfo(
            self.id, self.host, os.getpid(), list(self.options.queues),
            self.options.launcher_name, now, now, [], None))
        self._say(f"agent {self.id} serving {', '.join(self.options.queues)} with "
                  f"{self.options.launcher_name} (up to {self.options.max_jobs} at once)")
        self._install_signals()
        beat = heal = 0.0
        try:
            while True:
                self._reap()
                now = time.monotonic()
                if now - heal >= HEAL_SECONDS:
                    self._recover()
                    self._heal()
                    heal = now
                if now - beat >= HEARTBEAT_SECONDS:
                    agent_heartbeat(self.store, self.id, sorted(self.running))
                    self._beat_unattached()
                    beat = now
                self._check_aborts()
                empty = True if self.stopping else self._fill()
                if self.stopping and self._aborting:
                    self._terminate_all()
                if not self.running and (self.stopping or (self.options.once and empty)):
                    return 0
                # Full: look for ended runs often (a free slot is the next run's start);
                # idle: poll the queues at the chosen pace.
                time.sleep(self.options.poll if empty else FULL_POLL)
        finally:
            agent_heartbeat(self.store, self.id, sorted(self.running), stopped=time.time())
            self._say(f"agent {self.id} stopped")

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            if self.stopping:  # asked twice: abort what runs, whatever was chosen
                self._aborting = True
            self.stopping = True
            self._aborting = self._aborting or self.options.on_stop == "abort"
            self._say(f"agent {self.id}: {signal.Signals(signum).name}, stopping "
                      + ("(aborting its runs)" if self._aborting else "(letting runs finish)"))

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def _fill(self) -> bool:
        """Claim and start runs while there is room; True when the queues are empty."""
        from ..store.queue import claim

        while len(self.running) < self.options.max_jobs:
            entry = claim(self.store, self.options.queues, self.id)
            if entry is None:
                return True
            self._start(entry)
        return False

    # -- starting a run -----------------------------------------------------------------------
    def _start(self, entry: Any) -> None:
        from ..store.queue import remove_entry

        folder = RunFolder(runs_root(self.root) / entry.run_id)
        if not self._take(folder, entry):
            remove_entry(self.store, entry.run_id, claimed_too=True)
            return
        try:
            started = self._launch(folder, entry)
        except Exception as error:  # this run cannot start; the agent goes on with the next
            self._end_unattached(folder, "failed", "agent", str(error), None)
            remove_entry(self.store, entry.run_id, claimed_too=True)
            return
        self.running[entry.run_id] = started

    def _take(self, folder: RunFolder, entry: Any) -> bool:
        """queued -> running, owned by this agent until the script's Run.init() takes it."""
        if not folder.exists():
            self._say(f"run {entry.run_id}: its folder is gone; dropped from {entry.queue}")
            return False
        now = time.time()
        with folder.locked():
            status = folder.read_status()
            if status.get("state") != "queued":
                return False  # dequeued (or aborted) between the claim and now
            folder.write_status({
                "state": "running", "queue": entry.queue, "enqueued": entry.enqueued,
                "agent": self.id, "starter": self.id, "host": self.host, "pid": None,
                "started": now, "heartbeat": now,
            })
        append_edit(self.root, entry.run_id)
        return True

    def _launch(self, folder: RunFolder, entry: Any) -> Started:
        from .codestate import prepare_code
        from .codestate_env import installed_versions, package_differences
        environment = folder.read_environment()
        self._console(folder, f"agent {self.id} ({self.host}) takes the run from queue "
                              f"{entry.queue!r}")
        if "source_job" in folder.read_meta():  # a clone of a job's run: submit it as a job
            return self._launch_job_clone(folder, entry)
        code = prepare_code(environment, self.work / entry.run_id)
        for note in code.notes:
            self._console(folder, f"note: {note}")
        self._console(folder, f"code: {code.source}; running {code.script.name} in {code.cwd}")
        python = sys.executable
        packages = environment.get("packages") or []
        if self.options.install and packages:
            from .codestate_env import ensure_virtualenv

            python = str(ensure_virtualenv("\n".join(packages), self.root / AGENTS_DIR / "venvs"))
        else:
            if self._installed is None:  # once per agent: reading them costs ~0.1 s
                self._installed = installed_versions()
            differing = package_differences(packages, self._installed)
            if differing:
                listed = "; ".join(str(item) for item in differing[:20])
                self._console(folder, f"warning: {len(differing)} recorded package version(s) "
                                      f"differ here (use --install for a virtualenv): {listed}")
        output = self.work / f"{entry.run_id}.out"
        request = LaunchRequest(
            job_id=entry.run_id, cwd=code.cwd, argv=code.command(python),
            env=self._environment(folder), stdout=output,
            stderr=output.with_suffix(".err"), workspace=self.root, bound_to_parent=True,
        )
        job = self.options.launcher.launch(request)
        if job.pid:
            self._set_pid(folder, job.pid)
        return Started(entry.run_id, folder, job, code, output)

    def _launch_job_clone(self, folder: RunFolder, entry: Any) -> Started:
        self._console(folder, "a clone of a job's run: its configuration, edited, is "
                              "submitted as a job (python -m etude.tracking.job_clone)")
        self.work.mkdir(parents=True, exist_ok=True)
        output = self.work / f"{entry.run_id}.out"
        request = LaunchRequest(
            job_id=entry.run_id, cwd=self.root,
            argv=[sys.executable, "-m", "etude.tracking.job_clone"],
            env=self._environment(folder), stdout=output, stderr=output.with_suffix(".err"),
            workspace=self.root, bound_to_parent=True,
        )
        job = self.options.launcher.launch(request)
        if job.pid:
            self._set_pid(folder, job.pid)
        return Started(entry.run_id, folder, job, _NoCode(), output)

    def _environment(self, folder: RunFolder) -> dict[str, str]:
        from .live import AGENT_ENV, RUN_FOLDER_ENV

        env = dict(os.environ)
        env.update({"ETUDE_WORKSPACE": str(self.root), RUN_FOLDER_ENV: str(folder.path),
                    AGENT_ENV: self.id})
        return env

    def _set_pid(self, folder: RunFolder, pid: int) -> None:
        """The script's pid in status.json (so `abort()` on this host signals it)."""
        with folder.locked():
            status = folder.read_status()
            if status.get("starter") == self.id:
                status["pid"] = pid
                folder.write_status(status)

    # -- following runs -----------------------------------------------------------------------
    def _beat_unattached(self) -> None:
        now = time.time()
        for started in self.running.values():
            folder = started.folder
            with folder.locked():
                status = folder.read_status()
                if status.get("starter") == self.id and status.get("state") == "running":
                    status["heartbeat"] = now
                    folder.write_status(status)

    def _check_aborts(self) -> None:
        """An abort asked of a run whose script has not taken it yet (or runs on a cluster)."""
        for started in self.running.values():
            if not started.terminated and started.folder.abort_request.exists():
                status = started.folder.read_status()
                if status.get("starter") == self.id or not started.job.pid:
                    started.terminated = True
                    started.job.terminate()

    def _terminate_all(self) -> None:
        for started in self.running.values():
            if not started.terminated:
                started.terminated = True
                started.job.terminate()

    def _reap(self) -> None:
        from ..store.queue import remove_entry

        for run_id, started in list(self.running.items()):
            code = started.job.poll()
            if code is None:
                continue
            del self.running[run_id]
            self._settle(started, code)
            remove_entry(self.store, run_id, claimed_too=True)
            started.code.cleanup()
            append_edit(self.root, run_id)

    def _settle(self, started: Started, code: int) -> None:
        """The script ended: record what its run could not (it never took the run, or it
        ended without closing it)."""
        folder = started.folder
        status = folder.read_status()
        if status.get("state") != "running":
            return  # the run recorded its own end
        aborted = started.terminated or folder.abort_request.exists()
        if status.get("starter") == self.id:
            message = (f"the script exited with status {code} before Run.init() took the "
                       "run (its output is at the end of the console)")
            self._end_unattached(folder, "aborted" if aborted else "failed",
                                 "user" if aborted else "exit", message, started.output)
            return
        with folder.locked():
            current = folder.read_status()
            if current.get("state") == "running" and not process_alive(current):
                current.update(state="aborted" if aborted else "failed", ended=time.time(),
                               reason="user" if aborted else "exit",
                               message=f"the script exited with status {code} without "
                                       "closing the run")
                folder.write_status(current, fsync=True)

    def _end_unattached(self, folder: RunFolder, state: str, reason: str, message: str,
                        output: Path | None) -> None:
        if output is not None:
            self._console(folder, "output of the script:\n" + _tail(output)
                          + _tail(output.with_suffix(".err")))
        self._console(folder, f"{state}: {message}")
        self._say(f"run {folder.run_id}: {state}: {message}")
        with folder.locked():
            status = folder.read_status()
            status.update(state=state, reason=reason, message=message, ended=time.time())
            status.pop("starter", None)
            folder.write_status(status, fsync=True)
        append_edit(self.root, folder.run_id)

    # -- other agents, and the queue table ----------------------------------------------------
    def _recover(self) -> None:
        """Runs of agents that died: back to their queue if not started, else failed."""
        from ..store.queue import forget_agent, list_agents, release, remove_entry
        from .codestate import remove_work_folder

        now = time.time()
        for agent in list_agents(self.store):
            if agent.id == self.id or not _dead(agent, self.host, now):
                continue
            self._say(f"agent {agent.id} ({agent.host}, pid {agent.pid}) is gone; "
                      "recovering its runs")
            back: list[str] = []
            for entry in forget_agent(self.store, agent.id):
                folder = RunFolder(runs_root(self.root) / entry.run_id)
                if _recover_run(folder, agent.id, self.host):
                    back.append(entry.run_id)
                else:
                    remove_entry(self.store, entry.run_id, claimed_too=True)
                append_edit(self.root, entry.run_id)
            release(self.store, back)
            remove_work_folder(self.root / AGENTS_DIR / agent.id)

    def _heal(self) -> None:
        """Queue entries from the run folders (a crash between writing one and the other)."""
        from ..store import refresh
        from ..store.queue import queued_runs, sync_entries

        refresh(self.store)
        queued: dict[str, tuple[str, float]] = {}
        for run_id in queued_runs(self.store):
            status = RunFolder(runs_root(self.root) / run_id).read_status()
            if status.get("state") == "queued" and isinstance(status.get("queue"), str):
                queued[run_id] = (status["queue"], float(status.get("enqueued") or 0))
        sync_entries(self.store, queued)

    # -- messages -----------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        print(f"etude agent: {text}", file=sys.stderr, flush=True)

    def _console(self, folder: RunFolder, text: str) -> None:
        """A line in the run's console (the agent's words, before or after the script's)."""
        line = "".join(f"[etude agent] {part}\n" for part in text.rstrip("\n").split("\n"))
        with open(folder.console, "a", encoding="utf-8") as stream:
            stream.write(line)


class _NoCode:
    """The code state of a job clone: the job's own (its params.json); nothing to remove."""

    def cleanup(self) -> None:
        return None


def _dead(agent: Any, host: str, now: float) -> bool:
    if agent.host == host:
        return not process_alive({"pid": agent.pid, "host": agent.host})
    return now - agent.heartbeat > max(heartbeat_timeout(), 3 * HEARTBEAT_SECONDS)


def _recover_run(folder: RunFolder, agent_id: str, host: str) -> bool:
    """Settle one run of a dead agent; True when it goes back to its queue."""
    if not folder.exists():
        return False
    with folder.locked():
        status = folder.read_status()
        if status.get("state") == "queued":
            return True
        if status.get("state") != "running":
            return False
        gone = status.get("starter") == agent_id or (
            status.get("host") == host and not process_alive(status)) or not owner_alive(status)
        if gone:
            status.pop("starter", None)
            status.update(state="failed", reason="killed", ended=time.time(),
                          message=f"its agent {agent_id} died (killed, or its machine was "
                                  "lost) while the run ran")
            folder.write_status(status, fsync=True)
    return False


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as stream:
            stream.seek(0, os.SEEK_END)
            size = stream.tell()
            stream.seek(max(0, size - OUTPUT_TAIL))
            return stream.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
