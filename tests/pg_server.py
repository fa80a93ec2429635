"""A real throwaway PostgreSQL server on this machine, for tests (Debian).

    python tests/pg_server.py up|down|status|url [--dir DIR] [--port PORT]

DIR is $ETUDE_PG_DIR, else /dev/shm/etude-pg (memory: CREATE DATABASE takes 30 ms there,
300 ms on a disk; /tmp/etude-pg where /dev/shm does not exist); PORT is $ETUDE_PG_PORT,
else 55432. The cluster
lives in DIR/data (owned by `postgres`), its log in DIR/log/postgres.log, its socket in
DIR/sock; it listens on 127.0.0.1:PORT with trust authentication, and with fsync,
synchronous commit and full-page writes off: fast, and lost on a crash, which is the point.
The server is detached (own session), so it outlives the process that started it; several
processes (pytest-xdist workers) calling `start()` at once share one server.

As root, the server runs as the `postgres` user (initdb and pg_ctl refuse root), and Debian's
`postgresql` package is installed if no initdb/pg_ctl is found. As another user it runs as
that user, and PostgreSQL must already be installed.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

DEFAULT_DIR = Path("/dev/shm/etude-pg" if os.path.isdir("/dev/shm") else "/tmp/etude-pg")
DEFAULT_PORT = 55432
PACKAGES = ("postgresql",)
USER = "postgres"  # the database superuser, and the OS user the server runs as under root
# PATH of a non-login shell may lack the sbin folder where runuser lives.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}
START_TIMEOUT = 30  # seconds, pg_ctl -t
DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


class PgServerError(RuntimeError):
    """The server could not be installed, started or stopped; the message says why."""


@dataclass(frozen=True)
class PgServer:
    """A reachable server: `url` is a SQLAlchemy URL of its `postgres` database.

    `dir` is the folder of a server this module runs, None for one found elsewhere
    (ETUDE_PG_URL).
    """

    url: str
    dir: Path | None = None

    def create_database(self, name: str) -> str:
        return create_database(name, self.url)

    def drop_database(self, name: str) -> None:
        drop_database(name, self.url)


def default_dir() -> Path:
    return Path(os.environ.get("ETUDE_PG_DIR") or DEFAULT_DIR)


def default_port() -> int:
    return int(os.environ.get("ETUDE_PG_PORT") or DEFAULT_PORT)


def url(port: int | None = None) -> str:
    """The SQLAlchemy URL (psycopg 3 driver) of the `postgres` database of our server."""
    return f"postgresql+psycopg://{USER}@127.0.0.1:{port or default_port()}/postgres"


def start(dir: Path | None = None, port: int | None = None) -> PgServer:
    """Return the server of `dir`, starting it (and installing PostgreSQL) if it is not up.

    Reuses a running server, restarts a stopped one, and re-creates a data folder it cannot
    start from. Safe to call from several processes at once: one starts, the others wait
    and reuse. Raises PgServerError, with the server's log tail, when it cannot start.
    """
    dir, port = (dir or default_dir()).resolve(), port or default_port()
    try:
        _prepare_dir(dir)
        with _locked(dir):
            if not _is_ready(dir, port):
                _start_locked(dir, port)
    except OSError as error:  # e.g. DIR belongs to another user
        message = f"cannot use {dir} ({error}); set ETUDE_PG_DIR to a folder of yours"
        raise PgServerError(message) from error
    return PgServer(url=url(port), dir=dir)


def stop(dir: Path | None = None) -> None:
    """Stop the server of `dir` (fast mode: sessions are ended); a no-op if none runs."""
    dir = (dir or default_dir()).resolve()
    if not (dir / "data" / "postmaster.pid").exists():
        return
    with _locked(dir):
        _stop_locked(dir)


def is_up(dir: Path | None = None, port: int | None = None) -> bool:
    """The server of `dir` accepts connections on `port`."""
    dir = (dir or default_dir()).resolve()
    return _is_ready(dir, port or default_port())


def create_database(name: str, server_url: str | None = None) -> str:
    """Create an empty database `name` (dropping any of that name first); return its URL.

    `server_url` (default: our server's `url()`) is a SQLAlchemy URL of any database of the
    server; the returned URL differs from it only in the database name.
    """
    from psycopg import sql  # lazy: the `up`/`down` script runs without the project's venv

    server_url = server_url or url()
    with _admin_connection(server_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(_ident(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(_ident(name)))
    return _with_database(server_url, name)


def drop_database(name: str, server_url: str | None = None) -> None:
    """Drop database `name` if it exists, ending the sessions still connected to it."""
    from psycopg import sql

    with _admin_connection(server_url or url()) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(_ident(name)))


def check_reachable(server_url: str) -> None:
    """Raise PgServerError unless `SELECT 1` succeeds at `server_url`."""
    with _admin_connection(server_url) as conn:
        conn.execute("SELECT 1")


# --- starting and stopping -----------------------------------------------------------------


def _start_locked(dir: Path, port: int) -> None:
    bin_dir = install()
    data = dir / "data"
    if _postmaster_pid(data) is not None:  # up but not ready here: other port, or stuck
        _stop_locked(dir)
    fresh = False
    if not _is_initialized(data):
        _initdb(bin_dir, dir)
        fresh = True
    result = _pg_ctl_start(bin_dir, dir, port)
    if result.returncode != 0 and not fresh:  # a broken or incompatible data folder
        _initdb(bin_dir, dir)
        result = _pg_ctl_start(bin_dir, dir, port)
    if result.returncode != 0 or not _is_ready(dir, port):
        raise PgServerError(
            f"PostgreSQL did not start on port {port} (pg_ctl exited {result.returncode}; "
            "if the port is taken, set ETUDE_PG_PORT):\n"
            f"{_tail(result.stdout)}\n{_log_tail(dir)}"
        )


def _stop_locked(dir: Path) -> None:
    data = dir / "data"
    if _postmaster_pid(data) is None:
        return
    bin_dir = _find_bin_dir()
    if bin_dir is None:
        raise PgServerError(f"no pg_ctl found to stop the server of {data}")
    argv = [str(bin_dir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w", "-t", "30"]
    result = _as_server_user(argv, cwd=dir)
    if result.returncode != 0 and _postmaster_pid(data) is not None:
        raise PgServerError(
            f"pg_ctl stop failed ({result.returncode}):\n{_tail(result.stdout)}\n{_log_tail(dir)}"
        )


def install() -> Path:
    """Return the folder holding initdb and pg_ctl, installing Debian's package if needed.

    Raises PgServerError (with apt-get's output) when that is impossible here.
    """
    found = _find_bin_dir()
    if found is not None:
        return found
    if os.geteuid() != 0:
        raise PgServerError(
            "PostgreSQL (initdb, pg_ctl) is not installed and installing it needs root: run "
            "the tests as root, install `postgresql`, or point ETUDE_PG_URL at a server"
        )
    if not shutil.which("apt-get"):
        raise PgServerError(f"no apt-get on this machine: install {' '.join(PACKAGES)}")
    install_cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    result = _apt(install_cmd)
    if result.returncode != 0:  # a fresh machine may have no package lists yet
        _apt(["apt-get", "update", "-q"])
        result = _apt(install_cmd)
    found = _find_bin_dir()
    if result.returncode != 0 or found is None:
        raise PgServerError(
            f"`{' '.join(install_cmd)}` failed ({result.returncode}):\n{_tail(result.stdout)}"
        )
    return found


def _find_bin_dir() -> Path | None:
    """The folder of initdb and pg_ctl: from PATH, else the newest /usr/lib/postgresql/*/bin."""
    initdb = shutil.which("initdb")
    if initdb is not None:
        folder = Path(initdb).resolve().parent  # Debian links live elsewhere than the binaries
        if (folder / "pg_ctl").exists():
            return folder
    candidates = [
        path
        for path in Path("/usr/lib/postgresql").glob("*/bin")
        if (path / "initdb").exists() and (path / "pg_ctl").exists()
    ]
    return max(candidates, key=lambda path: _version_key(path.parent.name), default=None)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def _prepare_dir(dir: Path) -> None:
    """Create DIR, and its `log` and `sock` folders, usable by the server's user."""
    dir.mkdir(parents=True, exist_ok=True)
    for sub in ("log", "sock"):
        (dir / sub).mkdir(exist_ok=True)
    if os.geteuid() == 0:
        os.chmod(dir, dir.stat().st_mode | 0o755)  # the postgres user must reach DIR/data
        for sub in ("log", "sock"):
            shutil.chown(dir / sub, USER, USER)


def _is_initialized(data: Path) -> bool:
    return (data / "PG_VERSION").is_file() and (data / "global" / "pg_control").is_file()


def _initdb(bin_dir: Path, dir: Path) -> None:
    data = dir / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(mode=0o700)
    if os.geteuid() == 0:
        shutil.chown(data, USER, USER)
    argv = [
        str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", USER,
        "--locale=C.UTF-8", "-E", "UTF8", "--no-sync",
    ]  # fmt: skip
    result = _as_server_user(argv, cwd=dir)
    if result.returncode != 0:
        raise PgServerError(f"initdb failed ({result.returncode}):\n{_tail(result.stdout)}")


def _pg_ctl_start(bin_dir: Path, dir: Path, port: int) -> subprocess.CompletedProcess[str]:
    options = ["-p", str(port), "-k", str(dir / "sock")]
    for name, value in SERVER_SETTINGS.items():
        options += ["-c", f"{name}={value}"]
    argv = [
        str(bin_dir / "pg_ctl"), "-w", "-t", str(START_TIMEOUT), "-D", str(dir / "data"),
        "-l", str(dir / "log" / "postgres.log"), "-o", shlex.join(options), "start",
    ]  # fmt: skip
    return _as_server_user(argv, cwd=dir)


def _is_ready(dir: Path, port: int) -> bool:
    """pg_isready through DIR's own socket: only our server answers there."""
    bin_dir = _find_bin_dir()
    if bin_dir is None or not (bin_dir / "pg_isready").exists():
        return False
    argv = [str(bin_dir / "pg_isready"), "-q", "-h", str(dir / "sock"), "-p", str(port)]
    argv += ["-U", USER, "-d", "postgres", "-t", "5"]
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True).returncode == 0


def _postmaster_pid(data: Path) -> int | None:
    """The pid in DATA/postmaster.pid if that process is alive (a crash leaves the file)."""
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError, IndexError):
        return None
    return pid if stat.rpartition(")")[2].split()[0] != "Z" else None


def _as_server_user(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run argv as `postgres` when we are root (initdb and pg_ctl refuse root), else as us."""
    if os.geteuid() == 0:
        runuser = shutil.which("runuser", path=SEARCH_PATH)
        if runuser is not None:
            argv = [runuser, "-u", USER, "--", *argv]
        else:
            argv = ["su", "-s", "/bin/sh", USER, "-c", shlex.join(argv)]
    return subprocess.run(
        argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True, timeout=START_TIMEOUT + 30,
    )  # fmt: skip


def _apt(argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _log_tail(dir: Path) -> str:
    log = dir / "log" / "postgres.log"
    text = log.read_text(errors="replace") if log.exists() else "(missing)"
    return f"--- tail of {log}\n{_tail(text, 30)}"


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@contextlib.contextmanager
def _locked(dir: Path) -> Iterator[None]:
    with open(dir / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# --- databases -----------------------------------------------------------------------------


def _ident(name: str) -> sql.Identifier:
    from psycopg import sql

    if not DATABASE_NAME.fullmatch(name):
        raise ValueError(f"not a plain database name (letters, digits, _, at most 63): {name!r}")
    return sql.Identifier(name)


@contextlib.contextmanager
def _admin_connection(server_url: str) -> Iterator[psycopg.Connection]:
    import psycopg
    from sqlalchemy.engine import make_url

    conninfo = make_url(server_url).set(drivername="postgresql")
    try:
        conn = psycopg.connect(
            conninfo.render_as_string(hide_password=False), autocommit=True, connect_timeout=10
        )
    except psycopg.OperationalError as error:
        raise PgServerError(f"cannot connect to {server_url}: {error}") from error
    with conn:
        yield conn


def _with_database(server_url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


# --- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A throwaway PostgreSQL for etude's tests.")
    parser.add_argument("action", choices=["up", "down", "status", "url"])
    parser.add_argument("--dir", type=Path, default=None, help=f"default {DEFAULT_DIR}")
    parser.add_argument("--port", type=int, default=None, help=f"default {DEFAULT_PORT}")
    args = parser.parse_args(argv)
    if args.action == "url":
        print(url(args.port))
        return 0
    dir = (args.dir or default_dir()).resolve()
    if args.action == "down":
        stop(dir)
        print(f"postgres server in {dir} stopped")
        return 0
    if args.action == "status":
        up = is_up(dir, args.port)
        print(f"postgres server in {dir}: {'up at ' + url(args.port) if up else 'down'}")
        return 0 if up else 1
    began = time.monotonic()
    try:
        server = start(dir, args.port)
    except PgServerError as error:
        print(f"postgres server: {error}", file=sys.stderr)
        return 1
    print(f"postgres server in {dir} up in {time.monotonic() - began:.2f} s: {server.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
