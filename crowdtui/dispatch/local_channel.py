"""``crowdtui channel local``: a terminal chat that speaks the channel protocol.

It registers with the workspace's running serve (URL and register key from
``.crowd/run/serve.json``), serves its own callback on 127.0.0.1 (``/send``,
``/typing``, ``/health``), sends each line typed on stdin as one inbound message and
prints what comes back on stdout as ``agent: text``. Status lines go to stderr.
Usable by a person at a terminal and by a test through pipes. With ``--web`` the same
chat is a page on the callback server (127.0.0.1; its URL carries a key).
"""

from __future__ import annotations

import asyncio
import getpass
import re
import secrets
import sys
import time
from typing import Callable

from crowdtui.dispatch.channel_peer import ChannelPeer, response_error
from crowdtui.errors import CrowdError
from crowdtui.text_safety import inert

_SAFE = re.compile(r"[^a-z0-9_-]+")


def _default_user() -> str:
    try:
        name = getpass.getuser()
    except Exception:
        name = "me"
    return _SAFE.sub("-", name.lower()).strip("-") or "me"


class LocalChannel(ChannelPeer):
    http_timeout = 10.0

    def __init__(self, *, dispatch_url: str, register_key: str, name: str = "local", user: str | None = None,
                 chat: str | None = None, out: Callable[[str], None] | None = None,
                 status: Callable[[str], None] | None = None) -> None:
        self.dispatch_url = dispatch_url.rstrip("/")
        self.register_key = register_key
        self.name = name
        self.user = user or _default_user()
        self.chat = chat or f"{name}:{self.user}"
        self.out = out or (lambda line: print(line, flush=True))
        self.status = status or (lambda line: print(line, file=sys.stderr, flush=True))
        self._peer_init()
        self.received: list[dict] = []
        self.transcript: list[dict] = []  # {"n", "from", "text"}: both directions, for the web page
        self.web_key = secrets.token_urlsafe(16)
        self._n = 0

    def _app(self):
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def send(request: Request):
            if not self.callback_ok(request):
                return JSONResponse({"error": "wrong callback token"}, status_code=401)
            body = await request.json()
            self.received.append(body)
            self._note(str(body.get("from") or "crowd"), str(body.get("text", "")))
            who = inert(str(body.get("from") or "crowd"))
            text = inert(str(body.get("text", ""))).replace("\n", "\n    ")
            self.out(f"{who}: {text}")
            return JSONResponse({"ok": True})

        async def typing(request: Request):
            if not self.callback_ok(request):
                return JSONResponse({"error": "wrong callback token"}, status_code=401)
            body = await request.json()
            self.status(f"({inert(str(body.get('from') or 'crowd'))} is typing…)")
            return JSONResponse({"ok": True})

        async def health(request: Request):
            return JSONResponse({"ok": True, "channel": self.name})

        def page_key_ok(request: Request) -> bool:
            return secrets.compare_digest(request.query_params.get("k", ""), self.web_key)

        async def page(request: Request):
            from starlette.responses import HTMLResponse

            if not page_key_ok(request):
                return JSONResponse({"error": "open the URL the channel printed (it carries a key)"}, status_code=403)
            return HTMLResponse(WEB_PAGE.replace("{chat}", self.chat.replace("<", "&lt;")))

        async def messages(request: Request):
            if not page_key_ok(request):
                return JSONResponse({"error": "wrong key"}, status_code=403)
            try:
                after = int(request.query_params.get("after", "0"))
            except ValueError:
                after = 0
            return JSONResponse({"messages": [m for m in self.transcript if m["n"] > after]})

        async def say(request: Request):
            if not page_key_ok(request):
                return JSONResponse({"error": "wrong key"}, status_code=403)
            try:
                body = await request.json()
                text = body["text"]
                assert isinstance(text, str) and text.strip() and len(text) <= 32_000
            except Exception:
                return JSONResponse({"error": "send {\"text\": \"...\"}"}, status_code=422)
            return JSONResponse(await self.say(text))

        return Starlette(routes=[Route("/send", send, methods=["POST"]), Route("/typing", typing, methods=["POST"]),
                                 Route("/health", health, methods=["GET"]), Route("/", page, methods=["GET"]),
                                 Route("/messages", messages, methods=["GET"]), Route("/say", say, methods=["POST"])])

    def _note(self, who: str, text: str) -> None:
        self.transcript.append({"n": len(self.transcript) + 1, "from": who, "text": text})
        del self.transcript[:-500]

    @property
    def web_url(self) -> str:
        return f"{self._server.url}/?k={self.web_key}"

    def registered(self) -> None:
        self.status(f"connected to {self.dispatch_url} as chat {self.chat} (channel {self.name}); "
                    "type a message, Ctrl-D quits")

    async def say(self, text: str) -> dict:
        """Send one message (retried with the same id until dispatch has stored it)."""
        self._n += 1
        body = {"id": f"{self.user}-{time.time_ns()}-{self._n}", "chat": self.chat, "sender": self.user,
                "sender_name": self.user, "text": text,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self._note(self.user, text)
        r = await self._post("/channels/inbound", body, self.token, tries=30)
        if r.status_code == 401:  # deregistered (e.g. missed health checks): register again, once
            await self.register()
            r = await self._post("/channels/inbound", body, self.token, tries=30)
        if r.status_code != 200:
            self.status(f"not sent: {response_error(r)}")
            return {"ok": False, "error": response_error(r)}
        return r.json()


WEB_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>crowd chat {chat}</title>
<style>body{font:15px system-ui,sans-serif;max-width:46em;margin:2em auto}#log{white-space:pre-wrap}
.who{font-weight:600}form{display:flex;gap:.5em;margin-top:1em}input{flex:1;font:inherit;padding:.4em}</style>
</head><body><h3>chat {chat}</h3><div id="log"></div>
<form id="f"><input id="t" autocomplete="off" autofocus placeholder="message, /who, /new, @agent ..."><button>send</button></form>
<script>
const k = new URLSearchParams(location.search).get("k"); let after = 0;
function add(m){const d=document.createElement("div");const b=document.createElement("span");
 b.className="who";b.textContent=m.from+": ";d.append(b,document.createTextNode(m.text));log.append(d);}
async function poll(){try{const r=await fetch("messages?k="+k+"&after="+after);const j=await r.json();
 for(const m of j.messages){add(m);after=m.n;}}catch(e){} setTimeout(poll,1000);}
f.onsubmit=async e=>{e.preventDefault();const text=t.value;if(!text.trim())return;t.value="";
 await fetch("say?k="+k,{method:"POST",headers:{"Content-Type":"application/json"},body:JSON.stringify({text})});};
poll();
</script></body></html>
"""


async def run_local_channel(workspace, *, name: str = "local", user: str | None = None, chat: str | None = None,
                            dispatch_url: str | None = None, register_key: str | None = None,
                            web: bool = False) -> int:
    from crowdtui.dispatch.serve import read_info

    info = read_info(workspace) or {}
    dispatch_url = dispatch_url or info.get("url")
    register_key = register_key or info.get("register_key")
    if not dispatch_url or not register_key:
        raise CrowdError("no crowdtui serve runs for this workspace (no .crowd/run/serve.json); "
                         "start one with `crowdtui serve`")
    ch = LocalChannel(dispatch_url=dispatch_url, register_key=register_key, name=name, user=user, chat=chat)
    await ch.start()
    try:
        if web:
            ch.status(f"web page: {ch.web_url} (Ctrl-C quits)")
            await asyncio.Event().wait()
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                break
            text = line.rstrip("\n")
            if text.strip():
                await ch.say(text)
    finally:
        await ch.close()
    return 0
