"""What every channel process shares on its side of dispatch's HTTP API: its callback
server on 127.0.0.1, an HTTP client, registration (a token for its prefixes), posts
retried while dispatch does not answer, and deregistration at close.

``crowdtui channel local`` (:mod:`crowdtui.dispatch.local_channel`) and the network
channels (:mod:`crowdtui.channels`) are both a :class:`ChannelPeer`; each gives its
platform, prefixes and callback app.
"""

from __future__ import annotations

import asyncio
import secrets

from crowdtui.errors import CrowdError


class DispatchDown(CrowdError):
    """Dispatch did not answer or take a message after retries."""


class ChannelPeer:
    """Subclasses set ``name``, ``dispatch_url`` (no trailing slash), ``register_key`` and
    ``status`` (a line sink) before :meth:`start`, and implement :meth:`_app` (the callback
    server's Starlette app), :meth:`prefixes` and :meth:`registered`."""

    platform = "local"
    http_timeout = 15.0
    register_tries = 30

    callback_token: str
    token: str | None = None
    _server = None
    _http = None

    def _peer_init(self) -> None:
        self.callback_token = secrets.token_urlsafe(24)
        self.token = None
        self._server = None
        self._http = None

    def _app(self):
        raise NotImplementedError

    def prefixes(self) -> list[str]:
        return [f"{self.name}:"]

    def callback_ok(self, request) -> bool:
        """Whether a request to the callback server carries the token dispatch was given."""
        return secrets.compare_digest(request.headers.get("authorization", ""), f"Bearer {self.callback_token}")

    def registered(self) -> None:
        """Called once dispatch has given the channel its token (a status line, say)."""

    async def start(self) -> None:
        import httpx

        from crowdtui.dispatch.http_server import LocalServer

        self._http = httpx.AsyncClient(timeout=self.http_timeout, trust_env=False)
        self._server = await LocalServer(self._app()).start()
        await self.register()

    async def register(self) -> None:
        body = {"name": self.name, "platform": self.platform, "callback_url": self._server.url,
                "prefixes": self.prefixes(), "callback_token": self.callback_token}
        r = await self._post("/channels/register", body, self.register_key, tries=self.register_tries)
        if r.status_code != 200:
            raise CrowdError(f"dispatch refused to register channel {self.name}: {response_error(r)}")
        self.token = r.json()["token"]
        self.registered()

    async def _post(self, path: str, body: dict | None, token: str, *, tries: int):
        """POST to dispatch, tried again (0.1 s doubling to 2 s) while it does not answer."""
        import httpx

        for attempt in range(tries):
            try:
                return await self._http.post(self.dispatch_url + path, json=body,
                                             headers={"Authorization": f"Bearer {token}"})
            except httpx.TransportError as exc:
                if attempt == tries - 1:
                    raise DispatchDown(f"dispatch at {self.dispatch_url} does not answer ({exc}); "
                                       "is `crowdtui serve` running?") from None
                await asyncio.sleep(min(2.0, 0.1 * 2 ** attempt))

    async def close(self) -> None:
        """Deregister (best effort), stop the callback server, close the client."""
        if self.token and self._http is not None:
            try:
                await self._http.post(self.dispatch_url + "/channels/deregister",
                                      headers={"Authorization": f"Bearer {self.token}"})
            except Exception:
                pass
        if self._server is not None:
            await self._server.stop()
        if self._http is not None:
            await self._http.aclose()


def response_error(r) -> str:
    """Dispatch's own words for a refusal (its JSON ``error``), else the status."""
    try:
        return str(r.json().get("error") or r.text)[:300]
    except Exception:
        return f"HTTP {r.status_code}"
