"""qms: the store crowdtui's processes share (agents, messages, documents, events).

Imports neither textual, docker nor crowdtui. Start with ``await Store.open(path)``.
The store owns all its SQL: dispatch's (the chat side's) and the hub's tables have typed modules of their
own taking a Store (``qms.routes``, ``qms.scheduled_tasks``, ``qms.inbound``,
``qms.outbound``, ``qms.channels``, ``qms.tokens``, ``qms.secrets``).
"""

from qms import errors
from qms.errors import (
    Busy, Conflict, IllegalTransition, InvalidInput, NotFound, PermissionDenied, QmsError, StoreUnavailable,
    TooLarge,
)
from qms.messages import MAX_MESSAGE_BYTES
from qms.documents import MAX_DOCUMENT_BYTES
from qms.models import Agent, Document, Event, Message, Task, Version
from qms.names import OPERATOR, validate_name
from qms.store import Store

__all__ = [
    "Store", "errors", "QmsError", "Busy", "NotFound", "InvalidInput", "TooLarge", "Conflict",
    "IllegalTransition", "PermissionDenied", "StoreUnavailable", "Agent", "Document", "Event", "Message", "Task",
    "Version", "MAX_MESSAGE_BYTES", "MAX_DOCUMENT_BYTES", "OPERATOR", "validate_name",
]
