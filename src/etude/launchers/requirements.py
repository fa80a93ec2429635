"""What a job needs: duration, cores, memory, GPUs. Shared by every launcher.

Written as a small expression, e.g. `"duration=4h & cpu(cores=4, mem=16G) & gpu(mem=24G)*2"`:
terms joined by `&`; `duration=` takes `90s`, `30m`, `2h`, `1d`, `1h30m` or `HH:MM:SS`; sizes
take `K`, `M`, `G`, `T` (powers of 1024). A job holds its GPUs alone, unless it says
`gpu(shared=yes)`: then it may share them with other such jobs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_YES_NO = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}
_SIZES = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class RequirementError(ValueError):
    """A requirement expression that does not parse; the message shows where and the grammar."""


@dataclass(frozen=True)
class Requirements:
    """Resources a job asks for; None means 'no particular need'."""

    duration: float | None = None  # seconds
    cores: int | None = None
    memory: int | None = None  # bytes
    gpus: int = 0
    gpu_memory: int | None = None  # bytes per GPU
    gpu_shared: bool = False  # the job may share its GPUs with other shared jobs

    def __str__(self) -> str:
        parts = []
        if self.duration is not None:
            parts.append(f"duration={format_duration(self.duration)}")
        cpu = []
        if self.cores is not None:
            cpu.append(f"cores={self.cores}")
        if self.memory is not None:
            cpu.append(f"mem={format_size(self.memory)}")
        if cpu:
            parts.append(f"cpu({', '.join(cpu)})")
        if self.gpus:
            gpu = [f"mem={format_size(self.gpu_memory)}"] if self.gpu_memory else []
            if self.gpu_shared:
                gpu.append("shared=yes")
            parts.append(f"gpu({', '.join(gpu)})" + (f"*{self.gpus}" if self.gpus > 1 else ""))
        return " & ".join(parts)


GRAMMAR = (
    "terms joined by '&': duration=2h | cores=N | mem=16G | cpu(cores=N, mem=SIZE) | "
    "gpu(mem=SIZE, shared=yes)*N"
)


def parse_duration(text: str) -> float:
    """`90`, `90s`, `30m`, `2h`, `1d`, `1h30m` or `[D-]HH:MM:SS` to seconds."""
    text = text.strip()
    if re.fullmatch(r"(\d+-)?\d+:\d{1,2}(:\d{1,2})?", text):
        days, _, clock = text.rpartition("-")
        numbers = [int(p) for p in clock.split(":")]
        if len(numbers) == 2:
            numbers.append(0)
        hours, minutes, seconds = numbers
        return (int(days) if days else 0) * 86400 + hours * 3600 + minutes * 60 + seconds
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise RequirementError(
            f"duration {text!r}: use a number with a unit (90s, 30m, 2h, 1d, 1h30m) or HH:MM:SS."
        )
    return sum(float(n) * _UNITS[u] for n, u in parts)


def parse_size(text: str) -> int:
    """`512M`, `16G`, `1.5T` (powers of 1024; `GB`/`GiB` accepted) to bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise RequirementError(f"size {text!r}: use a number with K, M, G or T, e.g. 16G.")
    return int(float(match.group(1)) * _SIZES[match.group(2).upper()])


def format_duration(seconds: float) -> str:
    if seconds < 60 and seconds != int(seconds):
        return f"{seconds:g}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def format_size(size: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if size % _SIZES[unit] == 0:
            return f"{size // _SIZES[unit]}{unit}"
    return str(size)


_TERM = re.compile(r"^(?P<name>cpu|gpu)\((?P<args>[^()]*)\)(\s*\*\s*(?P<count>\d+))?$")


def parse_requirements(text: str) -> Requirements:
    """Parse a requirement expression; raises `RequirementError` naming the bad term."""
    values: dict[str, object] = {}
    for raw in text.split("&"):
        term = raw.strip()
        if not term:
            raise RequirementError(f"{text!r}: empty term; {GRAMMAR}.")
        match = _TERM.match(term)
        if match:
            args = _keywords(match.group("args"), term)
            if match.group("name") == "cpu":
                _take(values, term, args, {"cores": "cores", "mem": "memory"})
            else:
                _take(values, term, args, {"mem": "gpu_memory", "shared": "gpu_shared"})
                values["gpus"] = int(match.group("count") or 1)
            continue
        key, eq, value = term.partition("=")
        key = key.strip()
        if not eq or key not in ("duration", "cores", "mem"):
            raise RequirementError(f"{text!r}: cannot read {term!r}; {GRAMMAR}.")
        _take(
            values,
            term,
            {key: value.strip()},
            {"duration": "duration", "cores": "cores", "mem": "memory"},
        )
    return Requirements(**values)  # type: ignore[arg-type]


def _keywords(args: str, term: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in filter(None, (a.strip() for a in args.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise RequirementError(f"{term!r}: expected key=value, got {item!r}.")
        found[key.strip()] = value.strip()
    return found


def _take(
    values: dict[str, object], term: str, args: dict[str, str], names: dict[str, str]
) -> None:
    for key, value in args.items():
        field = names.get(key)
        if field is None:
            raise RequirementError(
                f"{term!r}: unknown key {key!r}; valid keys: {', '.join(sorted(names))}."
            )
        if field == "duration":
            values[field] = parse_duration(value)
        elif field in ("memory", "gpu_memory"):
            values[field] = parse_size(value)
        elif field == "gpu_shared":
            if value.lower() not in _YES_NO:
                raise RequirementError(f"{term!r}: shared must be yes or no, got {value!r}.")
            values[field] = _YES_NO[value.lower()]
        else:
            if not value.isdigit() or int(value) < 1:
                raise RequirementError(f"{term!r}: {key} must be a positive integer.")
            values[field] = int(value)


def as_requirements(value: str | Requirements | None) -> Requirements | None:
    """Accept a `Requirements`, an expression string, or None."""
    if value is None or isinstance(value, Requirements):
        return value
    if isinstance(value, str):
        return parse_requirements(value)
    raise RequirementError(
        f"requirements: expected a string such as 'duration=2h' or a Requirements object, got "
        f"{type(value).__name__}."
    )
