"""The log of last runs per (project, name) and machine (`tracking/pointers.py`), which
`Run.init`'s reuse and continue read: appends from many processes at once, compactions
among them, and the per-name files of workspaces made before the log. (No index involved.)"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from etude.tracking import Run, pointers
from etude.workspace.run_folder import runs_root

from .conftest import QUIET

APPENDER = textwrap.dedent("""\
    import sys
    from pathlib import Path
    from etude.tracking import pointers
    pointers.COMPACT_BYTES = 256  # compactions among the appenders (every ~200 lines at the end)
    workspace, writer = Path(sys.argv[1]), sys.argv[2]
    for round in range(3):
        for index in range(100):
            run_id = f"{int(writer):02x}{round:02x}{index:04x}".ljust(32, "0")
            pointers.record_last_run(workspace, "p", f"{writer}-{index}", run_id)
""")


def test_appends_from_four_processes_survive_the_compactions_among_them(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    script = tmp_path / "append.py"
    script.write_text(APPENDER)
    children = [subprocess.Popen([sys.executable, str(script), str(ws), str(writer)])
                for writer in range(4)]
    assert [child.wait(120) for child in children] == [0, 0, 0, 0]
    for writer in range(4):
        for index in range(100):
            expected = f"{writer:02x}{2:02x}{index:04x}".ljust(32, "0")
            assert pointers.last_run_id(ws, "p", f"{writer}-{index}") == expected
    log = pointers.log_path(ws)
    assert log.stat().st_size < 600 * 54  # compacted: not 1,200 lines of 54 bytes
    assert [p.name for p in log.parent.iterdir()] == [log.name]  # no temporary file left


def test_the_last_line_of_a_key_wins_and_a_partial_line_is_not_read(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert pointers.last_run_id(ws, "p", "n") is None
    pointers.record_last_run(ws, "p", "n", "a" * 32)
    pointers.record_last_run(ws, "p", "other", "b" * 32)
    pointers.record_last_run(ws, "p", "n", "c" * 32)
    assert pointers.last_run_id(ws, "p", "n") == "c" * 32
    assert pointers.last_run_id(ws, "p", "other") == "b" * 32
    with open(pointers.log_path(ws), "ab") as log:  # a writer cut in the middle of its line
        log.write(pointers._key("p", "n").encode() + b" dddd")
    assert pointers.last_run_id(ws, "p", "n") == "c" * 32
    assert pointers.last_run_id(ws, "p", "n/") is None


def test_reuse_follows_the_log_and_a_pointer_file_of_an_older_workspace(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    with Run.init(project="p", name="debug", workspace=ws, **QUIET) as first:
        pass
    with Run.init(project="p", name="debug", workspace=ws, **QUIET) as again:
        pass
    assert again.id == first.id  # reused: found through the log
    with Run.init(project="p", name="old", workspace=ws, reuse_last=False, **QUIET) as old:
        pass
    log = pointers.log_path(ws)
    log.write_bytes(b"".join(line + b"\n" for line in log.read_bytes().splitlines()
                             if not line.startswith(pointers._key("p", "old").encode())))
    pointers._old_pointer(ws, "p", "old").write_text(old.id)  # as workspaces kept it before
    with Run.init(project="p", name="old", workspace=ws, **QUIET) as reused:
        pass
    assert reused.id == old.id
    assert os.listdir(runs_root(ws) / pointers.LAST_DIR) != []
