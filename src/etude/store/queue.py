"""Queues and agents in the index: the claimable entries of queued runs, and the agents.

A run folder's `status.json` is the truth about a run (state `queued`, its queue, when). The
`queue_entries` table exists so that claiming is atomic across processes and machines: an
agent claims the oldest unclaimed entry of its queues inside one write transaction
(`BEGIN IMMEDIATE` on SQLite, `FOR UPDATE SKIP LOCKED` on PostgreSQL), so two agents never
take the same run. `sync_entries` re-derives the unclaimed entries from the runs the index
holds as queued, so a crash between writing the folder and the table heals at the next look.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .database import insert_for, run_write
from .schema import agents, queue_entries, runs


@dataclass(frozen=True)
class QueueEntry:
    run_id: str
    queue: str
    enqueued: float
    agent: str | None
    claimed: float | None


@dataclass(frozen=True)
class AgentInfo:
    id: str
    host: str
    pid: int
    queues: list[str]
    launcher: str
    started: float
    heartbeat: float
    running: list[str]
    stopped: float | None


# -- entries ------------------------------------------------------------------------------
def add_entry(store: Any, run_id: str, queue: str, enqueued: float) -> None:
    """Put `run_id` on `queue` (an unclaimed entry replaces an earlier one of the run)."""
    ws = store.workspace_pk

    def work(connection: sa.Connection) -> None:
        connection.execute(
            insert_for(connection, queue_entries)
            .values(workspace_pk=ws, run_id=run_id, queue=queue, enqueued=enqueued)
            .on_conflict_do_update(
                index_elements=["workspace_pk", "run_id"],
                set_={"queue": queue, "enqueued": enqueued, "agent": None, "claimed": None},
            )
        )

    run_write(store.engine, work)


def remove_entry(store: Any, run_id: str, *, claimed_too: bool = False) -> str | None:
    """Take `run_id` off its queue. Returns the agent that claimed it when the entry is
    claimed and `claimed_too` is False (the entry then stays); None otherwise."""
    ws = store.workspace_pk

    def work(connection: sa.Connection) -> str | None:
        where = (queue_entries.c.workspace_pk == ws) & (queue_entries.c.run_id == run_id)
        agent = connection.execute(sa.select(queue_entries.c.agent).where(where)).scalar()
        if agent is not None and not claimed_too:
            return str(agent)
        connection.execute(queue_entries.delete().where(where))
        return None

    return run_write(store.engine, work)


def claim(store: Any, queues: list[str], agent_id: str) -> QueueEntry | None:
    """The oldest unclaimed entry of the first queue (in the order given) that has one, now
    claimed by `agent_id`; None when every queue is empty."""
    ws = store.workspace_pk

    def work(connection: sa.Connection) -> QueueEntry | None:
        for queue in queues:
            query = (
                sa.select(queue_entries.c.pk, queue_entries.c.run_id, queue_entries.c.enqueued)
                .where(queue_entries.c.workspace_pk == ws, queue_entries.c.queue == queue,
                       queue_entries.c.agent.is_(None))
                .order_by(queue_entries.c.enqueued, queue_entries.c.pk)
                .limit(1)
            )
            if connection.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            row = connection.execute(query).first()
            if row is None:
                continue
            now = time.time()
            connection.execute(
                queue_entries.update()
                .where(queue_entries.c.pk == row.pk)
                .values(agent=agent_id, claimed=now)
            )
            return QueueEntry(row.run_id, queue, row.enqueued, agent_id, now)
        return None

    return run_write(store.engine, work)


def release(store: Any, run_ids: list[str]) -> None:
    """Make claimed entries claimable again (their agent died before starting them)."""
    if not run_ids:
        return
    ws = store.workspace_pk
    run_write(store.engine, lambda connection: connection.execute(
        queue_entries.update()
        .where(queue_entries.c.workspace_pk == ws, queue_entries.c.run_id.in_(run_ids))
        .values(agent=None, claimed=None)
    ))


def entries(store: Any, queue: str | None = None) -> list[QueueEntry]:
    """Every entry (claimed or not), oldest first."""
    query = sa.select(queue_entries).where(queue_entries.c.workspace_pk == store.workspace_pk)
    if queue is not None:
        query = query.where(queue_entries.c.queue == queue)
    with store.engine.connect() as connection:
        rows = connection.execute(
            query.order_by(queue_entries.c.enqueued, queue_entries.c.pk)).all()
    return [QueueEntry(r.run_id, r.queue, r.enqueued, r.agent, r.claimed) for r in rows]


def sync_entries(store: Any, queued: dict[str, tuple[str, float]]) -> None:
    """Make the unclaimed entries match `queued` (run id -> (queue, enqueued time)): the
    runs the folders hold as queued. Claimed entries are left to their agents."""
    ws = store.workspace_pk

    def work(connection: sa.Connection) -> None:
        rows = connection.execute(
            sa.select(queue_entries.c.run_id, queue_entries.c.queue, queue_entries.c.agent)
            .where(queue_entries.c.workspace_pk == ws)).all()
        have = {row.run_id: row for row in rows}
        stale = [row.run_id for row in rows if row.agent is None and (
            row.run_id not in queued or queued[row.run_id][0] != row.queue)]
        if stale:
            connection.execute(queue_entries.delete().where(
                queue_entries.c.workspace_pk == ws, queue_entries.c.run_id.in_(stale)))
        missing = [{"workspace_pk": ws, "run_id": run_id, "queue": queue, "enqueued": when}
                   for run_id, (queue, when) in queued.items()
                   if run_id not in have or run_id in stale]
        if missing:
            connection.execute(insert_for(connection, queue_entries)
                               .on_conflict_do_nothing(), missing)

    run_write(store.engine, work)


def queued_runs(store: Any) -> list[str]:
    """Ids of the runs the index holds as queued."""
    with store.engine.connect() as connection:
        return list(connection.execute(sa.select(runs.c.id).where(
            runs.c.workspace_pk == store.workspace_pk, runs.c.state == "queued")).scalars())


# -- agents -------------------------------------------------------------------------------
def register_agent(store: Any, info: AgentInfo) -> None:
    ws = store.workspace_pk
    values = _agent_values(info)

    def work(connection: sa.Connection) -> None:
        connection.execute(
            insert_for(connection, agents)
            .values(workspace_pk=ws, **values)
            .on_conflict_do_update(index_elements=["workspace_pk", "id"], set_=values)
        )

    run_write(store.engine, work)


def agent_heartbeat(store: Any, agent_id: str, running: list[str],
                    stopped: float | None = None) -> None:
    ws = store.workspace_pk
    run_write(store.engine, lambda connection: connection.execute(
        agents.update()
        .where(agents.c.workspace_pk == ws, agents.c.id == agent_id)
        .values(heartbeat=time.time(), running=json.dumps(running), stopped=stopped)
    ))


def list_agents(store: Any, *, include_stopped: bool = False) -> list[AgentInfo]:
    query = sa.select(agents).where(agents.c.workspace_pk == store.workspace_pk)
    if not include_stopped:
        query = query.where(agents.c.stopped.is_(None))
    with store.engine.connect() as connection:
        rows = connection.execute(query.order_by(agents.c.started)).all()
    return [AgentInfo(row.id, row.host, row.pid, json.loads(row.queues), row.launcher,
                      row.started, row.heartbeat, json.loads(row.running), row.stopped)
            for row in rows]


def forget_agent(store: Any, agent_id: str) -> list[QueueEntry]:
    """Mark a dead agent stopped; return the entries it had claimed (its runs)."""
    ws = store.workspace_pk

    def work(connection: sa.Connection) -> list[QueueEntry]:
        connection.execute(agents.update().where(agents.c.workspace_pk == ws,
                                                 agents.c.id == agent_id)
                           .values(stopped=time.time(), running="[]"))
        rows = connection.execute(sa.select(queue_entries).where(
            queue_entries.c.workspace_pk == ws, queue_entries.c.agent == agent_id)).all()
        return [QueueEntry(r.run_id, r.queue, r.enqueued, r.agent, r.claimed) for r in rows]

    return run_write(store.engine, work)


def _agent_values(info: AgentInfo) -> dict[str, Any]:
    return {"id": info.id, "host": info.host, "pid": info.pid,
            "queues": json.dumps(info.queues), "launcher": info.launcher,
            "started": info.started, "heartbeat": info.heartbeat,
            "running": json.dumps(info.running), "stopped": info.stopped}
