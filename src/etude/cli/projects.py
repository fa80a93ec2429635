"""`etude projects list`: the project tree of a workspace's runs, with run counts.

Projects nest with `/` (`vision/mnist/ablations`), and a project's count includes its
sub-projects (as `etude runs list --project` does); a parent that holds no run of its own
(`vision` above) is shown so that the tree reads as one. The counts come from one grouped
query on the index, after it is reconciled with the run folders.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..workspace import Workspace
from .index import open_index, with_index
from .runs_format import STATE_STYLES, console, print_json

if TYPE_CHECKING:
    from ..store import Store


@dataclass
class Project:
    """One node of the tree: `states` counts its runs and its sub-projects' runs."""

    path: str
    own: int = 0
    states: dict[str, int] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return self.path.count("/")

    @property
    def runs(self) -> int:
        return sum(self.states.values())

    def to_json(self) -> dict[str, object]:
        parent, _, name = self.path.rpartition("/")
        return {"project": self.path, "name": name, "parent": parent or None,
                "depth": self.depth, "runs": self.runs, "own_runs": self.own,
                "states": dict(sorted(self.states.items()))}


def project_tree(counts: dict[tuple[str, str], int]) -> list[Project]:
    """The tree of `{(project, state): count}`, every ancestor included, in depth-first
    order (a parent before its sub-projects, siblings by name)."""
    nodes: dict[str, Project] = {}
    for (path, state), count in counts.items():
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            node = nodes.setdefault("/".join(parts[:depth]), Project("/".join(parts[:depth])))
            node.states[state] = node.states.get(state, 0) + count
        nodes[path].own += count
    return [nodes[path] for path in sorted(nodes, key=lambda p: p.split("/"))]


def _counts(store: Store, include_archived: bool) -> dict[tuple[str, str], int]:
    import sqlalchemy as sa

    from ..store.schema import runs

    query = (sa.select(runs.c.project, runs.c.state, sa.func.count())
             .where(runs.c.workspace_pk == store.workspace_pk)
             .group_by(runs.c.project, runs.c.state))
    if not include_archived:
        query = query.where(runs.c.archived == sa.false())

    def work(s: Store) -> dict[tuple[str, str], int]:
        with s.engine.connect() as connection:
            return {(project, state): int(count)
                    for project, state, count in connection.execute(query)}

    return with_index(store, work)


def _list(workspace: Workspace, args: argparse.Namespace) -> int:
    tree = project_tree(_counts(open_index(workspace), args.archived))
    if args.json:
        print_json([node.to_json() for node in tree])
        return 0
    _print(workspace, tree, args.states)
    return 0


def _print(workspace: Workspace, tree: list[Project], states: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console()
    if not tree:
        out.print(f"No runs in {escape(str(workspace.path))}.")
        return
    shown = [s for s in STATE_STYLES if any(s in node.states for node in tree)] if states else []
    table = Table("PROJECT", "RUNS", *(f"[{STATE_STYLES[s]}]{s.upper()}[/]" for s in shown),
                  box=None, header_style="bold")
    for column in table.columns[1:]:
        column.justify = "right"
    for node in tree:
        name = node.path.rpartition("/")[2]
        own = f" ({node.own} own)" if node.own and node.own != node.runs else ""
        table.add_row("  " * node.depth + escape(name), f"{node.runs}{own}",
                      *(str(node.states.get(s, "")) for s in shown))
    out.print(table)


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    """Add `projects list` to `groups`; `common` holds the shared options."""
    group = groups.add_parser("projects", help="the project tree of tracked runs")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    listing = commands.add_parser("list", parents=[common],
                                  help="projects and sub-projects with their run counts")
    listing.add_argument("--states", action="store_true", help="a column per run state")
    listing.add_argument("--archived", action="store_true", help="count archived runs too")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)
