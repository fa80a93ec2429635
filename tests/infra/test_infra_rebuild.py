"""`etude.infra.rebuild` in this process: the edits a clone of an infra job's run applies, and
the options an agent cannot run. The agent's side (real processes) is in
tests/tracking/test_agent_infra.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest

from etude.infra import InfraConfigError, TaskInfra
from etude.infra.rebuild import Source, check_cluster, edited_owner


class Layer(pydantic.BaseModel):
    width: int = 8
    sizes: list[int] = [1, 2]


class Net(pydantic.BaseModel):
    lr: float = 0.1
    layer: Layer = Layer()
    names: dict[str, int] = {"a": 1}
    infra: TaskInfra = TaskInfra(version="1")

    @infra.apply
    def train(self) -> float:
        return self.lr * self.layer.width


def source(tmp_path: Path, **infra: Any) -> Source:
    owner = Net(lr=0.5, infra={"folder": tmp_path, "cluster": "local", **infra})
    return Source(owner, "infra", None, tmp_path)


def test_edits_set_nested_values_and_the_uid_follows(tmp_path: Path) -> None:
    found = source(tmp_path)
    new, changes = edited_owner(found, {"lr": 0.5, "layer.width": 16, "layer.sizes": "[3]"},
                                prefix="Config/")
    assert (new.lr, new.layer.width, new.layer.sizes) == (0.5, 16, [3])  # type: ignore[attr-defined]
    assert changes == ["Config/layer.width: 8 -> 16", "Config/layer.sizes: [1, 2] -> [3]"]
    assert new.infra.uid() != found.owner.infra.uid()  # type: ignore[attr-defined]
    assert new.infra.folder == tmp_path and new.infra.cluster == "local"  # type: ignore[attr-defined]


def test_unchanged_values_give_the_sources_uid(tmp_path: Path) -> None:
    found = source(tmp_path)
    # as a cloned run holds them: every Config/ parameter, lists as JSON text
    shown = {"lr": 0.5, "layer.width": 8, "layer.sizes": "[1, 2]", "names.a": 1,
             "infra.version": "1"}
    new, changes = edited_owner(found, shown)
    assert changes == []
    assert new.infra.uid() == found.owner.infra.uid()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("edits", "expected"), [
    pytest.param({"lr": "fast"}, "parameter Config/lr: Input should be a valid number",
                 id="wrong-type"),
    pytest.param({"layer.width": "wide"}, "parameter Config/layer.width: Input should be a "
                 "valid integer", id="wrong-type-nested"),
    pytest.param({"layer.depth": 3}, "parameter Config/layer.depth: 'layer.depth' is not a "
                 "field of Layer (fields: width, sizes)", id="no-such-field"),
    pytest.param({"lr.x": 3}, "parameter Config/lr.x: 'lr' is a float, not a nested model or "
                 "dict", id="inside-a-scalar"),
    pytest.param({"names.b": 3}, "parameter Config/names.b: 'names.b' is not a key of the "
                 "dict (keys: a)", id="no-such-key"),
    pytest.param({"infra.version": "1 2"}, "parameter Config/infra.version: Value error, "
                 "version '1 2' must be made of letters", id="bad-infra-option"),
])
def test_a_bad_edit_names_the_parameter(tmp_path: Path, edits: dict[str, Any],
                                         expected: str) -> None:
    with pytest.raises(InfraConfigError) as raised:
        edited_owner(source(tmp_path), edits, prefix="Config/")
    assert expected in str(raised.value)


def test_a_workdir_job_is_cloned_from_its_frozen_copy(tmp_path: Path) -> None:
    found = source(tmp_path, workdir={"copied": ["."]})
    new, _ = edited_owner(found, {"lr": 1.0})
    assert new.infra.workdir is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(("infra", "expected"), [
    pytest.param({"cluster": None}, "Set Config/infra.cluster to 'local' or 'slurm'",
                 id="in-process"),
    pytest.param({"folder": None}, "Set Config/infra.folder to a cache folder", id="no-folder"),
])
def test_an_agent_refuses_what_it_cannot_run(tmp_path: Path, infra: dict[str, Any],
                                             expected: str) -> None:
    new, _ = edited_owner(source(tmp_path), {f"infra.{k}": v for k, v in infra.items()})
    with pytest.raises(InfraConfigError) as raised:
        check_cluster(new, "infra", "Config/")
    assert expected in str(raised.value)


def test_a_debug_job_runs_as_a_local_job(tmp_path: Path) -> None:
    new, _ = edited_owner(source(tmp_path, cluster="debug"), {})
    assert check_cluster(new, "infra") == [
        "Net.infra: cluster 'debug' runs as 'local' for an agent (no one is at the breakpoints)"]
    assert new.infra.cluster == "local"  # type: ignore[attr-defined]
