"""Content-addressed artifacts: round trips per type, dedupe, previews, names, errors, copies,
and two processes storing the same content at once."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest
from PIL import Image

from etude.tracking.artifacts import (
    PREVIEW_MAX_BYTES,
    Artifact,
    BlobStore,
    check_name,
    load_artifact,
    local_copy,
    store_artifact,
)
from etude.tracking.errors import ArtifactError

# Every test here runs on SQLite and on PostgreSQL (the index the runs are ingested into).
pytestmark = pytest.mark.usefixtures("store_env")


@dataclass
class Point:
    """A user's object, pickled by reference to this module."""

    x: int
    tags: list[str]


def module_level_function(x: int) -> int:
    return x


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "ws" / "blobs")


def blob_files(store: BlobStore) -> list[Path]:
    """Every file in the store, temporary ones included."""
    return sorted(p for p in store.root.rglob("*") if p.is_file())


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "loss": [0.5, float("nan"), 0.25],
            "when": pd.to_datetime(["2024-01-02", None, "2024-03-04 05:06:07"], format="ISO8601"),
            "label": ["a", "b", None],
            "count": pd.array([1, None, 3], dtype="Int64"),
        },
        index=pd.Index([10, 20, 30], name="step"),
    )


def image(mode: str) -> Image.Image:
    """A 7x5 image of mode "L" or "RGB" with distinct pixels."""
    img = Image.new(mode, (7, 5))
    if mode == "L":
        img.putdata([(i * 37) % 256 for i in range(35)])
    else:
        img.putdata([(i, 2 * i, 3 * i) for i in range(35)])
    return img


def assert_frames(got: Any, want: Any) -> None:
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def assert_arrays(got: Any, want: Any) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def assert_images(got: Any, want: Any) -> None:
    assert (got.mode, got.size) == (want.mode, want.size)
    assert got.tobytes() == want.tobytes()


def assert_eq(got: Any, want: Any) -> None:
    assert type(got) is type(want) and got == want


ROUND_TRIPS = [
    pytest.param(
        lambda: {"lr": 0.1, "layers": [64, 32], "name": "é"}, "json", assert_eq, id="dict"
    ),
    pytest.param(lambda: [1, "two", None, {"3": True}], "json", assert_eq, id="list"),
    pytest.param(lambda: {1: "int key", "t": (1, 2)}, "pickle", assert_eq, id="dict-not-json"),
    pytest.param(lambda: {"x": float("inf")}, "pickle", assert_eq, id="dict-inf"),
    pytest.param(frame, "dataframe", assert_frames, id="dataframe"),
    pytest.param(lambda: np.array([[1.5, np.nan], [-2.0, 3.0]]), "ndarray", assert_arrays, id="f8"),
    pytest.param(
        lambda: np.arange(12, dtype=np.int32).reshape(3, 4), "ndarray", assert_arrays, id="i4"
    ),
    pytest.param(lambda: np.array([True, False, True]), "ndarray", assert_arrays, id="bool"),
    pytest.param(
        lambda: np.array([{"a": 1}, None], dtype=object), "pickle", assert_arrays, id="object-array"
    ),
    pytest.param(lambda: image("RGB"), "image", assert_images, id="image-rgb"),
    pytest.param(lambda: image("L"), "image", assert_images, id="image-l"),
    pytest.param(lambda: image("L").convert("F"), "pickle", assert_images, id="image-f-pickled"),
    pytest.param(lambda: b"\x00\x01binary\xff", "bytes", assert_eq, id="bytes"),
    pytest.param(lambda: "hello world, not a path", "text", assert_eq, id="text"),
    pytest.param(lambda: "line one\nsee docs/x.md", "text", assert_eq, id="multiline-text"),
    pytest.param(lambda: Point(3, ["a", "b"]), "pickle", assert_eq, id="dataclass"),
]


@pytest.mark.parametrize(("make", "type_", "check"), ROUND_TRIPS)
def test_object_round_trips(
    blobs: BlobStore, tmp_path: Path, make: Callable[[], Any], type_: str, check: Callable
) -> None:
    record = store_artifact(blobs, "thing", make())
    assert record["type"] == type_
    assert blobs.has(record["sha256"])
    check(load_artifact(blobs, record), make())
    copy = local_copy(blobs, record, tmp_path / "cache")
    assert copy.read_bytes() == blobs.path(record["sha256"]).read_bytes()


def test_local_copy_of_object_has_a_suffix_tools_recognise(
    blobs: BlobStore, tmp_path: Path
) -> None:
    suffixes = {
        ".json": {"a": 1},
        ".npy": np.zeros(3),
        ".png": image("RGB"),
        ".pkl": Point(1, []),
        ".txt": "text",
        ".bin": b"raw",
    }
    for suffix, obj in suffixes.items():
        record = store_artifact(blobs, "out", obj)
        assert local_copy(blobs, record, tmp_path / "cache").name == "out" + suffix
    record = store_artifact(blobs, "config.json", {"a": 1})
    assert local_copy(blobs, record, tmp_path / "cache").name == "config.json"
    assert np.load(local_copy(blobs, store_artifact(blobs, "z", np.ones(2)), tmp_path)).sum() == 2


def test_file_round_trips_as_a_read_only_copy_named_like_the_original(
    blobs: BlobStore, tmp_path: Path
) -> None:
    source = tmp_path / "weights.pt"
    source.write_bytes(b"w" * 3000)
    record = store_artifact(blobs, "weights", source)
    assert (record["type"], record["filename"], record["size"]) == ("file", "weights.pt", 3000)
    copy = load_artifact(blobs, record, cache_root=tmp_path / "cache")
    assert copy == tmp_path / "cache" / record["sha256"][:16] / "weights.pt"
    assert copy.read_bytes() == source.read_bytes()
    assert not copy.stat().st_mode & 0o222
    assert copy.stat().st_ino == blobs.path(record["sha256"]).stat().st_ino  # a hard link


def test_a_str_naming_an_existing_file_is_stored_as_the_file(
    blobs: BlobStore, tmp_path: Path
) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("hello\n")
    assert store_artifact(blobs, "notes", str(source))["type"] == "file"


def make_tree(root: Path, outside: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "a.txt").write_text("alpha\n")
    (root / "empty").write_bytes(b"")
    (root / "sub" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "sub" / "run.sh").chmod(0o755)
    (root / "sub" / "deeper" / "b.bin").write_bytes(os.urandom(100))
    (root / "linked.txt").symlink_to(outside)


def test_folder_round_trips_with_nested_files_empty_ones_links_and_exec_bits(
    blobs: BlobStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("followed\n")
    make_tree(tmp_path / "src", outside)
    record = store_artifact(blobs, "tree", tmp_path / "src")
    paths = [entry["path"] for entry in record["files"]]
    assert paths == ["a.txt", "empty", "linked.txt", "sub/deeper/b.bin", "sub/run.sh"]
    assert record["dirs"] == ["empty-dir"]
    assert record["size"] == sum(entry["size"] for entry in record["files"])
    copy = Artifact(record, blobs, tmp_path / "cache").get()
    assert copy.name == "tree" and copy.is_dir()
    for rel in paths:
        want = (tmp_path / "src" / rel).read_bytes()
        assert (copy / rel).read_bytes() == want
        assert not (copy / rel).is_symlink()
    assert (copy / "sub" / "run.sh").stat().st_mode & 0o111
    assert not (copy / "a.txt").stat().st_mode & 0o111
    assert (copy / "empty-dir").is_dir()
    assert not blobs.path(record["files"][-1]["sha256"]).stat().st_mode & 0o111


def test_empty_folder_round_trips(blobs: BlobStore, tmp_path: Path) -> None:
    (tmp_path / "nothing").mkdir()
    record = store_artifact(blobs, "nothing", tmp_path / "nothing")
    assert (record["files"], record["size"], record["preview"]["files"]) == ([], 0, 0)
    assert list(local_copy(blobs, record, tmp_path / "cache").iterdir()) == []


def test_folder_with_a_link_cycle_is_refused(blobs: BlobStore, tmp_path: Path) -> None:
    (tmp_path / "loop" / "sub").mkdir(parents=True)
    (tmp_path / "loop" / "sub" / "back").symlink_to(tmp_path / "loop")
    with pytest.raises(ArtifactError, match="cycle"):
        store_artifact(blobs, "loop", tmp_path / "loop")


def test_folder_with_a_broken_link_is_refused(blobs: BlobStore, tmp_path: Path) -> None:
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(ArtifactError, match="broken link") as info:
        store_artifact(blobs, "f", tmp_path / "f")
    assert "dangling" in str(info.value)


def test_same_file_uploaded_twice_and_under_two_names_takes_one_blob(
    blobs: BlobStore, tmp_path: Path
) -> None:
    source = tmp_path / "data.csv"
    source.write_bytes(os.urandom(5000))
    first = store_artifact(blobs, "data", source)
    blob = blobs.path(first["sha256"])
    before = blob.stat()
    again = store_artifact(blobs, "data", source)
    other = store_artifact(blobs, "copy-of-data", source, kind="input_model")
    assert first["sha256"] == again["sha256"] == other["sha256"]
    assert blob_files(blobs) == [blob]  # no second blob, no temporary file left
    assert (blob.stat().st_ino, blob.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_folders_sharing_a_file_share_its_blob(blobs: BlobStore, tmp_path: Path) -> None:
    shared = os.urandom(2000)
    for name, own in (("one", b"first"), ("two", b"second")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "shared.bin").write_bytes(shared)
        (tmp_path / name / "own.txt").write_bytes(own)
    one = store_artifact(blobs, "one", tmp_path / "one")
    two = store_artifact(blobs, "two", tmp_path / "two")
    assert one["sha256"] != two["sha256"]
    assert one["files"][1]["sha256"] == two["files"][1]["sha256"]
    assert len(blob_files(blobs)) == 5  # shared + 2 own + 2 manifests


def test_blobs_are_read_only(blobs: BlobStore) -> None:
    sha, size = blobs.put_bytes(b"abc")
    assert size == 3
    assert stat.S_IMODE(blobs.path(sha).stat().st_mode) == 0o444
    assert blobs.path(sha) == blobs.root / sha[:2] / sha[2:]


def test_preview_of_dataframe_is_json_safe(blobs: BlobStore) -> None:
    preview = store_artifact(blobs, "df", frame(), preview_rows=2)["preview"]
    assert preview["shape"] == [3, 4]
    assert preview["columns"] == ["loss", "when", "label", "count"]
    assert preview["dtypes"] == [str(dtype) for dtype in frame().dtypes]  # differ by pandas version
    assert preview["index"] == [10, 20]
    assert preview["head"] == [[0.5, "2024-01-02T00:00:00", "a", 1], [None, None, "b", None]]


def test_preview_of_array_skips_nan(blobs: BlobStore) -> None:
    preview = store_artifact(blobs, "a", np.array([1.0, np.nan, 3.0]))["preview"]
    assert preview == {"shape": [3], "dtype": "float64", "min": 1.0, "max": 3.0, "mean": 2.0}
    empty = store_artifact(blobs, "e", np.zeros((0, 2)))["preview"]
    assert empty == {"shape": [0, 2], "dtype": "float64"}
    nans = store_artifact(blobs, "n", np.full(2, np.nan))["preview"]
    assert (nans["min"], nans["mean"]) == (None, None)


def test_preview_of_file_folder_and_image(blobs: BlobStore, tmp_path: Path) -> None:
    text = tmp_path / "log.txt"
    text.write_text("".join(f"line {i}\n" for i in range(9)))
    preview = store_artifact(blobs, "log", text)["preview"]
    assert preview["head"] == [f"line {i}" for i in range(5)]
    assert preview["filename"] == "log.txt" and preview["size"] == text.stat().st_size
    binary = tmp_path / "x.bin"
    binary.write_bytes(b"\xff\xfe\x00" * 10)
    assert "head" not in store_artifact(blobs, "bin", binary)["preview"]
    (tmp_path / "many").mkdir()
    for i in range(12):
        (tmp_path / "many" / f"f{i:02}").write_bytes(b"12")
    preview = store_artifact(blobs, "many", tmp_path / "many")["preview"]
    assert preview == {"files": 12, "size": 24, "paths": [f"f{i:02}" for i in range(10)]}
    img = store_artifact(blobs, "img", image("RGB"))["preview"]
    assert img == {"width": 7, "height": 5, "mode": "RGB"}


def test_every_record_is_json_and_its_preview_small(blobs: BlobStore, tmp_path: Path) -> None:
    wide = pd.DataFrame({f"column number {i} " * 4: ["x" * 500] * 20 for i in range(80)})
    (tmp_path / "deep").mkdir()
    for i in range(15):
        (tmp_path / "deep" / (f"{i:02}" + "n" * 200)).write_bytes(b"")
    objects = [cast(Callable[[], Any], p.values[0])() for p in ROUND_TRIPS] + [
        wide,
        {"k" * 10: ["v" * 100] * 200},
        "é" * 5000,
        Point(1, ["x" * 5000]),
        tmp_path / "deep",
    ]
    for obj in objects:
        record = store_artifact(blobs, "thing", obj, metadata={"epoch": 3}, preview_rows=50)
        assert len(json.dumps(record["preview"])) < PREVIEW_MAX_BYTES
        assert json.loads(json.dumps(record)) == record
    assert store_artifact(blobs, "wide", wide)["preview"]["truncated"] is True


BAD_NAMES = [
    pytest.param("a/b", "'/'", id="slash"),
    pytest.param("a\\b", "'/'", id="backslash"),
    pytest.param("..", "'.' or '..'", id="dotdot"),
    pytest.param(".", "'.' or '..'", id="dot"),
    pytest.param("", "empty", id="empty"),
    pytest.param(" x", "whitespace", id="leading-space"),
    pytest.param("x\n", "whitespace", id="trailing-newline"),
    pytest.param("a\x00", "control", id="nul"),
    pytest.param("a\tb", "control", id="tab"),
    pytest.param("../etc", "'/'", id="parent-path"),
    pytest.param("x" * 300, "at most 255", id="300-chars"),
    pytest.param(None, "expected a str", id="none"),
]


@pytest.mark.parametrize(("name", "rule"), BAD_NAMES)
def test_bad_names_are_refused_with_the_rule_and_an_example(name: Any, rule: str) -> None:
    with pytest.raises(ArtifactError) as info:
        check_name(name)
    assert rule in str(info.value) and "weights.pt" in str(info.value)


@pytest.mark.parametrize("name", ["model.pt", "eval results", "résumé", "x" * 255, "a..b"])
def test_good_names_are_returned(name: str) -> None:
    assert check_name(name) == name


def test_store_refuses_a_bad_name_kind_or_metadata(blobs: BlobStore) -> None:
    with pytest.raises(ArtifactError, match="model name"):
        store_artifact(blobs, "../x", b"", kind="output_model")
    with pytest.raises(ArtifactError, match="valid kinds"):
        store_artifact(blobs, "x", b"", kind="model")
    with pytest.raises(ArtifactError, match="not JSON-able"):
        store_artifact(blobs, "x", b"", metadata={"when": object()})
    assert blob_files(blobs) == []


@pytest.mark.parametrize(
    "text", ["results/missing.csv", "missing.csv", "C:\\data\\x.txt", "model.pt"]
)
def test_a_missing_path_string_is_an_error_not_text(blobs: BlobStore, text: str) -> None:
    with pytest.raises(ArtifactError, match="no such file or folder") as info:
        store_artifact(blobs, "x", text)
    assert repr(text) in str(info.value) and "{'text': ...}" in str(info.value)


def test_a_missing_path_object_is_an_error(blobs: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such file or folder"):
        store_artifact(blobs, "x", tmp_path / "nope")


def unpicklables() -> list[Any]:
    def numbers():
        yield 1

    return [lambda: 1, socket.socket(), numbers()]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["lambda", "socket", "generator"])
def test_an_unpicklable_object_is_refused_clearly(blobs: BlobStore, index: int) -> None:
    obj = unpicklables()[index]
    try:
        with pytest.raises(ArtifactError, match="cannot pickle") as info:
            store_artifact(blobs, "x", obj)
        assert type(obj).__qualname__ in str(info.value)
        assert "upload that path" in str(info.value)
    finally:
        if isinstance(obj, socket.socket):
            obj.close()


def test_a_module_level_function_is_pickled_by_reference(blobs: BlobStore) -> None:
    record = store_artifact(blobs, "fn", module_level_function)
    assert load_artifact(blobs, record) is module_level_function


def test_a_missing_blob_names_the_artifact_and_hash(blobs: BlobStore, tmp_path: Path) -> None:
    record = store_artifact(blobs, "cfg", {"a": 1})
    blob = blobs.path(record["sha256"])
    blob.unlink()
    for call in (
        lambda: load_artifact(blobs, record),
        lambda: local_copy(blobs, record, tmp_path / "cache"),
        lambda: blobs.path(record["sha256"]),
    ):
        with pytest.raises(ArtifactError, match=record["sha256"]) as info:
            call()
        assert str(blobs.root) in str(info.value)
    assert not blobs.has(record["sha256"])


def corrupt(path: Path, data: bytes) -> None:
    path.chmod(0o644)
    path.write_bytes(data)


@pytest.mark.parametrize("same_size", [True, False], ids=["same-size", "other-size"])
def test_a_corrupted_blob_is_detected_on_read(
    blobs: BlobStore, tmp_path: Path, same_size: bool
) -> None:
    source = tmp_path / "w.bin"
    source.write_bytes(b"a" * 100)
    for obj in (Point(1, ["x"]), source):
        record = store_artifact(blobs, "obj", obj)
        blob = blobs.path(record["sha256"])
        corrupt(blob, b"b" * record["size"] if same_size else b"b")
        with pytest.raises(ArtifactError, match=record["sha256"]) as info:
            load_artifact(blobs, record, cache_root=tmp_path / "cache")
        assert "'obj'" in str(info.value) and str(blob) in str(info.value)


def test_storing_again_repairs_a_blob_of_the_wrong_size(blobs: BlobStore) -> None:
    record = store_artifact(blobs, "t", "some text")
    corrupt(blobs.path(record["sha256"]), b"short")
    store_artifact(blobs, "t", "some text")
    assert load_artifact(blobs, record) == "some text"


def test_a_folder_record_pointing_outside_is_refused(blobs: BlobStore, tmp_path: Path) -> None:
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "a").write_text("a")
    record = store_artifact(blobs, "f", tmp_path / "f")
    record["files"][0]["path"] = "../escaped"
    with pytest.raises(ArtifactError, match="manifest"):
        local_copy(blobs, record, tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("escaped"))


def test_local_copies_are_made_once_and_reused(blobs: BlobStore, tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "x").write_text("x")
    (tmp_path / "file.txt").write_text("y")
    for obj in (tmp_path / "dir", tmp_path / "file.txt", {"k": 1}):
        artifact = Artifact(store_artifact(blobs, "a", obj), blobs, tmp_path / "cache")
        first = artifact.get_local_copy()
        stamp = (first.stat().st_ino, first.stat().st_mtime_ns)
        again = artifact.get_local_copy()
        assert again == first and (again.stat().st_ino, again.stat().st_mtime_ns) == stamp
        leftovers = [p for p in first.parent.iterdir() if p.name.startswith(".tmp")]
        assert leftovers == []


def test_artifact_exposes_its_record(blobs: BlobStore, tmp_path: Path) -> None:
    record = store_artifact(blobs, "net", b"xyz", kind="output_model", metadata={"epoch": 2})
    artifact = Artifact(record, blobs, tmp_path / "cache")
    assert (artifact.name, artifact.kind, artifact.type) == ("net", "output_model", "bytes")
    assert (artifact.sha256, artifact.size) == (record["sha256"], 3)
    assert artifact.metadata == {"epoch": 2} and artifact.preview == record["preview"]
    assert artifact.created == record["created"]
    assert artifact.get() == b"xyz"
    assert repr(artifact) == (
        f"Artifact('net', kind='output_model', type='bytes', size=3, "
        f"sha256={record['sha256'][:12]!r})"
    )


def test_importing_the_module_imports_no_numpy_pandas_or_pil() -> None:
    code = (
        "import sys, etude.tracking.artifacts\n"
        "print(sorted(m for m in ('numpy', 'pandas', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def store_in_child(root: str, data: bytes, barrier: Any, results: Any) -> None:
    """Run in a spawned process: wait for the other one, then store `data`."""
    barrier.wait(timeout=60)
    results.put(store_artifact(BlobStore(root), "big", data)["sha256"])


def test_two_processes_storing_the_same_content_leave_one_valid_blob(blobs: BlobStore) -> None:
    data = os.urandom(5 * 1024 * 1024)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    args = (str(blobs.root), data, barrier, results)
    workers = [context.Process(target=store_in_child, args=args) for _ in range(2)]
    for worker in workers:
        worker.start()
    shas = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert shas[0] == shas[1]
    assert blob_files(blobs) == [blobs.path(shas[0])]
    assert load_artifact(blobs, {"name": "big", "type": "bytes", "sha256": shas[0]}) == data
