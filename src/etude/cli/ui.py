"""`etude ui`: serve the web UI of a workspace (see docs/web-ui.md)."""

from __future__ import annotations

import argparse
import sys

from ..workspace import Workspace


def _serve(workspace: Workspace, args: argparse.Namespace) -> int:
    try:
        from ..web.server import choose_token, serve
    except ImportError as exc:
        print(f"etude: the web UI needs the 'web' extra ({exc.name} is missing): "
              "pip install 'etude[web]'", file=sys.stderr)
        return 2
    token = choose_token(args.host, args.token)
    try:
        serve(workspace, host=args.host, port=args.port, token=token, open_browser=args.open)
    except OSError as exc:
        print(f"etude: cannot serve on {args.host}:{args.port}: {exc.strerror or exc}; pick "
              "another --port (0 chooses a free one).", file=sys.stderr)
        return 2
    return 0


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    """Add `ui` to `groups`; `common` holds the shared options."""
    ui = groups.add_parser("ui", parents=[common],
                           help="serve the web UI (experiments, jobs, runs, compare)")
    ui.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1; any other needs a token)")
    ui.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    ui.add_argument("--open", action="store_true", help="open the UI in a browser")
    ui.add_argument("--token", action="store_true",
                    help="require a token on 127.0.0.1 too (a shared machine); it is "
                         "$ETUDE_UI_TOKEN or ui.token of the settings, else a new one")
    ui.set_defaults(handler=_serve)
