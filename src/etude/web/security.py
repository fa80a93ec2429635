"""Who may use the UI, and what every response says to the browser.

- Bound to a loopback address, the UI is open to this machine's users unless a token is set
  (`etude ui --token`); bound anywhere else, a token is required. Requests carry it as
  `Authorization: Bearer TOKEN` (scripts), or in the `etude_token` cookie (browsers), set
  once from `?token=TOKEN` (the link `etude ui` prints) or the log-in form; the cookie is
  HttpOnly and SameSite=Strict.
- Without a token, the Host header must name a loopback address: a page of another site
  reached through DNS rebinding cannot talk to the UI.
- Changes (POST) must carry the header `X-Etude: 1`, which another site's page cannot send
  without a CORS pre-flight that the UI never grants: no cross-site request forgery.
- Every response has a Content-Security-Policy that allows scripts from the UI's own
  `/static/` files only (no inline script, no eval), and refuses framing.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "etude_token"
CHANGE_HEADER = b"x-etude"
TOKEN_ENV = "ETUDE_UI_TOKEN"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
OPEN_PATHS = ("/static/", "/login")


def is_loopback(host: str) -> bool:
    """Whether binding `host` only reaches this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def settings_token() -> str | None:
    """The token of the settings: `$ETUDE_UI_TOKEN`, else `ui: {token: ...}` in
    settings.yaml; None when neither is set."""
    import os

    from ..workspace.settings import SettingsError, settings_path

    value = os.environ.get(TOKEN_ENV)
    if value:
        return value
    path = settings_path()
    if not path.exists():
        return None
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML ({exc}).") from exc
    section = data.get("ui") if isinstance(data, dict) else None
    token = section.get("token") if isinstance(section, dict) else None
    if token is not None and (not isinstance(token, str) or len(token) < 16):
        raise SettingsError(f"{path}: ui.token must be a string of at least 16 characters.")
    return token


class Guard:
    """ASGI middleware: the token, the Host check, the change header, the security headers."""

    def __init__(self, app: App, token: str | None, check_host: bool) -> None:
        self.app = app
        self.token = token
        self.check_host = check_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] not in dict(HEADERS)]
                message["headers"] = headers + HEADERS
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await _respond(send_with_headers, scope, *refusal)
            return
        if self.token is not None and scope["path"] == "/login" and scope["method"] == "POST":
            await self._login(scope, receive, send_with_headers)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if self.token is not None and "token" in query and scope["method"] == "GET":
            await self._token_link(scope, query, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        headers = dict(scope.get("headers", []))
        if self.check_host and not _loopback_host(headers.get(b"host", b"").decode("latin-1")):
            return 421, "this UI answers only to requests for 127.0.0.1 or localhost"
        path = scope["path"]
        if scope["method"] not in ("GET", "HEAD") and headers.get(CHANGE_HEADER) != b"1" \
                and path != "/login":
            return 403, "a change needs the header 'X-Etude: 1' (the UI's pages send it)"
        if self.token is None or path.startswith(OPEN_PATHS):
            return None
        if _token_of(headers) is not None and hmac.compare_digest(
                _token_of(headers) or "", self.token):
            return None
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if "token" in query and scope["method"] == "GET":
            return None  # checked by _token_link
        return 401, "this UI needs its token: open the link `etude ui` printed, or log in"

    async def _token_link(self, scope: Scope, query: dict[str, str], send: Send) -> None:
        """`?token=T`: set the cookie and redirect to the same URL without the token."""
        assert self.token is not None
        if not hmac.compare_digest(query["token"], self.token):
            await _respond(send, scope, 401, "wrong token")
            return
        rest = urlencode([(k, v) for k, v in query.items() if k != "token"])
        location = scope["path"] + (f"?{rest}" if rest else "")
        await send({"type": "http.response.start", "status": 303, "headers": [
            (b"location", location.encode("latin-1")), (b"set-cookie", self._cookie())]})
        await send({"type": "http.response.body", "body": b""})

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body") or len(body) > 4096:
                break
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        assert self.token is not None
        if not hmac.compare_digest(form.get("token", ""), self.token):
            await _respond(send, scope, 401, "wrong token")
            return
        await send({"type": "http.response.start", "status": 303, "headers": [
            (b"location", b"/"), (b"set-cookie", self._cookie())]})
        await send({"type": "http.response.body", "body": b""})

    def _cookie(self) -> bytes:
        assert self.token is not None
        return f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict".encode()


def _token_of(headers: dict[bytes, bytes]) -> str | None:
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


def _loopback_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if host.startswith("["):
        name = host[: host.find("]") + 1]
    return bool(name) and is_loopback(name)


async def _respond(send: Send, scope: Scope, status: int, message: str) -> None:
    """A refusal: JSON for the API, a small page (with the log-in form for 401) otherwise."""
    if scope["path"].startswith("/api/"):
        body = json.dumps({"error": message}).encode()
        kind = b"application/json"
    else:
        from html import escape

        form = ('<form method="post" action="/login"><label>Token <input name="token" '
                'type="password" autofocus></label> <button>Log in</button></form>'
                if status == 401 else "")
        body = (f"<!doctype html><title>etude</title><link rel=stylesheet "
                f"href=/static/etude.css><main><h1>etude</h1><p>{escape(message)}</p>{form}"
                f"</main>").encode()
        kind = b"text/html; charset=utf-8"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind)]})
    await send({"type": "http.response.body", "body": body})
