"""The scalar points of a run: `scalars.bin`, an append-only file of chunks.

A chunk holds the points of one series reported since the previous flush:

    magic b"ESP1" | u32 name length | u32 point count | u32 crc32 of the rest
    name: UTF-8 JSON [title, series]
    iterations: int64[n] | values: float64[n] | times: float64[n]   (little-endian)

Chunks are appended with one `write` each by the run's flusher thread. A process killed in
the middle of a write leaves a short or damaged last chunk: readers stop at the first chunk
that is short or whose checksum fails, so what was flushed before is always readable (a
reader of one title checks the headers of other titles' chunks, not their payload).
NaN and infinities are stored as they are.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from array import array
from collections.abc import Iterator
from typing import Any

MAGIC = b"ESP1"
HEADER = struct.Struct("<4sIII")
SeriesKey = tuple[str, str]


class SeriesBuffer:
    """Points of one series waiting to be written (three arrays of the same length)."""

    __slots__ = ("iterations", "times", "values")

    def __init__(self) -> None:
        self.iterations = array("q")
        self.values = array("d")
        self.times = array("d")

    def __len__(self) -> int:
        return len(self.values)

    def trim(self) -> None:
        """Drop a point whose three parts were not all appended."""
        size = min(len(self.iterations), len(self.values), len(self.times))
        for part in (self.iterations, self.values, self.times):
            del part[size:]


def encode_chunk(key: SeriesKey, points: SeriesBuffer) -> bytes:
    """The bytes of one chunk (little-endian on every machine)."""
    name = json.dumps(list(key)).encode()
    body: list[array[Any]] = [points.iterations, points.values, points.times]
    if struct.pack("=H", 1) != struct.pack("<H", 1):  # big-endian host
        body = [array(part.typecode, part) for part in body]
        for part in body:
            part.byteswap()
    payload = name + b"".join(part.tobytes() for part in body)
    return HEADER.pack(MAGIC, len(name), len(points), zlib.crc32(payload)) + payload


def iter_chunks(data: bytes) -> Iterator[tuple[SeriesKey, memoryview, int]]:
    """(series, the three arrays' bytes, point count) of each whole chunk of `data`, stopping
    at the first short or damaged one."""
    view, at = memoryview(data), 0
    while at + HEADER.size <= len(data):
        magic, name_length, count, crc = HEADER.unpack_from(data, at)
        end = at + HEADER.size + name_length + 24 * count
        if magic != MAGIC or end > len(data):
            return
        payload = view[at + HEADER.size : end]
        if zlib.crc32(payload) != crc:
            return
        title, series = json.loads(bytes(payload[:name_length]))
        yield (title, series), payload[name_length:], count
        at = end


def whole_length(data: bytes) -> int:
    """The length of the whole chunks at the start of `data`."""
    at = 0
    while at + HEADER.size <= len(data):
        magic, name_length, count, crc = HEADER.unpack_from(data, at)
        end = at + HEADER.size + name_length + 24 * count
        if magic != MAGIC or end > len(data) or zlib.crc32(data[at + HEADER.size:end]) != crc:
            break
        at = end
    return at


def truncate_damaged_tail(path: str | os.PathLike[str]) -> None:
    """Cut what follows the last whole chunk of a scalars file (a write cut by a kill)."""
    try:
        with open(path, "r+b") as stream:
            data = stream.read()
            keep = whole_length(data)
            if keep < len(data):
                stream.truncate(keep)
    except FileNotFoundError:
        return


def read_points(
    path: str | os.PathLike[str], title: str | None = None
) -> dict[str, dict[str, tuple[Any, Any, Any]]]:
    """`{title: {series: (iterations, values, times)}}` from a scalars file, in the order
    reported; numpy arrays when numpy is installed, else lists. `title` keeps one title: the
    chunks of other titles are skipped by their header (their payload is neither read nor
    checked), so reading one title of a file of many costs that title's bytes."""
    try:
        import numpy  # noqa: F401  (lazily: tracking works without numpy, as lists)
    except ImportError:
        return _read_lists(path, title)
    try:
        with open(path, "rb", buffering=_HEADER_BUFFER) as stream:
            return _read_arrays(stream, title)
    except FileNotFoundError:
        return {}


#: Read-ahead while walking headers: the small chunks that follow come with one read.
_HEADER_BUFFER = 64 * 1024
_Chunk = tuple[SeriesKey, int, bytes, int, int]  # series, payload offset, name, count, crc


def _walk_headers(stream: Any, size: int, title: str | None) -> list[_Chunk]:
    """The whole-looking chunks of `title` (all titles if None), up to the first header that
    is short, not a chunk's or runs past the end of the file."""
    keys: dict[bytes, SeriesKey] = {}
    found: list[_Chunk] = []
    at = 0
    while at + HEADER.size <= size:
        stream.seek(at)
        head = stream.read(HEADER.size)
        magic, name_length, count, crc = HEADER.unpack(head)
        end = at + HEADER.size + name_length + 24 * count
        if magic != MAGIC or end > size:
            break
        name = stream.read(name_length)
        key = keys.get(name)
        if key is None:
            try:
                series_title, series = json.loads(name)
            except ValueError:  # a damaged name: the end of what can be trusted
                break
            key = keys[name] = (str(series_title), str(series))
        if title is None or key[0] == title:
            found.append((key, at + HEADER.size + name_length, name, count, crc))
        at = end
    return found


def _read_arrays(stream: Any, title: str | None) -> dict[str, dict[str, tuple[Any, Any, Any]]]:
    """read_points with numpy: each series' three arrays are allocated once at their full
    length and every chunk is read straight into its place (no per-chunk copies), then
    checked. At the first chunk whose checksum fails, every series is cut where it was."""
    import numpy as np

    chunks = _walk_headers(stream, os.fstat(stream.fileno()).st_size, title)
    totals: dict[SeriesKey, int] = {}
    for key, _, _, count, _ in chunks:
        totals[key] = totals.get(key, 0) + count
    columns = {key: (np.empty(total, "<i8"), np.empty(total, "<f8"), np.empty(total, "<f8"))
               for key, total in totals.items()}
    filled: dict[SeriesKey, int] = {}  # the series with a chunk read and checked
    for key, offset, name, count, crc in chunks:
        begin = filled.get(key, 0)
        parts = [column[begin:begin + count] for column in columns[key]]
        stream.seek(offset)
        whole = all(stream.readinto(part) == part.nbytes for part in parts)
        check = zlib.crc32(name)
        for part in parts:
            check = zlib.crc32(part.data, check)
        if not whole or check != crc:
            break
        filled[key] = begin + count
    result: dict[str, dict[str, tuple[Any, Any, Any]]] = {}
    for key, size in filled.items():
        iterations, values, times = columns[key]
        result.setdefault(key[0], {})[key[1]] = (iterations[:size], values[:size], times[:size])
    return result


def _read_lists(path: str | os.PathLike[str],
                title: str | None) -> dict[str, dict[str, tuple[Any, Any, Any]]]:
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except FileNotFoundError:
        return {}
    parts: dict[SeriesKey, list[tuple[memoryview, int]]] = {}
    for key, arrays, count in iter_chunks(data):
        if title is None or key[0] == title:
            parts.setdefault(key, []).append((arrays, count))
    result: dict[str, dict[str, tuple[Any, Any, Any]]] = {}
    for (series_title, series), chunks in parts.items():
        result.setdefault(series_title, {})[series] = _join_lists(chunks)
    return result


def _join_lists(chunks: list[tuple[memoryview, int]]) -> tuple[Any, Any, Any]:
    out: tuple[array[Any], ...] = (array("q"), array("d"), array("d"))
    for arrays, count in chunks:
        raw = bytes(arrays)
        for index, part in enumerate(out):
            piece = array(part.typecode, raw[index * 8 * count : (index + 1) * 8 * count])
            if struct.pack("=H", 1) != struct.pack("<H", 1):
                piece.byteswap()
            part.extend(piece)
    return out[0].tolist(), out[1].tolist(), out[2].tolist()


class Summary:
    """last / min / max / count / last iteration of one series; min and max leave NaN out
    (a series of NaN only has none)."""

    __slots__ = ("count", "last", "last_iteration", "max", "min")

    def __init__(self) -> None:
        self.last: float | None = None
        self.min: float | None = None
        self.max: float | None = None
        self.count = 0
        self.last_iteration: int | None = None

    def add(self, points: SeriesBuffer) -> None:
        if not len(points):
            return
        finite = [value for value in points.values if not math.isnan(value)]
        if finite:
            low, high = min(finite), max(finite)
            self.min = low if self.min is None else min(self.min, low)
            self.max = high if self.max is None else max(self.max, high)
        self.last = points.values[-1]
        self.last_iteration = points.iterations[-1]
        self.count += len(points)

    def to_json(self) -> dict[str, Any]:
        return {
            "last": self.last,
            "min": self.min,
            "max": self.max,
            "count": self.count,
            "iteration": self.last_iteration,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Summary:
        summary = cls()
        summary.last, summary.min, summary.max = data.get("last"), data.get("min"), data.get("max")
        summary.count = int(data.get("count") or 0)
        summary.last_iteration = data.get("iteration")
        return summary


def summarize(path: str | os.PathLike[str]) -> dict[SeriesKey, Summary]:
    """The summaries of every series of a scalars file (to continue a run)."""
    summaries: dict[SeriesKey, Summary] = {}
    for title, by_series in read_points(path).items():
        for series, (iterations, values, _) in by_series.items():
            points = SeriesBuffer()
            points.iterations.extend(int(i) for i in iterations)
            points.values.extend(float(v) for v in values)
            summaries.setdefault((title, series), Summary()).add(points)
    return summaries
