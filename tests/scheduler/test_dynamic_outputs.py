"""Dynamic outputs: a running resumable task announces checkpoints; the experiment reacts."""

from __future__ import annotations

import json
from pathlib import Path

import long_tasks as lt
import pytest

from etude import ExperimentFailed, experiment, identifier


def run(workspace: Path, log: Path) -> tuple[list, lt.Learn]:
    seen: list = []
    with experiment(workspace, "xp"):
        model = lt.Net.C()
        validation = lt.Validation.C(model=model)
        learn = lt.Learn.C(model=model, validation=validation)

        def on_checkpoint(checkpoint: lt.Checkpoint) -> None:
            seen.append(checkpoint)
            lt.EvaluateCheckpoint.C(checkpoint=checkpoint, log=log).submit()

        learn.watch_output(validation.checkpoint, on_checkpoint)
        learn.submit()
    return seen, learn


def test_callbacks_get_each_output_and_may_submit_tasks(workspace: Path, tmp_path: Path):
    log = tmp_path / "log"
    seen, learn = run(workspace, log)
    assert sorted(c.step for c in seen) == [0, 1, 2]
    assert sorted(log.read_text().splitlines()) == ["evaluate 0", "evaluate 1", "evaluate 2"]
    events = (learn.jobpath / ".etude" / "task-outputs.jsonl").read_text().splitlines()
    assert [json.loads(e)["kwargs"] for e in events] == [{"step": s} for s in range(3)]
    # Each checkpoint depends on the learning task: its identity includes the task's.
    other = lt.Checkpoint.C(model=lt.Net.C(), step=0)
    assert identifier(seen[0]) != identifier(other)


def test_outputs_are_replayed_when_the_experiment_runs_again(workspace: Path, tmp_path: Path):
    log = tmp_path / "log"
    run(workspace, log)
    seen, _ = run(workspace, log)
    assert sorted(c.step for c in seen) == [0, 1, 2]  # replayed from the job folder
    assert len(log.read_text().splitlines()) == 3  # evaluations reused, not run again


def test_register_task_output_in_a_plain_task_is_an_error(workspace: Path):
    with pytest.raises(ExperimentFailed, match="needs a ResumableTask"):
        with experiment(workspace, "xp"):
            model = lt.Net.C()
            lt.PlainLearn.C(model=model, validation=lt.Validation.C(model=model)).submit()


def test_watching_a_method_of_an_unrelated_config_is_refused(workspace: Path):
    with pytest.raises(Exception, match="does not use"):
        with experiment(workspace, "xp"):
            model = lt.Net.C()
            learn = lt.Learn.C(model=model, validation=lt.Validation.C(model=model))
            learn.watch_output(lt.Validation.C(model=lt.Net.C(width=3)).checkpoint, print)
            learn.submit()


def test_watch_output_after_submit_replays_a_done_job(workspace: Path, tmp_path: Path):
    run(workspace, tmp_path / "log")
    seen: list = []
    with experiment(workspace, "xp"):
        model = lt.Net.C()
        validation = lt.Validation.C(model=model)
        learn = lt.Learn.C(model=model, validation=validation)
        learn.submit()  # already done: reused at once
        learn.watch_output(validation.checkpoint, seen.append)
    assert sorted(c.step for c in seen) == [0, 1, 2]


@pytest.mark.timeout(120)
def test_a_dynamic_output_is_usable_while_its_producer_still_runs(
    workspace: Path, tmp_path: Path
):
    """An evaluation submitted from `watch_output` starts once the checkpoint is announced;
    the producer here waits for that evaluation, so waiting for the producer's end would fail."""
    evaluated = tmp_path / "evaluated"
    with experiment(workspace, "xp") as xp:
        model = lt.Net.C()
        validation = lt.Validation.C(model=model)
        learn = lt.LearnUntilEvaluated.C(model=model, validation=validation, evaluated=evaluated)

        def on_loader(loader: lt.LoadCheckpoint) -> None:
            lt.EvaluateLoaded.C(model=model, evaluated=evaluated).submit(init_tasks=[loader])

        learn.watch_output(validation.loader, on_loader)
        learn.submit()
    assert evaluated.read_text() == "evaluated step 0"
    assert (learn.jobpath / "saw-evaluation").exists()
    producer, evaluation = xp.jobs
    assert evaluation.dependencies == []
    # the evaluation ran while its producer still ran (which end is seen first is a race)
    assert evaluation.started_at is not None and producer.ended_at is not None
    assert evaluation.started_at < producer.ended_at


def test_a_task_also_using_an_ordinary_output_still_waits_for_the_producer(workspace: Path):
    """Only announced outputs skip the wait: the producer passed as a parameter is an ordinary
    dependency, even beside one of its announced outputs."""
    with experiment(workspace, "xp", dry_run=True) as xp:
        model = lt.Net.C()
        validation = lt.Validation.C(model=model)
        learned = lt.Learn.C(model=model, validation=validation).submit()
        announce = learned._etude.job.output_marker  # what watch_output's methods are given
        checkpoint = validation.checkpoint(announce, step=0)
        lt.EvaluateCheckpoint.C(checkpoint=checkpoint, log=workspace / "log").submit()
        lt.CompareToLearned.C(learned=learned, checkpoint=checkpoint).submit()
    learn_job, evaluation, comparison = xp.jobs
    assert evaluation.dependencies == []
    assert comparison.dependencies == [learn_job]
