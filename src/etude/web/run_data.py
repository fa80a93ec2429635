"""The runs as the API hands them out: table rows with chosen columns, one run's sections,
its console by byte offsets, and its artifacts as bytes.

Blocking code (database, files), called from worker threads.
"""

from __future__ import annotations

import io
import logging
import time
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .run_actions import allowed
from .source import Forbidden, NotFound, Source

if TYPE_CHECKING:
    from ..store.run_query import RunFilter, RunRow
    from ..tracking import Run

logger = logging.getLogger("etude.web")

MAX_PAGE = 1000
CONSOLE_TAIL = 64 * 1024
CONSOLE_CHUNK = 1 << 20
OVERVIEW = ("id", "kind", "project", "name", "type", "state", "reason", "message", "comment",
            "parent", "tags", "host", "created", "started", "ended", "modified", "archived",
            "outputs")


# -- the runs table -----------------------------------------------------------------------------
def split_column(column: str) -> tuple[str, list[str]]:
    """("params", ["lr"]) for `params.lr`; parts quoted with backticks may hold dots:
    metrics.`val.loss`.train -> ("metrics", ["val.loss", "train"])."""
    parts, current, quoted = [], "", False
    for char in column:
        if char == "`":
            quoted = not quoted
        elif char == "." and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts[0], parts[1:]


def column_value(column: str, params: dict[str, Any], metrics: dict[str, Any],
                 properties: dict[str, Any], row: RunRow) -> Any:
    """The value of a table column for one run: params.KEY (any section, or Section/KEY),
    metrics.NAME / TITLE.SERIES[.AGG], user.KEY, or a field of the row (duration too)."""
    kind, rest = split_column(column)
    if kind == "params" and rest:
        key = ".".join(rest)
        if key in params:
            return params[key]
        return next((v for k, v in params.items() if k.split("/", 1)[-1] == key), None)
    if kind == "metrics" and rest:
        title, series = (rest[0], rest[0]) if len(rest) == 1 else (rest[0], rest[1])
        aggregate = rest[2] if len(rest) > 2 else "last"
        return metrics.get(title, {}).get(series, {}).get(aggregate)
    if kind == "user" and rest:
        return properties.get(".".join(rest))
    if column == "duration":
        return None if row.started is None or row.ended is None else row.ended - row.started
    if column in OVERVIEW:
        return getattr(row, column)
    return None


def row_json(row: RunRow) -> dict[str, Any]:
    data = {name: getattr(row, name) for name in OVERVIEW}
    data["duration"] = column_value("duration", {}, {}, {}, row)
    data["folder"] = row.folder
    return data


def runs_page(source: Source, spec: RunFilter, sort: str | None, limit: int, offset: int,
              columns: Sequence[str]) -> dict[str, Any]:
    """One page of the runs table: {"total", "counts" (per state), "rows", "took_ms"}."""
    from ..store.run_query import count_runs, query_runs, run_values

    begun = time.perf_counter()
    limit = max(1, min(int(limit), MAX_PAGE))
    ws = source.workspace_pk

    def counted() -> dict[str, int]:
        return source.read(lambda connection: count_runs(connection, ws, spec))

    def work(connection: Any) -> dict[str, Any]:
        rows = query_runs(connection, ws, spec, sort or None, limit, max(0, offset))
        params, metrics = run_values(connection, [row.pk for row in rows])
        wanted_user = any(c.startswith("user.") for c in columns)
        properties = user_properties(connection, [r.pk for r in rows]) if wanted_user else {}
        out = []
        for row in rows:
            data = row_json(row)
            data["values"] = {c: column_value(c, params[row.pk], metrics[row.pk],
                                              properties.get(row.pk, {}), row)
                              for c in columns}
            out.append(data)
        return {"rows": out}

    # The count (a scan of every match) runs beside the page, on its own connection: the
    # database works while this thread waits, so the reply takes the longer of the two.
    source.fresh()
    with ThreadPoolExecutor(1) as pool:
        counting = pool.submit(counted)
        result = source.read(work)
        counts = counting.result()
    result = {"total": sum(counts.values()), "counts": counts, **result}
    result["took_ms"] = round((time.perf_counter() - begun) * 1000, 1)
    return result


def user_properties(connection: Any, pks: Sequence[int]) -> dict[int, dict[str, Any]]:
    import sqlalchemy as sa

    from ..store.database import chunks
    from ..store.rows import plain_value
    from ..store.schema import run_properties

    found: dict[int, dict[str, Any]] = {}
    for chunk in chunks(list(pks)):
        query = sa.select(run_properties).where(run_properties.c.run_pk.in_(chunk))
        for row in connection.execute(query).mappings():
            found.setdefault(row["run_pk"], {})[row["key"]] = plain_value(row)
    return found


def known_fields(source: Source, recent: int = 2000) -> dict[str, Any]:
    """Names for completion and the column chooser, from the `recent` newest runs: parameter
    keys, metric series, user property keys and tag names."""
    import sqlalchemy as sa

    from ..store.run_query import RUN_FIELDS
    from ..store.schema import run_metrics, run_params, run_properties, run_tags, runs

    ws = source.workspace_pk
    newest = (sa.select(runs.c.pk).where(runs.c.workspace_pk == ws)
              .order_by(runs.c.pk.desc()).limit(recent).scalar_subquery())

    def distinct(connection: Any, *columns: Any) -> list[Any]:
        table = columns[0].table
        query = sa.select(*columns).where(table.c.run_pk.in_(newest)).distinct()
        return sorted(tuple(row) for row in connection.execute(query))

    def work(connection: Any) -> dict[str, Any]:
        return {
            "fields": [name for name in RUN_FIELDS if name not in ("params", "metrics", "user")],
            "params": [key for (key,) in distinct(connection, run_params.c.key)],
            "metrics": [[t, s] for t, s in distinct(connection, run_metrics.c.title,
                                                    run_metrics.c.series)],
            "user": [key for (key,) in distinct(connection, run_properties.c.key)],
            "tags": [name for (name,) in distinct(connection, run_tags.c.name)],
        }

    return source.read(work)


def projects(source: Source) -> list[dict[str, Any]]:
    """[{"project", "count"}] of the workspace's runs (archived left out), by name."""
    import sqlalchemy as sa

    from ..store.schema import runs

    ws = source.workspace_pk
    query = (sa.select(runs.c.project, sa.func.count()).where(
        runs.c.workspace_pk == ws, runs.c.archived == sa.false())
        .group_by(runs.c.project).order_by(runs.c.project))
    return source.read(lambda c: [{"project": p, "count": int(n)} for p, n in c.execute(query)])


# -- one run --------------------------------------------------------------------------------------
def sections(parts: dict[str, Callable[[], Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Each part computed on its own: a damaged file fails its section only, reported in
    the second dict ({section: message}) instead of failing the page."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, compute in parts.items():
        try:
            values[name] = compute()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("%s: %s", name, exc)
            errors[name] = f"{type(exc).__name__}: {exc}"
            values[name] = None
    return values, errors


def run_overview(source: Source, run: Run) -> dict[str, Any]:
    row = run._row
    data = row_json(row)
    data["job"] = job_link(source, run)
    data["started"] = row.started
    data["actions"] = allowed(row.state, row.kind)
    return data


def job_link(source: Source, run: Run) -> dict[str, Any] | None:
    job = run.job
    if job is None:
        return None
    folder = Path(job["folder"])
    try:
        relative = str(folder.relative_to(source.root))
    except ValueError:
        return None
    return {"folder": relative, "name": job.get("name")}


def outputs(run: Run) -> dict[str, Any]:
    """Artifact and model records as recorded at upload time (previews included; nothing
    is loaded)."""
    meta = run._read_meta()

    def records(items: dict[str, Any]) -> list[dict[str, Any]]:
        return [{key: record.get(key) for key in ("name", "kind", "type", "size", "sha256",
                                                  "preview", "metadata", "created", "filename")}
                for record in items.values() if isinstance(record, dict)]

    models = meta.get("models", {})
    return {"artifacts": records(meta.get("artifacts", {})),
            "input_models": records(models.get("input", {})),
            "output_models": records(models.get("output", {}))}


def run_detail(source: Source, run: Run) -> dict[str, Any]:
    values, errors = sections({
        "run": lambda: {**run_overview(source, run),
                        "executed_job": run._read_meta().get("executed_job")},
        "status": lambda: {"reason": run.reason, "message": run.message,
                           "traceback": run.traceback, "started": run.started,
                           "ended": run.ended},
        "params": lambda: run.params,
        "configuration": lambda: run.configuration,
        "user_properties": lambda: run.user_properties,
        "metrics": lambda: run.metrics,
        "outputs": lambda: outputs(run),
    })
    values["errors"] = errors
    return values


# -- console -------------------------------------------------------------------------------------
def console_files(run: Run) -> list[Path]:
    """The console's files: console.log, or for a job that reported nothing its .out/.err."""
    own = run._folder.console
    job = run.job
    if job is None or own.exists():
        return [own]
    folder = Path(job["folder"])
    name = job.get("name") or "job"
    return [folder / f"{name}.out", folder / f"{name}.err"]


def console_chunk(source: Source, run: Run, part: int, offset: int | None) -> dict[str, Any]:
    """Text of console file `part` from byte `offset` (None: its last CONSOLE_TAIL bytes), at
    most CONSOLE_CHUNK bytes, cut before an incomplete UTF-8 character; `next` is the offset
    to ask for next (the live tail asks again from there)."""
    files = console_files(run)
    if not 0 <= part < len(files):
        raise NotFound(f"console part {part}: the run has {len(files)}")
    path = files[part]
    try:
        source.inside(path)
        with open(path, "rb") as stream:
            size = stream.seek(0, 2)
            begin = max(0, size - CONSOLE_TAIL) if offset is None else min(max(0, offset), size)
            stream.seek(begin)
            data = stream.read(CONSOLE_CHUNK)
    except FileNotFoundError:
        return {"parts": [f.name for f in files], "text": "", "offset": 0, "next": 0, "size": 0}
    data = data[:complete_utf8(data)]
    return {"parts": [f.name for f in files], "text": data.decode("utf-8", "replace"),
            "offset": begin, "next": begin + len(data), "size": size}


def complete_utf8(data: bytes) -> int:
    """The length of `data` without a UTF-8 character cut at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return len(data)
        if byte >= 0xC0:  # a lead byte: is its character whole?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) if back >= need else len(data) - back
    return len(data)


# -- files and artifacts -----------------------------------------------------------------------
SAFE_INLINE = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".gif": "image/gif", ".json": "application/json", ".txt": "text/plain"}


def run_file(source: Source, run: Run, relative: str) -> Path:
    """A file the run reported (under its `files/`), checked to lie inside the workspace."""
    if not relative.startswith("files/"):
        raise Forbidden("only the run's reported files (files/...) are served")
    return source.child(run._folder.path, relative)


def output_record(run: Run, side: str, name: str) -> dict[str, Any]:
    meta = run._read_meta()
    if side == "artifact":
        items = meta.get("artifacts", {})
    elif side in ("input", "output"):
        items = meta.get("models", {}).get(side, {})
    else:
        raise NotFound(f"unknown side {side!r}: artifact, input or output")
    record = items.get(name)
    if not isinstance(record, dict):
        raise NotFound(f"run {run.id} has no {side} {name!r} (it has: "
                       f"{', '.join(sorted(items)) or 'none'})")
    return record


SUFFIXES = {"json": ".json", "dataframe": ".pkl", "pickle": ".pkl", "ndarray": ".npy",
            "image": ".png", "text": ".txt", "bytes": ".bin", "folder": ".zip"}


def artifact_download(source: Source, run: Run, record: dict[str, Any]
                      ) -> tuple[Path | bytes, str]:
    """(the blob file, or a zip's bytes for a folder; the file name to offer) of a record.
    The bytes are sent as they are: nothing is unpickled or loaded."""
    from ..tracking.outputs import blob_store

    blobs = blob_store(source.root)
    name = str(record.get("filename") or record.get("name") or "artifact")
    kind = record.get("type")
    if kind != "folder":
        path = source.inside(blobs.path(str(record.get("sha256"))))
        if kind != "file" and not Path(name).suffix:
            name += SUFFIXES.get(str(kind), "")
        return path, name
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry in record.get("files", []):
            inner = str(entry.get("path", ""))
            if inner.startswith("/") or ".." in inner.split("/"):
                raise Forbidden(f"artifact {name!r}: bad path {inner!r} in its manifest")
            archive.write(source.inside(blobs.path(str(entry.get("sha256")))), inner)
    return buffer.getvalue(), f"{name}.zip"


# -- links ----------------------------------------------------------------------------------------
MAX_PRODUCER_SCAN = 20_000
_SHA256 = frozenset("0123456789abcdef")


def artifact_producer(source: Source, sha256: str) -> dict[str, Any]:
    """The run that first uploaded the bytes `sha256` (as an artifact or an output model):
    {"run", "name", "side"}. Artifacts are stored once by content, so a clone's input model
    or a re-uploaded file leads to the run that made it. Reads the run.json of the runs that
    have outputs, oldest first (at most MAX_PRODUCER_SCAN); raises NotFound."""
    import sqlalchemy as sa

    from ..store.run_query import ROW_COLUMNS, RunRow
    from ..store.schema import runs
    from ..tracking import Run
    from ..tracking.query import run_from_row

    if len(sha256) != 64 or not set(sha256) <= _SHA256:
        raise NotFound(f"{sha256!r} is not a SHA-256 (64 hexadecimal digits)")
    ws = source.workspace_pk
    query = (sa.select(*[runs.c[name] for name in ROW_COLUMNS])
             .where(runs.c.workspace_pk == ws, runs.c.outputs > 0)
             .order_by(runs.c.created, runs.c.pk).limit(MAX_PRODUCER_SCAN))
    rows = source.read(lambda connection: [RunRow(row) for row in connection.execute(query)])
    for row in rows:
        try:
            meta = run_from_row(Run, source.root, row)._read_meta()
        except (OSError, ValueError) as error:
            logger.warning("run %s: outputs not read: %s", row.id, error)
            continue
        sides = (("artifact", meta.get("artifacts", {})),
                 ("output", meta.get("models", {}).get("output", {})))
        for side, records in sides:
            for name, record in records.items():
                if isinstance(record, dict) and record.get("sha256") == sha256:
                    return {"run": row.id, "name": name, "side": side}
    raise NotFound(f"no run of {source.root} uploaded an artifact or model {sha256[:12]}…")
