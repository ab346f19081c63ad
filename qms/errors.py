"""Errors the store raises. ``str(e)`` is one line: what was wrong and what to do."""

from __future__ import annotations


class QmsError(Exception):
    """Base class for every error the store raises on purpose."""


class NotFound(QmsError):
    """An agent, message, document, version or task that does not exist."""


class InvalidInput(QmsError):
    """A name, title, body or argument the store refuses."""


class TooLarge(InvalidInput):
    """A message body or document content over the size limit."""


class Conflict(QmsError):
    """Someone else holds what was asked for (e.g. a document checkout)."""


class IllegalTransition(QmsError):
    """The document's state does not allow this action."""


class PermissionDenied(QmsError):
    """This actor may not do this (not the holder, not an assignee, not the operator)."""


class Busy(QmsError):
    """The database stayed locked by another writer for longer than the busy timeout."""


class StoreUnavailable(QmsError):
    """The database cannot take writes now (its disk is full, it is read-only, or the disk
    fails). Nothing of the refused change was written; it works again once that is fixed."""
