"""A real headless Chromium for the browser tests, and an `etude ui` process to point it at.

Debian's `chromium` is installed with apt-get when /usr/bin/chromium is missing (root only;
once per machine, under a lock so that xdist workers do not install it twice). Playwright's
own browser download is not used: Playwright drives the system Chromium.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
LOCK = Path("/tmp/etude-chromium-install.lock")


class BrowserUnavailable(RuntimeError):
    """Chromium cannot be had here; the message says why."""


def chromium() -> Path:
    """The system Chromium, installed first if needed."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BrowserUnavailable("install Debian's chromium package (apt-get install chromium)")
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not CHROMIUM.exists():
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            command = ["apt-get", "install", "-y", "-q", "chromium"]
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:  # a fresh machine may have no package lists yet
                subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
                done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0 or not CHROMIUM.exists():
                raise BrowserUnavailable(f"apt-get install chromium failed:\n{done.stdout[-2000:]}"
                                         f"{done.stderr[-2000:]}")
    return CHROMIUM


def launch(playwright: Any) -> Any:
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium refuses root otherwise
    return playwright.chromium.launch(executable_path=str(chromium()), args=args)


class UiServer:
    """`etude ui` on a free port, in its own process (as a user would start it)."""

    def __init__(self, workspace: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "etude.cli", "-w", str(workspace), "ui", "--port", "0"],
            stderr=subprocess.PIPE, text=True, env=env)
        assert self.process.stderr is not None
        line = self.process.stderr.readline()
        found = re.search(r"(http://\S+/)", line)
        if not found:
            self.stop()
            raise RuntimeError(f"etude ui did not start: {line}{self.process.stderr.read()}")
        self.url = found.group(1)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}api/projects", timeout=5)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"etude ui at {self.url} did not answer in {timeout} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
