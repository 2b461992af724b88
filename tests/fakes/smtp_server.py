"""A real SMTP server (aiosmtpd) on 127.0.0.1, port 0, collecting what it receives. Usage::

    async def test_x(smtp_server):
        host, port = smtp_server.host, smtp_server.port
        ...  # send with aiosmtplib
        (message,) = smtp_server.messages   # email.message.EmailMessage

``smtp_server.refuse = "550"`` makes it refuse every recipient with that code.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP


@dataclass
class SmtpServer:
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse: str | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.refuse:
            return f"{self.refuse} 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted"


@pytest.fixture
async def smtp_server() -> AsyncIterator[SmtpServer]:
    state = SmtpServer()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(state, hostname="rapport.test"), "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()
