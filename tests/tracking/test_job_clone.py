"""`etude.tracking.job_clone` in this process: the edits a clone of a task job's run applies.
The agent's side (real processes) is in test_agent.py."""

from __future__ import annotations

import pytest

from etude import Param, Task
from etude.tracking.job_clone import apply_edits

# Every test here runs on SQLite and on PostgreSQL (the index the runs are ingested into).
pytestmark = pytest.mark.usefixtures("store_env")


class Learn(Task):
    sizes: Param[list[int]]
    lr: Param[float] = 0.1

    def execute(self) -> None:
        pass


def test_a_list_parameter_shown_as_json_text_is_unchanged_or_edited() -> None:
    task = Learn.C(sizes=[1, 2])
    assert apply_edits(task, {"sizes": "[1, 2]", "lr": 0.1}) == []
    assert apply_edits(task, {"sizes": "[3]"}) == ["sizes: [1, 2] -> [3]"]
    assert task.sizes == [3]


def test_a_path_that_leads_nowhere_names_the_parameter() -> None:
    with pytest.raises(ValueError, match="parameter Config/depth: 'depth' is not in"):
        apply_edits(Learn.C(sizes=[1]), {"depth": 3})
