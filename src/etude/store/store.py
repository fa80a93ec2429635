"""`Store`: the index of one workspace — jobs, experiments and their runs — in SQLite or
PostgreSQL. Writes are batched (many rows per statement, one transaction per batch); reads
are single queries that the filter grammar narrows and sorts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..workspace import Workspace
from .database import (
    StoreError,
    chunks,
    create_engine,
    ensure_schema,
    fetch_rows,
    insert_for,
    insert_rows,
    run_write,
)
from .location import StoreLocation
from .records import JobRecord, Value
from .rows import (
    ExperimentInfo,
    ExperimentRun,
    JobRow,
    job_row,
    job_rows,
    plain_value,
    tag_values,
)
from .runs import job_run, write_runs_in
from .schema import (
    experiment_runs,
    experiments,
    job_experiments,
    job_params,
    job_tags,
    jobs,
    run_edits,
    run_metrics,
    run_params,
    run_properties,
    run_tags,
    runs,
    scanned_dirs,
    workspaces,
)

if TYPE_CHECKING:
    from .filters import KeyValueForms

#: A filter's `params.` / `tags.` condition matching at least this many rows is looked up per
#: row when a page is walked (see `Store._page_query`); counting them costs at most ~1 ms.
PAGE_PROBE = 2000

JOB_COLUMNS = (
    "id", "kind", "task", "state", "reason", "message", "submitted", "started", "ended",
    "duration", "retries", "launcher", "cluster_job_id", "experiment", "tags", "problems",
    "updated",
)


class Store:
    """The index of `workspace` at `location`. Open it with `etude.store.open_store`."""

    def __init__(self, workspace: Workspace, location: StoreLocation) -> None:
        self.workspace = workspace
        self.location = location
        self.engine = create_engine(location)
        self._workspace_pk: int | None = None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def take_over(self, other: Store) -> None:
        """Use `other`'s connection from now on (a rebuilt index at the same location)."""
        self.engine.dispose()
        self.engine, self._workspace_pk = other.engine, None

    def migrate(self) -> None:
        ensure_schema(self.engine, self.location)

    # -- the workspace row ------------------------------------------------------------------
    @property
    def workspace_pk(self) -> int:
        if self._workspace_pk is None:
            query = sa.select(workspaces.c.pk).where(workspaces.c.path == str(self.workspace.path))
            with self.engine.connect() as connection:  # a reader writes nothing
                found = connection.execute(query).scalar()
            self._workspace_pk = found or run_write(self.engine, self._workspace_row)
        return self._workspace_pk

    def _workspace_row(self, connection: sa.Connection) -> int:
        path = str(self.workspace.path)
        connection.execute(
            insert_for(connection, workspaces)
            .values(path=path, created=time.time())
            .on_conflict_do_nothing(index_elements=["path"])
        )
        pk = connection.execute(sa.select(workspaces.c.pk).where(workspaces.c.path == path))
        return int(pk.scalar_one())

    # -- writing jobs -----------------------------------------------------------------------
    def write_jobs(
        self,
        records: Sequence[JobRecord],
        experiment: str | None = None,
        link: Sequence[str] = (),
    ) -> None:
        """Insert or update `records` (by folder) in one transaction; link them, and the jobs
        of the folders `link`, to `experiment` when given. A record whose `params` is None
        keeps the stored parameters and tags."""
        if not records and not (link and experiment):
            return
        ws = self.workspace_pk

        def work(connection: sa.Connection) -> None:
            self.write_jobs_in(connection, ws, records, experiment)
            if link and experiment is not None:
                self.link_in(connection, ws, experiment, list(link))

        run_write(self.engine, work)

    def write_jobs_in(
        self,
        connection: sa.Connection,
        ws: int,
        records: Sequence[JobRecord],
        experiment: str | None = None,
    ) -> None:
        """`write_jobs` inside the caller's transaction."""
        if not records:
            return
        latest = {record.folder: record for record in records}  # the last word per job
        ordered = [latest[key] for key in sorted(latest)]  # one order: no deadlocks on PG
        pks = self._upsert_jobs(connection, ws, ordered)
        self._replace_values(connection, pks, ordered)
        self._write_job_runs(connection, ws, pks, ordered)
        if experiment is not None:
            self._link(connection, ws, experiment, list(pks.values()))

    def insert_jobs_in(
        self, connection: sa.Connection, ws: int, records: Sequence[JobRecord]
    ) -> None:
        """Insert `records`, new to this workspace's (emptied) index: plain INSERTs, many rows
        per statement, no conflict handling (`rebuild`)."""
        for chunk in chunks(job_rows(ws, records), 2000):
            insert_rows(connection, jobs, chunk)
        query = sa.select(jobs.c.folder, jobs.c.pk).where(jobs.c.workspace_pk == ws)
        pks = {folder: pk for folder, pk in connection.execute(query)}
        self._insert_values(connection, pks, records)
        self._write_job_runs(connection, ws, pks, records, fresh=True)

    def _write_job_runs(
        self, connection: sa.Connection, ws: int, pks: dict[str, int],
        records: Sequence[JobRecord], *, fresh: bool = False,
    ) -> None:
        """The run rows of these jobs (SPEC: a job is also a run). A record that does not
        carry its parameters takes them, and the tags, from the index."""
        unknown = [pks[r.folder] for r in records if r.params is None]
        stored = self._stored_values(connection, unknown) if unknown else {}
        runs = []
        for record in records:
            if record.params is None:
                params, tags = stored.get(pks[record.folder], ({}, {}))
                record = replace(record, params=params, tags=record.tags or tags)
            runs.append(job_run(self.workspace.path, record))
        write_runs_in(connection, ws, runs, pks, fresh=fresh)

    def _stored_values(
        self, connection: sa.Connection, pks: Sequence[int]
    ) -> dict[int, tuple[dict[str, Value], dict[str, Any]]]:
        found: dict[int, tuple[dict[str, Value], dict[str, Any]]] = {pk: ({}, {}) for pk in pks}
        for chunk in chunks(pks):
            query = sa.select(job_params).where(job_params.c.job_pk.in_(chunk))
            for row in connection.execute(query):
                found[row.job_pk][0][row.path] = (row.kind, row.num, row.text)
            query = sa.select(job_tags).where(job_tags.c.job_pk.in_(chunk))
            for row in connection.execute(query):
                found[row.job_pk][1][row.name] = plain_value(row._mapping)
        return found

    def _upsert_jobs(
        self, connection: sa.Connection, ws: int, records: Sequence[JobRecord]
    ) -> dict[str, int]:
        rows = job_rows(ws, records)
        stmt = insert_for(connection, jobs)
        updates = {name: stmt.excluded[name] for name in JOB_COLUMNS}
        # A record that does not know who launched the job keeps what the index knows.
        updates["experiment"] = sa.func.coalesce(stmt.excluded.experiment, jobs.c.experiment)
        updates["tags"] = sa.func.coalesce(stmt.excluded.tags, jobs.c.tags)
        stmt = stmt.on_conflict_do_update(
            index_elements=["workspace_pk", "folder"], set_=updates
        )
        for chunk in chunks(rows):
            connection.execute(stmt, list(chunk))
        return self._pks(connection, ws, [r.folder for r in records])

    def _pks(self, connection: sa.Connection, ws: int, folders: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for chunk in chunks(folders):
            query = sa.select(jobs.c.folder, jobs.c.pk).where(
                jobs.c.workspace_pk == ws, jobs.c.folder.in_(chunk)
            )
            found.update({folder: pk for folder, pk in connection.execute(query)})
        return found

    def _replace_values(
        self, connection: sa.Connection, pks: dict[str, int], records: Sequence[JobRecord]
    ) -> None:
        changed = [r for r in records if r.params is not None]  # None: keep params and tags
        ids = [pks[r.folder] for r in changed]
        for chunk in chunks(ids):
            for table in (job_params, job_tags):
                connection.execute(table.delete().where(table.c.job_pk.in_(chunk)))
        self._insert_values(connection, pks, changed)

    def _insert_values(
        self, connection: sa.Connection, pks: dict[str, int], records: Sequence[JobRecord]
    ) -> None:
        """Insert the parameters and tags of `records` (those whose `params` is known)."""
        params, tags = [], []
        for record in records:
            if record.params is None:
                continue
            pk = pks[record.folder]
            for path, (kind, num, text) in record.params.items():
                params.append({"job_pk": pk, "path": path, "kind": kind, "num": num, "text": text})
            for name, (kind, num, text) in tag_values(record.tags).items():
                tags.append({"job_pk": pk, "name": name, "kind": kind, "num": num, "text": text})
        for table, rows in ((job_params, params), (job_tags, tags)):
            for chunk in chunks(rows, 5000):
                insert_rows(connection, table, chunk)

    def _link(self, connection: sa.Connection, ws: int, name: str, pks: list[int]) -> None:
        experiment_pk = self._experiment_pk(connection, ws, name)
        stmt = insert_for(connection, job_experiments).on_conflict_do_nothing()
        rows = [{"job_pk": pk, "experiment_pk": experiment_pk} for pk in sorted(pks)]
        for chunk in chunks(rows, 2000):
            connection.execute(stmt, list(chunk))

    def _experiment_pk(self, connection: sa.Connection, ws: int, name: str) -> int:
        query = sa.select(experiments.c.pk).where(
            experiments.c.workspace_pk == ws, experiments.c.name == name
        )
        found = connection.execute(query).scalar()
        if found is not None:
            return int(found)
        connection.execute(
            insert_for(connection, experiments)
            .values(workspace_pk=ws, name=name)
            .on_conflict_do_nothing(index_elements=["workspace_pk", "name"])
        )
        return int(connection.execute(query).scalar_one())

    def states_of(self, folders: Sequence[str]) -> dict[str, str]:
        """folder -> state in the index, for those of `folders` it holds."""
        found: dict[str, str] = {}
        with self.engine.connect() as connection:
            for chunk in chunks(folders):
                query = sa.select(jobs.c.folder, jobs.c.state).where(
                    jobs.c.workspace_pk == self.workspace_pk, jobs.c.folder.in_(chunk)
                )
                found.update(fetch_rows(connection, query))
        return found

    def repeated_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of `ids` that several jobs of the workspace have (a pydantic-infra uid such
        as `default` repeats across methods; a task job's id does not)."""
        found: set[str] = set()
        with self.engine.connect() as connection:
            for chunk in chunks(sorted(set(ids))):
                query = (
                    sa.select(jobs.c.id)
                    .where(jobs.c.workspace_pk == self.workspace_pk, jobs.c.id.in_(chunk))
                    .group_by(jobs.c.id)
                    .having(sa.func.count() > 1)
                )
                found.update(connection.execute(query).scalars())
        return found

    def delete_jobs(self, folders: Sequence[str]) -> None:
        """Remove the jobs of `folders` (their folders are gone) from the index."""
        if not folders:
            return
        ws = self.workspace_pk

        def work(connection: sa.Connection) -> None:
            pks = list(self._pks(connection, ws, sorted(folders)).values())
            for chunk in chunks(pks):
                connection.execute(runs.delete().where(runs.c.job_pk.in_(chunk)))
                for table in (job_params, job_tags, job_experiments):
                    connection.execute(table.delete().where(table.c.job_pk.in_(chunk)))
                connection.execute(jobs.delete().where(jobs.c.pk.in_(chunk)))

        run_write(self.engine, work)

    # -- experiments ------------------------------------------------------------------------
    def write_experiment_run(self, name: str, **fields: Any) -> None:
        """Insert or update the run of experiment `name` that started at `fields["started"]`
        (the fields of `experiment_run_in`), in a transaction of its own."""
        ws = self.workspace_pk
        run_write(self.engine, lambda c: self.experiment_run_in(c, ws, name, **fields))

    def experiment_run_in(
        self,
        connection: sa.Connection,
        ws: int,
        name: str,
        *,
        started: float,
        ended: float | None,
        host: str | None,
        pid: int | None,
        create_time: float | None,
        jobs_count: int,
        counts: dict[str, int] | None,
        outcome: str | None = None,
    ) -> None:
        """Insert or update the run of experiment `name` that started at `started`, inside the
        caller's transaction; `counts` are the jobs per state once it ended, `outcome` how it
        ended (`completed`, `failed`, `interrupted`)."""
        values = {
            "outcome": outcome,
            "ended": ended,
            "host": host,
            "pid": pid,
            "create_time": create_time,
            "jobs": jobs_count,
            "counts": None if counts is None else json.dumps(counts),
        }

        experiment_pk = self._experiment_pk(connection, ws, name)
        stmt = insert_for(connection, experiment_runs).values(
            experiment_pk=experiment_pk, started=started, **values
        )
        connection.execute(
            stmt.on_conflict_do_update(index_elements=["experiment_pk", "started"], set_=values)
        )

    def link_in(self, connection: sa.Connection, ws: int, name: str, folders: list[str]) -> None:
        """`link_jobs` inside the caller's transaction (one INSERT ... SELECT per chunk)."""
        experiment_pk = self._experiment_pk(connection, ws, name)
        for chunk in chunks(sorted(set(folders))):
            chosen = sa.select(jobs.c.pk, sa.literal(experiment_pk)).where(
                jobs.c.workspace_pk == ws, jobs.c.folder.in_(chunk)
            )
            stmt = insert_for(connection, job_experiments).from_select(
                ["job_pk", "experiment_pk"], chosen
            )
            connection.execute(stmt.on_conflict_do_nothing())

    def experiments(self, name: str | None = None) -> list[ExperimentInfo]:
        """Experiments with their runs (oldest first) and the current states of their jobs."""
        ws = self.workspace_pk
        query = (
            sa.select(experiments.c.pk, experiments.c.name)
            .where(experiments.c.workspace_pk == ws)
            .order_by(experiments.c.name)
        )
        if name is not None:
            query = query.where(experiments.c.name == name)
        with self.engine.connect() as connection:
            found = {pk: ExperimentInfo(name) for pk, name in connection.execute(query)}
            if not found:
                return []
            runs = sa.select(experiment_runs).where(
                experiment_runs.c.experiment_pk.in_(list(found))
            ).order_by(experiment_runs.c.started)
            for row in connection.execute(runs).mappings():
                found[row["experiment_pk"]].runs.append(
                    ExperimentRun(
                        started=row["started"],
                        ended=row["ended"],
                        host=row["host"],
                        pid=row["pid"],
                        create_time=row["create_time"],
                        jobs=row["jobs"],
                        counts=json.loads(row["counts"]) if row["counts"] else None,
                        outcome=row["outcome"],
                    )
                )
            states = (
                sa.select(job_experiments.c.experiment_pk, jobs.c.state, sa.func.count())
                .join(jobs, jobs.c.pk == job_experiments.c.job_pk)
                .where(job_experiments.c.experiment_pk.in_(list(found)))
                .group_by(job_experiments.c.experiment_pk, jobs.c.state)
            )
            for experiment_pk, state, count in connection.execute(states):
                info = found[experiment_pk]
                info.states[state] = count
                info.job_count += count
        return list(found.values())

    # -- reading jobs -----------------------------------------------------------------------
    def _job_query(self, where: str | None, forms: KeyValueForms | None = None,
                   by_lists: bool = False) -> Any:
        """`by_lists`: keep the workspace's indexes out of SQLite's plan, so that the query
        starts from the short IN lists of the filter."""
        workspace = jobs.c.workspace_pk + 0 if by_lists else jobs.c.workspace_pk
        query = sa.select(jobs).where(workspace == self.workspace_pk)
        if not where or not where.strip():
            return query
        from .filters import compile_job_filter  # the parser is loaded when a filter is given

        if forms is None:
            condition = compile_job_filter(where)
        else:
            with forms.choosing():
                condition = compile_job_filter(where)
        return query if condition is None else query.where(condition)

    def _page_query(self, connection: sa.Connection, where: str | None) -> Any:
        """The query of a page (a filter and a limit). On SQLite each `params.` / `tags.`
        condition is written by how many rows it matches, counted up to PAGE_PROBE: a long
        one is looked up per row as the page is walked in the order of an index (building
        its IN list of tens of thousands of rows took 0.1 s, for 50 rows), a short one is an
        IN list; when the short lists bound the whole filter (`matches_few`) the query
        starts from them instead of walking every job (0.8 s over 100,000 jobs to find
        none). PostgreSQL plans IN lists well with its statistics: lists there."""
        from .filters import KeyValueForms, matches_few

        forms = KeyValueForms()
        query = self._job_query(where, forms)
        if not forms.lists or connection.dialect.name != "sqlite":
            return query
        long = []
        for listed in forms.lists:
            probe = sa.select(sa.func.count()).select_from(listed.limit(PAGE_PROBE).subquery())
            long.append(connection.execute(probe).scalar_one() >= PAGE_PROBE)
        assert where is not None
        return self._job_query(where, KeyValueForms(long), by_lists=matches_few(where, long))

    def query_jobs(
        self,
        where: str | None = None,
        *,
        sort: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[JobRow]:
        """Jobs matching the filter `where` (see `etude.store.filters`), sorted by `sort`
        (`-FIELD` for descending; default: task then id), from `offset`, at most `limit`.

        Raises `FilterError` for a bad filter or sort field.
        """
        order: list[sa.ColumnElement[Any]] = [jobs.c.task, jobs.c.id, jobs.c.pk]
        if sort:
            from .filters import sort_expressions

            order = sort_expressions(sort)
        with self.engine.connect() as connection:
            paged = limit is not None and where and where.strip()
            query = self._page_query(connection, where) if paged else self._job_query(where)
            query = query.order_by(*order).offset(offset or None).limit(limit)
            rows = _refusing_bad_patterns(connection, query, where)
            return [job_row(row) for row in rows.mappings()]

    def count_jobs(self, where: str | None = None) -> dict[str, int]:
        """How many jobs match `where`, per state."""
        inner = self._job_query(where).with_only_columns(jobs.c.state).subquery()
        query = sa.select(inner.c.state, sa.func.count()).group_by(inner.c.state)
        with self.engine.connect() as connection:
            rows = _refusing_bad_patterns(connection, query, where).all()
            return {state: count for state, count in rows}

    def job_params(self, pk: int) -> dict[str, Any]:
        """The flattened parameters of one job, as plain values."""
        query = sa.select(job_params).where(job_params.c.job_pk == pk).order_by(job_params.c.path)
        with self.engine.connect() as connection:
            return {row["path"]: plain_value(row) for row in connection.execute(query).mappings()}

    def params_of(self, pks: Sequence[int], paths: Sequence[str]) -> dict[int, dict[str, Any]]:
        """pk -> {path: value} of the parameters `paths` of the jobs `pks` (one query per 500
        jobs)."""
        found: dict[int, dict[str, Any]] = {}
        with self.engine.connect() as connection:
            for chunk in chunks(list(pks)):
                query = sa.select(job_params).where(
                    job_params.c.job_pk.in_(chunk), job_params.c.path.in_(list(paths))
                )
                for row in connection.execute(query).mappings():
                    found.setdefault(row["job_pk"], {})[row["path"]] = plain_value(row)
        return found

    def live_jobs(self) -> list[tuple[str, str, str | None]]:
        """(folder, state, message) of the jobs the index holds as not ended."""
        live = ("running", "waiting", "unscheduled")  # IN, not NOT IN: uses ix_jobs_state
        query = sa.select(jobs.c.folder, jobs.c.state, jobs.c.message).where(
            jobs.c.workspace_pk == self.workspace_pk, jobs.c.state.in_(live)
        )
        with self.engine.connect() as connection:
            return fetch_rows(connection, query)  # the driver's (folder, state, message)

    def all_folders_in_state(self, state: str) -> list[tuple[str, str]]:
        """(folder, state) of the jobs in `state`."""
        query = sa.select(jobs.c.folder, jobs.c.state).where(
            jobs.c.workspace_pk == self.workspace_pk, jobs.c.state == state
        )
        with self.engine.connect() as connection:
            return fetch_rows(connection, query)  # the driver's (folder, state)

    def folders_under(self, containers: Sequence[str]) -> dict[str, str]:
        """folder -> state of the jobs directly inside the folders `containers`."""
        wanted = set(containers)
        found: dict[str, str] = {}
        for chunk in chunks(sorted(wanted), 50):
            query = sa.select(jobs.c.folder, jobs.c.state).where(
                jobs.c.workspace_pk == self.workspace_pk,
                sa.or_(*(jobs.c.folder.startswith(f"{c}/", autoescape=True) for c in chunk)),
            )
            with self.engine.connect() as connection:
                for folder, state in connection.execute(query):
                    if folder.rsplit("/", 1)[0] in wanted:
                        found[folder] = state
        return found

    def scanned(self) -> dict[str, float]:
        """Modification times of the folders holding job folders, as last listed (the runs
        folder's, kept in the same table, is left out: `runs.refresh_runs` reads it)."""
        query = sa.select(scanned_dirs.c.path, scanned_dirs.c.mtime).where(
            scanned_dirs.c.workspace_pk == self.workspace_pk, scanned_dirs.c.path != "runs"
        )
        with self.engine.connect() as connection:
            return {path: mtime for path, mtime in connection.execute(query)}

    def set_scanned(self, mtimes: dict[str, float], *, replace: bool = False) -> None:
        ws = self.workspace_pk

        def work(connection: sa.Connection) -> None:
            if replace:
                connection.execute(scanned_dirs.delete().where(scanned_dirs.c.workspace_pk == ws))
            rows = [{"workspace_pk": ws, "path": p, "mtime": m} for p, m in sorted(mtimes.items())]
            if rows:  # an upsert: two readers refreshing at once on PostgreSQL both write
                insert = insert_for(connection, scanned_dirs)
                connection.execute(insert.on_conflict_do_update(
                    index_elements=["workspace_pk", "path"],
                    set_={"mtime": insert.excluded.mtime}), rows)

        run_write(self.engine, work)

    def clear(self) -> None:
        """Forget every job and experiment of this workspace (before a rebuild)."""
        ws = self.workspace_pk
        run_write(self.engine, lambda connection: self.clear_in(connection, ws))

    def clear_in(self, connection: sa.Connection, ws: int) -> None:
        """`clear` inside the caller's transaction."""
        run_pks = sa.select(runs.c.pk).where(runs.c.workspace_pk == ws).scalar_subquery()
        for table in (run_params, run_tags, run_properties, run_metrics):
            connection.execute(table.delete().where(table.c.run_pk.in_(run_pks)))
        connection.execute(runs.delete().where(runs.c.workspace_pk == ws))
        connection.execute(run_edits.delete().where(run_edits.c.workspace_pk == ws))
        job_pks = sa.select(jobs.c.pk).where(jobs.c.workspace_pk == ws).scalar_subquery()
        for table in (job_params, job_tags, job_experiments):
            connection.execute(table.delete().where(table.c.job_pk.in_(job_pks)))
        connection.execute(jobs.delete().where(jobs.c.workspace_pk == ws))
        xp_pks = sa.select(experiments.c.pk).where(experiments.c.workspace_pk == ws)
        connection.execute(
            experiment_runs.delete().where(
                experiment_runs.c.experiment_pk.in_(xp_pks.scalar_subquery())
            )
        )
        connection.execute(experiments.delete().where(experiments.c.workspace_pk == ws))
        connection.execute(scanned_dirs.delete().where(scanned_dirs.c.workspace_pk == ws))


def _refusing_bad_patterns(connection: sa.Connection, query: Any, where: str | None) -> Any:
    """Run `query`; a pattern PostgreSQL refuses (its regular expressions are not Python's)
    becomes a `FilterError`."""
    try:
        return connection.execute(query)
    except sa.exc.DataError as exc:
        from .filters import FilterError

        raise FilterError(
            f"the database refused a regular expression ({str(exc.orig).strip()})",
            1,
            "PostgreSQL's patterns lack some of Python's forms, such as (?P<name>...)",
            where or "",
        ) from exc


__all__ = ["Store", "StoreError"]
