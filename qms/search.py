"""Search across messages and documents (titles and the latest version's text).

A plain case-insensitive substring match (SQLite ``LIKE`` with its wildcards escaped),
newest first, bounded: the console's search (and any script) reads it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from qms.errors import InvalidInput

if TYPE_CHECKING:
    from qms.store import Store

MAX_QUERY_CHARS = 200
SNIPPET_CHARS = 100


@dataclass(frozen=True)
class Hit:
    kind: str  # message | document
    ref: str  # the message id, or the document id
    title: str  # "lead -> qa", or the document's title
    snippet: str  # the text around the first match, on one line
    at: float


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def snippet(text: str, query: str, width: int = SNIPPET_CHARS) -> str:
    """One line of ``text`` around the first match of ``query`` (case-insensitive)."""
    flat = " ".join(str(text).split())
    at = flat.lower().find(query.lower())
    start = max(0, at - width // 3) if at >= 0 else 0
    out = flat[start:start + width]
    return ("…" if start else "") + out + ("…" if start + width < len(flat) else "")


async def search(store: "Store", query: str, *, limit: int = 100) -> list[Hit]:
    """Messages and documents containing ``query``, newest first, at most ``limit``."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("say what to search for")
    query = query.strip()
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"a search is at most {MAX_QUERY_CHARS} characters")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise InvalidInput("limit must be an integer from 1 to 1000")
    pattern = _like(query)
    docs = await store.query(
        "SELECT d.id, d.title, d.updated_at, v.content FROM documents d"
        " JOIN doc_versions v ON v.doc_id = d.id AND v.number = d.version"
        " WHERE d.id LIKE ?1 ESCAPE '\\' OR d.title LIKE ?1 ESCAPE '\\' OR v.content LIKE ?1 ESCAPE '\\'"
        " ORDER BY d.updated_at DESC LIMIT ?2",
        (pattern, limit))
    msgs = await store.query(
        "SELECT id, sender, recipient, body, created_at FROM messages WHERE body LIKE ?1 ESCAPE '\\'"
        " ORDER BY id DESC LIMIT ?2", (pattern, limit))
    hits = [Hit("document", r["id"], r["title"],
                snippet(r["content"] if query.lower() in r["content"].lower() else r["title"], query),
                r["updated_at"]) for r in docs]
    hits += [Hit("message", str(r["id"]), f"{r['sender']} -> {r['recipient']}", snippet(r["body"], query),
                 r["created_at"]) for r in msgs]
    hits.sort(key=lambda h: h.at, reverse=True)
    return hits[:limit]
