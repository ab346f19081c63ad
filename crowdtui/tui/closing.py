"""Console handlers that may run while the app tears its screens down."""

from __future__ import annotations

import functools
import inspect

from textual.app import ScreenStackError
from textual.css.query import NoMatches


def quiet_when_closing(handler):
    """Messages that arrive while the app tears its screens down are dropped, not fatal."""
    if inspect.iscoroutinefunction(handler):
        @functools.wraps(handler)
        async def async_wrapper(self, *args, **kwargs):
            try:
                return await handler(self, *args, **kwargs)
            except (NoMatches, ScreenStackError):
                if self.is_running and self.screen_stack:
                    raise
        return async_wrapper

    @functools.wraps(handler)
    def wrapper(self, *args, **kwargs):
        try:
            return handler(self, *args, **kwargs)
        except (NoMatches, ScreenStackError):
            if self.is_running and self.screen_stack:
                raise
    return wrapper
