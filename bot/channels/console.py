"""The console channel: ``rapport run`` prints invitations and reminders for the terminal channel.

For local use without any chat token. A program with ``channels: [terminal]`` reaches everyone
(the terminal needs no identity); people answer with ``rapport chat PERSON``, which shares the
check-in. Messages go to a stream (stdout by default), one line per message, prefixed with the
person's key.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from aiohttp import web

from bot.channels.base import Address, Outbound, Sent
from bot.channels.terminal import NAME, format_outbound
from prompts import Markup


class ConsoleChannel:
    name = NAME
    markup: Markup = "plain"

    def __init__(self, *, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.count = 0

    def routes(self) -> list[web.RouteDef]:
        return []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, address: Address, messages: Sequence[Outbound]) -> Sent:
        out = self.stream or sys.stdout
        for message in messages:
            self.count += 1
            for line in format_outbound(message).splitlines() or [""]:
                out.write(f"[to {address.external_id}] {line}\n")
        out.flush()
        return Sent(external_ref=f"console-{self.count}")
