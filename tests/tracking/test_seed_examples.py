"""Seed 004's examples with etude's names (`Task` -> `Run`): creation with every switch,
sub-projects, closing then starting another run, access by id and by project and name, and
the query filters. Cloning, queues and remote execution come with the agent issue."""

from __future__ import annotations

import os
from pathlib import Path

from etude.tracking import Run


def test_init_with_every_switch(ws: Path) -> None:
    run = Run.init(project="example", name="task template", type="training", tags=None,
                   workspace=ws, reuse_last=True, continue_last=False,
                   auto_connect_arg_parser=True, auto_connect_frameworks=True,
                   auto_resource_monitoring=True, auto_connect_streams=True)
    assert Run.current() is run
    os.write(1, b"captured line\n")  # pytest replaces sys.stdout; the fd is captured
    run.close()
    assert "captured line" in run.console()
    assert run.environment["python"]
    assert run.state == "completed"


def test_close_then_init_another_in_the_same_process(ws: Path) -> None:
    first = Run.init(project="main_project/sub_project", name="test", workspace=ws,
                     auto_connect_streams=False, auto_resource_monitoring=False)
    first.close()
    second = Run.init(project="main_project/sub_project/sub_sub_project", name="test",
                      workspace=ws, auto_connect_streams=False, auto_resource_monitoring=False)
    second.close()
    found = Run.query(project="main_project", workspace=ws)
    assert {run.project for run in found} == {"main_project/sub_project",
                                              "main_project/sub_project/sub_sub_project"}


def test_access_by_id_and_by_project_and_name(ws: Path, store_env: dict[str, str]) -> None:
    run = Run.init(project="examples", name="artifacts", workspace=ws,
                   auto_connect_streams=False, auto_resource_monitoring=False)
    run.close()
    assert Run.get(run.id, workspace=ws).name == "artifacts"
    assert Run.get(project="examples", name="artifacts", workspace=ws).id == run.id


def test_query_like_the_seed_task_filter(ws: Path, store_env: dict[str, str]) -> None:
    quiet = {"auto_connect_streams": False, "auto_resource_monitoring": False,
             "reuse_last": False, "workspace": ws}
    for name, tags, kind in [("reg_exp_text one", ["included_tag"], "training"),
                             ("two", ["included_tag", "excluded_tag"], "training"),
                             ("three", ["included_tag"], "testing")]:
        Run.init(project="p", name=name, tags=tags, type=kind, **quiet).close()  # type: ignore[arg-type]
    archived = Run.init(project="p", name="reg_exp_text archived", tags=["included_tag"],
                        **quiet)  # type: ignore[arg-type]
    archived.close()
    Run.get(archived.id, workspace=ws).archive()
    found = Run.query(project="p", tags=["included_tag", "-excluded_tag"],
                      state=["completed", "published"], type=["training"],
                      search="reg_exp_text", workspace=ws)
    assert [run.name for run in found] == ["reg_exp_text one"]
