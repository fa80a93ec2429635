"""Per-item storage of MapInfra: many small results in one folder, read back in a few reads.

One folder holds the results of one cached method (one class uid, one version), keyed by
item uid strings. Each writer (a thread, a process, a cluster job) appends to its own pair of
files, so writers never share a file and need no lock:

    items-<host>-<pid>-<random>.index   one JSON line per record (written second)
    items-<host>-<pid>-<random>.data    the payloads, back to back (written first)

The first index line is a header, `{"etude_items": 1, "host": ..., "pid": ...}`.
Every other line is one record:

    [uid, t, serializer, offset, length]   the value is data[offset:offset + length]
    [uid, t, null]                         uid removed (a tombstone written by `remove`)

`t` is the writer's clock in nanoseconds (made strictly increasing within a process). When
several records name the same uid, the one with the largest `(t, index file name, line
number)` wins, so a recomputed value or a removal replaces an older record; across hosts,
"later" is only as good as their clocks agree, and either value is a complete one.

A record counts once its index line is complete (ends with a newline) and its payload lies
within the data file. A writer killed mid-write leaves a payload without an index line or an
index line without its newline: both are ignored, and only that record is lost.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..workspace.atomic import write_all
from .serializers import (  # re-exported: the store's public names
    CorruptItemError,
    Serializer,
    SerializerError,
    default_serializer,
    get_serializer,
    register_serializer,
)

__all__ = [
    "CorruptItemError",
    "ItemStore",
    "ItemWriter",
    "Serializer",
    "SerializerError",
    "default_serializer",
    "get_serializer",
    "register_serializer",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PREFIX = "items-"
INDEX_SUFFIX = ".index"
DATA_SUFFIX = ".data"
# A data file is read whole when the wanted payloads make up at least this share of it.
_WHOLE_FILE_SHARE = 0.25


# -- writing -------------------------------------------------------------------------------
_clock_lock = threading.Lock()
_last_t = 0


def _now() -> int:
    """Nanoseconds since the epoch, strictly increasing within this process."""
    global _last_t
    with _clock_lock:
        _last_t = max(time.time_ns(), _last_t + 1)
        return _last_t


def _host() -> str:
    import socket  # lazily: readers never need it

    return socket.gethostname()


def _writer_stem() -> str:
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", _host())[:64] or "host"
    return f"{PREFIX}{host}-{os.getpid()}-{os.urandom(4).hex()}"


class ItemWriter:
    """Appends records to its own index and data files; get one from `ItemStore.writer()`.

    Each `add` reaches the files before it returns, so readers on the same host see it at
    once; `flush` makes what was added durable (fsync). Safe to share between threads of one
    process, not between processes. After a failed write the writer refuses further adds.
    """

    def __init__(self, store: ItemStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._fds: tuple[int, int] | None = None  # (data, index), opened on the first add
        self._stem = ""
        self._data_size = 0
        self._lines = 0  # lines in the index file, header included
        self._broken: BaseException | None = None
        self._closed = False
        self.count = 0  # records written

    def add(self, uid: str, value: Any) -> None:
        """Store `value` under `uid`, replacing any older record of that uid.

        Raises SerializerError (before writing anything) when the value cannot be serialized.
        """
        if not isinstance(uid, str):
            raise TypeError(f"item uid must be a str, got {uid!r} ({type(uid).__name__})")
        ser = self._store._serializer_for(value)
        payload = memoryview(ser.dump(value)).cast("B")
        self._append(uid, ser.name, payload)

    def remove(self, uid: str) -> None:
        """Write a tombstone: `uid` reads as absent until a later record stores it again."""
        self._append(uid, None, None)

    def _append(self, uid: str, ser: str | None, payload: memoryview | None) -> None:
        with self._lock:
            data_fd, index_fd = self._open()
            t, offset, length = _now(), self._data_size, 0
            try:
                if payload is None:
                    record: list[Any] = [uid, t, None]
                else:
                    length = payload.nbytes
                    record = [uid, t, ser, offset, length]
                    write_all(data_fd, payload)
                    self._data_size += length
                line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
                write_all(index_fd, line.encode())
            except BaseException as exc:
                # The files may end mid-record now: appending more would glue records together.
                self._broken = exc
                raise
            key = (t, self._stem + INDEX_SUFFIX, self._lines)
            self._store._note(uid, (key, ser, self._stem + DATA_SUFFIX, offset, length))
            self._lines += 1
            self.count += 1

    def _open(self) -> tuple[int, int]:
        if self._closed:
            raise RuntimeError("this ItemWriter is closed: open a new one with store.writer()")
        if self._broken is not None:
            raise RuntimeError(
                f"this ItemWriter failed to write ({self._broken!r}); its last record may be "
                "incomplete, so it accepts no more: open a new one with store.writer()"
            ) from self._broken
        if os.getpid() != self._pid:
            raise RuntimeError(
                "an ItemWriter cannot be used in a forked process: open one per process"
            )
        if self._fds is not None:
            return self._fds
        folder = self._store.folder
        folder.mkdir(parents=True, exist_ok=True)
        stem = self._stem = _writer_stem()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
        data_fd = os.open(folder / (stem + DATA_SUFFIX), flags, 0o644)
        try:
            index_fd = os.open(folder / (stem + INDEX_SUFFIX), flags, 0o644)
        except BaseException:
            os.close(data_fd)
            raise
        self._fds = (data_fd, index_fd)
        header = {"etude_items": FORMAT_VERSION, "host": _host(), "pid": self._pid}
        try:
            write_all(index_fd, (json.dumps(header) + "\n").encode())
        except BaseException as exc:
            self._broken = exc  # a torn header: records after it would not be read
            raise
        self._lines = 1
        return self._fds

    def flush(self) -> None:
        """Make every record added so far durable (fsync of both files)."""
        with self._lock:
            for fd in self._fds or ():
                os.fsync(fd)

    def close(self) -> None:
        """Flush and close the files; further adds raise."""
        with self._lock:
            try:
                for fd in self._fds or ():
                    os.fsync(fd)
            finally:
                for fd in self._fds or ():
                    os.close(fd)
                self._fds = None
                self._closed = True


# -- reading -------------------------------------------------------------------------------
def _read_at(stream: io.FileIO, offset: int, size: int) -> memoryview:
    """`size` bytes at `offset` (one read returns at most ~2 GiB on Linux, hence the loop)."""
    view = memoryview(bytearray(size))
    stream.seek(offset)
    done = 0
    while done < size:
        got = stream.readinto(view[done:])
        if not got:
            raise CorruptItemError(f"{stream.name}: ends before byte {offset + size}")
        done += got
    return view


# uid -> ((t, index file, line), serializer or None for a tombstone, data file, offset, length)
Entry = tuple[tuple[int, str, int], "str | None", str, int, int]


class _IndexState:
    """How far one index file has been read (a plain class: dataclasses costs 3 ms to import)."""

    __slots__ = ("consumed", "data_name", "lines", "reported", "skipped")

    def __init__(self, data_name: str) -> None:
        self.data_name = data_name
        self.consumed = 0  # bytes of the index file already merged
        self.lines = 0  # lines already merged, header included
        self.skipped = False  # not an index this version reads (reported once)
        self.reported = -1  # the line last reported as unreadable, so it is reported once


class ItemStore:
    """The items of one folder, keyed by uid strings; see the module docstring for the format.

    `serializer` forces one serializer for every value written (by name, e.g. "pickle");
    None picks one per value by its type (`register_serializer(default_for=...)`), and
    `fallback` names the one to use for types no serializer claims (default: raise). Reads
    always use the serializer named in each record.

    Records written through this object's writers are seen at once. Lookups (`in`, `get`,
    `get_many`) answer from the index as last read, reading it again (only what was appended)
    when a uid is not found; `keys()` and `refresh()` always read it again, so a value that
    another process replaced is seen after one of those. Safe to use from several threads.
    """

    def __init__(
        self, folder: str | Path, serializer: str | None = None, *, fallback: str | None = None
    ) -> None:
        self.folder = Path(folder)
        self._forced = get_serializer(serializer) if serializer is not None else None
        self._fallback = fallback
        if fallback is not None:
            get_serializer(fallback)  # fail now on an unknown name
        self._entries: dict[str, Entry] = {}
        self._files: dict[str, _IndexState] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"ItemStore({str(self.folder)!r})"

    def _note(self, uid: str, entry: Entry) -> None:
        """A record one of our writers just wrote: seen at once, without reading the index."""
        with self._lock:
            old = self._entries.get(uid)
            if old is None or entry[0] > old[0]:
                self._entries[uid] = entry

    def _serializer_for(self, value: Any) -> Serializer:
        if self._forced is not None:
            return self._forced
        return default_serializer(value, self._fallback)

    # -- the index --
    def refresh(self) -> None:
        """Merge what writers appended since the last read (cheap when nothing changed)."""
        with self._lock:
            sizes = self._index_sizes()
            gone = not self._files.keys() <= sizes.keys()
            if gone or not all(self._read_index(name, size) for name, size in sizes.items()):
                # An index file vanished or shrank: someone cleaned the folder; start over.
                self._entries.clear()
                self._files.clear()
                for name, size in self._index_sizes().items():
                    self._read_index(name, size)

    def _index_sizes(self) -> dict[str, int]:
        """{index file name: size}, in name order (one stat per file, no open)."""
        sizes = {}
        try:
            with os.scandir(self.folder) as listing:
                for entry in listing:
                    name = entry.name
                    if name.startswith(PREFIX) and name.endswith(INDEX_SUFFIX):
                        try:
                            sizes[name] = entry.stat().st_size
                        except FileNotFoundError:
                            pass  # removed since listed: as if not listed
        except FileNotFoundError:
            pass  # no folder yet: no items
        return dict(sorted(sizes.items()))

    def _read_index(self, name: str, size: int) -> bool:
        """Merge the complete new lines of one index file; False if it shrank or vanished."""
        state = self._files.get(name)
        if state is None:
            state = self._files[name] = _IndexState(name[: -len(INDEX_SUFFIX)] + DATA_SUFFIX)
        elif size == state.consumed or state.skipped:
            return True
        if size < state.consumed:
            return False
        try:
            with open(self.folder / name, "rb") as stream:
                stream.seek(state.consumed)
                chunk = stream.read(size - state.consumed)
        except FileNotFoundError:
            return False  # listed a moment ago, removed since
        body = chunk[: chunk.rfind(b"\n") + 1]  # an unfinished last line waits for its newline
        if body and state.lines == 0:
            header = body[: body.index(b"\n") + 1]
            if not self._read_header(name, header):
                state.skipped = True
                return True
            state.consumed += len(header)
            state.lines = 1
            body = body[len(header) :]
        if body:
            records = self._parse(body, name, state)
            accepted = self._merge(records, name, state)
            if accepted == len(records) == body.count(b"\n"):
                state.consumed += len(body)
            else:
                pos = 0
                for _ in range(accepted):
                    pos = body.index(b"\n", pos) + 1
                state.consumed += pos
        return True

    def _read_header(self, name: str, line: bytes) -> bool:
        try:
            version = json.loads(line)["etude_items"]
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("%s: not an item index (header: %s); skipped", self.folder / name, exc)
            return False
        if version != FORMAT_VERSION:
            log.warning(
                "%s: item index format %r, this etude reads %d; skipped",
                self.folder / name,
                version,
                FORMAT_VERSION,
            )
            return False
        return True

    def _report(self, state: _IndexState, name: str, line: int, problem: str) -> None:
        if state.reported != line:
            state.reported = line
            log.warning(
                "%s line %d: %s; it and the records after it are ignored until it is fixed",
                self.folder / name,
                line,
                problem,
            )

    def _parse(self, body: bytes, name: str, state: _IndexState) -> list[Any]:
        """The records of `body` (complete lines), up to the first unreadable one."""
        try:
            records: list[Any] = json.loads(b"[" + body[:-1].replace(b"\n", b",") + b"]")
            return records
        except ValueError:
            pass
        records = []
        for line in body.splitlines():
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                number = state.lines + len(records) + 1
                self._report(state, name, number, f"unreadable record ({exc})")
                break
        return records

    def _merge(self, records: list[Any], name: str, state: _IndexState) -> int:
        """Merge the leading valid records whose payload is all there; return how many."""
        data_name = state.data_name
        try:
            data_size = os.stat(self.folder / data_name).st_size
        except FileNotFoundError:
            data_size = 0
        entries = self._entries
        line = state.lines
        for record in records:
            try:
                uid, t, ser = record[0], record[1], record[2]
                if ser is None:
                    entry: Entry = ((t, name, line), None, data_name, 0, 0)
                else:
                    offset, length = record[3], record[4]
                    if offset + length > data_size:  # payload not all there (yet)
                        break
                    entry = ((t, name, line), ser, data_name, offset, length)
                old = entries.get(uid)
                if old is None or entry[0] > old[0]:
                    entries[uid] = entry
            except (TypeError, IndexError, KeyError) as exc:
                self._report(state, name, line + 1, f"malformed record {record!r} ({exc})")
                break
            line += 1
        accepted = line - state.lines
        state.lines = line
        return accepted

    # -- the mapping --
    def keys(self) -> set[str]:
        """The uids stored now (reads what writers appended since the last call)."""
        with self._lock:
            self.refresh()
            return {uid for uid, entry in self._entries.items() if entry[1] is not None}

    def __len__(self) -> int:
        return len(self.keys())

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __contains__(self, uid: object) -> bool:
        with self._lock:
            entry = self._entries.get(uid)  # type: ignore[call-overload]
            if entry is None:
                self.refresh()
                entry = self._entries.get(uid)  # type: ignore[call-overload]
            return entry is not None and entry[1] is not None

    def _lookup(self, uids: list[str]) -> list[Entry]:
        with self._lock:
            entries = self._entries
            found = [entries.get(uid) for uid in uids]
            if any(e is None or e[1] is None for e in found):
                self.refresh()
                found = [entries.get(uid) for uid in uids]
            for uid, entry in zip(uids, found, strict=True):
                if entry is None or entry[1] is None:
                    raise KeyError(
                        f"no item {uid!r} in {self.folder} ({len(self.keys())} items stored)"
                    )
            return found  # type: ignore[return-value]

    def get(self, uid: str) -> Any:
        """The value stored under `uid`; KeyError if there is none."""
        return self.get_many([uid])[0]

    def get_many(self, uids: Iterable[str]) -> list[Any]:
        """The values of `uids`, in order; KeyError naming the first missing uid.

        Reads each data file once (whole, when most of it is wanted) rather than once per item.
        """
        uids = list(uids)
        entries = self._lookup(uids)
        by_file: dict[str, list[int]] = {}
        for i, entry in enumerate(entries):
            by_file.setdefault(entry[2], []).append(i)
        values: list[Any] = [None] * len(uids)
        for data_name, positions in by_file.items():
            payloads = self._read_payloads(data_name, [entries[i] for i in positions])
            by_serializer: dict[str, tuple[list[int], list[memoryview]]] = {}
            for i, payload in zip(positions, payloads, strict=True):
                group = by_serializer.setdefault(entries[i][1] or "", ([], []))
                group[0].append(i)
                group[1].append(payload)
            for name, (where, group_payloads) in by_serializer.items():
                loaded = self._decode(name, group_payloads, [uids[i] for i in where], data_name)
                for i, value in zip(where, loaded, strict=True):
                    values[i] = value
        return values

    def _decode(
        self, name: str, payloads: list[memoryview], uids: list[str], data: str
    ) -> list[Any]:
        """Decode payloads written by serializer `name`; errors name the item and file."""
        try:
            ser = get_serializer(name)
        except SerializerError as exc:
            raise SerializerError(
                f"item {uids[0]!r} in {self.folder / data} was stored with serializer "
                f"{name!r}, which this process has not registered: import the module that "
                "calls register_serializer for it"
            ) from exc
        if ser.load_many is not None and len(payloads) > 1:
            try:
                return ser.load_many(payloads)
            except Exception as exc:  # find the culprit one by one below
                log.debug("%s: load_many failed (%r); decoding one by one", name, exc)
        values = []
        for uid, payload in zip(uids, payloads, strict=True):
            try:
                values.append(ser.load(payload))
            except Exception as exc:
                raise CorruptItemError(
                    f"item {uid!r} in {self.folder / data} ({payload.nbytes} bytes) cannot "
                    f"be loaded by serializer {name!r}: {exc!r}"
                ) from exc
        return values

    def _read_payloads(self, data_name: str, entries: list[Entry]) -> list[memoryview]:
        """The payloads of `entries`, writable views (arrays loaded from them are writable)."""
        with open(self.folder / data_name, "rb", buffering=0) as stream:
            size = os.fstat(stream.fileno()).st_size
            if sum(e[4] for e in entries) >= size * _WHOLE_FILE_SHARE:
                whole = _read_at(stream, 0, size)
                return [whole[e[3] : e[3] + e[4]] for e in entries]
            return [_read_at(stream, e[3], e[4]) for e in entries]

    # -- changing --
    @contextmanager
    def writer(self) -> Iterator[ItemWriter]:
        """An ItemWriter with files of its own, flushed and closed when the block exits."""
        item_writer = ItemWriter(self)
        try:
            yield item_writer
        finally:
            item_writer.close()

    def remove(self, uids: Iterable[str]) -> None:
        """Make `uids` absent, by appending tombstones (later records win, see module doc).

        A uid written again afterwards, by any writer, is present again with the new value.
        """
        with self.writer() as tombstones:
            for uid in uids:
                tombstones.remove(uid)
