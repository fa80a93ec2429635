"""`MapInfra`: cache one result per item of a method that maps items to results.

The decorated method takes an iterable of items and yields one result per item, in order.
Calling it returns an iterator over the results of the given items: those already in the
cache are read back, the others are computed first (in this process, or spread over job
processes in chunks), and stored one per item in an `ItemStore` under the uid folder.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pydantic

from ..config.naming import ScriptLoadStop, loading_script
from ..workspace import JobDir
from .base import POOLS, RAM, BaseInfra, Keys, logger
from .errors import InfraConfigError, JobError, ReadOnlyError
from .itemstore import ItemStore
from .jobs import FAILED, Submission, resolve_cluster, submit
from .method import ExclusionOption, InfraMethod
from .results import archive_failure, job_dir, write_json_quick
from .uid import digest

F = TypeVar("F", bound=Callable[..., Any])
ITEMS, JOBS = "items", "jobs"
_STORES: dict[str, ItemStore] = {}  # one store object per folder: it keeps the index read
MIN_ITEM_UID_LENGTH = 17  # a shortened item uid keeps 8 characters of its start, then -HASH


def _shorten(uid: str, length: int) -> str:
    """`uid` cut to `length` characters, its end replaced by 8 hex digits of its hash."""
    return f"{uid[: length - 9]}-{hashlib.sha256(uid.encode()).hexdigest()[:8]}"


def _pool_chunk(owner: Any, field: str, uids: list[str], items: list[Any]) -> list[Any]:
    """A pool worker's part (a thread, or a process that received `owner` pickled)."""
    values: list[Any] = []
    owner.__dict__[field]._compute(uids, items, lambda _uid, value: values.append(value))
    return values


def _store(folder: str) -> ItemStore:
    store = _STORES.get(folder)
    if store is None:
        store = _STORES[folder] = ItemStore(folder, fallback="pickle")
    return store


class MapInfra(BaseInfra):
    """Caches one result per item; see docs/pydantic-infra.md.

    `max_jobs` bounds the number of jobs the missing items are spread over, and
    `min_samples_per_job` the smallest chunk worth a job of its own.
    """

    _uid_folder_is_job: ClassVar[bool] = False
    max_jobs: pydantic.PositiveInt = 128
    min_samples_per_job: pydantic.PositiveInt = 2048

    def apply(
        self,
        *,
        item_uid: Callable[[Any], str],
        item_uid_max_length: int | None = None,
        exclude_from_cache_uid: ExclusionOption = None,
    ) -> Callable[[F], F]:
        """Decorate the method mapping items to results; `item_uid(item)` names each item.

        With `item_uid_max_length`, a longer item uid is shortened to that length: its start,
        `-`, and 8 hexadecimal digits of the hash of the whole uid.
        """
        if not callable(item_uid):
            raise InfraConfigError(
                f"MapInfra.apply(item_uid=...): expected a function giving each item's uid as "
                f"a string (e.g. item_uid=str), got {item_uid!r}."
            )
        if item_uid_max_length is not None and (
            isinstance(item_uid_max_length, bool)
            or not isinstance(item_uid_max_length, int)
            or item_uid_max_length < MIN_ITEM_UID_LENGTH
        ):
            raise InfraConfigError(
                f"MapInfra.apply(item_uid_max_length={item_uid_max_length!r}): expected None "
                f"or an int >= {MIN_ITEM_UID_LENGTH} (a shortened uid ends with '-' and 8 "
                "hexadecimal digits of its hash), e.g. item_uid_max_length=256."
            )

        def decorate(func: Callable[..., Any]) -> Any:
            self._mark_applied(getattr(func, "__qualname__", repr(func)))
            return InfraMethod(
                self,
                func,
                arguments=1,
                exclude_from_cache_uid=exclude_from_cache_uid,
                item_uid=item_uid,
                item_uid_max_length=item_uid_max_length,
            )

        return decorate

    def _call(self, items: Iterable[Any]) -> Iterator[Any]:
        if loading_script():
            raise ScriptLoadStop()  # a job process is loading the script for its classes
        items = list(items)
        uids = self._item_uids(items)
        if not self.keep_in_ram or self.folder is None:  # (no folder: `_fill` keeps them)
            read, _ = self._fill(items, uids)
            return iter(read(uids))
        keys = self._keys()
        ram = RAM.setdefault(self._ram_key(keys), {})
        if self.mode == "force" and keys.uid not in self._runtime().forced:
            for uid in uids:
                ram.pop(uid, None)
        wanted = [uid for uid in dict.fromkeys(uids) if uid not in ram]
        if wanted:
            firsts = dict(zip(uids, items, strict=True))
            read, _ = self._fill([firsts[uid] for uid in wanted], wanted)
            ram.update(zip(wanted, read(wanted), strict=True))
        return iter([ram[uid] for uid in uids])

    def _fill(
        self, items: list[Any], uids: list[str]
    ) -> tuple[Callable[[list[str]], list[Any]], list[Path]]:
        """Compute the items that are not cached (honouring `mode`), reading none back.

        Returns how to read results by item uid, and the job folders started for the missing
        items (none when every item was cached or computed in this process).
        """
        keys = self._keys()
        runtime = self._runtime()
        first: dict[str, Any] = {}
        for uid, item in zip(uids, items, strict=True):
            first.setdefault(uid, item)
        forced = self.mode == "force" and keys.uid not in runtime.forced
        runtime.forced.add(keys.uid)
        if self.folder is None:
            if self.keep_in_ram:  # the process's memory rather than this object's
                memory = RAM.setdefault(self._ram_key(keys), {})
            else:
                memory = runtime.items.setdefault(keys.uid, {})
            missing = list(first) if forced else [u for u in first if u not in memory]
            self._check_read_only(keys, missing)
            if missing:
                self._compute_here(missing, [first[u] for u in missing], memory.__setitem__)
            return (lambda wanted: [memory[u] for u in wanted]), []
        folder = f"{self._method_folder()}/{keys.uid}"
        store = _store(f"{folder}/{ITEMS}")
        if forced:
            store.remove(list(first))
        present = store.keys()
        missing = [u for u in first if u not in present]
        self._check_read_only(keys, missing)
        jobs: list[Path] = []
        if missing:
            self._prepare_folder(keys, rewrite=forced)
            jobs = self._compute_missing(keys, store, missing, [first[u] for u in missing])
        else:
            self._check_configs(Path(folder), keys)
        return store.get_many, jobs

    def item_uid(self, item: Any) -> str:
        """The uid under which `item`'s result is cached (shortened if the method says so)."""
        return self._item_uids([item])[0]

    def _item_uids(self, items: list[Any]) -> list[str]:
        method = self._runtime().get_method()
        item_uid, limit = method.item_uid, method.item_uid_max_length
        assert item_uid is not None
        uids = [item_uid(item) for item in items]
        for item, uid in zip(items, uids, strict=True):
            if not isinstance(uid, str):
                raise InfraConfigError(
                    f"{self._where()}: item_uid({item!r}) returned {uid!r} "
                    f"({type(uid).__name__}); it must return a str (e.g. item_uid=str)."
                )
        if limit is not None:
            uids = [uid if len(uid) <= limit else _shorten(uid, limit) for uid in uids]
        return uids

    def _check_read_only(self, keys: Keys, missing: list[str]) -> None:
        if missing and self.mode == "read-only":
            shown = ", ".join(repr(u) for u in missing[:5])
            raise ReadOnlyError(
                f"{self._where()}: {len(missing)} item(s) are not in the cache of uid "
                f"{keys.uid} ({shown}{', ...' if len(missing) > 5 else ''}) and infra.mode is "
                "'read-only'. Compute them first with mode='cached'."
            )

    def _compute(self, uids: list[str], items: list[Any], put: Callable[[str, Any], None]) -> None:
        """Run the method on `items` in this process, handing each result to `put`."""
        runtime = self._runtime()
        outputs = iter(runtime.get_method().func(runtime.owner, items))
        done = object()
        for count, uid in enumerate(uids):
            value = next(outputs, done)
            if value is done:
                raise self._count_error(len(uids), count)
            put(uid, value)
        if next(outputs, done) is not done:
            raise self._count_error(len(uids), None)

    def _compute_here(
        self, uids: list[str], items: list[Any], put: Callable[[str, Any], None]
    ) -> None:
        """Compute in this process: directly, or in chunks by a pool (`cluster`)."""
        chunks = self._chunks(len(uids), self.cluster) if self.cluster in POOLS else []
        if len(chunks) < 2:
            self._compute(uids, items, put)
            return
        runtime = self._runtime()
        pool: Executor = (
            ThreadPoolExecutor(len(chunks))
            if self.cluster == "threadpool"
            else ProcessPoolExecutor(len(chunks))
        )
        errors: list[BaseException] = []
        with pool:
            futures = {
                pool.submit(_pool_chunk, runtime.owner, runtime.field, uids[s:e], items[s:e]): s
                for s, e in chunks
            }
            for future in as_completed(futures):  # each chunk is stored as soon as it ends
                try:
                    values = future.result()
                except Exception as exc:  # the others go on and are kept; raised below
                    errors.append(exc)
                    continue
                start = futures[future]
                for uid, value in zip(uids[start : start + len(values)], values, strict=True):
                    put(uid, value)
        if errors:
            where, failed = self._where(), len(errors)
            logger.info("etude: %s: %d of %d chunks failed", where, failed, len(chunks))
            raise errors[0]

    def _chunks(self, total: int, cluster: str | None) -> list[tuple[int, int]]:
        """(start, end) of the chunks `total` missing items are spread over."""
        count = min(self.max_jobs, math.ceil(total / self.min_samples_per_job))
        if cluster in ("local", "processpool"):
            count = min(count, os.cpu_count() or 1)
        count = max(1, count)
        size = math.ceil(total / count)
        return [(start, min(start + size, total)) for start in range(0, total, size)]

    def _count_error(self, expected: int, got: int | None) -> InfraConfigError:
        found = "more" if got is None else str(got)
        return InfraConfigError(
            f"{self._where()}: the method yielded {found} results for {expected} items; it "
            "must yield exactly one result per item, in the order of the items."
        )

    def _compute_missing(
        self, keys: Keys, store: ItemStore, uids: list[str], items: list[Any]
    ) -> list[Path]:
        """Compute `items` into `store` (here, or in jobs it waits for); the job folders."""
        cluster = resolve_cluster(self.cluster)
        if cluster is None or cluster in POOLS:
            try:
                with store.writer() as writer:
                    self._compute_here(uids, items, writer.add)
            finally:
                self._share(Path(store.folder).parent)
            return []
        runtime = self._runtime()
        subs = []
        for start, end in self._chunks(len(uids), cluster):
            chunk = uids[start:end]
            job = job_dir(f"{self._method_folder()}/{keys.uid}/{JOBS}/{digest(chunk)[:16]}")
            job.meta.mkdir(parents=True, exist_ok=True)
            subs.append(
                Submission(
                    job=job,
                    owner=runtime.owner,
                    field=runtime.field,
                    loader=lambda: None,
                    what=self._where(),
                    items=items[start:end],
                    meta={"uids": chunk, "store": str(store.folder)},
                    hint="Calling the method again computes the missing items again.",
                )
            )
        logger.info("etude: %s: %d items in %d jobs", self._where(), len(uids), len(subs))
        jobs = submit(self, subs, max_workers=len(subs))
        for started in jobs:
            started.wait()
        failed = [started for started in jobs if started.status() == FAILED]
        if failed:
            try:
                failed[0].result()
            except JobError as exc:
                raise JobError(
                    f"{len(failed)} of {len(jobs)} jobs failed; the first one:\n{exc}",
                    error_type=exc.error_type,
                    folder=exc.folder,
                ) from exc.__cause__
        return [sub.job.path for sub in subs]

    def _run_job(self, job: JobDir, items: Any, meta: dict[str, Any], started: float) -> None:
        """In the job process (lock held): compute a chunk of items into the store."""
        store = ItemStore(meta["store"], fallback="pickle")
        with store.writer() as writer:
            self._compute(list(meta["uids"]), list(items), writer.add)
        write_json_quick(job.done, {"started": started, "items": len(items)})
        archive_failure(job)

    def _share_job(self, job: JobDir) -> None:
        self._share(job.path.parent.parent)  # UID/jobs/CHUNK: the items are in UID/items

    def _has_results(self, folder: Path) -> bool:
        return (folder / ITEMS).is_dir()
