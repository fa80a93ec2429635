"""Artifacts and models of runs, stored once by content.

Every stored byte lives in a `BlobStore` (WORKSPACE/blobs), in a read-only file named by the
SHA-256 of its content: the same file uploaded by a hundred runs takes the room of one. What a
run keeps is a *record*, a small JSON-able dict naming the blob (or, for a folder, one blob per
file plus a manifest), its type, a preview for listings and the user's metadata.

`store_artifact` turns an object into a record, `load_artifact` turns a record back into the
object, `local_copy` gives a path holding the content, and `Artifact` wraps a record for users.
Importing this module costs the standard library only: numpy, pandas and PIL are imported when
an object of theirs is stored or loaded.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import logging
import math
import os
import pickle
import re
import reprlib
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from etude.tracking.errors import ArtifactError

logger = logging.getLogger("etude.tracking")

CHUNK_SIZE = 1 << 20
PREVIEW_MAX_BYTES = 2048
KINDS = ("artifact", "input_model", "output_model")
TYPES = ("file", "folder", "json", "dataframe", "ndarray", "image", "text", "bytes", "pickle")

# Suffix of the local copy of an in-memory artifact, so tools recognise the file.
_SUFFIXES = {
    "json": ".json",
    "dataframe": ".pkl",
    "pickle": ".pkl",
    "ndarray": ".npy",
    "image": ".png",
    "text": ".txt",
    "bytes": ".bin",
}
_HASH = re.compile(r"[0-9a-f]{64}")
# "model.pt", "data.tar.gz": a single word ending in an extension that starts with a letter.
_FILENAME_LIKE = re.compile(r"[\w.-]*\w\.[A-Za-z][A-Za-z0-9]{0,7}")
_PATH_MAX = 4096
# PNG holds these modes losslessly and reads them back as the same mode; others are pickled.
_PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA"})
_TEXT_HEAD_MAX_FILE = 1 << 20
_CELL_CHARS = 60
_EXECUTABLE = 0o755
_REGULAR = 0o644
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 200


class BlobStore:
    """Files named by the SHA-256 of their content: `root/ab/cdef...` for hash `abcdef...`.

    Blobs are written once, atomically (temporary file in `root`, fsync, rename) and read-only
    (0o444). Putting content that is already stored writes nothing. Two processes putting the
    same content at once both succeed and leave one valid blob.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"BlobStore({str(self.root)!r})"

    def put_file(self, path: str | os.PathLike[str]) -> tuple[str, int]:
        """Store the content of the file at `path`; return (sha256 hex, size in bytes).

        The file is read in 1 MiB chunks, once to hash it and, if the blob is new, once more to
        copy it. Raises ArtifactError if the file changes between the two reads, OSError if it
        cannot be read.
        """
        source = Path(path)
        sha, size = _file_digest(source)
        if self._stored(sha, size):
            return sha, size
        tmp = self._temp_path()
        try:
            digest = hashlib.sha256()
            with open(source, "rb") as src, open(tmp, "xb") as out:
                while chunk := src.read(CHUNK_SIZE):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != sha:
                raise ArtifactError(
                    f"{source}: the file changed while it was being stored; upload it again "
                    "once nothing writes to it"
                )
            self._commit(tmp, sha)
        finally:
            tmp.unlink(missing_ok=True)
        return sha, size

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store `data`; return (sha256 hex, size in bytes)."""
        sha = hashlib.sha256(data).hexdigest()
        if self._stored(sha, len(data)):
            return sha, len(data)
        tmp = self._temp_path()
        try:
            with open(tmp, "xb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            self._commit(tmp, sha)
        finally:
            tmp.unlink(missing_ok=True)
        return sha, len(data)

    def path(self, sha256: str) -> Path:
        """The blob file of `sha256`; raises ArtifactError if the store does not hold it."""
        path = self._blob_path(sha256)
        if not path.is_file():
            raise ArtifactError(
                f"blob {sha256} is not in the blob store {self.root} (no file {path}): it was "
                "deleted, or the record comes from another workspace. Upload the content again."
            )
        return path

    def has(self, sha256: str) -> bool:
        """Whether the store holds a blob for `sha256` (its content is not checked)."""
        return self._blob_path(sha256).is_file()

    def _blob_path(self, sha256: str) -> Path:
        if not isinstance(sha256, str) or not _HASH.fullmatch(sha256):
            raise ArtifactError(
                f"{sha256!r} is not a SHA-256 digest: expected 64 lowercase hex characters, "
                "as in the 'sha256' of a record"
            )
        return self.root / sha256[:2] / sha256[2:]

    def _stored(self, sha: str, size: int) -> bool:
        path = self._blob_path(sha)
        try:
            found = path.stat().st_size
        except FileNotFoundError:
            return False
        if found != size:
            logger.warning(
                "blob %s has %d bytes instead of %d: writing it again", path, found, size
            )
        return found == size

    def _temp_path(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / f".tmp-{os.getpid()}-{os.urandom(6).hex()}"

    def _commit(self, tmp: Path, sha: str) -> None:
        os.chmod(tmp, 0o444)
        dest = self._blob_path(sha)
        dest.parent.mkdir(exist_ok=True)
        # A concurrent writer of the same content may have renamed first: replacing its file
        # by ours is harmless, the bytes are the same.
        os.replace(tmp, dest)


def check_name(name: str, what: str = "artifact") -> str:
    """Return `name` if it can name an artifact (or model) and a file; raise ArtifactError.

    A valid name is a non-empty str of at most 255 characters, without '/' or '\\', control
    characters or leading/trailing whitespace, and is not '.' or '..'.
    """
    problem = _name_problem(name)
    if problem is None:
        return name
    raise ArtifactError(
        f"{what} name {name!r}: {problem}. Use a name like 'weights.pt' or 'eval-results'."
    )


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"expected a str, got {type(name).__name__}"
    if not name:
        return "must not be empty"
    if len(name) > 255:
        return f"has {len(name)} characters, at most 255 are allowed"
    if name != name.strip():
        return "must not start or end with whitespace"
    if "/" in name or "\\" in name:
        return "must not contain '/' or '\\' (a name is one path component)"
    if name in (".", ".."):
        return "must not be '.' or '..'"
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
        return "must not contain control characters (NUL, newline, tab, ...)"
    return None


def store_artifact(
    blobs: BlobStore,
    name: str,
    obj: Any,
    *,
    kind: str = "artifact",
    metadata: dict[str, Any] | None = None,
    preview_rows: int = 5,
) -> dict[str, Any]:
    """Store `obj` in `blobs`; return its JSON-able record.

    The record has "name", "kind", "type", "sha256", "size", "preview" (JSON-able, under
    2 KB), "metadata" and "created" (time.time()), plus "filename" for a file and "files" and
    "dirs" for a folder. The type follows from `obj`:

    - `os.PathLike`: an existing file ("file") or folder ("folder", one blob per file).
    - `str`: a path if it names an existing file or folder. Otherwise, if it is one line of at
      most 4096 characters containing '/' or '\\' or looking like a file name with an
      extension ('model.pt'), ArtifactError: it was most likely meant as a missing file. Any
      other str is stored as "text"; to store such a str as text, pass {'text': s}.
    - dict or list that JSON round-trips to an equal value: "json"; others are pickled.
    - pandas.DataFrame: "dataframe"; numpy.ndarray (not of objects): "ndarray"; PIL image of
      mode 1, L, LA, P, RGB or RGBA: "image" (PNG); bytes, bytearray, memoryview: "bytes".
    - anything else: "pickle". ArtifactError if it cannot be pickled.

    `kind` is one of KINDS. `metadata` must be JSON-able. Raises ArtifactError naming the
    problem: a bad name or kind, a missing path, a link cycle in a folder, an unpicklable object.
    """
    what = "artifact" if kind == "artifact" else "model"
    check_name(name, what)
    if kind not in KINDS:
        raise ArtifactError(f"{what} {name!r}: unknown kind {kind!r}; valid kinds: {KINDS}")
    label = f"{kind} {name!r}"
    meta = _json_metadata(label, metadata)
    fields = _Encoder(blobs, label, preview_rows).encode(obj)
    preview = _bounded(label, fields.pop("preview"))
    return {
        "name": name,
        "kind": kind,
        **fields,
        "preview": preview,
        "metadata": meta,
        "created": time.time(),
    }


def _json_metadata(label: str, metadata: dict[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ArtifactError(f"{label}: metadata must be a dict, got {type(metadata).__name__}")
    try:
        result: dict[str, Any] = json.loads(json.dumps(metadata, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ArtifactError(
            f"{label}: metadata is not JSON-able ({exc}); use str, int, float, bool, None, "
            "list and dict values"
        ) from exc
    return result


class _Encoder:
    """Turns one object into record fields (type, sha256, size, preview, extras)."""

    def __init__(self, blobs: BlobStore, label: str, preview_rows: int) -> None:
        self.blobs = blobs
        self.label = label
        self.preview_rows = max(preview_rows, 0)

    def encode(self, obj: Any) -> dict[str, Any]:
        if isinstance(obj, os.PathLike):
            return self.path(Path(obj))
        if isinstance(obj, str):
            return self.path(Path(obj)) if _exists(obj) else self.text(obj)
        if isinstance(obj, (bytes, bytearray, memoryview)):
            data = bytes(obj)
            return self.blob("bytes", data, {"size": len(data), "head": data[:32].hex()})
        if isinstance(obj, (dict, list)):
            fields = self.json(obj)
            if fields is not None:
                return fields
        module = type(obj).__module__.split(".")[0]
        # Lazy imports: numpy, pandas and PIL cost 0.1-0.5 s each and are needed only when
        # one of their objects is stored (its type comes from their module).
        lazy = {"pandas": self.dataframe, "numpy": self.ndarray, "PIL": self.image}
        if module in lazy:
            fields = lazy[module](obj)
            if fields is not None:
                return fields
        return self.pickled(obj)

    def blob(self, type_: str, data: bytes, preview: dict[str, Any]) -> dict[str, Any]:
        sha, size = self.blobs.put_bytes(data)
        return {"type": type_, "sha256": sha, "size": size, "preview": preview}

    def path(self, path: Path) -> dict[str, Any]:
        if path.is_dir():
            return self.folder(path)
        if path.is_file():
            return self.file(path)
        if path.exists():
            raise ArtifactError(
                f"{self.label}: {path} is neither a regular file nor a folder (a socket, FIFO "
                "or device); copy its content to a file and upload that"
            )
        link = " (a link to a missing target)" if path.is_symlink() else ""
        raise ArtifactError(
            f"{self.label}: no such file or folder: {str(path)!r}{link}, relative to "
            f"{os.getcwd()}. Create the file first, or, to store the string itself as text, "
            "pass it as a dict ({'text': ...})."
        )

    def text(self, text: str) -> dict[str, Any]:
        one_line = "\n" not in text and len(text) <= _PATH_MAX
        separator = "/" in text or "\\" in text
        if one_line and (separator or _FILENAME_LIKE.fullmatch(text)):
            self.path(Path(text))  # raises "no such file or folder"
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ArtifactError(f"{self.label}: the text is not valid unicode ({exc})") from exc
        clipped = _clip(text, 1500)
        preview = {"text": clipped, "length": len(text), "truncated": clipped != text}
        return self.blob("text", data, preview)

    def json(self, obj: dict[str, Any] | list[Any]) -> dict[str, Any] | None:
        """The "json" fields of `obj`, or None if JSON would not give back an equal value."""
        try:
            text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            return None
        if json.loads(text) != obj:  # tuples, non-str keys
            return None
        clipped = _clip(text, 1500)
        preview = {"json": clipped, "length": len(text), "truncated": clipped != text}
        return self.blob("json", text.encode("ascii"), preview)

    def dataframe(self, obj: Any) -> dict[str, Any] | None:
        import pandas as pd  # type: ignore[import-untyped]  # lazy, see encode()

        if not isinstance(obj, pd.DataFrame):
            return None
        return self.blob("dataframe", self.pickle(obj), _frame_preview(obj, self.preview_rows))

    def ndarray(self, obj: Any) -> dict[str, Any] | None:
        import numpy as np  # lazy, see encode()

        if type(obj) is not np.ndarray or obj.dtype.hasobject:
            return None  # subclasses and object arrays are pickled
        buffer = io.BytesIO()
        np.save(buffer, obj, allow_pickle=False)
        return self.blob("ndarray", buffer.getvalue(), _array_preview(obj))

    def image(self, obj: Any) -> dict[str, Any] | None:
        from PIL import Image  # lazy, see encode()

        if not isinstance(obj, Image.Image) or obj.mode not in _PNG_MODES:
            return None
        buffer = io.BytesIO()
        obj.save(buffer, format="PNG")
        preview = {"width": obj.width, "height": obj.height, "mode": obj.mode}
        return self.blob("image", buffer.getvalue(), preview)

    def pickled(self, obj: Any) -> dict[str, Any]:
        preview = {"class": _class_name(obj), "repr": _short_repr(obj)}
        return self.blob("pickle", self.pickle(obj), preview)

    def pickle(self, obj: Any) -> bytes:
        try:
            return pickle.dumps(obj, protocol=5)
        except (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError) as exc:
            raise ArtifactError(
                f"{self.label}: cannot pickle the {_class_name(obj)} object "
                f"({type(exc).__name__}: {exc}). Save it to a file or folder with its library's "
                "own save function and upload that path instead."
            ) from exc

    def file(self, path: Path) -> dict[str, Any]:
        sha, size = self.blobs.put_file(path)
        preview: dict[str, Any] = {"filename": path.name, "size": size, "sha256": sha}
        head = _text_head(path, size)
        if head is not None:
            preview["head"] = head
        fields = {"type": "file", "sha256": sha, "size": size, "filename": path.name}
        return {**fields, "preview": preview}

    def folder(self, root: Path) -> dict[str, Any]:
        files, dirs = _scan_folder(root, self.label)
        entries: list[dict[str, Any]] = []
        for rel, path in files:
            sha, size = self.blobs.put_file(path)
            mode = _EXECUTABLE if path.stat().st_mode & 0o111 else _REGULAR
            entries.append({"path": rel, "sha256": sha, "size": size, "mode": mode})
        sha, _ = self.blobs.put_bytes(_manifest_bytes(entries, dirs))
        total = sum(entry["size"] for entry in entries)
        preview = {"files": len(entries), "size": total, "paths": [e["path"] for e in entries[:10]]}
        fields = {"type": "folder", "sha256": sha, "size": total, "files": entries, "dirs": dirs}
        return {**fields, "preview": preview}


def _exists(text: str) -> bool:
    return text != "" and os.path.exists(text)


def _class_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _short_repr(obj: Any) -> str | None:
    try:
        return _repr.repr(obj)[:300]
    except Exception as exc:  # a user's __repr__ may fail; the preview then goes without it
        logger.debug("no repr for the preview of a %s: %r", _class_name(obj), exc)
        return None


def _file_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as src:
        while chunk := src.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _scan_folder(root: Path, label: str) -> tuple[list[tuple[str, Path]], list[str]]:
    """The files (relative posix path, path) and empty subfolders under `root`, sorted.

    Links are followed; a link to a folder that contains it raises ArtifactError, as do broken
    links and special files (sockets, FIFOs, devices).
    """
    files: list[tuple[str, Path]] = []
    empty: list[str] = []
    stack: list[tuple[Path, str, frozenset[str]]] = [(root, "", frozenset())]
    while stack:
        folder, prefix, ancestors = stack.pop()
        real = os.path.realpath(folder)
        if real in ancestors:
            raise ArtifactError(
                f"{label}: {folder} links to {real}, a folder that contains it (a cycle); "
                "remove the link or upload a folder without it"
            )
        with os.scandir(folder) as scan:
            entries = list(scan)
        if not entries and prefix:
            empty.append(prefix[:-1])
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_dir():
                stack.append((Path(entry.path), rel + "/", ancestors | {real}))
            elif entry.is_file():
                files.append((rel, Path(entry.path)))
            else:
                raise ArtifactError(
                    f"{label}: {entry.path} in folder {root} is a broken link or a special file "
                    "(socket, FIFO, device); remove it or upload a folder without it"
                )
    return sorted(files), sorted(empty)


def _manifest_bytes(files: list[dict[str, Any]], dirs: list[str]) -> bytes:
    """The canonical JSON of a folder; its SHA-256 is the folder's."""
    manifest = {"dirs": dirs, "files": files}
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode("ascii")


# ---- previews -------------------------------------------------------------------------------


def _json_size(value: Any) -> int:
    return len(json.dumps(value))


def _clip(text: str, budget: int) -> str:
    """The longest prefix of `text` that JSON-encodes within about `budget` characters."""
    end = min(len(text), budget)
    while end and (size := _json_size(text[:end])) > budget:
        end = min(end - 1, end * budget // size)
    return text[:end]


def _text_head(path: Path, size: int) -> list[str] | None:
    """The first 5 lines of a small UTF-8 text file (each cut at 200 characters), else None."""
    if size > _TEXT_HEAD_MAX_FILE:
        return None
    with open(path, "rb") as src:
        data = src.read(4096)
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(data, final=size <= len(data))
    except UnicodeDecodeError:
        return None
    if "\x00" in text:
        return None
    return [line[:200] for line in text.splitlines()[:5]]


def _bounded(label: str, preview: dict[str, Any]) -> dict[str, Any]:
    """`preview`, its longest lists shortened until it JSON-encodes under PREVIEW_MAX_BYTES."""
    for keys in (("head", "index"), ("paths",), ("columns", "dtypes")):
        lists = [preview[key] for key in keys if isinstance(preview.get(key), list)]
        while any(lists) and _json_size(preview) >= PREVIEW_MAX_BYTES:
            for items in lists:
                if items:
                    items.pop()
            preview["truncated"] = True
    if _json_size(preview) < PREVIEW_MAX_BYTES:
        return preview
    logger.debug("%s: preview over %d bytes, left out", label, PREVIEW_MAX_BYTES)
    return {"truncated": True}


def _cell(value: Any) -> Any:
    """`value` as a small JSON value: NaN/NaT/NA -> None, dates -> ISO strings, others -> str."""
    if type(value).__module__ == "numpy":
        if getattr(getattr(value, "dtype", None), "kind", "") in ("m", "M"):
            return None if str(value) == "NaT" else str(value)
        value = value.item()
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value[:_CELL_CHARS]
    if type(value).__name__ in ("NaTType", "NAType"):
        return None
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return str(isoformat())
    return str(value)[:_CELL_CHARS]


def _frame_preview(frame: Any, rows: int) -> dict[str, Any]:
    head = frame.iloc[:rows, :50]
    return {
        "shape": list(frame.shape),
        "columns": [_cell(column) for column in frame.columns[:50]],
        "dtypes": [str(dtype) for dtype in frame.dtypes.iloc[:50]],
        "index": [_cell(label) for label in head.index],
        "head": [[_cell(v) for v in row] for row in head.to_numpy(dtype=object).tolist()],
    }


def _array_preview(array: Any) -> dict[str, Any]:
    import numpy as np  # lazy, see _Encoder.encode()

    preview: dict[str, Any] = {"shape": list(array.shape), "dtype": str(array.dtype)}
    numeric = array.dtype == np.bool_ or (
        np.issubdtype(array.dtype, np.number) and not np.issubdtype(array.dtype, np.complexfloating)
    )
    if numeric and array.size:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN arrays
            preview["min"] = _cell(np.nanmin(array))
            preview["max"] = _cell(np.nanmax(array))
            preview["mean"] = _cell(np.nanmean(array, dtype=np.float64))
    return preview


# ---- loading --------------------------------------------------------------------------------


def load_artifact(
    blobs: BlobStore,
    record: dict[str, Any],
    *,
    cache_root: str | os.PathLike[str] | None = None,
) -> Any:
    """The object `record` was stored from (an equal one), or a read-only local copy's Path.

    "file" and "folder" records give `local_copy(blobs, record, cache_root)`; `cache_root`
    defaults to WORKSPACE/cache/artifacts (beside `blobs.root`). Other types are read into
    memory after checking the blob's SHA-256. Raises ArtifactError naming the artifact, hash
    and blob path if the blob is missing or damaged, or if it cannot be decoded (a pickled class
    that cannot be imported here).
    """
    type_ = _record_type(record)
    if type_ in ("file", "folder"):
        root = cache_root if cache_root is not None else blobs.root.parent / "cache" / "artifacts"
        return local_copy(blobs, record, root)
    sha = _field(record, "sha256")
    path = _existing_blob(blobs, record, sha)
    data = path.read_bytes()
    _check_digest(record, sha, path, hashlib.sha256(data).hexdigest())
    try:
        return _DECODERS[type_](data)
    except Exception as exc:  # any failure of a decoder means the same thing to the user
        raise ArtifactError(
            f"{_label(record)}: its {type_} blob {path} cannot be decoded "
            f"({type(exc).__name__}: {exc}). Install or import what it needs here "
            "(the class in its preview), with the versions that stored it."
        ) from exc


def _load_ndarray(data: bytes) -> Any:
    import numpy as np  # lazy, see _Encoder.encode()

    return np.load(io.BytesIO(data), allow_pickle=False)


def _load_image(data: bytes) -> Any:
    from PIL import Image  # lazy, see _Encoder.encode()

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


_DECODERS: dict[str, Callable[[bytes], Any]] = {
    "json": json.loads,
    "text": lambda data: data.decode("utf-8"),
    "bytes": bytes,
    "pickle": pickle.loads,
    "dataframe": pickle.loads,
    "ndarray": _load_ndarray,
    "image": _load_image,
}


def local_copy(
    blobs: BlobStore, record: dict[str, Any], cache_root: str | os.PathLike[str]
) -> Path:
    """A read-only path holding the content of `record`, made once and reused afterwards.

    A file is `cache_root/<sha256[:16]>/<filename>`; a folder is
    `cache_root/<sha256[:16]>/<name>/` rebuilt from its manifest with executable bits; other
    types are `cache_root/<sha256[:16]>/<name><suffix>` (.json, .pkl, .npy, .png, .txt, .bin)
    holding the stored bytes. Files are hard links to the blobs where possible (copies
    otherwise) and are made atomically (temporary name, then rename). Blobs are checked against
    their SHA-256 when a copy is made; ArtifactError if one is missing or damaged.
    """
    type_ = _record_type(record)
    sha = _field(record, "sha256")
    name = _field(record, "name")
    base = Path(cache_root) / sha[:16]
    if type_ == "folder":
        return _folder_copy(blobs, record, base / _component(record, _fs_name(name, "")))
    if type_ == "file":
        filename = _component(record, _field(record, "filename"))
    else:
        filename = _fs_name(name, _SUFFIXES[type_])
    dest = base / filename
    if dest.is_file():
        return dest
    blob = _verified_blob(blobs, record, sha)
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{os.getpid()}-{os.urandom(6).hex()}"
    try:
        _link_or_copy(blob, tmp, executable=False)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _fs_name(name: str, suffix: str) -> str:
    """`name` + `suffix` (unless `name` ends with it), cut to fit a 255-byte file name."""
    stem = name[: -len(suffix)] if suffix and name.endswith(suffix) else name
    room = 255 - len(suffix.encode())
    return stem.encode()[:room].decode(errors="ignore") + suffix


def _component(record: dict[str, Any], name: str) -> str:
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ArtifactError(
            f"{_label(record)}: {name!r} in its record is not a file name; the record was "
            "edited or damaged, store the artifact again"
        )
    return name


def _folder_copy(blobs: BlobStore, record: dict[str, Any], dest: Path) -> Path:
    if dest.is_dir():
        return dest
    files, dirs = _checked_manifest(record)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{os.getpid()}-{os.urandom(6).hex()}"
    tmp.mkdir()
    try:
        for rel in dirs:
            (tmp / rel).mkdir(parents=True, exist_ok=True)
        verified: dict[str, Path] = {}
        for entry in files:
            sha = entry["sha256"]
            if sha not in verified:
                verified[sha] = _verified_blob(blobs, record, sha)
            target = tmp / entry["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(verified[sha], target, executable=bool(entry["mode"] & 0o111))
        try:
            os.rename(tmp, dest)
        except OSError:
            if not dest.is_dir():
                raise
            # another process made the same copy first: use it
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


def _checked_manifest(record: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The files and empty folders of a folder record, after checking them against its hash."""
    files = _field(record, "files")
    dirs = record.get("dirs", [])
    try:
        digest = hashlib.sha256(_manifest_bytes(files, dirs)).hexdigest()
    except (TypeError, ValueError) as exc:
        digest = f"none ({exc})"
    paths = [entry.get("path") for entry in files if isinstance(entry, dict)] + list(dirs)
    if digest != record["sha256"] or not all(_safe_relative(path) for path in paths):
        raise ArtifactError(
            f"{_label(record)}: its manifest does not match its hash {record['sha256']} or "
            "holds a path leaving the folder; the record was edited or damaged, store the "
            "folder again"
        )
    return files, dirs


def _safe_relative(path: Any) -> bool:
    if not isinstance(path, str) or not path or "\0" in path:
        return False
    parts = PurePosixPath(path).parts
    return not PurePosixPath(path).is_absolute() and all(p not in ("", ".", "..") for p in parts)


def _link_or_copy(blob: Path, target: Path, *, executable: bool) -> None:
    """Make `target` a read-only file with the content of `blob`.

    Non-executable files are hard links to the blob (sharing its 0o444 inode). Executable ones
    are copies: setting their mode on a link would change the blob for every other user.
    """
    if not executable:
        try:
            os.link(blob, target)
            return
        except OSError as exc:  # another file system, or links not allowed: copy instead
            logger.debug("cannot hard-link %s to %s (%s): copying", blob, target, exc)
    shutil.copyfile(blob, target)
    os.chmod(target, 0o555 if executable else 0o444)


def _record_type(record: dict[str, Any]) -> str:
    if not isinstance(record, dict):
        raise ArtifactError(f"expected an artifact record (dict), got {type(record).__name__}")
    type_ = record.get("type")
    if type_ not in TYPES:
        raise ArtifactError(
            f"{_label(record)}: unknown type {type_!r} in its record; valid types: {TYPES}"
        )
    return str(type_)


def _field(record: dict[str, Any], key: str) -> Any:
    try:
        return record[key]
    except KeyError:
        raise ArtifactError(
            f"{_label(record)}: its record has no {key!r}; it was not made by store_artifact "
            "or was damaged"
        ) from None


def _label(record: dict[str, Any]) -> str:
    return f"{record.get('kind', 'artifact')} {record.get('name')!r}"


def _existing_blob(blobs: BlobStore, record: dict[str, Any], sha: str) -> Path:
    path = blobs._blob_path(sha)
    if not path.is_file():
        raise ArtifactError(
            f"{_label(record)}: blob {sha} is missing (no file {path} in {blobs.root}); it was "
            "deleted, or the record comes from another workspace. Store the artifact again."
        )
    return path


def _verified_blob(blobs: BlobStore, record: dict[str, Any], sha: str) -> Path:
    path = _existing_blob(blobs, record, sha)
    _check_digest(record, sha, path, _file_digest(path)[0])
    return path


def _check_digest(record: dict[str, Any], sha: str, path: Path, actual: str) -> None:
    if actual != sha:
        raise ArtifactError(
            f"{_label(record)}: blob {path} is damaged: its content hashes to {actual}, not "
            f"{sha}. Delete that file and store the artifact again."
        )


class Artifact:
    """A stored artifact or model, seen through its record.

    `get()` gives the object back; `get_local_copy()` a read-only path with its content, made
    under `cache_root` and reused.
    """

    def __init__(self, record: dict[str, Any], blobs: BlobStore, cache_root: Path) -> None:
        _record_type(record)
        self._record = record
        self._blobs = blobs
        self._cache_root = Path(cache_root)

    @property
    def name(self) -> str:
        return str(self._record["name"])

    @property
    def kind(self) -> str:
        return str(self._record.get("kind", "artifact"))

    @property
    def type(self) -> str:
        return str(self._record["type"])

    @property
    def sha256(self) -> str:
        return str(self._record["sha256"])

    @property
    def size(self) -> int:
        return int(self._record["size"])

    @property
    def preview(self) -> Any:
        return self._record.get("preview")

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self._record.get("metadata") or {})

    @property
    def created(self) -> float:
        return float(self._record["created"])

    def get(self) -> Any:
        """The object back (a Path to the local copy for files and folders); see load_artifact."""
        return load_artifact(self._blobs, self._record, cache_root=self._cache_root)

    def get_local_copy(self) -> Path:
        """A read-only file (or folder) holding the content; see local_copy."""
        return local_copy(self._blobs, self._record, self._cache_root)

    def __repr__(self) -> str:
        return (
            f"Artifact({self.name!r}, kind={self.kind!r}, type={self.type!r}, "
            f"size={self.size}, sha256={self.sha256[:12]!r})"
        )
