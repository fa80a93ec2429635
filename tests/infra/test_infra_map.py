"""MapInfra: one result per item, only new items computed, modes, storage, job processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydantic
import pytest
from infra_models import Squares, log_lines

from etude.infra import InfraConfigError, JobError, MapInfra, ReadOnlyError


def squares(tmp_path: Path, folder: bool = True, **kwargs: object) -> Squares:
    infra = dict(kwargs.pop("infra", {}))  # type: ignore[call-overload]
    if folder:
        infra["folder"] = tmp_path / "cache"
    return Squares(log=str(tmp_path / "log"), infra=infra, **kwargs)  # type: ignore[arg-type]


class TutorialMap(pydantic.BaseModel):
    param: int = 12
    infra: MapInfra = MapInfra(version="1")

    @infra.apply(item_uid=str)
    def process(self, items):  # type: ignore[no-untyped-def]
        for item in items:
            yield np.full((2,), item * self.param)


def test_version_is_inherited_from_class_infra(tmp_path: Path) -> None:
    """Seed: the class default (version "1") wins over MapInfra's own default ("0")."""
    mapper = TutorialMap(infra={"folder": tmp_path})
    assert mapper.infra.version == "1"
    assert MapInfra(folder=tmp_path).version == "0"


def test_numpy_results_round_trip(tmp_path: Path) -> None:
    mapper = TutorialMap(infra={"folder": tmp_path})
    out = list(mapper.process([1, 2]))
    again = list(TutorialMap(infra={"folder": tmp_path}).process([2, 1]))
    np.testing.assert_array_equal(out[0], again[1])
    assert again[0].tolist() == [24, 24]


def test_only_new_items_are_computed(tmp_path: Path) -> None:
    assert list(squares(tmp_path).process([1, 2, 3])) == [1, 4, 9]
    assert list(squares(tmp_path).process([3, 4, 2, 4])) == [9, 16, 4, 16]
    assert log_lines(tmp_path / "log") == ["1", "2", "3", "4"]


def test_without_folder_items_stay_in_memory(tmp_path: Path) -> None:
    mapper = squares(tmp_path, folder=False)
    assert list(mapper.process([1, 2])) == [1, 4]
    assert list(mapper.process([2, 3])) == [4, 9]
    assert log_lines(tmp_path / "log") == ["1", "2", "3"]


def test_config_changes_give_another_store(tmp_path: Path) -> None:
    assert list(squares(tmp_path, offset=1).process([2])) == [5]
    assert list(squares(tmp_path).process([2])) == [4]
    assert len(list((tmp_path / "cache" / "infra_models.Squares.process,1").iterdir())) == 2


def test_force_recomputes_requested_items_once(tmp_path: Path) -> None:
    list(squares(tmp_path).process([1, 2]))
    forced = squares(tmp_path, infra={"mode": "force"})
    assert list(forced.process([2])) == [4]
    assert list(forced.process([2, 1])) == [4, 1]
    assert log_lines(tmp_path / "log") == ["1", "2", "2"]


def test_read_only_lists_missing_items(tmp_path: Path) -> None:
    list(squares(tmp_path).process([1]))
    reader = squares(tmp_path, infra={"mode": "read-only"})
    assert list(reader.process([1])) == [1]
    with pytest.raises(ReadOnlyError, match=r"1 item\(s\) are not in the cache .*'5'"):
        list(reader.process([1, 5]))


def test_failure_keeps_the_items_done_before(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="item 3 fails"):
        list(squares(tmp_path, fail_on=3).process([1, 2, 3]))
    assert list(squares(tmp_path, fail_on=3).process([1, 2])) == [1, 4]
    assert log_lines(tmp_path / "log") == ["1", "2", "3"]


def test_wrong_number_of_results_is_an_error(tmp_path: Path) -> None:
    class Short(pydantic.BaseModel):
        infra: MapInfra = MapInfra()

        @infra.apply(item_uid=str)
        def process(self, items):  # type: ignore[no-untyped-def]
            yield 1

    with pytest.raises(InfraConfigError, match="yielded 1 results for 2 items"):
        list(Short(infra={"folder": tmp_path}).process([1, 2]))


def test_item_uid_must_return_str(tmp_path: Path) -> None:
    class BadUid(pydantic.BaseModel):
        infra: MapInfra = MapInfra()

        @infra.apply(item_uid=lambda item: item)
        def process(self, items):  # type: ignore[no-untyped-def]
            yield from items

    with pytest.raises(InfraConfigError, match=r"item_uid\(1\) returned 1 \(int\)"):
        list(BadUid(infra={"folder": tmp_path}).process([1]))


def test_missing_items_spread_over_local_processes(tmp_path: Path) -> None:
    """Real processes: 6 items in chunks of 2 (at most 2 jobs), one process per chunk."""
    mapper = squares(tmp_path, infra={"cluster": "local", "min_samples_per_job": 3, "max_jobs": 2})
    assert list(mapper.process(range(6))) == [0, 1, 4, 9, 16, 25]
    uid_folder = mapper.infra.uid_folder()
    assert uid_folder is not None
    chunks = sorted((uid_folder / "jobs").iterdir())
    assert len(chunks) == 2
    assert all((c / ".etude" / "done.json").exists() for c in chunks)
    assert sorted(log_lines(tmp_path / "log")) == [str(i) for i in range(6)]
    assert list(squares(tmp_path).process([5, 0])) == [25, 0]


def test_failed_chunk_raises_job_error(tmp_path: Path) -> None:
    mapper = squares(tmp_path, fail_on=1, infra={"cluster": "debug"})
    with pytest.raises(JobError, match=r"(?s)1 of 1 jobs failed.*item 1 fails on purpose"):
        list(mapper.process([0, 1]))
