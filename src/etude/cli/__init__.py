"""The `etude` command line: `etude jobs ...`, `etude experiments ...`, `etude launchers ...`,
`etude index ...`.

Each command group lives in its own module and registers its sub-commands with `register`;
a sub-command's handler receives the resolved `Workspace` and the parsed arguments and returns
the exit status. Expected failures (an unknown job, a missing workspace, an unreadable file)
end with a one-line message on stderr and status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..workspace import Workspace, WorkspaceError
from . import agent, experiments, index, jobs, launchers, projects, runs, ui

USAGE_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    """The `etude` argument parser; every leaf command accepts `--workspace/-w`."""
    parser = argparse.ArgumentParser(
        prog="etude", description="Inspect and manage the jobs and experiments of a workspace."
    )
    _add_workspace_option(parser, default=None)
    # A leaf command's own -w must not reset a value given before the command name, hence
    # SUPPRESS: the attribute is only set when the option appears after the command.
    leaf = argparse.ArgumentParser(add_help=False)
    _add_workspace_option(leaf, default=argparse.SUPPRESS)
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    jobs.register(groups, leaf)
    experiments.register(groups, leaf)
    launchers.register(groups, leaf)
    index.register(groups, leaf)
    runs.register(groups, leaf)
    ui.register(groups, leaf)
    projects.register(groups, leaf)
    agent.register(groups, leaf)
    return parser


def _add_workspace_option(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument(
        "-w",
        "--workspace",
        metavar="PATH",
        default=default,
        help="workspace folder (default: $ETUDE_WORKSPACE, else the current folder)",
    )


def resolve_workspace(path: str | None) -> Workspace:
    """The workspace named by `path`, `$ETUDE_WORKSPACE` or the current folder — or its
    `runs/` folder when that is where `Run.init()` put its runs by default (it holds `runs/`
    itself), so that `etude runs list` and `etude agent` find them from the same folder.

    Raises `WorkspaceError` when the folder does not exist.
    """
    source = "--workspace" if path else "ETUDE_WORKSPACE"
    path = path or os.environ.get("ETUDE_WORKSPACE") or None
    if path is None:
        tracking_default = os.path.join(os.getcwd(), "runs")
        if os.path.isdir(os.path.join(tracking_default, "runs")):
            return Workspace(tracking_default)
        return Workspace(os.getcwd())
    workspace = Workspace(path)
    if not workspace.path.is_dir():
        raise WorkspaceError(
            f"workspace folder {workspace.path} (from {source}) does not exist; pass the folder "
            "given to experiment(...) with --workspace PATH."
        )
    return workspace


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on `argv` (default: `sys.argv[1:]`); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(_join_sort(sys.argv[1:] if argv is None else list(argv)))
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else USAGE_ERROR
    try:
        return int(args.handler(resolve_workspace(args.workspace), args))
    except BrokenPipeError:
        _silence_stdout()  # the reader went away (`| head`): not an error worth a message
        return 1
    except (WorkspaceError, OSError) as exc:
        print(f"etude: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return 130


def _join_sort(argv: list[str]) -> list[str]:
    """`--sort -duration` as `--sort=-duration`: argparse would take `-duration` for an
    option, and descending sorts are written that way."""
    joined: list[str] = []
    for arg in argv:
        if joined and joined[-1] == "--sort" and arg.startswith("-") and len(arg) > 1:
            joined[-1] = f"--sort={arg}"
        else:
            joined.append(arg)
    return joined


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that flushing it at exit does not raise again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (captured output): nothing will be flushed to a closed pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
