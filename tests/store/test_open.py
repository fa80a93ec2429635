"""Opening a workspace's index: schema migrations (SQLite and PostgreSQL), a corrupt SQLite
file rebuilt from the folders, and where the index lives (network file systems, ETUDE_STORE,
settings.yaml)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from etude.store import StoreConfigError, StoreVersionError, locate, open_store
from etude.store.database import create_engine, read_revision
from etude.store.location import (
    StoreLocation,
    is_network_fs,
    mount_type,
    normalize_url,
)
from etude.store.records import JobRecord, relative_folder, typed_value
from etude.store.schema import HEAD, REVISIONS, metadata
from etude.workspace import Workspace, read_status


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "etude.store:migrations")
    return config


def migrate_to(location: StoreLocation, revision: str) -> None:
    """Bring the database at `location` to `revision` with Alembic, as an older etude did."""
    engine = create_engine(location)
    try:
        with engine.connect() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.commit()
    finally:
        engine.dispose()


def revision_of(location: StoreLocation) -> str | None:
    engine = create_engine(location)
    try:
        with engine.connect() as connection:
            return read_revision(connection)
    finally:
        engine.dispose()


def execute(location: StoreLocation, sql: str, **params: object) -> None:
    engine = create_engine(location)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(sql), params)
    finally:
        engine.dispose()


# -- migrations -------------------------------------------------------------------------------
def test_an_empty_database_is_migrated_to_the_schema_the_code_uses(store):
    """Opening migrates to HEAD, and the migrations build exactly the tables of schema.py."""
    with store.engine.connect() as connection:
        assert read_revision(connection) == HEAD
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, metadata) == []


def test_the_revisions_from_scratch_build_the_schema_the_code_uses(workspace, store_env):
    """An empty index is created from schema.py and stamped; the Alembic revisions, run one
    after the other, must build exactly the same tables (else old indexes would differ)."""
    location = locate(Workspace(workspace).path)
    migrate_to(location, HEAD)
    engine = create_engine(location)
    try:
        with engine.connect() as connection:
            assert read_revision(connection) == HEAD
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_a_database_at_0001_is_upgraded_on_open_and_keeps_its_jobs(workspace, store_env, caplog):
    ws = Workspace(workspace)
    location = locate(ws.path)
    migrate_to(location, "0001")
    assert revision_of(location) == "0001"
    execute(
        location, "INSERT INTO workspaces (path, created) VALUES (:path, 1.0)", path=str(ws.path)
    )
    execute(
        location,
        "INSERT INTO jobs (workspace_pk, folder, id, kind, task, state, retries, updated) "
        "SELECT pk, 'jobs/xp.learn/abc', 'abc', 'task', 'xp.Learn', 'done', 0, 2.0 "
        "FROM workspaces WHERE path = :path",
        path=str(ws.path),
    )
    with caplog.at_level(logging.INFO, logger="etude.store"):
        store = open_store(workspace)
    with store:
        assert f"from 0001 to {HEAD}" in caplog.text
        assert revision_of(location) == HEAD
        [row] = store.query_jobs()
        assert (row.folder, row.id, row.task, row.state) == (
            "jobs/xp.learn/abc",
            "abc",
            "xp.Learn",
            "done",
        )
        # the tables of the later revisions work for the old row
        record = JobRecord(
            folder=row.folder,
            id="abc",
            task="xp.Learn",
            state="done",
            params={"lr": typed_value(0.1)},
        )
        store.write_jobs([record])
        assert store.job_params(row.pk) == {"lr": 0.1}


def test_revisions_match_the_alembic_scripts():
    """schema.REVISIONS lists the migration scripts oldest first, ending at HEAD."""
    scripts = ScriptDirectory.from_config(alembic_config())
    walked = [script.revision for script in scripts.walk_revisions()]  # newest first
    assert tuple(reversed(walked)) == REVISIONS
    assert scripts.get_heads() == [HEAD]


def test_an_index_from_a_newer_etude_is_refused_and_left_alone(workspace, store_env):
    ws = Workspace(workspace)
    open_store(ws).close()
    location = locate(ws.path)
    execute(location, "UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreVersionError) as raised:
        open_store(ws)
    message = str(raised.value)
    assert "'9999'" in message and repr(HEAD) in message and "Upgrade etude" in message
    assert revision_of(location) == "9999"  # not migrated, not stamped over
    if location.path is not None:  # not mistaken for a corrupt file and moved aside
        assert location.path.exists()
        assert list(location.path.parent.glob("*.corrupt-*")) == []
    (workspace / "jobs").mkdir(exist_ok=True)  # a workspace (its index may be on PostgreSQL)
    cli = subprocess.run(
        [sys.executable, "-m", "etude.cli", "index", "check", "-w", str(workspace)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 2, cli.stdout + cli.stderr
    assert "'9999'" in cli.stderr and "Traceback" not in cli.stderr


OPENER = """
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
from etude.store import open_store
from etude.store.database import read_revision

print("ready", flush=True)
sys.stdin.readline()  # the go signal: every opener starts at once
with open_store(sys.argv[1]) as store:
    store.query_jobs()
    with store.engine.connect() as connection:
        print("revision", read_revision(connection), flush=True)
"""


@pytest.mark.parametrize("start", [None, "0001"], ids=["empty", "at-0001"])
def test_processes_opening_an_old_database_at_once_migrate_it_once(
    tmp_path, workspace, store_env, start
):
    if start is not None:
        migrate_to(locate(Workspace(workspace).path), start)
    script = tmp_path / "opener.py"
    script.write_text(textwrap.dedent(OPENER))
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(workspace)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"  # imports done
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out == f"revision {HEAD}\n", out + err
    logs = "".join(err for _, err in outputs)
    assert logs.count("etude.store: etude: migrating the index") == 1, logs


# -- a corrupt SQLite index -------------------------------------------------------------------
XP = """
import sys
from etude import Param, Task, experiment

class Step(Task):
    n: Param[int]

    def execute(self):
        pass

if __name__ == "__main__":
    with experiment(sys.argv[1], "steps"):
        for n in range(4):
            Step.C(n=n).submit()
"""


@pytest.fixture
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The workspace's own SQLite index: no ETUDE_STORE, no settings.yaml."""
    monkeypatch.delenv("ETUDE_STORE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def run_experiment(tmp_path: Path, workspace: Path) -> None:
    script = tmp_path / "steps.py"
    script.write_text(textwrap.dedent(XP))
    result = subprocess.run(
        [sys.executable, str(script), str(workspace)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def damage(path: Path, how: str) -> bytes:
    """Corrupt the SQLite file at `path`; return what is left of it."""
    if how == "garbage":
        path.write_bytes(b"\x00\xffnot a database, whatever it once was\n" * 200)
    else:
        os.truncate(path, path.stat().st_size // 2)  # a full disk, a copy cut short
    return path.read_bytes()


def folder_states(workspace: Path) -> dict[str, str]:
    ws = Workspace(workspace)
    return {relative_folder(ws, job): read_status(job).state for job in ws.iter_job_dirs()}


DAMAGE = [pytest.param("garbage", id="garbage"), pytest.param("half", id="truncated-to-half")]


@pytest.mark.parametrize("how", DAMAGE)
def test_a_corrupt_sqlite_index_is_reported_kept_aside_and_rebuilt(
    tmp_path, workspace, sqlite_env, caplog, how
):
    run_experiment(tmp_path, workspace)
    index = workspace / ".etude" / "index.sqlite"
    left = damage(index, how)
    with caplog.at_level(logging.WARNING, logger="etude.store"):
        store = open_store(workspace)
    with store:
        [aside] = index.parent.glob("index.sqlite.corrupt-*")
        assert aside.read_bytes() == left
        warnings = [r.getMessage() for r in caplog.records if r.name == "etude.store"]
        assert any(str(index) in w and str(aside) in w for w in warnings), warnings
        states = {row.folder: row.state for row in store.query_jobs()}
        assert states == folder_states(workspace) and len(states) == 4
        assert set(states.values()) == {"done"}
        [info] = store.experiments()
        assert info.name == "steps" and [run.counts for run in info.runs] == [{"done": 4}]


@pytest.mark.parametrize("how", DAMAGE)
def test_jobs_list_on_a_corrupt_sqlite_index_lists_the_jobs_and_names_the_file(
    tmp_path, workspace, sqlite_env, how
):
    run_experiment(tmp_path, workspace)
    index = workspace / ".etude" / "index.sqlite"
    damage(index, how)
    result = subprocess.run(
        [sys.executable, "-m", "etude.cli", "jobs", "list", "--json", "-w", str(workspace)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    listed = {Path(job["path"]).name: job["state"] for job in json.loads(result.stdout)}
    assert listed == {job.job_id: "done" for job in Workspace(workspace).iter_job_dirs()}
    assert str(index) in result.stderr and "corrupt" in result.stderr, result.stderr


# -- where the index lives --------------------------------------------------------------------
# A real NFS, Lustre or GPFS mount cannot be made on this machine (no root mount, no server):
# these tests give `mount_type` a mounts file in /proc/mounts' format instead.
def write_mounts(tmp_path: Path, lines: list[str]) -> Path:
    mounts = tmp_path / "mounts"
    mounts.write_text("".join(f"{line}\n" for line in lines))
    return mounts


@pytest.fixture
def mounts(tmp_path: Path) -> tuple[Path, Path]:
    """A mounts file describing network file systems under BASE; returns (file, BASE)."""
    base = tmp_path.resolve() / "mnt"
    lines = [
        "overlay / overlay rw,relatime 0 0",
        f"/dev/sdb1 {base}/nfs/scratch ext4 rw 0 0",  # listed first: the longest still wins
        f"server:/export {base}/nfs nfs4 rw,vers=4.2 0 0",
        f"10.0.0.1@o2ib:/fs {base}/lustre lustre rw 0 0",
        f"gpfs0 {base}/gpfs gpfs rw 0 0",
        f"//server/share {base}/with\\040space cifs rw 0 0",
    ]
    return write_mounts(tmp_path, lines), base


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        pytest.param("nfs/ws", "nfs4", id="nfs4"),
        pytest.param("nfs", "nfs4", id="the-mount-point-itself"),
        pytest.param("lustre/a/b/ws", "lustre", id="lustre"),
        pytest.param("gpfs/ws", "gpfs", id="gpfs"),
        pytest.param("nfs/scratch/ws", "ext4", id="local-disk-mounted-inside-nfs"),
        pytest.param("nfs2/ws", "overlay", id="sibling-sharing-a-prefix-is-not-inside"),
        pytest.param("with space/ws", "cifs", id="escaped-space"),
    ],
)
def test_mount_type_is_that_of_the_longest_mount_point_above_the_path(mounts, where, expected):
    table, base = mounts
    assert mount_type(base / where, mounts=table) == expected


def test_mount_type_is_unknown_without_a_mounts_table(tmp_path):
    assert mount_type(tmp_path, mounts=tmp_path / "missing") is None


@pytest.mark.parametrize("fs", ["nfs4", "lustre", "gpfs"])
def test_a_workspace_on_a_network_fs_keeps_its_sqlite_index_on_local_disk(
    tmp_path, monkeypatch, caplog, sqlite_env, fs
):
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    shared = tmp_path.resolve() / "shared"
    table = write_mounts(tmp_path, ["overlay / overlay rw 0 0", f"srv:/x {shared} {fs} rw 0 0"])
    workspace = shared / "team" / "ws"
    workspace.mkdir(parents=True)
    location = locate(workspace, mounts=table)
    assert location.network_fs == fs and location.is_sqlite
    assert location.path is not None and location.path.parent == cache / "etude" / "index"
    assert location.path.name.startswith("ws-") and location.path.suffix == ".sqlite"
    # another workspace of the same name elsewhere gets its own file
    other = locate(shared / "other" / "ws", mounts=table)
    assert other.path != location.path
    with caplog.at_level(logging.WARNING, logger="etude.store"):
        store = open_store(workspace, location=location)
    with store:
        assert store.query_jobs() == []
    assert location.path.exists() and not (workspace / ".etude" / "index.sqlite").exists()
    [warning] = [r.getMessage() for r in caplog.records if r.name == "etude.store"]
    assert str(workspace) in warning and fs in warning and str(location.path) in warning
    assert "PostgreSQL" in warning


def test_a_workspace_on_a_local_disk_keeps_its_index_inside(workspace, sqlite_env):
    fs = mount_type(workspace)  # the real /proc/mounts
    assert fs is not None and not is_network_fs(fs), fs
    location = locate(workspace)
    assert location.path == workspace / ".etude" / "index.sqlite"
    assert location.network_fs is None and location.source == "default"


def test_etude_store_wins_over_settings_and_the_network_fs_rule(mounts, monkeypatch):
    table, base = mounts
    monkeypatch.setenv("ETUDE_STORE", "postgresql://me:secret@db:5432/etude")
    location = locate(base / "nfs" / "ws", "sqlite:////elsewhere/index.sqlite", mounts=table)
    assert location.url == "postgresql+psycopg://me:secret@db:5432/etude"
    assert location.source == "$ETUDE_STORE"
    assert location.path is None and location.network_fs is None
    assert "secret" not in location.display and location.display.startswith("postgresql")
    monkeypatch.setenv("ETUDE_STORE", "sqlite:////scratch/mine.sqlite")
    location = locate(base / "nfs" / "ws", mounts=table)
    assert location.path == Path("/scratch/mine.sqlite") and location.network_fs is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "postgresql://me@db:5432/etude",
            "postgresql+psycopg://me@db:5432/etude",
            id="postgresql",
        ),
        pytest.param("postgres://me@db/etude", "postgresql+psycopg://me@db/etude", id="postgres"),
        pytest.param(
            " postgresql+psycopg://db/etude ",
            "postgresql+psycopg://db/etude",
            id="psycopg-stripped",
        ),
        pytest.param("sqlite:////data/index.sqlite", "sqlite:////data/index.sqlite", id="sqlite"),
    ],
)
def test_normalize_url_uses_psycopg_for_postgresql(url, expected):
    assert normalize_url(url, "somewhere") == expected


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("mysql://me@db/etude", id="mysql"),
        pytest.param("postgresql+asyncpg://me@db/etude", id="other-driver"),
        pytest.param("/data/index.sqlite", id="bare-path"),
    ],
)
def test_normalize_url_rejects_other_databases_naming_the_source(url):
    with pytest.raises(StoreConfigError) as raised:
        normalize_url(url, "settings.yaml (workspace /w)")
    message = str(raised.value)
    assert message.startswith("settings.yaml (workspace /w):") and url in message
    assert "postgresql://" in message  # says what would work


def test_a_bad_store_url_names_where_it_came_from(tmp_path, monkeypatch):
    monkeypatch.setenv("ETUDE_STORE", "mysql://me@db/etude")
    with pytest.raises(StoreConfigError, match=r"^\$ETUDE_STORE: .*mysql"):
        locate(tmp_path)
    monkeypatch.setenv("ETUDE_STORE", "sqlite:///:memory:")
    with pytest.raises(StoreConfigError, match=r"names no file"):
        locate(tmp_path)
    monkeypatch.delenv("ETUDE_STORE")
    with pytest.raises(StoreConfigError, match=rf"settings.yaml \(workspace {tmp_path}\)"):
        locate(tmp_path, "mysql://me@db/etude")


def test_the_store_of_settings_yaml_is_used_by_experiments_and_readers(
    tmp_path, workspace, store_url, monkeypatch
):
    monkeypatch.delenv("ETUDE_STORE", raising=False)
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    if store_url is None:
        custom = tmp_path / "elsewhere" / "index.sqlite"
        url = f"sqlite:///{custom}"
    else:
        custom = None
        url = store_url.replace("postgresql+psycopg://", "postgresql://")
    (config / "etude").mkdir(parents=True)
    settings = {"workspaces": [{"path": str(workspace), "store": url}]}
    (config / "etude" / "settings.yaml").write_text(json.dumps(settings))  # JSON is YAML
    run_experiment(tmp_path, workspace)
    with open_store(workspace) as store:
        assert store.location.source.startswith("settings.yaml")
        assert store.location.url == normalize_url(url, "test")
        assert {row.state for row in store.query_jobs()} == {"done"}
        assert len(store.query_jobs()) == 4
    assert not (workspace / ".etude" / "index.sqlite").exists()
    if custom is not None:
        assert custom.exists()
