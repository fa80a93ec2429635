"""Environment capture: process facts, chosen variables, packages, and a code state that
`git apply` turns back into the captured work tree."""

from __future__ import annotations

import ast
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import pytest

from etude.tracking import capture as capture_module
from etude.tracking.capture import (
    capture,
    capture_code,
    chosen_environment,
    imported_packages,
    strip_credentials,
)


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


def make_repo(path: Path, files: dict[str, str | bytes], commit: bool = True) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    write(path, files)
    if commit:
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", "first")
    return path


def tree(root: Path) -> dict[str, tuple[bytes, bool]]:
    """Every file under `root` except .git: content (a link's target) and executable bit."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            path = Path(folder, name)
            key = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[key] = (os.fsencode(os.readlink(path)), False)
            else:
                found[key] = (path.read_bytes(), os.access(path, os.X_OK))
    return found


def apply_on_checkout(origin: Path, code: dict, target: Path) -> None:
    """Rebuild the captured code state: a fresh clone at `commit`, then `git apply`."""
    git(origin.parent, "clone", "-q", str(origin), str(target))
    git(target, "checkout", "-q", "--detach", code["commit"])
    patch = target.parent / f"{target.name}.patch"
    patch.write_text(json.loads(json.dumps(code))["diff"])
    git(target, "apply", str(patch))


# ---------------------------------------------------------------------------------------------
# strip_credentials


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("https://user:tok@host/x.git", "https://host/x.git", id="https-user-pw"),
        pytest.param("https://ghp_abc@github.com/o/r", "https://github.com/o/r", id="https-token"),
        pytest.param("http://u:p@host:8080/r?q=1", "http://host:8080/r?q=1", id="http-port"),
        pytest.param("https://host/x.git", "https://host/x.git", id="https-clean"),
        pytest.param("git@host:org/repo.git", "git@host:org/repo.git", id="scp-like"),
        pytest.param("ssh://user:pw@host/r.git", "ssh://user@host/r.git", id="ssh-pw"),
        pytest.param("ssh://git@host:22/r.git", "ssh://git@host:22/r.git", id="ssh-user"),
        pytest.param("git+ssh://u:pw@host/r", "git+ssh://u@host/r", id="git+ssh"),
        pytest.param("https://host/a@b", "https://host/a@b", id="at-in-path"),
        pytest.param("/srv/git/repo.git", "/srv/git/repo.git", id="local-path"),
        pytest.param("file:///srv/repo", "file:///srv/repo", id="file-url"),
    ],
)
def test_strip_credentials(url: str, expected: str) -> None:
    assert strip_credentials(url) == expected


# ---------------------------------------------------------------------------------------------
# chosen_environment


@pytest.fixture
def some_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("CUDA_", "SLURM_", "ETUDE_T_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("CUDA_HOME", "/usr/local/cuda")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("ETUDE_T_API_TOKEN", "hunter2")
    monkeypatch.setenv("ETUDE_T_Secret_thing", "hidden")
    monkeypatch.setenv("ETUDE_T_PLAIN", "plain")


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        pytest.param(["SLURM_JOB_ID"], {"SLURM_JOB_ID": "42"}, id="exact"),
        pytest.param(["ETUDE_T_UNSET"], {}, id="unset-left-out"),
        pytest.param(
            ["CUDA_*"],
            {"CUDA_HOME": "/usr/local/cuda", "CUDA_VISIBLE_DEVICES": "0,1"},
            id="pattern",
        ),
        pytest.param(["ETUDE_T_*"], {"ETUDE_T_PLAIN": "plain"}, id="pattern-skips-secrets"),
        pytest.param(
            ["ETUDE_T_API_TOKEN", "ETUDE_T_Secret_thing"],
            {"ETUDE_T_API_TOKEN": "hunter2", "ETUDE_T_Secret_thing": "hidden"},
            id="secret-named-exactly",
        ),
        pytest.param(["SLURM_JOB_I?", "SLURM_[J]OB_ID"], {"SLURM_JOB_ID": "42"}, id="glob-chars"),
        pytest.param(["cuda_*"], {}, id="case-sensitive"),
    ],
)
def test_chosen_environment(
    some_environment: None, names: list[str], expected: dict[str, str]
) -> None:
    assert chosen_environment(names) == expected


def test_chosen_environment_is_sorted_by_name(some_environment: None) -> None:
    assert list(chosen_environment(["SLURM_JOB_ID", "CUDA_*"])) == [
        "CUDA_HOME",
        "CUDA_VISIBLE_DEVICES",
        "SLURM_JOB_ID",
    ]


# ---------------------------------------------------------------------------------------------
# imported_packages


def test_imported_packages_lists_distributions_of_imported_modules() -> None:
    packages = imported_packages()
    assert f"pytest=={metadata.version('pytest')}" in packages
    assert f"pluggy=={metadata.version('pluggy')}" in packages  # imported by pytest
    assert packages == sorted(set(packages), key=str.lower)
    assert all(line.count("==") == 1 for line in packages)


def test_imported_packages_leaves_out_the_standard_library() -> None:
    names = {line.partition("==")[0].lower() for line in imported_packages()}
    assert "json" in sys.modules
    assert not names & {"json", "os", "sys", "subprocess", "logging"}


def test_imported_packages_includes_etude_as_a_distribution() -> None:
    assert f"etude=={metadata.version('etude')}" in imported_packages()


def test_imported_packages_is_fast_once_the_map_is_built() -> None:
    imported_packages()
    start = time.perf_counter()
    imported_packages()
    assert time.perf_counter() - start < 0.05


def test_module_imports_only_the_standard_library() -> None:
    """`import etude.tracking.capture` must stay light: no third-party import at the top."""
    source = Path(capture_module.__file__).read_text()
    tops = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            tops |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            tops.add(node.module.partition(".")[0])
    assert tops, "no imports found: the check is broken"
    assert tops <= set(sys.stdlib_module_names) | {"__future__"}


# ---------------------------------------------------------------------------------------------
# capture_code in git


def test_diff_recreates_the_work_tree_on_a_clean_checkout(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitignore": "*.log\n",
            "kept.txt": "same\n",
            "edited.py": "a = 1\nb = 2\n",
            "staged_edit.py": "x = 1\n",
            "gone.txt": "bye\n",
            "latin.txt": b"caf\xe9\n",
            "old_latin.txt": b"d\xe9j\xe0\n",
            "run.sh": "echo run\n",
            "model.bin": bytes(range(256)),
        },
    )
    commit = git(repo, "rev-parse", "HEAD")
    write(
        repo,
        {
            "edited.py": "a = 1\nb = 3\n",
            "staged_edit.py": "x = 2\n",
            "staged_new.py": "print('new')\n",
            "latin.txt": b"na\xefve\n",
            "model.bin": bytes(range(255, -1, -1)) * 3,
            "notes.txt": "untracked\nno final newline",
            "sub/deep/train.py": "import os\n\r\nprint(os.getcwd())\n",
            "data.bin": bytes(range(256)) * 8,
            "with space.txt": "spaced\n",
            'quote"d.txt': "quoted\n",
            "café.txt": "accent\n",
            "empty.txt": "",
            "tool.sh": "#!/bin/sh\necho hi\n",
            "debug.log": "ignored\n",
            "ws/run1/out.txt": "excluded\n",
            "big.txt": "x" * 5000,
        },
    )
    (repo / "tool.sh").chmod(0o755)
    (repo / "link").symlink_to("kept.txt")
    (repo / "run.sh").chmod(0o755)
    (repo / "gone.txt").unlink()
    (repo / "old_latin.txt").unlink()
    git(repo, "add", "staged_edit.py", "staged_new.py")

    code = capture_code(
        str(repo / "sub/deep/train.py"), str(repo), exclude=[str(repo / "ws")], untracked_limit=4096
    )

    assert code["commit"] == commit
    assert sorted(code["untracked"]) == sorted(
        [
            "notes.txt",
            "sub/deep/train.py",
            "data.bin",
            "with space.txt",
            'quote"d.txt',
            "café.txt",
            "empty.txt",
            "tool.sh",
            "link",
        ]
    )
    assert code["skipped_untracked"] == ["big.txt"]
    clone = tmp_path / "clone"
    apply_on_checkout(repo, code, clone)
    expected = tree(repo)
    for left_out in ("debug.log", "ws/run1/out.txt", "big.txt"):
        del expected[left_out]
    assert tree(clone) == expected


def test_diff_without_a_commit_holds_everything(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "a = 1\n", "b.bin": b"\0\1\2"}, commit=False)
    git(repo, "add", "a.py")
    code = capture_code(None, str(repo))
    assert code["kind"] == "git"
    assert code["commit"] is None
    assert code["branch"] == "main"
    assert code["untracked"] == ["b.bin"]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    git(fresh, "init", "-q")
    (tmp_path / "all.patch").write_text(code["diff"])
    git(fresh, "apply", str(tmp_path / "all.patch"))
    assert tree(fresh) == tree(repo)


def test_clean_work_tree_has_an_empty_diff(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"main.py": "print(1)\n"})
    code = capture_code(str(repo / "main.py"), str(repo))
    assert code == {
        "kind": "git",
        "root": str(repo.resolve()),
        "branch": "main",
        "commit": git(repo, "rev-parse", "HEAD"),
        "remote": None,
        "script": "main.py",
        "working_dir": ".",
        "diff": "",
        "untracked": [],
        "skipped_untracked": [],
    }


@pytest.mark.parametrize(
    ("cwd", "expected"),
    [
        pytest.param("repo", ".", id="root"),
        pytest.param("repo/sub", "sub", id="inside"),
        pytest.param("elsewhere", None, id="outside-is-absolute"),
    ],
)
def test_working_dir_is_relative_to_the_root(
    tmp_path: Path, cwd: str, expected: str | None
) -> None:
    repo = make_repo(tmp_path / "repo", {"sub/job.py": "pass\n"})
    (tmp_path / "elsewhere").mkdir()
    code = capture_code(str(repo / "sub/job.py"), str(tmp_path / cwd))
    assert code["script"] == "sub/job.py"
    assert code["working_dir"] == (expected or str(tmp_path / cwd))


def test_script_relative_to_cwd_and_interactive_session(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"sub/job.py": "pass\n"})
    assert capture_code("job.py", str(repo / "sub"))["script"] == "sub/job.py"
    interactive = capture_code(None, str(repo / "sub"))
    assert interactive["kind"] == "git"
    assert interactive["script"] is None
    assert interactive["working_dir"] == "sub"


def test_detached_head_has_no_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "pass\n"})
    commit = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "--detach")
    code = capture_code(None, str(repo))
    assert code["branch"] is None
    assert code["commit"] == commit


@pytest.mark.parametrize(
    ("remotes", "upstream", "expected"),
    [
        pytest.param({}, None, None, id="none"),
        pytest.param(
            {"origin": "https://me:tok@host/o.git"}, None, "https://host/o.git", id="origin"
        ),
        pytest.param(
            {"origin": "https://host/o.git", "fork.mine": "ssh://me:pw@host/f.git"},
            "fork.mine",
            "ssh://me@host/f.git",
            id="upstream-first",
        ),
        pytest.param({"other": "git@host:o/r.git"}, None, None, id="no-origin"),
    ],
)
def test_remote_of_the_branch(
    tmp_path: Path, remotes: dict[str, str], upstream: str | None, expected: str | None
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "pass\n"})
    for name, url in remotes.items():
        git(repo, "remote", "add", name, url)
    if upstream:
        git(repo, "config", "branch.main.remote", upstream)
        git(repo, "config", "branch.main.merge", "refs/heads/main")
    assert capture_code(None, str(repo))["remote"] == expected


def test_excluded_tracked_changes_are_left_out(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"ws/state.txt": "one\n", "a.py": "a = 1\n"})
    write(repo, {"ws/state.txt": "two\n", "a.py": "a = 2\n"})
    code = capture_code(None, str(repo), exclude=[str(repo / "ws"), str(tmp_path / "away")])
    assert "a.py" in code["diff"]
    assert "ws/state.txt" not in code["diff"]


# ---------------------------------------------------------------------------------------------
# capture_code without git


def test_script_outside_git_records_its_text(tmp_path: Path) -> None:
    script = tmp_path / "alone.py"
    script.write_text("print('alone')\n")
    code = capture_code(str(script), str(tmp_path))
    assert code == {
        "kind": "script",
        "script": str(script),
        "working_dir": str(tmp_path),
        "text": "print('alone')\n",
    }


def test_interactive_session_outside_git_has_no_text(tmp_path: Path) -> None:
    code = capture_code(None, str(tmp_path))
    assert code == {"kind": "script", "script": None, "working_dir": str(tmp_path), "text": None}


def test_oversized_or_unreadable_script_has_no_text(tmp_path: Path) -> None:
    big = tmp_path / "big.py"
    big.write_text("#" * 100)
    result = capture(script=str(big), argv=[], cwd=str(tmp_path), packages=False)
    assert result["code"]["text"] is not None
    small_limit = capture(
        script=str(big), argv=[], cwd=str(tmp_path), packages=False, untracked_limit=10
    )
    assert small_limit["code"]["text"] is None
    assert any("big.py" in problem for problem in small_limit["problems"])
    missing = capture(script=str(tmp_path / "gone.py"), argv=[], cwd=str(tmp_path))
    assert missing["code"]["text"] is None
    assert any("gone.py" in problem for problem in missing["problems"])


def test_missing_git_is_a_problem_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    repo = make_repo(tmp_path / "repo", {"main.py": "print(1)\n"})
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    with caplog.at_level(logging.WARNING, logger="etude.tracking"):
        result = capture(script=str(repo / "main.py"), argv=[], cwd=str(repo), packages=False)
    assert result["code"]["kind"] == "script"
    assert result["code"]["text"] == "print(1)\n"
    assert any("git was not found" in problem for problem in result["problems"])
    assert "git was not found" in caplog.text


def test_broken_cwd_is_a_problem_not_an_error(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    result = capture(script=None, argv=["python"], cwd=str(gone), packages=False)
    assert result["code"] == {
        "kind": "script",
        "script": None,
        "working_dir": str(gone),
        "text": None,
    }
    assert any(str(gone) in problem for problem in result["problems"])
    json.dumps(result)


# ---------------------------------------------------------------------------------------------
# capture


def test_capture_describes_the_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETUDE_T_SEED", "7")
    monkeypatch.setenv("ETUDE_T_KEY", "secret")
    repo = make_repo(tmp_path / "repo", {"main.py": "print(1)\n"})
    result = capture(
        script="main.py",
        argv=["main.py", "--lr", "0.1"],
        cwd=str(repo),
        env_names=["ETUDE_T_*"],
    )
    assert json.loads(json.dumps(result)) == result
    assert set(result) == {
        "python",
        "executable",
        "platform",
        "host",
        "user",
        "pid",
        "cwd",
        "argv",
        "script",
        "env",
        "packages",
        "code",
        "problems",
    }
    assert result["python"] == platform.python_version()
    assert result["executable"] == sys.executable
    assert result["pid"] == os.getpid()
    assert result["cwd"] == str(repo)
    assert result["argv"] == ["main.py", "--lr", "0.1"]
    assert result["script"] == str(repo / "main.py")
    assert result["env"] == {"ETUDE_T_SEED": "7"}
    assert f"pytest=={metadata.version('pytest')}" in result["packages"]
    assert result["code"]["kind"] == "git"
    assert result["code"]["script"] == "main.py"
    assert result["problems"] == []


def test_capture_can_skip_code_and_packages(tmp_path: Path) -> None:
    result = capture(script=None, argv=[], cwd=str(tmp_path), code=False, packages=False)
    assert result["code"] is None
    assert result["packages"] == []
    assert result["problems"] == []


def test_the_module_to_distribution_map_agrees_with_importlib_metadata() -> None:
    """etude reads top_level.txt and RECORD with string operations (8x faster than the
    standard function); the map must be the standard one, for every installed distribution."""
    def normal(mapping: Mapping[str, list[str]]) -> dict[str, list[str]]:
        return {module: sorted(names) for module, names in mapping.items()}

    assert normal(capture_module._build_distribution_map()) == normal(
        metadata.packages_distributions())
