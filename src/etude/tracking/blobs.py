"""The content-addressed store under every artifact: files named by the SHA-256 of their
content, written once, read-only. Importing this module costs the standard library only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

from etude.tracking.errors import ArtifactError

logger = logging.getLogger("etude.tracking")

CHUNK_SIZE = 1 << 20
_HASH = re.compile(r"[0-9a-f]{64}")


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
        sha, size = file_digest(source)
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


def file_digest(path: Path) -> tuple[str, int]:
    """(SHA-256 hex, size in bytes) of the file at `path`, read in CHUNK_SIZE chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as src:
        while chunk := src.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
