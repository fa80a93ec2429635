"""Where a workspace's index lives: which database URL, and whether SQLite is safe there.

Order: `$ETUDE_STORE`, else the `store:` of the workspace's entry in settings.yaml, else SQLite
at `WORKSPACE/.etude/index.sqlite`. SQLite's locks are not reliable on network file systems
(NFS, Lustre, GPFS, CIFS, ...): a database there is corrupted as soon as two machines write it.
So when the workspace is on one of those, the SQLite index is kept on this machine's local disk
instead (`$XDG_CACHE_HOME/etude/index/NAME-HASH.sqlite`), with a warning that says how to share
one index between machines (PostgreSQL). Job processes never write the index, wherever it is:
they write markers in their folders, and the processes that hold an index read them.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..workspace.layout import ETUDE_DIR

logger = logging.getLogger("etude.store")

STORE_ENV = "ETUDE_STORE"
INDEX_NAME = "index.sqlite"

#: File system types whose locks SQLite cannot trust (as /proc/mounts names them).
NETWORK_FILE_SYSTEMS = frozenset(
    {
        "nfs", "nfs4", "lustre", "gpfs", "cifs", "smb", "smb2", "smb3", "smbfs", "beegfs",
        "ceph", "glusterfs", "fuse.glusterfs", "fuse.sshfs", "fuse.s3fs", "9p", "afs",
        "fuse.cephfs", "panfs", "wekafs", "fuse.juicefs",
    }
)


class StoreConfigError(ValueError):
    """A store URL that etude cannot use; the message names its source and the fix."""


@dataclass(frozen=True)
class StoreLocation:
    """The database of a workspace's index. `path` is set for SQLite."""

    url: str
    source: str  # where the URL came from, for messages
    path: Path | None = None
    network_fs: str | None = None  # the file system type that moved SQLite off the workspace

    @property
    def is_sqlite(self) -> bool:
        return self.path is not None

    @property
    def display(self) -> str:
        """The URL without its password."""
        if self.path is not None:
            return str(self.path)
        scheme, sep, rest = self.url.partition("://")
        credentials, at, host = rest.rpartition("@")
        if at and ":" in credentials:
            credentials = credentials.split(":", 1)[0] + ":***"
        return f"{scheme}{sep}{credentials}{at}{host}"


def normalize_url(url: str, source: str) -> str:
    """SQLAlchemy's URL for `url`: plain `postgresql://` uses psycopg 3."""
    url = url.strip()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if scheme in ("postgresql+psycopg", "sqlite"):
        return url
    raise StoreConfigError(
        f"{source}: unsupported store URL {url!r}; use postgresql://USER@HOST:PORT/DATABASE "
        "(or postgresql+psycopg://...), or sqlite:///PATH, or leave it unset for the "
        "workspace's own SQLite file."
    )


def mount_type(path: Path, mounts: Path = Path("/proc/mounts")) -> str | None:
    """The type of the file system holding `path` (the longest mount point above it), or None
    when the mount table cannot be read."""
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return None
    target = str(path.resolve()) if path.exists() else os.path.abspath(path)
    best, best_type = "", None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, best_type = point, fields[2]
    return best_type


def is_network_fs(fs_type: str | None) -> bool:
    return fs_type is not None and (
        fs_type in NETWORK_FILE_SYSTEMS or fs_type.split(".")[0] in NETWORK_FILE_SYSTEMS
    )


def local_index_path(workspace: Path) -> Path:
    """The per-machine SQLite file used for a workspace on a network file system."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    digest = hashlib.sha256(str(workspace).encode()).hexdigest()[:16]
    return Path(base) / "etude" / "index" / f"{workspace.name or 'root'}-{digest}.sqlite"


def locate(
    workspace: Path, configured: str | None = None, *, mounts: Path = Path("/proc/mounts")
) -> StoreLocation:
    """The index database of `workspace` (`configured`: the settings' `store:` value)."""
    env = os.environ.get(STORE_ENV, "").strip()
    if env:
        url, source = env, f"${STORE_ENV}"
    elif configured:
        url, source = configured, f"settings.yaml (workspace {workspace})"
    else:
        fs_type = mount_type(workspace, mounts)
        if is_network_fs(fs_type):
            path = local_index_path(workspace)
            return StoreLocation(f"sqlite:///{path}", "default", path, network_fs=fs_type)
        path = workspace / ETUDE_DIR / INDEX_NAME
        return StoreLocation(f"sqlite:///{path}", "default", path)
    url = normalize_url(url, source)
    if url.startswith("sqlite"):
        raw = url.split(":///", 1)[1] if ":///" in url else ""
        if not raw or raw == ":memory:":
            raise StoreConfigError(
                f"{source}: {url!r} names no file; the index must outlive the process "
                "(use sqlite:////absolute/path.sqlite)."
            )
        return StoreLocation(url, source, Path(raw))
    return StoreLocation(url, source)
