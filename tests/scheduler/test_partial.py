"""Partial identities: runs differing only in excluded groups share a folder."""

from __future__ import annotations

import json
from pathlib import Path

import long_tasks as lt
import pytest

from etude import experiment, identifier, partial
from etude.config import partial_identifier


def test_runs_differing_only_in_a_group_share_the_partial_folder(workspace: Path):
    with experiment(workspace, "xp"):
        short = lt.Pretrain.C(lr=0.1, epochs=2)
        short.submit()
    with experiment(workspace, "xp"):
        longer = lt.Pretrain.C(lr=0.1, epochs=5)
        longer.submit()
        other = lt.Pretrain.C(lr=0.2, epochs=5)
        other.submit()
    assert identifier(short) != identifier(longer)
    assert short.checkpoints == longer.checkpoints != other.checkpoints
    assert short.checkpoints.parent.parent == workspace / "partials" / "long_tasks.pretrain"
    assert (longer.jobpath / "started-at").read_text() == "2"  # resumed from the shared state
    assert (other.jobpath / "started-at").read_text() == "0"


def test_partial_identifier_depends_on_its_name_and_kept_parameters():
    a, b = lt.Pretrain.C(lr=0.1, epochs=1), lt.Pretrain.C(lr=0.1, epochs=9)
    groups = frozenset({"training"})
    assert partial_identifier(a, "checkpoints", groups) == partial_identifier(
        b, "checkpoints", groups
    )
    assert partial_identifier(a, "checkpoints", groups) != partial_identifier(a, "other", groups)
    assert partial_identifier(a, "x", frozenset({"nothing"})) != partial_identifier(
        b, "x", frozenset({"nothing"})
    )


def test_partial_needs_group_names():
    with pytest.raises(ValueError, match="exclude_groups"):
        partial(exclude_groups=[])


@pytest.mark.parametrize(
    ("attribute", "same", "different"),
    [
        # exclude_groups with a group object: epochs and every (in "iter") are left out.
        pytest.param("by_iter", {"epochs": 9, "every": 3}, {"seed": 1}, id="exclude_groups"),
        # exclude_all + include_groups: only seed and every (in "seed") count.
        pytest.param("only_seed", {"lr": 0.5, "epochs": 9}, {"every": 3}, id="exclude_all"),
        # exclude_no_group: lr (no group) is left out; grouped parameters count.
        pytest.param("ungrouped", {"lr": 0.5}, {"epochs": 9}, id="exclude_no_group"),
    ],
)
def test_partial_selections(tmp_path: Path, attribute: str, same: dict, different: dict):
    with experiment(tmp_path, "xp", dry_run=True):
        base = lt.Sweep.C(lr=0.1)
        assert getattr(base, attribute) == getattr(lt.Sweep.C(**{"lr": 0.1, **same}), attribute)
        other = lt.Sweep.C(**{"lr": 0.1, **different})
        assert getattr(base, attribute) != getattr(other, attribute)


def test_a_partial_needs_something_to_leave_out():
    with pytest.raises(ValueError, match="say which parameters to leave out"):
        partial(include_groups=["x"])


def test_a_generated_path_in_a_partial_folder_is_shared_by_runs(workspace: Path):
    with experiment(workspace, "xp"):
        first = lt.Sweep.C(lr=0.1, epochs=2)
        first.submit()
        second = lt.Sweep.C(lr=0.1, epochs=4)
        second.submit()
    assert first.jobpath != second.jobpath
    assert first.state == second.state == first.by_iter / "state.json"
    assert json.loads(first.state.read_text()) == {"runs": 2}


@pytest.mark.parametrize("how", ["experiment", "environment", "submit"])
def test_a_dry_run_names_partial_folders_without_creating_them(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, how: str
):
    """experiment(dry_run=True), ETUDE_DRY_RUN=1 and submit(dry_run=...) write nothing, even
    when a partial folder, or a path generated in one, is read (inside the block or after)."""
    sweep = lt.Sweep.C(lr=0.1)
    if how == "submit":
        sweep.submit(dry_run=workspace)
        seen = [sweep.by_iter, sweep.state]
    else:
        if how == "environment":
            monkeypatch.setenv("ETUDE_DRY_RUN", "1")
        with experiment(workspace, "xp", dry_run=True if how == "experiment" else None):
            seen = [sweep.by_iter]  # before submit(): from the experiment's workspace
            sweep.submit()
            seen += [sweep.state, sweep.only_seed]
        seen.append(sweep.ungrouped)  # after the block: from the job's workspace
    assert seen[0].parent.parent == workspace / "partials" / "long_tasks.sweep"
    assert seen[1] == sweep.by_iter / "state.json"
    assert list(workspace.iterdir()) == []


def test_a_real_run_creates_the_partial_folder_on_first_read(workspace: Path):
    with experiment(workspace, "xp"):
        folder = lt.Sweep.C(lr=0.1).by_iter
        assert folder.is_dir()
