"""ConsoleCapture in real processes: each test runs a small Python script that captures its own
stdout/stderr, and compares the log file with what the script wrote and with what its parent
(this test, standing in for the terminal) received."""

from __future__ import annotations

import logging
import os
import random
import selectors
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from etude.tracking.console import ConsoleCapture, read_console

PRELUDE = """\
import ctypes, logging, os, subprocess, sys, time
from etude.tracking.console import ConsoleCapture
log_path, out_dir = sys.argv[1], sys.argv[2]
logging.basicConfig(filename=os.path.join(out_dir, "warnings.log"), level=logging.WARNING)
"""


# Children run with Python's and C's default buffering (a pipe makes both block-buffered), so
# that the tests see what stop() must flush.
CHILD_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}


def _script(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "child.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    return [sys.executable, str(script), str(tmp_path / "console.log"), str(tmp_path)]


def _run(tmp_path: Path, body: str) -> subprocess.CompletedProcess[bytes]:
    """Run `body` after PRELUDE in a child process; fail with its output if it fails."""
    result = subprocess.run(_script(tmp_path, body), capture_output=True, timeout=60, env=CHILD_ENV)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result


def _log(tmp_path: Path) -> bytes:
    return (tmp_path / "console.log").read_bytes()


def _warnings(tmp_path: Path) -> str:
    path = tmp_path / "warnings.log"
    return path.read_text() if path.exists() else ""


def test_captures_python_fd_child_and_c_output_and_still_shows_it(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        """
        capture = ConsoleCapture(log_path)
        capture.start()
        print("python-print")
        sys.stderr.write("python-stderr\\n")
        os.write(1, b"raw-fd-write\\n")
        subprocess.run(["echo", "child-echo"], check=True)
        libc = ctypes.CDLL(None)
        libc.printf(b"c-printf\\n")
        libc.fflush(None)
        capture.stop()
        """,
    )
    log = _log(tmp_path)
    for line in (b"python-print", b"python-stderr", b"raw-fd-write", b"child-echo", b"c-printf"):
        assert line + b"\n" in log
    assert sorted(result.stdout.splitlines()) == sorted(
        [b"python-print", b"raw-fd-write", b"child-echo", b"c-printf"]
    )
    assert result.stderr == b"python-stderr\n"


def test_c_output_still_buffered_in_stdio_at_stop_reaches_the_file(tmp_path: Path) -> None:
    """printf to a pipe is buffered by the C library; stop() flushes it before restoring fd 1."""
    _run(
        tmp_path,
        """
        capture = ConsoleCapture(log_path)
        capture.start()
        ctypes.CDLL(None).printf(b"buffered-in-libc\\n")
        capture.stop()
        """,
    )
    assert _log(tmp_path) == b"buffered-in-libc\n"


def test_both_streams_share_one_file_in_arrival_order(tmp_path: Path) -> None:
    _run(
        tmp_path,
        """
        capture = ConsoleCapture(log_path)
        capture.start()
        for fd, text in [(1, b"one\\n"), (2, b"two\\n"), (1, b"three\\n"), (2, b"four\\n")]:
            os.write(fd, text)
            capture.flush()
        capture.stop()
        """,
    )
    assert _log(tmp_path) == b"one\ntwo\nthree\nfour\n"


def test_ten_megabytes_pass_intact_to_file_and_terminal_with_flat_memory(tmp_path: Path) -> None:
    """Chunks are generated one at a time, so growth of the peak RSS would be the capture's."""
    result = _run(
        tmp_path,
        """
        import random, resource
        capture = ConsoleCapture(log_path)
        capture.start()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for seed in range(160):
            sys.stdout.buffer.write(random.Random(seed).randbytes(65536))
        sys.stdout.flush()
        capture.stop()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with open(os.path.join(out_dir, "rss_kib"), "w") as f:
            f.write(str(after - before))
        """,
    )
    expected = b"".join(random.Random(seed).randbytes(65536) for seed in range(160))
    assert len(expected) == 10 * 2**20
    assert _log(tmp_path) == expected
    assert result.stdout == expected
    assert int((tmp_path / "rss_kib").read_text()) < 5 * 1024


def test_stop_with_nothing_written_leaves_an_empty_file_and_restores_stdout(
    tmp_path: Path,
) -> None:
    result = _run(
        tmp_path,
        """
        capture = ConsoleCapture(log_path)
        capture.start()
        capture.stop()
        capture.stop()
        print("after-stop", flush=True)
        """,
    )
    assert _log(tmp_path) == b""
    assert result.stdout == b"after-stop\n"


def test_second_capture_chains_onto_the_first(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        """
        outer = ConsoleCapture(log_path)
        inner = ConsoleCapture(os.path.join(out_dir, "inner.log"))
        outer.start()
        os.write(1, b"outer-only\\n")
        outer.flush()
        inner.start()
        os.write(1, b"both\\n")
        inner.stop()
        outer.stop()
        """,
    )
    assert _log(tmp_path) == b"outer-only\nboth\n"
    assert (tmp_path / "inner.log").read_bytes() == b"both\n"
    assert result.stdout == b"outer-only\nboth\n"


def test_closed_stderr_is_skipped_with_a_warning(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        """
        os.close(2)
        capture = ConsoleCapture(log_path)
        capture.start()
        os.write(1, b"still-captured\\n")
        capture.stop()
        """,
    )
    assert _log(tmp_path) == b"still-captured\n"
    assert result.stdout == b"still-captured\n"
    assert "fd 2 is not open" in _warnings(tmp_path)


def test_closed_terminal_does_not_block_the_file(tmp_path: Path) -> None:
    """The parent closes its end of the child's stdout: echoing fails, the file gets it all."""
    body = """
        capture = ConsoleCapture(log_path)
        capture.start()
        os.write(1, b"x" * 100)
        capture.flush()
        with open(os.path.join(out_dir, "ready"), "w"):
            pass
        while not os.path.exists(os.path.join(out_dir, "closed")):
            time.sleep(0.01)
        for _ in range(16):
            os.write(1, b"y" * 65536)
        capture.stop()
        """
    child = subprocess.Popen(_script(tmp_path, body), stdout=subprocess.PIPE, env=CHILD_ENV)
    try:
        _wait_for(lambda: (tmp_path / "ready").exists(), "the child to start its capture")
        assert child.stdout is not None
        child.stdout.close()
        (tmp_path / "closed").touch()
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
        child.wait()
    assert _log(tmp_path) == b"x" * 100 + b"y" * 16 * 65536
    assert "no longer accepts output" in _warnings(tmp_path)


def test_stop_gives_up_on_a_child_still_holding_stdout(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        """
        capture = ConsoleCapture(log_path, drain_timeout=0.5)
        capture.start()
        sleeper = subprocess.Popen(["sleep", "60"])
        os.write(1, b"before-stop\\n")
        started = time.monotonic()
        capture.stop()
        elapsed = time.monotonic() - started
        sleeper.kill()
        sleeper.wait()
        print(f"elapsed={elapsed:.3f}")
        """,
    )
    elapsed = float(result.stdout.decode().rsplit("elapsed=", 1)[1])
    assert 0.5 <= elapsed < 20  # the drain timeout, not the sleeping child's 60 s
    assert _log(tmp_path) == b"before-stop\n"
    assert "output was still arriving" in _warnings(tmp_path)


def test_sigkill_keeps_what_was_already_copied(tmp_path: Path) -> None:
    """The terminal is echoed after the file is written: once the parent sees a line, the file
    holds it, even if the child is killed right then."""
    body = """
        capture = ConsoleCapture(log_path)
        capture.start()
        os.write(1, b"before-kill\\n")
        time.sleep(60)
        """
    child = subprocess.Popen(_script(tmp_path, body), stdout=subprocess.PIPE, env=CHILD_ENV)
    try:
        assert child.stdout is not None
        _read_until(child.stdout.fileno(), b"before-kill\n")
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert _log(tmp_path) == b"before-kill\n"


def test_capture_of_a_private_pipe_in_this_process(tmp_path: Path) -> None:
    """start()/stop() are idempotent, flush() makes output reach the file while active, and the
    original target still receives everything (a pipe stands for the terminal, so pytest's own
    capture of fd 1/2 is left alone)."""
    log = tmp_path / "sub" / "console.log"
    read_end, write_end = os.pipe()
    capture = ConsoleCapture(log, fds=(write_end,))
    try:
        assert not capture.active
        capture.start()
        capture.start()
        assert capture.active
        os.write(write_end, b"while-active\n")
        capture.flush()
        assert log.read_bytes() == b"while-active\n"
        capture.stop()
        capture.stop()
        assert not capture.active
        os.write(write_end, b"after-stop\n")
        assert os.read(read_end, 1024) == b"while-active\nafter-stop\n"
        assert log.read_bytes() == b"while-active\n"
        with capture:
            os.write(write_end, b"again\n")
        assert log.read_bytes() == b"while-active\nagain\n"
    finally:
        capture.stop()
        os.close(read_end)
        os.close(write_end)


def test_descriptor_that_is_not_open_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.close(write_end)  # now certainly not open (nothing else runs in this test)
    with caplog.at_level(logging.WARNING, logger="etude.tracking.console"):
        with ConsoleCapture(tmp_path / "console.log", fds=(write_end,)) as capture:
            assert capture.active
    assert f"fd {write_end} is not open" in caplog.text
    assert (tmp_path / "console.log").read_bytes() == b""


@pytest.mark.parametrize(
    "fds",
    [
        pytest.param((), id="empty"),
        pytest.param((1, 1), id="duplicate"),
        pytest.param((-1,), id="negative"),
        pytest.param(("1",), id="not-int"),
    ],
)
def test_invalid_fds_are_refused(tmp_path: Path, fds: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="fds"):
        ConsoleCapture(tmp_path / "console.log", fds=fds)


def test_read_console_whole_and_tail(tmp_path: Path) -> None:
    path = tmp_path / "console.log"
    path.write_bytes("line one\nété\n".encode() + b"\xff\n")
    assert read_console(path) == "line one\nété\n\ufffd\n"
    assert read_console(path, tail_bytes=0) == ""
    assert read_console(path, tail_bytes=6) == "té\n\ufffd\n"
    # 7 bytes start inside the first 'é' (2 bytes): the cut character is dropped, not replaced
    assert read_console(path, tail_bytes=7) == "té\n\ufffd\n"
    assert read_console(path, tail_bytes=1000) == read_console(path)


def test_read_console_refuses_a_negative_tail_and_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tail_bytes"):
        read_console(tmp_path / "console.log", tail_bytes=-1)
    with pytest.raises(FileNotFoundError):
        read_console(tmp_path / "missing.log")


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def _read_until(fd: int, expected: bytes, timeout: float = 30.0) -> None:
    """Read from `fd` until `expected` arrived, or fail after `timeout` seconds."""
    received = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while expected not in received:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise AssertionError(f"got {received!r}, never {expected!r}")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError(f"end of output after {received!r}, never {expected!r}")
            received += chunk
