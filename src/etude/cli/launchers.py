"""`etude launchers list|find`: the launchers of launchers.yaml, and which one a job gets."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..launchers.finder import (
    LauncherEntry,
    LaunchersFileError,
    NoLauncherFits,
    find_entry,
    launchers_path,
    load_launchers,
)
from ..launchers.requirements import RequirementError, parse_requirements
from ..workspace import Workspace


def _describe(entry: LauncherEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "type": entry.kind,
        "options": entry.options,
        "limits": str(entry.limits) or "none",
        "hosts": list(entry.hosts),
    }


def _load() -> list[LauncherEntry] | None:
    try:
        return load_launchers()
    except LaunchersFileError as exc:
        print(f"etude: {exc}", file=sys.stderr)
        return None


def _list(workspace: Workspace, args: argparse.Namespace) -> int:
    entries = _load()
    if entries is None:
        return 2
    if args.json:
        print(json.dumps([_describe(e) for e in entries], indent=2))
        return 0
    if not entries:
        print(f"No launchers in {launchers_path()}: jobs run on this machine (DirectLauncher).")
        return 0
    for entry in entries:
        info = _describe(entry)
        print(f"{entry.name} ({entry.kind}): limits {info['limits']}; options {entry.options}")
    return 0


def _find(workspace: Workspace, args: argparse.Namespace) -> int:
    try:
        needs = parse_requirements(args.requirements)
    except RequirementError as exc:
        print(f"etude: {exc}", file=sys.stderr)
        return 2
    entries = _load()
    if entries is None:
        return 2
    try:
        entry = find_entry(needs, entries)
    except NoLauncherFits as exc:
        print(f"etude: {exc}", file=sys.stderr)
        return 1
    skipped = entries[: entries.index(entry)]
    if args.json:
        print(json.dumps({"chosen": _describe(entry), "requirements": str(needs)}, indent=2))
        return 0
    print(f"{entry.name} ({entry.kind}) runs '{needs}'")
    for other in skipped:
        print(f"  skipped {other.name}: {other.why_not(needs)}")
    try:
        print(f"  launcher: {entry.launcher()!r}")
    except LaunchersFileError as exc:
        print(f"etude: {exc}", file=sys.stderr)
        return 2
    return 0


def register(
    groups: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add `launchers` and its sub-commands to `groups`."""
    group = groups.add_parser("launchers", help="the launchers of launchers.yaml")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    listing = commands.add_parser("list", parents=[common], help="list the configured launchers")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)
    find = commands.add_parser(
        "find", parents=[common], help="show which launcher a job with these requirements gets"
    )
    find.add_argument(
        "requirements", help="e.g. 'duration=4h & cpu(cores=4, mem=16G) & gpu(mem=24G)*2'"
    )
    find.add_argument("--json", action="store_true", help="print JSON")
    find.set_defaults(handler=_find)
