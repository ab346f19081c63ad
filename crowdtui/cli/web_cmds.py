"""``crowdtui web``: the console in a browser (textual-serve); the console itself is ``tui_cmds``.

Every browser visit starts its own console process over the same workspace; what viewers
share lives in the store and the hub, so several viewers at once see the same crew. The
web server runs the workspace's host (``crowdtui.host``: hub, dispatch, policies) while it
runs, unless another process has one; each visit's console then uses that one.

Whoever reaches the console acts as the operator, so the server is locked: a random key,
made at start and printed in the URL, must be in the page URL (``/?k=KEY``) and in the
websocket's path (``/ws/KEY``, which the page carries); a websocket upgrade must come from
the served origin (no other web page can drive it), and every request must name the bound
host:port (or the public URL's) in its Host header, so a DNS-rebound name is refused.
"""

from __future__ import annotations

import secrets
import shlex
import sys
from urllib.parse import urlsplit

from crowdtui.cli.common import wants_json, workspace_of


def register(sub) -> None:
    p = sub.add_parser(
        "web",
        help="serve the console in a browser (each visit is a console on this workspace)",
        description="Serve the operator console over HTTP with textual-serve. Listens on "
        "127.0.0.1 unless told otherwise. The URL it prints carries a key made at start: "
        "anyone with that URL acts as the operator.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--public-url", default=None, metavar="URL",
                   help="the URL browsers use, when behind a proxy or listening on all addresses "
                   "(default http://HOST:PORT); only its host and HOST:PORT are accepted")
    p.add_argument("--no-hub", action="store_true",
                   help="do not run the host (hub, dispatch, policies) in the web server "
                   "(each console then uses or starts one)")
    p.set_defaults(func=cmd_web)


def console_command(workspace_root: str) -> str:
    """The shell command textual-serve runs for each visit."""
    return shlex.join([sys.executable, "-m", "crowdtui", "--workspace", workspace_root])


LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def allowed_hosts(host: str, port: int, public_url: str) -> set[str]:
    """The Host header values the server answers: the bound host:port and the public URL's."""
    bound = f"[{host}]" if ":" in host and not host.startswith("[") else host
    hosts = {f"{bound}:{port}".lower(), urlsplit(public_url).netloc.lower()}
    if host in LOOPBACK:
        hosts |= {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}
    return hosts


def allowed_origins(hosts: set[str], public_url: str) -> set[str]:
    """The Origin a websocket upgrade may come from: a page served by this server."""
    scheme = urlsplit(public_url).scheme or "http"
    return {f"{scheme}://{h}" for h in hosts}


def key_guard(key: str, hosts: set[str], origins: set[str]):
    """aiohttp middleware: Host must be ours; the page needs ``?k=KEY``; the websocket
    needs ``/ws/KEY`` and our Origin. Anything else is refused with 403."""
    from aiohttp import web

    @web.middleware
    async def guard(request, handler):
        host = request.headers.get("Host", "").lower()
        if host not in hosts:
            raise web.HTTPForbidden(text="wrong Host (open the URL crowdtui web printed)\n")
        path = request.path
        if path == "/":
            if not secrets.compare_digest(request.query.get("k", ""), key):
                raise web.HTTPForbidden(text="open the URL crowdtui web printed (it carries a key)\n")
        elif path == "/ws" or path.startswith("/ws/"):
            if not secrets.compare_digest(path[len("/ws/"):] if path.startswith("/ws/") else "", key):
                raise web.HTTPForbidden(text="wrong key\n")
            if request.headers.get("Origin", "").lower() not in origins:
                raise web.HTTPForbidden(text="wrong Origin\n")
        return await handler(request)

    return guard


def cmd_web(args) -> int:
    from crowdtui.errors import UsageError

    ws = workspace_of(args)
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port} is not a port; use 1-65535")
    from aiohttp import web
    from textual_serve.server import Server

    key = secrets.token_urlsafe(24)

    class ConsoleServer(Server):
        """textual-serve behind a key, an Origin and a Host check, plus the workspace's
        host (``crowdtui.host``) for as long as the server runs."""

        host = None

        async def _make_app(self) -> web.Application:
            # textual-serve's routes, with the websocket at a keyed path (the page's
            # websocket URL is built from the route named "websocket") and the guard in front.
            import aiohttp_jinja2
            import jinja2

            hosts = allowed_hosts(self.host, self.port, self.public_url)
            app = web.Application(middlewares=[key_guard(key, hosts, allowed_origins(hosts, self.public_url))])
            aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(self.templates_path))
            app.add_routes([
                web.get("/", self.handle_index, name="index"),
                web.get(f"/ws/{key}", self.handle_websocket, name="websocket"),
                web.get("/download/{key}", self.handle_download, name="download"),
                web.static("/static", self.statics_path, name="static"),
            ])
            app.on_startup.append(self.on_startup)
            app.on_shutdown.append(self.on_shutdown)
            return app

        @property
        def url(self) -> str:
            return f"{self.public_url.rstrip('/')}/?k={key}"

        async def on_startup(self, app) -> None:
            # Not textual-serve's banner: it prints the URL without the key.
            self.console.print(f"crowdtui web: open {self.url}", highlight=False, markup=False, soft_wrap=True)
            self.console.print("Press Ctrl+C to quit", highlight=False, markup=False)
            if args.no_hub:
                self.ready("off")
                return

            from crowdtui.host import Host, HostAlreadyRunning

            # the same host as `crowdtui serve`/`hub`: hub, dispatch, policies and the runtime
            host = Host(ws, log=lambda line: self.console.print(f"host: {line}", highlight=False,
                                                                markup=False))
            try:
                await host.start()
            except HostAlreadyRunning as exc:
                where = f"host: already running (pid {exc.pid}); the consoles use that one"
            except Exception as exc:
                where = f"host: not started ({exc}); each console starts its own"
            else:
                self.host = host
                where = "host: running in this server (" + "; ".join(host.summary()) + ")"
            self.console.print(where, highlight=False, markup=False)
            self.ready("running" if self.host is not None else "elsewhere" if "already" in where else "not started")

        def ready(self, host_state: str) -> None:
            """With --json: one line on stdout once it serves (its log is on stderr)."""
            if wants_json(args):
                import json
                import os

                print(json.dumps({"event": "ready", "url": self.url, "workspace": str(ws.root), "pid": os.getpid(),
                                  "host": host_state}), flush=True)

        async def on_shutdown(self, app) -> None:
            if self.host is not None:
                await self.host.stop()
            await super().on_shutdown(app)

    server = ConsoleServer(
        console_command(str(ws.root)), host=args.host, port=args.port,
        title=f"crowdtui · {ws.name}", public_url=args.public_url,
    )
    if wants_json(args):  # stdout carries the ready line only
        from rich.console import Console

        server.console = Console(stderr=True)
    server.serve()
    return 0
