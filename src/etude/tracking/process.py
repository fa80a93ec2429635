"""How a live run ends with its process: interpreter exit, an uncaught exception, SIGTERM.

- a normal exit closes the run as completed (atexit);
- an uncaught exception closes it as failed with the traceback, KeyboardInterrupt (SIGINT)
  as aborted (a wrapper around `sys.excepthook`, which runs before atexit);
- SIGTERM, when the process had left it to the default action, closes it as aborted and then
  lets the signal end the process as it would have.
A child made by fork never ends the parent's run (see `clear` at fork).
A process killed with SIGKILL says nothing: readers notice the missing heartbeat (see
`workspace.run_folder.effective_status`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from types import FrameType, TracebackType
from typing import Any

#: Called with (state, reason, message, traceback text) to close the live run, if any.
Closer = Callable[[str, str | None, str | None, str | None], None]

_closer: Closer | None = None
_installed = False
_exit_code: object = None  # the code given to sys.exit, read at interpreter exit
_original_exit = sys.exit


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM, so that the run closes outside whatever the
    signal interrupted (a report holding the recorder's lock), then the process dies by
    SIGTERM as it would have."""
_original_excepthook = sys.excepthook
_lock = threading.Lock()


def install(closer: Closer) -> None:
    """Make `closer` end the live run with the process (once per process; the last closer
    given is the one called)."""
    global _closer, _installed
    with _lock:
        _closer = closer
        if _installed:
            return
        _installed = True
    atexit.register(_at_exit)
    sys.excepthook = _excepthook
    sys.exit = _recording_exit  # type: ignore[assignment]  # SystemExit skips excepthook
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def clear() -> None:
    """No live run any more (it was closed by the user)."""
    global _closer
    _closer = None


# A child made by fork (a data-loading worker) inherits the parent's live run but must never
# end it: its exit, its exceptions and a SIGTERM sent to it (workers are often stopped that
# way) leave the parent's run alone, and SIGTERM ends the child as its default action would.
os.register_at_fork(after_in_child=clear)


def _close(state: str, reason: str | None, message: str | None, text: str | None) -> None:
    global _closer
    closer, _closer = _closer, None
    if closer is not None:
        closer(state, reason, message, text)


def _recording_exit(code: object = None) -> None:
    global _exit_code
    _exit_code = code
    _original_exit(code)  # type: ignore[arg-type]


def _at_exit() -> None:
    if _exit_code in (0, None):
        _close("completed", None, None, None)
    else:
        _close("failed", "exit", f"SystemExit: {_exit_code}", None)


def _excepthook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, Terminated):
        _close("aborted", "terminated", "stopped by SIGTERM", None)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    text = "".join(traceback.format_exception(kind, error, tb))
    message = f"{kind.__name__}: {error}" if str(error) else kind.__name__
    if issubclass(kind, KeyboardInterrupt):
        _close("aborted", "interrupted", message, text)
    elif issubclass(kind, SystemExit):
        code = error.code if isinstance(error, SystemExit) else None
        _close(
            "completed" if code in (0, None) else "failed",
            None if code in (0, None) else "exit",
            message,
            None,
        )
    else:
        _close("failed", "exception", message, text)
    _original_excepthook(kind, error, tb)


_deferring = 0  # > 0 while a run closes: SIGTERM waits for the end of it
_deferred = False


@contextlib.contextmanager
def deferring_sigterm() -> Iterator[None]:
    """Hold a SIGTERM that arrives in the block until its end (a run being closed writes its
    final state first), then die by it."""
    global _deferring, _deferred
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if _deferring == 0 and _deferred:
            _deferred = False
            _die_by_sigterm()


def _die_by_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _deferred
    if _deferring:
        _deferred = True
        return
    if _closer is None:  # no live run: die as SIGTERM's default action would
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    raise Terminated()


def exit_state(error: BaseException | None) -> tuple[str, str | None, str | None, str | None]:
    """(state, reason, message, traceback) for a `with Run.init()` block that ended with
    `error` (None: completed)."""
    if error is None:
        return "completed", None, None, None
    if isinstance(error, Terminated):
        return "aborted", "terminated", "stopped by SIGTERM", None
    if isinstance(error, SystemExit):
        if error.code in (0, None):
            return "completed", None, None, None
        return "failed", "exit", f"SystemExit: {error.code}", None
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    message: Any = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if isinstance(error, KeyboardInterrupt):
        return "aborted", "interrupted", message, text
    return "failed", "exception", message, text
