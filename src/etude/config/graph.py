"""Walking the graph of configurations reachable from a root (values, containers, init tasks)."""

from __future__ import annotations

from typing import Any

from .base import Config, _children, schema_of, tags_in_effect
from .errors import CycleError, MissingParameterError
from .fields import MISSING


def walk(root: Config, root_path: str) -> list[tuple[str, Config]]:
    """Every configuration reachable from `root`, once each, parents before children.

    Each comes with the path by which it was first reached (`learn.model.encoder`).
    Raises `CycleError` naming the path of a configuration that contains itself.
    """
    seen: set[int] = set()
    order: list[tuple[str, Config]] = []
    on_stack: set[int] = set()

    def visit(cfg: Config, path: str) -> None:
        key = id(cfg)
        if key in on_stack:
            raise CycleError(
                f"{path}: this configuration contains itself (a cycle through its parameters). "
                "A configuration graph must be acyclic; build a new object instead of reusing "
                "an ancestor."
            )
        if key in seen:
            return
        seen.add(key)
        on_stack.add(key)
        order.append((path, cfg))
        values = cfg.__dict__
        for name in schema_of(type(cfg)).fields:
            value = values.get(name, MISSING)
            if value is not MISSING:
                for child_path, child in _children(value, f"{path}.{name}"):
                    visit(child, child_path)
        for i, task in enumerate(cfg._etude.init_tasks):
            visit(task, f"{path}.init_tasks[{i}]")
        on_stack.discard(key)

    visit(root, root_path)
    return order


def check_required(nodes: list[tuple[str, Config]]) -> None:
    """Raise `MissingParameterError` for the first required parameter without a value."""
    for path, cfg in nodes:
        values = cfg.__dict__
        for name, f in schema_of(type(cfg)).fields.items():
            if name not in values and f.required:
                raise MissingParameterError(
                    f"{path}.{name} has no value: it is required. "
                    f"Pass {name}=... to {type(cfg).__qualname__}.C()."
                )


def collect_tags(nodes: list[tuple[str, Config]]) -> dict[str, Any]:
    """The tags of the graph walked into `nodes` (its root first): see `Config.tags()`."""
    return tags_in_effect(nodes[0][1]) if nodes else {}
