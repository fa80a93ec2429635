"""The scalars file reader: every chunk of a series read into one array per column, a damaged
or short chunk ending what is read, the chunks of other titles skipped by their header."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from etude.tracking.points import SeriesBuffer, _read_lists, encode_chunk, read_points


def _chunk(title: str, series: str, iterations: range, scale: float = 1.0) -> bytes:
    points = SeriesBuffer()
    for i in iterations:
        points.iterations.append(i)
        points.values.append(i * scale)
        points.times.append(1000.0 + i)
    return encode_chunk((title, series), points)


def _lists(points: dict[str, dict[str, tuple[Any, Any, Any]]]) -> dict[str, Any]:
    return {title: {name: tuple(list(map(float, column)) for column in columns)
                    for name, columns in by_series.items()} for title, by_series in points.items()}


def _damage(chunk: bytes) -> bytes:
    """The chunk with its last byte changed (its checksum fails)."""
    return chunk[:-1] + bytes([chunk[-1] ^ 0xFF])


def test_chunks_of_a_series_are_joined_in_order(tmp_path: Path) -> None:
    path = tmp_path / "scalars.bin"
    path.write_bytes(_chunk("loss", "train", range(0, 3)) + _chunk("acc", "val", range(0, 2))
                     + _chunk("loss", "train", range(3, 7)) + _chunk("loss", "test", range(5, 6)))
    points = read_points(path)
    iterations, values, times = points["loss"]["train"]
    assert iterations.dtype == np.int64 and values.dtype == np.float64
    assert iterations.tolist() == list(range(7)) and times.tolist() == [1000.0 + i
                                                                        for i in range(7)]
    assert list(points) == ["loss", "acc"] and list(points["loss"]) == ["train", "test"]
    assert _lists(points) == _lists(_read_lists(path, None))  # as without numpy
    assert list(read_points(path, "loss")) == ["loss"]
    assert _lists(read_points(path, "loss"))["loss"] == _lists(points)["loss"]


def test_a_damaged_chunk_ends_every_series_there(tmp_path: Path) -> None:
    path = tmp_path / "scalars.bin"
    path.write_bytes(_chunk("loss", "train", range(0, 3)) + _chunk("acc", "val", range(0, 2))
                     + _damage(_chunk("loss", "train", range(3, 6)))
                     + _chunk("acc", "val", range(2, 4)))
    expected = {"loss": {"train": ([0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [1000.0, 1001.0, 1002.0])},
                "acc": {"val": ([0.0, 1.0], [0.0, 1.0], [1000.0, 1001.0])}}
    assert _lists(read_points(path)) == expected
    assert _lists(read_points(path, "loss")) == {"loss": expected["loss"]}
    assert _lists(_read_lists(path, None)) == expected


def test_a_short_last_chunk_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "scalars.bin"
    cut = _chunk("loss", "train", range(3, 9))[:-5]
    path.write_bytes(_chunk("loss", "train", range(0, 3)) + cut)
    assert _lists(read_points(path))["loss"]["train"][0] == [0.0, 1.0, 2.0]
    assert read_points(tmp_path / "missing.bin") == {}


def test_a_series_whose_only_chunk_is_damaged_is_absent(tmp_path: Path) -> None:
    path = tmp_path / "scalars.bin"
    path.write_bytes(_chunk("loss", "train", range(0, 3)) + _damage(_chunk("acc", "val", range(2))))
    assert list(read_points(path)) == ["loss"]
    assert list(_read_lists(path, None)) == ["loss"]


def test_reading_one_title_skips_the_payload_of_others(tmp_path: Path) -> None:
    """Another title's chunks are not checked when one title is read (their header is)."""
    path = tmp_path / "scalars.bin"
    path.write_bytes(_chunk("loss", "train", range(0, 3)) + _damage(_chunk("acc", "val", range(2)))
                     + _chunk("loss", "train", range(3, 5)))
    assert read_points(path, "loss")["loss"]["train"][0].tolist() == [0, 1, 2, 3, 4]
    assert list(read_points(path)) == ["loss"]  # reading all titles stops at the damage
