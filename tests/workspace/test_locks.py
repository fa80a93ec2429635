"""FileLock: exclusive between processes and threads, refusing to wait for itself."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from etude.workspace import FileLock, LockReentryError


def test_second_acquire_by_the_holding_thread_raises(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with FileLock(path):
        with pytest.raises(LockReentryError, match="already holds this lock"):
            FileLock(path).acquire()
        assert not FileLock(path).try_acquire()
    with FileLock(path):  # released: free again
        pass


def test_another_thread_waits_for_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    holder = FileLock(path)
    holder.acquire()
    taken = threading.Event()

    def take() -> None:
        with FileLock(path):
            taken.set()

    thread = threading.Thread(target=take)
    thread.start()
    assert not taken.wait(0.2)
    holder.release()
    assert taken.wait(30)
    thread.join(30)
