"""`etude runs clone|enqueue|dequeue|abort|reset|publish|archive|unarchive|create|sweep`: the
state changes of seed 004's table, from the shell. A run is named by id, unique id prefix or
`PROJECT/NAME` (`runs_resolve.py`)."""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from collections.abc import Callable
from typing import Any

from ..workspace import Workspace, WorkspaceError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    clone = commands.add_parser("clone", parents=[common],
                                help="a draft copy of a run's inputs, optionally edited and "
                                     "enqueued")
    clone.add_argument("run", metavar="RUN")
    clone.add_argument("--name", help='name of the clone (default "Clone Of NAME")')
    clone.add_argument("--project", help="project of the clone (default: the run's)")
    clone.add_argument("--comment")
    _edit_options(clone)
    clone.set_defaults(handler=_clone)

    for action, text in (("enqueue", "draft -> queued (an agent will run it)"),
                         ("dequeue", "queued -> draft"),
                         ("abort", "running -> aborted (SIGTERM to its process)"),
                         ("reset", "ended -> draft, outputs deleted"),
                         ("publish", "ended -> published (read-only)"),
                         ("archive", "hide from listings"),
                         ("unarchive", "show in listings again")):
        parser = commands.add_parser(action, parents=[common], help=text)
        parser.add_argument("runs", nargs="+", metavar="RUN")
        if action == "enqueue":
            parser.add_argument("--queue", "-q", default="default", metavar="NAME")
        if action == "abort":
            parser.add_argument("--wait", type=float, default=30.0, metavar="SECONDS",
                                help="how long to wait for the run to record it (default 30)")
        parser.set_defaults(handler=_action, action=action)

    create = commands.add_parser("create", parents=[common],
                                 help="a draft from a repository and an entry script (runs "
                                      "nothing)")
    create.add_argument("--project", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--script", required=True,
                        help="entry script (relative to --repo, or a file here)")
    create.add_argument("--repo", help="a local repository path or a URL the agent can reach")
    create.add_argument("--branch")
    create.add_argument("--commit")
    create.add_argument("--cwd", dest="working_directory", help="working directory (in repo)")
    create.add_argument("--requirements", metavar="FILE", help="requirements.txt to record")
    create.add_argument("--type", default="training")
    create.add_argument("--tag", action="append", default=[])
    create.add_argument("--queue", "-q", metavar="NAME", help="enqueue it at once")
    create.add_argument("args", nargs=argparse.REMAINDER,
                        help="arguments for the script (after --)")
    create.set_defaults(handler=_create)

    sweep = commands.add_parser("sweep", parents=[common],
                                help="clone a run once per combination of values and enqueue "
                                     "them (grid, or --random N)")
    sweep.add_argument("run", metavar="RUN")
    sweep.add_argument("--set", action="append", required=True, metavar="PATH=V1,V2,...",
                       help="values of a parameter (repeat for a grid)")
    sweep.add_argument("--queue", "-q", default="default", metavar="NAME")
    sweep.add_argument("--random", type=int, metavar="N",
                       help="N combinations drawn at random instead of the whole grid")
    sweep.add_argument("--seed", type=int, help="seed of --random")
    sweep.add_argument("--json", action="store_true", help="the clones' ids as JSON")
    sweep.set_defaults(handler=_sweep)


def _edit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="Section/key=VALUE",
                        help="set a parameter of the clone (repeat)")
    parser.add_argument("--enqueue", metavar="QUEUE", help="enqueue the clone on QUEUE")


# -- handlers -----------------------------------------------------------------------------
def _resolve(workspace: Workspace, text: str) -> Any:
    from .runs_resolve import resolve_run

    return resolve_run(workspace, text)


def _guarded(work: Callable[[], int]) -> int:
    from ..tracking.errors import TrackingError

    try:
        return work()
    except (TrackingError, ValueError) as error:
        print(f"etude: {error}", file=sys.stderr)
        return 2


def _clone(workspace: Workspace, args: argparse.Namespace) -> int:
    from ..tracking import Run

    def work() -> int:
        source = _resolve(workspace, args.run)
        values = {path: parse_value(text, source.params.get(path))
                  for path, text in (split_setting(item) for item in args.set)}
        draft = Run.clone(source, name=args.name, project=args.project, comment=args.comment)
        if values:
            draft.update_parameters(values)
        if args.enqueue:
            draft.enqueue(args.enqueue)
        print(draft.id)
        print(f"cloned {source.id[:12]} as {draft.id[:12]} ({draft.state})", file=sys.stderr)
        return 0

    return _guarded(work)


def _action(workspace: Workspace, args: argparse.Namespace) -> int:
    def work() -> int:
        runs = [_resolve(workspace, text) for text in args.runs]
        for run in runs:
            if args.action == "enqueue":
                run.enqueue(args.queue)
            elif args.action == "abort":
                run.abort(wait=args.wait)
            else:
                getattr(run, args.action)()
            print(f"{run.id[:12]} {run.project}/{run.name}: {run.reload().state}"
                  + (" (archived)" if args.action == "archive" else ""))
        return 0

    return _guarded(work)


def _create(workspace: Workspace, args: argparse.Namespace) -> int:
    from ..tracking import Run

    def work() -> int:
        packages = None
        if args.requirements:
            try:
                with open(args.requirements) as stream:
                    packages = stream.read()
            except OSError as error:
                raise WorkspaceError(f"--requirements {args.requirements}: {error}") from error
        script_args = args.args[1:] if args.args[:1] == ["--"] else args.args
        draft = Run.create(project=args.project, name=args.name, script=args.script,
                           repo=args.repo, branch=args.branch, commit=args.commit,
                           working_directory=args.working_directory, argv=script_args,
                           packages=packages, type=args.type, tags=args.tag,
                           workspace=workspace.path)
        if args.queue:
            draft.enqueue(args.queue)
        print(draft.id)
        return 0

    return _guarded(work)


def _sweep(workspace: Workspace, args: argparse.Namespace) -> int:
    from ..tracking import Run
    from ..tracking.run import new_run_id

    def work() -> int:
        source = _resolve(workspace, args.run)
        axes = []
        for item in args.set:
            path, text = split_setting(item)
            old = source.params.get(path)
            axes.append([(path, parse_value(value, old)) for value in text.split(",")])
        grid = list(itertools.product(*axes))
        if args.random is not None:
            if args.random < 1:
                raise ValueError(f"--random {args.random}: give 1 or more.")
            grid = random.Random(args.seed).sample(grid, min(args.random, len(grid)))
        sweep_id = new_run_id()[:12]
        made = []
        for combination in grid:
            label = ", ".join(f"{path.split('/', 1)[-1]}={value}" for path, value in combination)
            draft = Run.clone(source, name=f"{source.name} [{label}]")
            draft.update_parameters(dict(combination))
            draft.add_tags(f"sweep={sweep_id}")
            draft.enqueue(args.queue)
            made.append(draft.id)
        if args.json:
            print(json.dumps({"sweep": sweep_id, "runs": made}))
        else:
            print("\n".join(made))
        print(f"sweep {sweep_id}: {len(made)} runs enqueued on {args.queue!r}; rank them with "
              f"etude runs list --where 'tags.sweep = \"{sweep_id}\"' --sort -metrics.TITLE.SERIES",
              file=sys.stderr)
        return 0

    return _guarded(work)


# -- values from the shell ----------------------------------------------------------------
def split_setting(item: str) -> tuple[str, str]:
    path, sep, value = item.partition("=")
    if not sep or not path.strip():
        raise ValueError(f"--set {item!r}: write Section/key=VALUE, e.g. General/lr=0.01.")
    path = path.strip()
    return (path if "/" in path else f"General/{path}"), value


def parse_value(text: str, old: Any) -> Any:
    """A value typed in the shell, as the parameter's recorded type (else JSON, else text)."""
    from ..tracking.sections import as_type_of

    if old is not None and not isinstance(old, str):
        converted = as_type_of(old, text)
        if converted is not text:
            return converted
    try:
        return json.loads(text)
    except ValueError:
        return text
