"""Rows as the index hands them out (`JobRow`, `ExperimentInfo`), and the conversions between
`JobRecord`s, table rows and plain values."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..workspace import Workspace
from .records import JobRecord, typed_value


@dataclass
class JobRow:
    """A job as read back from the index."""

    pk: int
    folder: str
    id: str
    kind: str
    task: str
    state: str
    reason: str | None
    message: str | None
    submitted: float | None
    started: float | None
    ended: float | None
    duration: float | None
    retries: int
    launcher: str | None
    cluster_job_id: str | None
    experiment: str | None
    tags: dict[str, Any]
    problems: list[str]

    def to_json(self, workspace: Workspace) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "pk"}
        data["path"] = str(workspace.path / self.folder)
        return data


OUTCOMES = ("completed", "failed", "interrupted")  # how an experiment's run ended


@dataclass
class ExperimentRun:
    started: float
    ended: float | None
    host: str | None
    pid: int | None
    create_time: float | None
    jobs: int
    counts: dict[str, int] | None
    outcome: str | None = None  # completed, failed or interrupted (None: not ended, or older)


@dataclass
class ExperimentInfo:
    name: str
    runs: list[ExperimentRun] = field(default_factory=list)
    job_count: int = 0
    states: dict[str, int] = field(default_factory=dict)  # states of its jobs now

    @property
    def last(self) -> ExperimentRun | None:
        return self.runs[-1] if self.runs else None


def job_rows(ws: int, records: Sequence[JobRecord]) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {
            "workspace_pk": ws,
            "folder": r.folder,
            "id": r.id,
            "kind": r.kind,
            "task": r.task,
            "state": r.state,
            "reason": r.reason,
            "message": r.message,
            "submitted": r.submitted,
            "started": r.started,
            "ended": r.ended,
            "duration": r.duration,
            "retries": r.retries,
            "launcher": r.launcher,
            "cluster_job_id": r.cluster_job_id,
            "experiment": r.experiment,
            # None keeps the stored tags (a state change); "{}" says there are none
            "tags": None if r.params is None else json.dumps(r.tags, default=str),
            "problems": json.dumps(r.problems) if r.problems else None,
            "updated": now,
        }
        for r in records
    ]


def tag_values(tags: dict[str, Any]) -> dict[str, Any]:
    return {str(name): typed_value(value) for name, value in tags.items()}


def plain_value(row: Any) -> Any:
    kind, num, text = row["kind"], row["num"], row["text"]
    if kind == "bool":
        return bool(num)
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "null":
        return None
    if kind in ("list", "json"):
        return json.loads(text)
    return text


def _json(text: str | None, empty: Any) -> Any:
    try:
        return json.loads(text) if text else empty
    except ValueError:
        return empty


def job_row(row: Any) -> JobRow:
    return JobRow(
        pk=row["pk"],
        folder=row["folder"],
        id=row["id"],
        kind=row["kind"],
        task=row["task"],
        state=row["state"],
        reason=row["reason"],
        message=row["message"],
        submitted=row["submitted"],
        started=row["started"],
        ended=row["ended"],
        duration=row["duration"],
        retries=row["retries"],
        launcher=row["launcher"],
        cluster_job_id=row["cluster_job_id"],
        experiment=row["experiment"],
        tags=_json(row["tags"], {}),
        problems=_json(row["problems"], []),
    )
