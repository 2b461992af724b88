"""The contract between the dispatcher and the handlers it calls (``bot.delivery``, digests,
login links, extensions): what a handler is, and what it may raise besides the delivery errors of
:mod:`memory.errors` (``RetryLater``, ``PermanentFailure``, ``Unreachable``, ``DeliveryUnknown``).

:mod:`scheduler.dispatch` turns each of them into the row's outcome; its names stay importable
from there too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from memory.errors import RapportError
from memory.models import OutboxMessage

#: Sends one outbox row; returns the channel's message id. Raises DeliveryError subclasses.
Handler = Callable[[OutboxMessage], Awaitable[str | None]]


class SkipMessage(RapportError):
    """Raised by a handler when the row no longer makes sense (the check-in closed meanwhile)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class NotNow(RapportError):
    """Raised by a handler when the row cannot go out from this process yet (its channel is off
    here): it waits ``retry_after`` seconds and the wait does not count as an attempt."""

    def __init__(self, reason: str, retry_after: float) -> None:
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(reason)
