"""Per-type serialization of artifacts: `Encoder` turns an object (or a file or folder) into
blobs and the type-specific fields of its record; `DECODERS` turn a blob back into the object.
Importing this module costs the standard library only: numpy, pandas and PIL are imported when
an object of theirs is encoded or decoded.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from etude.tracking.blobs import BlobStore
from etude.tracking.errors import ArtifactError
from etude.tracking.previews import (
    array_preview,
    class_name,
    clip,
    frame_preview,
    short_repr,
    text_head,
)

# "model.pt", "data.tar.gz": a single word ending in an extension that starts with a letter.
_FILENAME_LIKE = re.compile(r"[\w.-]*\w\.[A-Za-z][A-Za-z0-9]{0,7}")
_PATH_MAX = 4096
# PNG holds these modes losslessly and reads them back as the same mode; others are pickled.
_PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA"})
_EXECUTABLE = 0o755
_REGULAR = 0o644


class Encoder:
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
        clipped = clip(text, 1500)
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
        clipped = clip(text, 1500)
        preview = {"json": clipped, "length": len(text), "truncated": clipped != text}
        return self.blob("json", text.encode("ascii"), preview)

    def dataframe(self, obj: Any) -> dict[str, Any] | None:
        import pandas as pd  # type: ignore[import-untyped]  # lazy, see encode()

        if not isinstance(obj, pd.DataFrame):
            return None
        return self.blob("dataframe", self.pickle(obj), frame_preview(obj, self.preview_rows))

    def ndarray(self, obj: Any) -> dict[str, Any] | None:
        import numpy as np  # lazy, see encode()

        if type(obj) is not np.ndarray or obj.dtype.hasobject:
            return None  # subclasses and object arrays are pickled
        buffer = io.BytesIO()
        np.save(buffer, obj, allow_pickle=False)
        return self.blob("ndarray", buffer.getvalue(), array_preview(obj))

    def image(self, obj: Any) -> dict[str, Any] | None:
        from PIL import Image  # lazy, see encode()

        if not isinstance(obj, Image.Image) or obj.mode not in _PNG_MODES:
            return None
        buffer = io.BytesIO()
        obj.save(buffer, format="PNG")
        preview = {"width": obj.width, "height": obj.height, "mode": obj.mode}
        return self.blob("image", buffer.getvalue(), preview)

    def pickled(self, obj: Any) -> dict[str, Any]:
        preview = {"class": class_name(obj), "repr": short_repr(obj)}
        return self.blob("pickle", self.pickle(obj), preview)

    def pickle(self, obj: Any) -> bytes:
        try:
            return pickle.dumps(obj, protocol=5)
        except (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError) as exc:
            raise ArtifactError(
                f"{self.label}: cannot pickle the {class_name(obj)} object "
                f"({type(exc).__name__}: {exc}). Save it to a file or folder with its library's "
                "own save function and upload that path instead."
            ) from exc

    def file(self, path: Path) -> dict[str, Any]:
        sha, size = self.blobs.put_file(path)
        preview: dict[str, Any] = {"filename": path.name, "size": size, "sha256": sha}
        head = text_head(path, size)
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
        sha, _ = self.blobs.put_bytes(manifest_bytes(entries, dirs))
        total = sum(entry["size"] for entry in entries)
        preview = {"files": len(entries), "size": total, "paths": [e["path"] for e in entries[:10]]}
        fields = {"type": "folder", "sha256": sha, "size": total, "files": entries, "dirs": dirs}
        return {**fields, "preview": preview}


def _exists(text: str) -> bool:
    return text != "" and os.path.exists(text)


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


def manifest_bytes(files: list[dict[str, Any]], dirs: list[str]) -> bytes:
    """The canonical JSON of a folder; its SHA-256 is the folder's."""
    manifest = {"dirs": dirs, "files": files}
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode("ascii")


def _load_ndarray(data: bytes) -> Any:
    import numpy as np  # lazy, see Encoder.encode()

    return np.load(io.BytesIO(data), allow_pickle=False)


def _load_image(data: bytes) -> Any:
    from PIL import Image  # lazy, see Encoder.encode()

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


DECODERS: dict[str, Callable[[bytes], Any]] = {
    "json": json.loads,
    "text": lambda data: data.decode("utf-8"),
    "bytes": bytes,
    "pickle": pickle.loads,
    "dataframe": pickle.loads,
    "ndarray": _load_ndarray,
    "image": _load_image,
}
