"""Artifacts and models of a run, stored once by content under `WORKSPACE/blobs/`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .artifacts import Artifact, BlobStore, check_name, store_artifact

if TYPE_CHECKING:
    from .run import Run

BLOBS_DIR = "blobs"
COPIES_DIR = ".etude/copies"
SIDES = {"input_model": "input", "output_model": "output"}


def blob_store(workspace: Path) -> BlobStore:
    return BlobStore(workspace / BLOBS_DIR)


class ArtifactMap(Mapping[str, Artifact]):
    """Read-only mapping of names to artifacts; a missing name says which names exist."""

    def __init__(self, run: Run, records: Mapping[str, dict[str, Any]]) -> None:
        self._run, self._records = run, dict(records)
        self._blobs = blob_store(run.workspace)

    def __getitem__(self, name: str) -> Artifact:
        record = self._records.get(name)
        if record is None:
            known = ", ".join(sorted(self._records)) or "none"
            raise KeyError(f"run {self._run.id} has no artifact {name!r} (it has: {known})")
        return Artifact(record, self._blobs, self._run.workspace / COPIES_DIR)

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"<artifacts {sorted(self._records)}>"


def artifact_map(run: Run, records: Mapping[str, dict[str, Any]]) -> ArtifactMap:
    return ArtifactMap(run, records)


def add_output(
    run: Run, kind: str, name: str, obj: Any, metadata: dict[str, Any] | None
) -> Artifact:
    """Store `obj` and record it in run.json (artifacts, or models' input/output)."""
    check_name(name, "artifact" if kind == "artifact" else "model")
    blobs = blob_store(run.workspace)
    record = store_artifact(blobs, name, obj, kind=kind, metadata=metadata)

    def change(meta: dict[str, Any]) -> None:
        if kind == "artifact":
            meta.setdefault("artifacts", {})[name] = record
        else:
            models = meta.setdefault("models", {})
            models.setdefault(SIDES[kind], {})[name] = record

    run._edit(change)
    return Artifact(record, blobs, run.workspace / COPIES_DIR)
