"""Rebuilding a run's code state from what capture recorded, and its Python environment:
real repositories, real `git`, real scripts run in the rebuilt folder, real virtualenvs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from etude.tracking import Run
from etude.tracking.capture import capture
from etude.tracking.codestate import (
    CodeStateError,
    PreparedCode,
    prepare_code,
    remove_work_folder,
)
from etude.tracking.codestate_env import (
    READY_MARKER,
    PackageDifference,
    ensure_virtualenv,
    package_differences,
)
from etude.tracking.errors import TrackingError

# The entry script of the tests: it shows where it runs, its arguments and a file it reads.
TRAIN = """\
import json, os, sys
from helper import VALUE
print(json.dumps({"cwd": os.getcwd(), "argv": sys.argv[1:], "value": VALUE,
                  "data": open("data.txt").read()}))
"""


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Git without the user's or the system's configuration, with a fixed identity."""
    config = tmp_path / "gitconfig"
    config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Etude Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.org")


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"git {' '.join(args)} failed: {done.stderr}"
    return done.stdout.strip()


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def make_repo(path: Path, files: dict[str, str | bytes]) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    write(path, files)
    commit_all(path, "first")
    return path


def tree(root: Path) -> dict[str, tuple[bytes, bool]]:
    """Every file under `root` except .git (a folder, or a file in a worktree): content (a
    link's target) and executable bit."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            if name == ".git":
                continue
            path = Path(folder, name)
            key = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[key] = (os.fsencode(os.readlink(path)), False)
            else:
                found[key] = (path.read_bytes(), os.access(path, os.X_OK))
    return found


def captured(script: Path, cwd: Path, argv: list[str]) -> dict[str, Any]:
    """What a run started as `python script *argv` from `cwd` records, through JSON."""
    environment = capture(
        script=str(script), argv=[str(script), *argv], cwd=str(cwd), packages=False
    )
    return json.loads(json.dumps(environment))


def run_prepared(prepared: PreparedCode) -> dict[str, Any]:
    """Run the rebuilt script as the agent would; its JSON report."""
    done = subprocess.run(
        prepared.command(sys.executable),
        cwd=prepared.cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def worktrees(repo: Path) -> list[str]:
    lines = git(repo, "worktree", "list", "--porcelain").splitlines()
    return [line.removeprefix("worktree ") for line in lines if line.startswith("worktree ")]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A repository with two commits, then uncommitted, staged, deleted and untracked files,
    and an ignored one (which a rebuild must not have)."""
    repo = make_repo(
        tmp_path / "project",
        {
            ".gitignore": "*.log\n",
            "src/train.py": "print('old')\n",
            "src/helper.py": "VALUE = 1\n",
            "src/data.txt": "committed data\n",
            "gone.txt": "bye\n",
        },
    )
    write(repo, {"src/train.py": TRAIN})
    commit_all(repo, "second")
    write(
        repo,
        {
            "src/helper.py": "VALUE = 2\n",
            "src/data.txt": "edited data\n",
            "notes/new.md": "untracked\n",
            "model.bin": bytes(range(256)),
            "debug.log": "ignored\n",
        },
    )
    git(repo, "add", "src/data.txt")
    (repo / "gone.txt").unlink()
    (repo / "run.sh").write_text("#!/bin/sh\n")
    (repo / "run.sh").chmod(0o755)
    return repo


# ---------------------------------------------------------------------------------------------
# git: a worktree of the recorded repository


def test_worktree_rebuilds_the_captured_state_and_the_script_runs(
    project: Path, tmp_path: Path
) -> None:
    environment = captured(project / "src/train.py", project / "src", ["--lr", "0.1"])
    expected = tree(project)
    del expected["debug.log"]
    # the user goes on working: new commit, new edits; the rebuild must not see them
    write(project, {"src/helper.py": "VALUE = 3\n", "later.txt": "later\n"})
    commit_all(project, "third")

    prepared = prepare_code(environment, tmp_path / "rebuilt")

    assert prepared.folder == tmp_path / "rebuilt"
    assert prepared.repository == project
    assert prepared.source == f"worktree of {project}"
    assert tree(prepared.folder) == expected
    assert git(prepared.folder, "rev-parse", "HEAD") == environment["code"]["commit"]
    assert prepared.script == prepared.folder / "src/train.py"
    assert prepared.cwd == prepared.folder / "src"
    assert prepared.argv == ["--lr", "0.1"]
    assert run_prepared(prepared) == {
        "cwd": str(prepared.folder / "src"),
        "argv": ["--lr", "0.1"],
        "value": 2,
        "data": "edited data\n",
    }
    prepared.cleanup()


def test_environment_json_of_a_real_run_rebuilds(project: Path, tmp_path: Path) -> None:
    """A script calling `Run.init` records environment.json; its code runs again rebuilt."""
    write(
        project,
        {
            "src/tracked.py": textwrap.dedent(
                f"""\
                import sys
                from etude.tracking import Run
                run = Run.init(project="p", name="n", workspace={str(tmp_path / "ws")!r},
                               auto_connect_frameworks=False, auto_resource_monitoring=False,
                               auto_connect_streams=False, auto_connect_arg_parser=False)
                print("args", sys.argv[1:])
                run.close()
                """
            )
        },
    )
    done = subprocess.run(
        [sys.executable, "tracked.py", "--epochs", "3"],
        cwd=project / "src",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    environment = Run.get(project="p", name="n", workspace=tmp_path / "ws").environment
    assert environment["code"]["untracked"]  # tracked.py itself is an untracked file
    (project / "src/tracked.py").unlink()

    prepared = prepare_code(environment, tmp_path / "rebuilt")
    again = subprocess.run(
        prepared.command(sys.executable), cwd=prepared.cwd, capture_output=True, text=True
    )
    prepared.cleanup()
    assert again.returncode == 0, again.stderr
    assert "args ['--epochs', '3']" in again.stdout


def test_cleanup_removes_the_worktree(project: Path, tmp_path: Path) -> None:
    environment = captured(project / "src/train.py", project, [])
    prepared = prepare_code(environment, tmp_path / "rebuilt")
    assert str(prepared.folder) in worktrees(project)

    prepared.cleanup()
    prepared.cleanup()  # twice is harmless

    assert not prepared.folder.exists()
    assert worktrees(project) == [str(project)]


def test_cleanup_after_the_folder_was_deleted_prunes_the_worktree(
    project: Path, tmp_path: Path
) -> None:
    prepared = prepare_code(captured(project / "src/train.py", project, []), tmp_path / "x")
    shutil.rmtree(prepared.folder)
    prepared.cleanup()
    assert worktrees(project) == [str(project)]


def test_working_directory_at_the_root_and_outside_the_repository(
    project: Path, tmp_path: Path
) -> None:
    at_root = prepare_code(captured(project / "src/train.py", project, []), tmp_path / "a")
    outside = tmp_path / "data-folder"
    outside.mkdir()
    away = prepare_code(captured(project / "src/train.py", outside, []), tmp_path / "b")
    assert at_root.cwd == at_root.folder
    assert away.cwd == outside  # outside the repository: the same folder, when it exists
    at_root.cleanup()
    away.cleanup()


# ---------------------------------------------------------------------------------------------
# git: a clone when the recorded repository is gone


@pytest.fixture
def pushed(tmp_path: Path) -> tuple[Path, Path]:
    """(bare origin, work clone): the work clone's commit is pushed, its edits are not."""
    seed = make_repo(tmp_path / "seed", {"train.py": TRAIN, "helper.py": "VALUE = 1\n"})
    write(seed, {"data.txt": "pushed data\n"})
    commit_all(seed, "data")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(origin))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(origin), str(work))
    write(work, {"helper.py": "VALUE = 5\n"})
    return origin, work


def test_clone_of_the_remote_when_the_repository_is_gone(
    pushed: tuple[Path, Path], tmp_path: Path
) -> None:
    origin, work = pushed
    environment = captured(work / "train.py", work, ["x"])
    assert environment["code"]["remote"] == str(origin)
    expected = tree(work)
    shutil.rmtree(work)

    prepared = prepare_code(environment, tmp_path / "rebuilt")

    assert prepared.source == f"clone of {origin}"
    assert prepared.repository is None
    assert tree(prepared.folder) == expected
    assert run_prepared(prepared)["value"] == 5
    prepared.cleanup()
    assert not prepared.folder.exists()


def test_unpushed_commit_is_a_clear_error(pushed: tuple[Path, Path], tmp_path: Path) -> None:
    origin, work = pushed
    write(work, {"helper.py": "VALUE = 6\n"})
    commit = commit_all(work, "not pushed")
    environment = captured(work / "train.py", work, [])
    shutil.rmtree(work)

    with pytest.raises(CodeStateError) as error:
        prepare_code(environment, tmp_path / "rebuilt")

    message = str(error.value)
    assert f"commit {commit}" in message
    assert str(origin) in message
    assert "pushed" in message
    assert not (tmp_path / "rebuilt").exists()
    assert isinstance(error.value, TrackingError)


def test_commit_missing_everywhere_is_a_clear_error(project: Path, tmp_path: Path) -> None:
    environment = captured(project / "src/train.py", project, [])
    environment["code"]["commit"] = "0123abcd" * 5
    with pytest.raises(CodeStateError, match=f"commit {'0123abcd' * 5}.*{project}"):
        prepare_code(environment, tmp_path / "rebuilt")
    assert not (tmp_path / "rebuilt").exists()
    assert worktrees(project) == [str(project)]


def test_unreachable_repository_is_a_clear_error(tmp_path: Path) -> None:
    environment = {
        "argv": ["train.py"],
        "code": {
            "kind": "git",
            "root": str(tmp_path / "gone"),
            "remote": "file:///nowhere.git",
            "branch": "main",
            "commit": "ab" * 20,
            "script": "train.py",
            "working_dir": ".",
            "diff": "",
        },
    }
    with pytest.raises(CodeStateError, match=r"remote file:///nowhere\.git") as error:
        prepare_code(environment, tmp_path / "rebuilt")
    assert f"{tmp_path / 'gone'}: no such folder on this machine" in str(error.value)
    assert "git clone" in str(error.value)
    assert "does not appear to be a git repository" in str(error.value)  # git's own words


# ---------------------------------------------------------------------------------------------
# git: the patch


def test_patch_that_does_not_apply_is_a_clear_error(project: Path, tmp_path: Path) -> None:
    """The recorded changes made on the second commit do not apply on the first."""
    write(project, {"src/train.py": TRAIN + "print('edited')\n"})
    environment = captured(project / "src/train.py", project, [])
    first = git(project, "rev-parse", "HEAD~1")
    environment["code"]["commit"] = first

    with pytest.raises(CodeStateError) as error:
        prepare_code(environment, tmp_path / "rebuilt")

    message = str(error.value)
    assert f"do not apply on commit {first}" in message
    assert "patch does not apply" in message  # git's stderr
    assert not (tmp_path / "rebuilt").exists()
    assert worktrees(project) == [str(project)]


def test_untracked_script_over_the_size_limit_is_named(project: Path, tmp_path: Path) -> None:
    write(project, {"src/big_train.py": "# " + "x" * 200 + "\n"})
    environment = capture(
        script=str(project / "src/big_train.py"),
        argv=["big_train.py"],
        cwd=str(project),
        packages=False,
        untracked_limit=100,
    )
    with pytest.raises(CodeStateError, match=r"src/big_train\.py.*untracked file that was not"):
        prepare_code(environment, tmp_path / "rebuilt")
    assert worktrees(project) == [str(project)]


def test_repository_without_a_commit_rebuilds_from_its_patch(tmp_path: Path) -> None:
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo, {"train.py": TRAIN, "helper.py": "VALUE = 7\n", "data.txt": "d\n"})
    environment = captured(repo / "train.py", repo, [])
    assert environment["code"]["commit"] is None

    prepared = prepare_code(environment, tmp_path / "rebuilt")

    assert tree(prepared.folder) == tree(repo)
    assert run_prepared(prepared)["value"] == 7
    prepared.cleanup()


# ---------------------------------------------------------------------------------------------
# git: a record made by hand (`Run.create`): a repository, a branch, no commit


@pytest.mark.parametrize("as_url", [False, True], ids=["local-path", "file-url"])
def test_created_record_checks_out_the_branch(
    pushed: tuple[Path, Path], tmp_path: Path, as_url: bool
) -> None:
    origin, _ = pushed
    repo = origin.as_uri() if as_url else str(origin)
    environment = {
        "argv": ["train.py", "--seed", "1"],
        "code": {
            "kind": "git",
            "repo": repo,
            "branch": "main",
            "commit": None,
            "script": "train.py",
            "working_dir": ".",
            "diff": "",
        },
    }
    prepared = prepare_code(environment, tmp_path / "rebuilt")
    assert prepared.source == f"clone of {repo}"
    report = run_prepared(prepared)
    assert report["argv"] == ["--seed", "1"]
    assert report["data"] == "pushed data\n"
    prepared.cleanup()


def test_created_record_of_a_local_checkout_is_a_worktree_at_the_branch_tip(
    pushed: tuple[Path, Path], tmp_path: Path
) -> None:
    _, work = pushed
    git(work, "checkout", "-q", "-b", "feature")
    write(work, {"data.txt": "feature data\n"})
    commit_all(work, "feature")
    git(work, "checkout", "-q", "main")
    environment = {
        "argv": ["train.py"],
        "code": {
            "kind": "git",
            "repo": str(work),
            "branch": "feature",
            "commit": None,
            "script": "train.py",
            "working_dir": ".",
        },
    }
    prepared = prepare_code(environment, tmp_path / "rebuilt")
    assert prepared.repository == work
    assert run_prepared(prepared)["data"] == "feature data\n"
    assert (work / "data.txt").read_text() == "pushed data\n"  # the user's checkout untouched
    prepared.cleanup()
    assert worktrees(work) == [str(work)]


def test_created_record_of_a_missing_branch_is_a_clear_error(
    pushed: tuple[Path, Path], tmp_path: Path
) -> None:
    origin, _ = pushed
    environment = {
        "argv": ["train.py"],
        "code": {
            "kind": "git",
            "repo": str(origin),
            "branch": "nope",
            "commit": None,
            "script": "train.py",
            "working_dir": ".",
        },
    }
    with pytest.raises(CodeStateError, match=f"branch nope.*{origin}"):
        prepare_code(environment, tmp_path / "rebuilt")


# ---------------------------------------------------------------------------------------------
# without git


def test_script_outside_git_is_written_from_its_recorded_text(tmp_path: Path) -> None:
    folder = tmp_path / "loose"
    write(folder, {"alone.py": "import os, sys\nprint(os.getcwd(), sys.argv[1:])\n"})
    environment = captured(folder / "alone.py", folder, ["a", "b c"])
    assert environment["code"]["kind"] == "script"
    (folder / "alone.py").unlink()

    prepared = prepare_code(environment, tmp_path / "rebuilt")

    assert prepared.script == tmp_path / "rebuilt/alone.py"
    assert prepared.script.read_text() == "import os, sys\nprint(os.getcwd(), sys.argv[1:])\n"
    assert prepared.cwd == folder  # the recorded working directory still exists
    done = subprocess.run(
        prepared.command(sys.executable), cwd=prepared.cwd, capture_output=True, text=True
    )
    assert done.stdout == f"{folder} ['a', 'b c']\n"
    prepared.cleanup()
    assert not prepared.folder.exists()


def test_gone_working_directory_falls_back_to_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "loose"
    write(folder, {"alone.py": "pass\n"})
    environment = captured(folder / "alone.py", folder, [])
    shutil.rmtree(folder)
    prepared = prepare_code(environment, tmp_path / "rebuilt")
    assert prepared.cwd == prepared.folder
    assert any(str(folder) in note for note in prepared.notes)


@pytest.mark.parametrize(
    ("code", "match"),
    [
        pytest.param(None, "no code state was recorded", id="no-code"),
        pytest.param(
            {"kind": "script", "script": None, "working_dir": "/", "text": None},
            "no entry script was recorded",
            id="interactive",
        ),
        pytest.param(
            {"kind": "script", "script": "/x/big.py", "working_dir": "/", "text": None},
            "text of script /x/big.py was not recorded",
            id="no-text",
        ),
        pytest.param(
            {"kind": "git", "root": "/r", "commit": "ab" * 20, "script": None},
            "no entry script inside the repository",
            id="git-interactive",
        ),
        pytest.param(
            {"kind": "git", "root": "/r", "commit": "--upload-pack=x", "script": "a.py"},
            "is not a commit id",
            id="commit-like-an-option",
        ),
        pytest.param({"kind": "svn"}, "unknown code state kind 'svn'", id="unknown-kind"),
    ],
)
def test_unusable_records_are_clear_errors(
    tmp_path: Path, code: dict[str, Any] | None, match: str
) -> None:
    with pytest.raises(CodeStateError, match=match):
        prepare_code({"argv": ["a.py"], "code": code}, tmp_path / "rebuilt")
    assert not (tmp_path / "rebuilt").exists()


def test_destination_must_be_new_or_empty(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy/keep.txt").write_text("mine\n")
    code = {"kind": "script", "script": "/x/a.py", "working_dir": "/", "text": "pass\n"}
    with pytest.raises(CodeStateError, match="busy already exists"):
        prepare_code({"argv": [], "code": code}, tmp_path / "busy")
    assert (tmp_path / "busy/keep.txt").read_text() == "mine\n"


# ---------------------------------------------------------------------------------------------
# package_differences


def test_package_differences_lists_changed_and_missing_pins() -> None:
    pytest_version = metadata.version("pytest")
    recorded = f"""\
# captured by etude
pytest=={pytest_version}
PyYAML=={metadata.version("pyyaml")}
pluggy==0.0.1
no-such-distribution-etude-test==1.0
-r other.txt
./local/folder
"""
    differences = package_differences(recorded)
    assert differences == [
        PackageDifference("no-such-distribution-etude-test", "1.0", None),
        PackageDifference("pluggy", "0.0.1", metadata.version("pluggy")),
    ]
    assert (
        str(differences[0]) == "no-such-distribution-etude-test: recorded 1.0, here not installed"
    )


@pytest.mark.parametrize(
    ("line", "installed", "differs"),
    [
        pytest.param("Foo_Bar.baz==1.0", {"foo-bar-baz": "1.0"}, False, id="names-normalised"),
        pytest.param("foo==1.0", {"foo": "1.0.0"}, False, id="trailing-zeros"),
        pytest.param("foo==2.1.0+cu121", {"foo": "2.1.0+cu121"}, False, id="local-label"),
        pytest.param("foo==2.1.0+cu121", {"foo": "2.1.0"}, True, id="local-label-differs"),
        pytest.param("foo==1.10", {"foo": "1.1"}, True, id="not-a-decimal"),
        pytest.param("foo[gpu]==1 ; python_version>'3'", {"foo": "1"}, False, id="extras-marker"),
        pytest.param("foo>=1", {"foo": "0.5"}, False, id="unpinned-present"),
        pytest.param("foo>=1", {}, True, id="unpinned-missing"),
    ],
)
def test_package_difference_rules(line: str, installed: dict[str, str], differs: bool) -> None:
    assert bool(package_differences([line], installed=installed)) is differs


# ---------------------------------------------------------------------------------------------
# ensure_virtualenv (offline: a wheel built here, pip told not to look at any index)


def build_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel of `name` whose module holds VERSION."""
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: etude-test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def venv_python_says(python: Path, code: str) -> str:
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_virtualenv_holds_the_requirements_and_the_agents_etude(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "wheels", "demo-pkg", "1.5")
    requirements = f"demo-pkg @ {wheel.as_uri()}\netude==0.1.0\n"

    python = ensure_virtualenv(requirements, tmp_path / "venvs", pip_args=["--no-index"])

    assert python.parent.parent.parent == tmp_path / "venvs"
    assert (python.parent.parent / READY_MARKER).is_file()
    assert venv_python_says(python, "import demo_pkg; print(demo_pkg.VERSION)") == "1.5"
    assert venv_python_says(python, "import sys; print(sys.prefix)") == str(python.parent.parent)
    import etude

    here = venv_python_says(python, "import etude; print(etude.__file__)")
    assert here == etude.__file__  # the agent's etude, which no index holds

    # reuse: the wheel is gone, so a reinstall would fail; the same venv comes back
    wheel.unlink()
    marker = (python.parent.parent / READY_MARKER).stat().st_mtime_ns
    again = ensure_virtualenv(requirements, tmp_path / "venvs", pip_args=["--no-index"])
    assert again == python
    assert (python.parent.parent / READY_MARKER).stat().st_mtime_ns == marker


def test_virtualenv_packages_come_before_the_agents(tmp_path: Path) -> None:
    """A recorded version installed in the venv wins over the agent's copy of the same name."""
    wheel = build_wheel(tmp_path / "wheels", "pluggy", "0.0.1")
    python = ensure_virtualenv(
        [f"pluggy @ {wheel.as_uri()}"], tmp_path / "venvs", pip_args=["--no-index"]
    )
    assert venv_python_says(python, "import pluggy; print(pluggy.VERSION)") == "0.0.1"


def test_failed_install_leaves_no_ready_virtualenv(tmp_path: Path) -> None:
    cache = tmp_path / "venvs"
    with pytest.raises(CodeStateError) as error:
        ensure_virtualenv(["no-such-dist-etude-test==9.9"], cache, pip_args=["--no-index"])
    message = str(error.value)
    assert "pip install failed" in message
    assert "no-such-dist-etude-test" in message
    assert not [path for path in cache.iterdir() if path.is_dir()]


def test_missing_interpreter_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CodeStateError, match=r"python-nope.*not found"):
        ensure_virtualenv([], tmp_path / "venvs", python="python-nope")


def test_two_agents_asking_at_once_share_one_virtualenv(tmp_path: Path) -> None:
    """Two processes ask for the same requirements at the same time: one builds, the other
    waits on the lock and reuses it."""
    wheel = build_wheel(tmp_path / "wheels", "demo-pkg", "2.0")
    code = textwrap.dedent(
        f"""\
        from pathlib import Path
        from etude.tracking.codestate_env import ensure_virtualenv
        print(ensure_virtualenv(["demo-pkg @ {wheel.as_uri()}"], Path({str(tmp_path / "venvs")!r}),
                                pip_args=["--no-index"]))
        """
    )
    agents = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [agent.communicate(timeout=300)[0].strip() for agent in agents]
    assert [agent.returncode for agent in agents] == [0, 0]
    assert outputs[0] == outputs[1]
    folders = [path for path in (tmp_path / "venvs").iterdir() if path.is_dir()]
    assert folders == [Path(outputs[0]).parent.parent]
    assert venv_python_says(Path(outputs[0]), "import demo_pkg; print(demo_pkg.VERSION)") == "2.0"


def test_a_dead_agents_work_folder_goes_and_its_worktrees_are_pruned(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / "train.py").write_text("print('hi')\n")
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "first"], cwd=repo, check=True)
    work = tmp_path / "agents" / "dead-agent"
    work.mkdir(parents=True)
    subprocess.run([*git, "worktree", "add", "-q", "--detach", str(work / "run1")], cwd=repo,
                   check=True)
    (work / "run2.out").write_text("output of a run\n")

    remove_work_folder(work)

    assert not work.exists()
    listed = subprocess.run(["git", "worktree", "list", "--porcelain"], cwd=repo, check=True,
                            capture_output=True, text=True).stdout
    assert listed.count("worktree ") == 1, listed  # only the repository itself
    remove_work_folder(work)  # already gone: nothing to do
