"""Putting a routed chat message into an agent's inbox inside the engine's own transaction.

Uses the store's ``deliver_in`` (the same insert and ``message.sent`` event that
``send_message`` makes) so that the inbox row and the inbound row's "routed" mark
commit together: a message is routed exactly once, whatever crashes when.
"""

from __future__ import annotations

from qms.errors import NotFound
from qms.messages import check_body, check_thread
from qms.names import OPERATOR, validate_name
from qms.registry import agent_row


async def deliver_in(store, db, *, sender: str, recipient: str, body: str, thread: str | None,
                     now: float | None = None, checked: set[str] | None = None) -> list[int]:
    """Deliver ``body`` from ``sender`` to ``recipient`` in the open transaction ``db``.

    ``checked``: recipients already found registered in this same transaction (skipped).
    """
    validate_name(sender)
    validate_name(recipient)
    check_body(body)
    check_thread(thread)
    if recipient != OPERATOR and (checked is None or recipient not in checked):
        if await agent_row(db, recipient) is None:
            raise NotFound(f"no agent named {recipient!r} is registered")
        if checked is not None:
            checked.add(recipient)
    msg = await store.deliver_in(db, sender, recipient, body, thread=thread)
    return [msg.id]
