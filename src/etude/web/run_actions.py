"""Changing a run's state from the UI: clone, enqueue, dequeue, abort, reset, publish, one
run or several, through the public tracking API (`etude.tracking.Run`), whose state table
(`tracking/lifecycle.py`) decides what is allowed.

A change a run's state does not allow raises RunStateError with the tracking layer's own
message (the app answers 409 with it). Blocking code (files, signals, waits), called from
worker threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .source import Source

if TYPE_CHECKING:
    from ..tracking import Run

#: What the UI offers, in the order of its buttons.
ACTIONS = ("clone", "enqueue", "dequeue", "abort", "reset", "publish")
#: What the run of a job cannot do itself (its state follows its job).
NOT_FOR_JOB_RUNS = ("enqueue", "dequeue", "abort", "reset")
#: Seconds an abort waits for the run to record it.
ABORT_WAIT = 10.0


def allowed(state: str, kind: str | None) -> list[str]:
    """The actions of ACTIONS that a run in `state` allows (a job's run, of kind "job",
    fewer)."""
    from ..tracking.lifecycle import ACTIONS as STATE_TABLE

    offered = STATE_TABLE.get(state, ())
    return [action for action in ACTIONS if action in offered
            and not (kind == "job" and action in NOT_FOR_JOB_RUNS)]


def act(source: Source, reference: str, action: str, queue: str = "default") -> dict[str, Any]:
    """Do `action` on the run `reference`: {"id", "state", "actions"}, with "clone" (the new
    draft's id) for a clone. Raises ValueError for an unknown action or a bad queue name,
    RunStateError for a change the run's state does not allow."""
    from ..tracking import Run

    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    run = source.run(reference)
    result: dict[str, Any] = {"id": run.id}
    try:
        if action == "clone":
            result["clone"] = Run.clone(run).id
        elif action == "enqueue":
            run.enqueue(queue)
        elif action == "abort":
            run.abort(wait=ABORT_WAIT)
        else:
            getattr(run, action)()
    finally:
        source.invalidate()
    return {**result, **state_of(source, run.id)}


def state_of(source: Source, reference: str) -> dict[str, Any]:
    """{"state", "actions"} of a run as its files say now."""
    run: Run = source.run(reference)
    state = run.reload().state
    return {"state": state, "actions": allowed(state, "job" if run.job else "script")}


def act_on_many(source: Source, references: list[str], action: str,
                queue: str = "default") -> dict[str, Any]:
    """`action` (enqueue or abort) on each run; {"changed": [...], "errors": [{"id",
    "error"}]}: a run whose state refuses is reported, the others are still changed."""
    from ..tracking import RunStateError

    if action not in ("enqueue", "abort"):
        raise ValueError(f"bulk action {action!r}: use enqueue or abort")
    if action == "enqueue":
        from ..tracking.lifecycle import check_queue

        check_queue(queue)  # a bad name is refused before any run changes
    changed, errors = [], []
    for reference in references[:1000]:
        try:
            changed.append(act(source, reference, action, queue))
        except RunStateError as error:
            errors.append({"id": reference, "error": str(error)})
    return {"changed": changed, "errors": errors}
