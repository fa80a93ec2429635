"""Serving the UI with uvicorn: the socket, the token, the address printed for the user."""

from __future__ import annotations

import socket
import sys
import threading
from typing import Any

from ..workspace import Workspace
from .security import is_loopback, new_token, settings_token


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port), port 0 meaning a free one chosen by the system. Bound
    here rather than by uvicorn so that the port is known before serving, with no race."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def address(host: str, port: int) -> str:
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def choose_token(host: str, wanted: bool) -> str | None:
    """The token to require: the settings' (ETUDE_UI_TOKEN, `ui.token`), else a new one,
    when `wanted` or when `host` is not a loopback address; None otherwise."""
    if not wanted and is_loopback(host):
        return None
    return settings_token() or new_token()


def serve(workspace: Workspace, host: str = "127.0.0.1", port: int = 0,
          token: str | None = None, open_browser: bool = False) -> None:
    """Serve the UI of `workspace` until interrupted; the address (with the token, once) is
    printed on stderr."""
    import uvicorn

    from .app import create_app

    app = create_app(workspace, token=token, check_host=token is None)
    sock = listening_socket(host, port)
    url = address(host, sock.getsockname()[1])
    link = f"{url}?token={token}" if token else url
    print(f"etude ui: serving {workspace.path} at {link}", file=sys.stderr, flush=True)
    if token:
        print("etude ui: the token is printed only this once; the link sets it in the "
              "browser (cookie), scripts send 'Authorization: Bearer TOKEN'.",
              file=sys.stderr, flush=True)
    if open_browser:
        import webbrowser

        threading.Timer(0.5, webbrowser.open, args=(link,)).start()
    config: Any = uvicorn.Config(app, log_level="warning", access_log=False,
                                 timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])
