"""MapInfra in-process pools (cluster="threadpool" / "processpool") and short item uids."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pydantic
import pytest
from infra_models import wait_for

from etude.infra import InfraConfigError, MapInfra, TaskInfra


class Where(pydantic.BaseModel):
    """Yields (item, pid, thread id) for each item; fails on `fail_on`.

    With `meet`, each call (a chunk) first leaves a file there and waits until two chunks
    did: it proves that two workers run at once.
    """

    fail_on: int | None = None
    meet: str = ""
    infra: MapInfra = MapInfra(version="1")
    _exclude_from_cls_uid = ("meet",)

    @infra.apply(item_uid=str)
    def process(self, items: Sequence[int]) -> Iterator[tuple[int, int, int]]:
        if self.meet:
            Path(self.meet, f"{os.getpid()}-{threading.get_ident()}").touch()
            wait_for(lambda: len(list(Path(self.meet).iterdir())) >= 2, what="a second chunk")
        for item in items:
            if item == self.fail_on:
                raise ValueError(f"item {item} fails on purpose")
            yield item, os.getpid(), threading.get_ident()


def pool_infra(tmp_path: Path | None, cluster: str) -> dict[str, object]:
    infra: dict[str, object] = {"cluster": cluster, "min_samples_per_job": 2, "max_jobs": 4}
    if tmp_path is not None:
        infra["folder"] = tmp_path / "cache"
    return infra


@pytest.mark.parametrize("with_folder", [pytest.param(True, id="folder"),
                                         pytest.param(False, id="memory")])
def test_threadpool_spreads_chunks_over_threads(tmp_path: Path, with_folder: bool) -> None:
    (tmp_path / "meet").mkdir()
    mapper = Where(
        meet=str(tmp_path / "meet"),
        infra=pool_infra(tmp_path if with_folder else None, "threadpool"),
    )
    out = list(mapper.process(range(8)))
    assert [item for item, _, _ in out] == list(range(8))
    assert {pid for _, pid, _ in out} == {os.getpid()}
    assert len({thread for _, _, thread in out}) > 1
    assert threading.get_ident() not in {thread for _, _, thread in out}
    if with_folder:
        folder = mapper.infra.uid_folder()
        assert folder is not None and (folder / "items").is_dir()
        assert not (folder / "jobs").exists()  # no job folders


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="processpool uses one process per CPU")
def test_processpool_spreads_chunks_over_processes(tmp_path: Path) -> None:
    (tmp_path / "meet").mkdir()
    mapper = Where(meet=str(tmp_path / "meet"), infra=pool_infra(tmp_path, "processpool"))
    out = list(mapper.process(range(8)))
    assert [item for item, _, _ in out] == list(range(8))
    pids = {pid for _, pid, _ in out}
    assert len(pids) > 1 and os.getpid() not in pids
    again = Where(infra={"folder": tmp_path / "cache", "mode": "read-only"})
    assert list(again.process(range(8))) == out


def test_pool_failure_keeps_the_other_chunks(tmp_path: Path) -> None:
    mapper = Where(fail_on=7, infra=pool_infra(tmp_path, "threadpool"))
    with pytest.raises(ValueError, match="item 7 fails on purpose"):
        list(mapper.process(range(8)))
    readonly = Where(fail_on=7, infra={"folder": tmp_path / "cache", "mode": "read-only"})
    assert [item for item, _, _ in readonly.process(range(6))] == list(range(6))


def test_task_infra_refuses_pools() -> None:
    with pytest.raises(pydantic.ValidationError, match="spreads the items of a MapInfra"):
        TaskInfra(cluster="threadpool")


class LongUids(pydantic.BaseModel):
    infra: MapInfra = MapInfra()

    @infra.apply(item_uid=str, item_uid_max_length=32)
    def process(self, items: Sequence[str]) -> Iterator[int]:
        for item in items:
            yield len(item)


def test_item_uid_max_length_shortens_long_uids(tmp_path: Path) -> None:
    mapper = LongUids(infra={"folder": tmp_path})
    long = "Hello world! " * 64
    uid = mapper.infra.item_uid(long)
    assert len(uid) == 32 and uid.startswith("Hello world!")
    assert uid != mapper.infra.item_uid(long + "x")
    assert mapper.infra.item_uid("short") == "short"
    assert list(mapper.process([long, "short"])) == [len(long), 5]
    assert list(LongUids(infra={"folder": tmp_path, "mode": "read-only"}).process([long])) == [
        len(long)
    ]


def test_item_uid_max_length_too_small_is_refused() -> None:
    with pytest.raises(InfraConfigError, match="item_uid_max_length=8"):

        class Tiny(pydantic.BaseModel):
            infra: MapInfra = MapInfra()

            @infra.apply(item_uid=str, item_uid_max_length=8)
            def process(self, items: Sequence[str]) -> Iterator[int]:
                yield from (len(item) for item in items)
