"""What every channel adapter shares: the engine's ports, and the adapter protocol."""

from __future__ import annotations

from typing import Protocol

from bot.engine.ports import Choice, Inbound, Outbound
from prompts import Markup

__all__ = ["Channel", "Choice", "Inbound", "Markup", "Outbound"]


class Channel(Protocol):
    """A way to reach people. Adapters translate; the engine decides."""

    name: str
    markup: Markup
