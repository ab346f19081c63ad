"""``crowdtui web``: the console in a browser (textual-serve).

Every browser visit starts its own console process over the same workspace; what viewers
share lives in the store and the hub, so several viewers at once see the same crew. The
web server keeps the workspace's hub up while it runs (unless another process has it).
"""

from __future__ import annotations

import shlex
import sys

from crowdtui.cli.common import workspace_of


def register(sub) -> None:
    p = sub.add_parser(
        "web",
        help="serve the console in a browser (each visit is a console on this workspace)",
        description="Serve the operator console over HTTP with textual-serve. Listens on "
        "127.0.0.1 unless told otherwise: anyone who can open the page acts as the operator.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--public-url", default=None, metavar="URL",
                   help="the URL browsers use, when behind a proxy (default http://HOST:PORT)")
    p.add_argument("--no-hub", action="store_true",
                   help="do not run the hub in the web server (each console then uses or starts one)")
    p.set_defaults(func=cmd_web)


def console_command(workspace_root: str) -> str:
    """The shell command textual-serve runs for each visit."""
    return shlex.join([sys.executable, "-m", "crowdtui", "--workspace", workspace_root])


def cmd_web(args) -> int:
    from crowdtui.errors import UsageError

    ws = workspace_of(args)
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port} is not a port; use 1-65535")
    from textual_serve.server import Server

    class ConsoleServer(Server):
        """textual-serve, plus the workspace's hub for as long as the server runs."""

        hub = None
        store = None

        async def on_startup(self, app) -> None:
            await super().on_startup(app)
            if args.no_hub:
                return
            from qms import Store

            from crowdtui.tui.backend import start_hub

            self.store = await Store.open(ws.db_path)
            mode, detail, self.hub = await start_hub(ws, self.store)
            where = {"own": "hub: running in this server", "other": f"hub: already running ({detail})",
                     "none": f"hub: not started ({detail})"}[mode]
            self.console.print(where, highlight=False, markup=False)

        async def on_shutdown(self, app) -> None:
            if self.hub is not None:
                await self.hub.stop()
            if self.store is not None:
                await self.store.close()
            await super().on_shutdown(app)

    server = ConsoleServer(
        console_command(str(ws.root)), host=args.host, port=args.port,
        title=f"crowdtui · {ws.name}", public_url=args.public_url,
    )
    server.serve()
    return 0
