"""Artifacts and models of runs, stored once by content.

Every stored byte lives in a `BlobStore` (WORKSPACE/blobs), in a read-only file named by the
SHA-256 of its content: the same file uploaded by a hundred runs takes the room of one. What a
run keeps is a *record*, a small JSON-able dict naming the blob (or, for a folder, one blob per
file plus a manifest), its type, a preview for listings and the user's metadata.

`store_artifact` turns an object into a record, `load_artifact` turns a record back into the
object, `local_copy` gives a path holding the content, and `Artifact` wraps a record for users.
The blob store itself is in `blobs`, the per-type encoding and decoding in `serialization`
and the previews in `previews`.
Importing this module costs the standard library only: numpy, pandas and PIL are imported when
an object of theirs is stored or loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path, PurePosixPath
from typing import Any

from etude.tracking.blobs import CHUNK_SIZE, BlobStore, file_digest
from etude.tracking.errors import ArtifactError
from etude.tracking.previews import PREVIEW_MAX_BYTES, bounded
from etude.tracking.serialization import DECODERS, Encoder, manifest_bytes

# BlobStore, CHUNK_SIZE and PREVIEW_MAX_BYTES live in blobs and previews; they are re-exported
# here, where callers have always found them.
__all__ = [
    "CHUNK_SIZE",
    "KINDS",
    "PREVIEW_MAX_BYTES",
    "TYPES",
    "Artifact",
    "BlobStore",
    "check_name",
    "load_artifact",
    "local_copy",
    "store_artifact",
]

logger = logging.getLogger("etude.tracking")

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
    fields = Encoder(blobs, label, preview_rows).encode(obj)
    preview = bounded(label, fields.pop("preview"))
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
        return DECODERS[type_](data)
    except Exception as exc:  # any failure of a decoder means the same thing to the user
        raise ArtifactError(
            f"{_label(record)}: its {type_} blob {path} cannot be decoded "
            f"({type(exc).__name__}: {exc}). Install or import what it needs here "
            "(the class in its preview), with the versions that stored it."
        ) from exc


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
        digest = hashlib.sha256(manifest_bytes(files, dirs)).hexdigest()
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
    _check_digest(record, sha, path, file_digest(path)[0])
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
