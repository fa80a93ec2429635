"""`etude runs show RUN`: everything a run captured, read from its folder.

The text is grouped so that the answer to "what was this run?" comes first (state, times,
host, where its files are), then what it was given (parameters, configuration), then what it
produced (metrics, artifacts, models), then how to rebuild it (code, packages) and what it
printed (the console's tail). `--json` gives the same and the full environment.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..workspace import Workspace
from ..workspace.run_folder import RunFolder
from .runs_format import duration, json_default, print_json, size, text, when
from .runs_resolve import resolve_row, run_of

if TYPE_CHECKING:
    from ..store.run_query import RunRow

#: Lines of the console printed without `--console`.
CONSOLE_LINES = 20
#: Bytes read from the end of the console to find those lines.
CONSOLE_TAIL_BYTES = 64 * 1024
#: Characters of an artifact's preview shown on its line.
PREVIEW_CHARS = 100


def show(workspace: Workspace, args: argparse.Namespace) -> int:
    row = resolve_row(workspace, args.run)
    data = run_record(run_of(workspace, row), row, whole_console=args.console)
    if args.json:
        print_json(data)
        return 0
    _print_overview(data)
    _print_params(data["params"])
    _print_configuration(data["configuration"])
    _print_mapping("user properties", data["user_properties"])
    _print_metrics(data["metrics"])
    _print_outputs("artifacts", data["artifacts"])
    for side in ("input", "output"):
        _print_outputs(f"{side} models", data["models"][side])
    _print_environment(data["environment"])
    if data["traceback"]:
        print("\ntraceback:\n" + data["traceback"].rstrip("\n"))
    _print_console(data, whole=args.console)
    return 0


# -- the record --------------------------------------------------------------------------------
def run_record(run: Any, row: RunRow, *, whole_console: bool = False) -> dict[str, Any]:
    """Everything `show` prints, as JSON-able data: the run's fields (from its index `row`,
    which holds a job's state, reason and times for the run of a job), its process (pid,
    heartbeat), parameters, configuration, user properties, metric summaries, artifacts and
    models (without their content), environment, traceback and console (the last lines, or
    the whole text with `whole_console`)."""
    status = RunFolder(run.folder, run.id).read_status()
    started, ended = row.started, row.ended
    console = run.console(None if whole_console else CONSOLE_TAIL_BYTES)
    return {
        "id": row.id, "kind": row.kind, "project": row.project, "name": row.name,
        "type": row.type, "state": row.state, "reason": row.reason, "message": row.message,
        "tags": row.tags, "comment": row.comment, "parent": row.parent,
        "archived": row.archived, "created": row.created, "started": started, "ended": ended,
        "duration": ended - started if started is not None and ended is not None else None,
        "host": row.host, "pid": status.get("pid"),
        "heartbeat": status.get("heartbeat"), "folder": str(run.folder),
        "job": _job(run), "params": run.params, "configuration": run.configuration,
        "user_properties": run.user_properties, "metrics": run.metrics,
        "artifacts": {name: _output(a) for name, a in run.artifacts.items()},
        "models": {side: {name: _output(m) for name, m in models.items()}
                   for side, models in run.models.items()},
        "environment": run.environment, "traceback": run.traceback,
        "console": console if whole_console else _last_lines(console, CONSOLE_LINES),
    }


def _job(run: Any) -> dict[str, Any] | None:
    """For a job's run: its folder and id, to reach it with `etude jobs`."""
    job = run.job
    if job is None:
        return None
    return {"folder": job["folder"], "id": Path(job["folder"]).name}


def _output(artifact: Any) -> dict[str, Any]:
    return {"kind": artifact.kind, "type": artifact.type, "size": artifact.size,
            "sha256": artifact.sha256, "preview": artifact.preview,
            "metadata": artifact.metadata}


def _last_lines(console: str, count: int) -> str:
    lines = console.splitlines(keepends=True)
    return "".join(lines[-count:])


# -- printing ----------------------------------------------------------------------------------
def _line(label: str, value: Any) -> None:
    if value not in (None, "", [], {}):
        print(f"{label + ':':10} {value}")


def _print_overview(data: dict[str, Any]) -> None:
    state = data["state"] + (f" ({data['reason']})" if data["reason"] else "")
    _line("id", data["id"])
    _line("project", data["project"])
    _line("name", data["name"])
    _line("type", data["type"])
    _line("state", state + (" [archived]" if data["archived"] else ""))
    _line("message", data["message"])
    _line("tags", ", ".join(data["tags"]))
    _line("comment", data["comment"])
    _line("parent", data["parent"])
    _line("created", when(data["created"]))
    _line("started", when(data["started"]))
    _line("ended", when(data["ended"]))
    _line("duration", duration(data["duration"]))
    host = data["host"]
    _line("host", f"{host} (pid {data['pid']})" if host and data["pid"] else host)
    _line("folder", data["folder"])
    if data["job"]:
        job = data["job"]
        _line("job", f"{job['folder']} (its output: etude jobs log {job['id'][:12]})")


def _sections(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    grouped: dict[str, dict[str, Any]] = {}
    for path, value in params.items():
        section, _, key = path.partition("/")
        grouped.setdefault(section, {})[key] = value
    return grouped


def _print_params(params: dict[str, Any]) -> None:
    for section, values in sorted(_sections(params).items()):
        print(f"\nparameters [{section}]:")
        for key, value in sorted(values.items()):
            print(f"  {key} = {text(value) if value is not None else 'null'}")


def _print_configuration(configuration: dict[str, Any]) -> None:
    for name, value in configuration.items():
        print(f"\nconfiguration {name!r}:")
        body = value if isinstance(value, str) else json.dumps(value, indent=2,
                                                                 default=json_default)
        for line in body.splitlines():
            print(f"  {line}")


def _print_mapping(title: str, values: dict[str, Any]) -> None:
    if values:
        print(f"\n{title}:")
        for key, value in values.items():
            print(f"  {key} = {text(value) if value is not None else 'null'}")


def _print_metrics(metrics: dict[str, dict[str, dict[str, Any]]]) -> None:
    rows = [(title if title == series else f"{title}/{series}", summary)
            for title, by_series in sorted(metrics.items())
            for series, summary in sorted(by_series.items())]
    if not rows:
        return
    width = max(len(name) for name, _ in rows)
    width = max(width, len("TITLE/SERIES"))
    print(f"\nmetrics:\n  {'TITLE/SERIES':{width}}  {'LAST':>12} {'MIN':>12} {'MAX':>12} COUNT")
    for name, summary in rows:
        numbers = [_number(summary.get(key)) for key in ("last", "min", "max")]
        print(f"  {name:{width}}  {numbers[0]:>12} {numbers[1]:>12} {numbers[2]:>12} "
              f"{summary.get('count', '')}")


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def _print_outputs(title: str, outputs: dict[str, dict[str, Any]]) -> None:
    if not outputs:
        return
    print(f"\n{title}:")
    for name, output in outputs.items():
        preview = json.dumps(output["preview"], default=json_default) \
            if output["preview"] is not None else ""
        if len(preview) > PREVIEW_CHARS:
            preview = preview[:PREVIEW_CHARS - 3] + "..."
        print(f"  {name}  {output['type']}, {size(output['size'])}, sha256 "
              f"{output['sha256'][:12]}" + (f"  {preview}" if preview else ""))


def _print_environment(env: dict[str, Any]) -> None:
    if not env:
        return
    print("\nenvironment:")
    code = env.get("code") or {}
    if code.get("kind") == "git":
        print(f"  git:      {code.get('commit') or '(no commit)'} on "
              f"{code.get('branch') or '(detached)'} of {code.get('root')}")
        if code.get("remote"):
            print(f"  remote:   {code['remote']}")
        diff = code.get("diff") or ""
        untracked = len(code.get("untracked") or [])
        print(f"  diff:     {size(len(diff.encode())) if diff else 'none'}"
              + (f" ({untracked} untracked files)" if untracked else ""))
    elif code.get("kind") == "script":
        kept = "text kept" if code.get("text") is not None else "text not kept"
        print(f"  code:     no git; script {code.get('script')} ({kept})")
    _env_line("script", env.get("script"))
    _env_line("cwd", env.get("cwd"))
    _env_line("argv", " ".join(env.get("argv") or []))
    python = env.get("python")
    _env_line("python", f"{python} ({env.get('executable')})" if python else None)
    _env_line("packages", f"{len(env.get('packages') or [])} imported")
    _env_line("user", env.get("user"))
    for problem in env.get("problems") or []:
        print(f"  (!) {problem}")


def _env_line(label: str, value: Any) -> None:
    if value not in (None, ""):
        print(f"  {label + ':':9} {value}")


def _print_console(data: dict[str, Any], *, whole: bool) -> None:
    console = data["console"]
    if not console:
        return
    heading = "console:" if whole else \
        f"console (last {CONSOLE_LINES} lines; --console for all of it):"
    print(f"\n{heading}")
    sys.stdout.write(console if console.endswith("\n") else console + "\n")
