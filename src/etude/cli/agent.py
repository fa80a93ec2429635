"""`etude agent` (serve queues), `etude agent list`, `etude queues list`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..workspace import Workspace, WorkspaceError


def register(
    groups: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    agent = groups.add_parser(
        "agent", parents=[common],
        help="run queued runs (`etude agent --queue default`), or list agents (`agent list`)",
    )
    agent.add_argument("command", nargs="?", choices=["serve", "list"], default="serve",
                       help="serve (default) or list")
    agent.add_argument("--queue", "-q", action="append", metavar="NAME",
                       help="a queue to serve (repeat; served in the order given; "
                            "default: default)")
    agent.add_argument("--launcher", default="direct", metavar="NAME",
                       help="direct (local processes), slurm, or a name in launchers.yaml")
    agent.add_argument("--max-jobs", type=int, default=1, metavar="N",
                       help="runs at once (default 1)")
    agent.add_argument("--once", action="store_true",
                       help="exit once the queues are empty and the runs ended")
    agent.add_argument("--install", action="store_true",
                       help="run each run in a virtualenv made from its recorded packages")
    agent.add_argument("--on-stop", choices=["abort", "finish"], default="abort",
                       help="on SIGTERM/Ctrl-C: abort the running runs (default) or let them "
                            "finish; a second signal always aborts")
    agent.add_argument("--all", action="store_true", help="list: stopped agents too")
    agent.add_argument("--json", action="store_true", help="list: JSON on stdout")
    agent.set_defaults(handler=_agent)

    queues = groups.add_parser("queues", help="the queues of a workspace")
    commands = queues.add_subparsers(dest="command", metavar="COMMAND", required=True)
    listing = commands.add_parser("list", parents=[common],
                                  help="queues with their queued and running runs")
    listing.add_argument("--json", action="store_true", help="JSON on stdout")
    listing.set_defaults(handler=_queues)


def _agent(workspace: Workspace, args: argparse.Namespace) -> int:
    if args.command == "list":
        return _list_agents(workspace, args)
    from ..tracking.agent import Agent, AgentOptions

    if args.max_jobs < 1:
        raise WorkspaceError(f"--max-jobs {args.max_jobs}: give 1 or more.")
    from ..tracking.lifecycle import check_queue

    queues = [check_queue(name) for name in (args.queue or ["default"])]
    workspace.path.mkdir(parents=True, exist_ok=True)
    launcher = _launcher(args.launcher, args.max_jobs)
    options = AgentOptions(queues=queues, launcher=launcher, launcher_name=args.launcher,
                           max_jobs=args.max_jobs, once=args.once, install=args.install,
                           on_stop=args.on_stop)
    return Agent(workspace.path.absolute(), options).serve()


def _launcher(name: str, max_jobs: int) -> Any:
    if name == "direct":
        from ..launchers.direct import DirectLauncher

        return DirectLauncher(max_jobs)
    if name == "slurm":
        from ..launchers.slurm import SlurmLauncher

        return SlurmLauncher()
    from ..launchers.finder import load_launchers

    for entry in load_launchers():
        if entry.name == name:
            return entry.launcher()
    raise WorkspaceError(f"--launcher {name!r}: not direct, slurm, or a launcher named in "
                         "launchers.yaml (see `etude launchers list`).")


def _list_agents(workspace: Workspace, args: argparse.Namespace) -> int:
    from ..store import open_store
    from ..store.queue import list_agents

    store = open_store(workspace.path)
    found = list_agents(store, include_stopped=args.all)
    if args.json:
        print(json.dumps([vars(agent) for agent in found], indent=2))
        return 0
    if not found:
        print("no agents" + ("" if args.all else " running (--all lists stopped ones)"),
              file=sys.stderr)
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("agent", "host", "pid", "queues", "launcher", "running", "heartbeat",
                  "state")
    now = time.time()
    for agent in found:
        table.add_row(agent.id, agent.host, str(agent.pid), ", ".join(agent.queues),
                      agent.launcher, ", ".join(run[:12] for run in agent.running) or "-",
                      f"{now - agent.heartbeat:.0f} s ago",
                      "stopped" if agent.stopped else "serving")
    Console().print(table)
    return 0


def _queues(workspace: Workspace, args: argparse.Namespace) -> int:
    from ..store import open_store
    from ..store.queue import entries

    counts: dict[str, dict[str, int]] = {}
    for entry in entries(open_store(workspace.path)):
        by_state = counts.setdefault(entry.queue, {"queued": 0, "running": 0})
        by_state["running" if entry.agent else "queued"] += 1
    if args.json:
        print(json.dumps(counts, indent=2))
        return 0
    if not counts:
        print("no queued or running runs", file=sys.stderr)
    for queue, by_state in sorted(counts.items()):
        print(f"{queue}\tqueued {by_state['queued']}\trunning {by_state['running']}")
    return 0
