"""How the `etude runs` and `etude projects` commands print: states in colour, times, sizes,
JSON that never fails on a value, and rich tables that stay one line per row when piped."""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

STATE_STYLES = {"completed": "green", "failed": "red", "aborted": "yellow", "running": "cyan",
                "queued": "blue", "draft": "dim", "published": "magenta"}
#: Width given to rich when stdout is not a terminal: wide enough that no cell wraps, so
#: `grep` and `awk` see one line per row.
PIPE_WIDTH = 10_000


def json_default(value: Any) -> Any:
    """Anything JSON cannot encode (paths, numpy scalars) as its text."""
    return str(value)


def safe(value: Any) -> Any:
    """`value`, with NaN and infinities as None: JSON has no literal for them."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def safe_deep(value: Any) -> Any:
    """`safe` applied inside dicts and lists too."""
    if isinstance(value, dict):
        return {key: safe_deep(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [safe_deep(item) for item in value]
    return safe(value)


def print_json(data: Any) -> None:
    print(json.dumps(safe_deep(data), indent=2, default=json_default))


def when(value: float | None) -> str:
    """A time in seconds since the epoch as local `YYYY-MM-DD HH:MM:SS` ('' for None)."""
    return "" if value is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))


def duration(seconds: float | None) -> str:
    """`1h02m`, `3m05s`, `4.2s` ('' for None)."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def size(count: int | None) -> str:
    """A byte count as `512 B`, `1.5 KiB`, `3.2 MiB` ..."""
    if count is None:
        return ""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop returns at GiB


def text(value: Any) -> str:
    """A value as a table cell: other values than text as compact JSON, text as it is unless
    it would read as another value (`"0.1"`, `"true"` are quoted, so that the number 0.1 and
    the text "0.1" read differently), NaN and infinities as `nan`, `inf`, `-inf`, None as
    ''."""
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value) if _reads_as_json(value) else value
    return json.dumps(value, default=json_default)


def _reads_as_json(value: str) -> bool:
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def state_markup(state: str, reason: str | None = None) -> str:
    """The state in its colour, with the reason after it (rich markup)."""
    from rich.markup import escape

    markup = f"[{STATE_STYLES.get(state, '')}]{escape(state)}[/]"
    return markup + (f" ({escape(reason)})" if reason else "")


def console() -> Any:
    """A rich Console for stdout: a table fits the terminal, and is never wrapped when
    stdout is a file or a pipe."""
    # rich is imported here, not at module level, so that `etude --help` stays fast.
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH, highlight=False)
