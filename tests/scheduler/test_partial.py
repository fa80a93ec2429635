"""Partial identities: runs differing only in excluded groups share a folder."""

from __future__ import annotations

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
