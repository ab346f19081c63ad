"""Document rows and input checks shared by the document store and its workflow."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timezone

from qms.errors import Conflict, InvalidInput, NotFound, TooLarge
from qms.messages import MAX_MESSAGE_BYTES
from qms.models import Document
from qms.names import shown, validate_text
from qms.writer import Transaction

MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_ASSIGNEES = 50
#: a checkout lease is chosen per checkout within these bounds (seconds); the holder renews it
MIN_LEASE_SECONDS = 60
MAX_LEASE_SECONDS = 24 * 3600
DEFAULT_LEASE_SECONDS = 3600
DOC_ID_RE = re.compile(r"([A-Za-z][A-Za-z0-9]{0,15})-(\d{3,9})")
TYPE_RE = re.compile(r"[A-Z][A-Z0-9]{0,15}")
OUTCOMES = ("recommend", "request-updates")
ROUTE_KINDS = ("review", "approval")


def check_doc_id(doc_id: object) -> str:
    """Normalise ``sop-001`` to ``SOP-001``; anything not shaped like an id is InvalidInput."""
    if not isinstance(doc_id, str) or not DOC_ID_RE.fullmatch(doc_id):
        raise InvalidInput(f"invalid document id '{shown(doc_id)}': ids look like SOP-001")
    return doc_id.upper()


def check_content(content: object) -> str:
    if not isinstance(content, str):
        raise InvalidInput(f"document content must be text, not {type(content).__name__}")
    try:
        size = len(content.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"document content is not valid Unicode text ({exc.reason})") from exc
    if size > MAX_DOCUMENT_BYTES:
        raise TooLarge(
            f"document content is {size} bytes; the limit is {MAX_DOCUMENT_BYTES} bytes: split it "
            "into several documents"
        )
    return content


def check_comment(comment: object, *, required: bool) -> str:
    if comment is None and not required:
        return ""
    if not isinstance(comment, str):
        raise InvalidInput(f"comment must be text, not {type(comment).__name__}")
    if required and not comment.strip():
        raise InvalidInput("a comment is required here; say what should change")
    if len(comment.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES:
        raise TooLarge(f"comment is over {MAX_MESSAGE_BYTES} bytes; shorten it")
    return validate_text(comment, "comment", max_chars=MAX_MESSAGE_BYTES, allow_empty=True, multiline=True)


def check_lease_seconds(lease_seconds: object) -> float:
    """A lease length within the bounds, else InvalidInput saying them."""
    if (
        isinstance(lease_seconds, bool) or not isinstance(lease_seconds, (int, float))
        or not MIN_LEASE_SECONDS <= lease_seconds <= MAX_LEASE_SECONDS
    ):
        raise InvalidInput(
            f"lease_seconds must be from {MIN_LEASE_SECONDS} to {MAX_LEASE_SECONDS} "
            f"(default {DEFAULT_LEASE_SECONDS}); renew a lease before it runs out to keep it longer"
        )
    return float(lease_seconds)


def utc_clock(ts: float) -> str:
    """``12:00:00 UTC`` (with the date when it is not today)."""
    dt = datetime.fromtimestamp(ts, timezone.utc)
    if dt.date() == datetime.now(timezone.utc).date():
        return dt.strftime("%H:%M:%S UTC")
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC")


def held_conflict(doc_id: str, holder: str, expires: float) -> Conflict:
    return Conflict(
        f"{doc_id} is held by {holder} until {utc_clock(expires)}; ask them to check in, "
        "or the operator can break the lock"
    )


def doc_from_row(row: sqlite3.Row, *, content: str = "", version: int | None = None) -> Document:
    return Document(
        id=row["id"], doc_type=row["doc_type"], title=row["title"], state=row["state"],
        version=version if version is not None else row["version"], author=row["author"],
        created_at=row["created_at"], updated_at=row["updated_at"], holder=row["holder"],
        lease_expires_at=row["lease_expires_at"], content=content, taken_at=row["taken_at"],
        executable=bool(row["executable"]), latest_version=row["version"],
    )


DOC_SELECT = (
    "SELECT d.*, t.executable FROM documents d JOIN doc_types t ON t.code = d.doc_type"
)


def no_such_doc(doc_id: str) -> NotFound:
    return NotFound(f"no document {doc_id}; check the id (`crowdtui doc ls` lists them)")


async def doc_row(db: Transaction, doc_id: str) -> sqlite3.Row:
    rows = await db.execute_fetchall(DOC_SELECT + " WHERE d.id = ?", (doc_id,))
    if not rows:
        raise no_such_doc(doc_id)
    return rows[0]


def lease_active(row: sqlite3.Row, now: float) -> bool:
    return row["holder"] is not None and row["lease_expires_at"] is not None and row["lease_expires_at"] > now


