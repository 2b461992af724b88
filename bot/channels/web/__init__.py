"""The web-link check-in channel (docs/web.md): an e-mailed link to a small conversation page.

- :mod:`.translate` (pure): the page's form -> :class:`Inbound`.
- :mod:`.receiver`: the aiohttp routes ``GET/POST /c/{token}`` on Rapport's web server.
- :mod:`.transport`: the invitation by e-mail (SMTP, or ``.eml`` files on the defaults).
- :mod:`.links`: signed, expiring links and the page's few database reads.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence

from aiohttp import web

from bot.app import App
from bot.channels.base import Address, Outbound, Sent
from bot.channels.web import links, transport
from bot.channels.web.receiver import Receiver
from bot.channels.web.translate import NAME
from memory.db import transaction
from memory.errors import Unreachable
from prompts import Markup

__all__ = ["NAME", "WebChannel"]


class WebChannel:
    name = NAME
    markup: Markup = "plain"

    def __init__(self, *, app: App, key: bytes, clock: Callable[[], dt.datetime], base: str | None = None) -> None:
        self.app, self.key, self.clock = app, key, clock
        self.base = base or links.base_url(app.config)
        self.receiver = Receiver(
            service=app.service, sessions=app.sessions, key=key, clock=clock,
            secure=self.base.lower().startswith("https://"),
        )  # fmt: skip

    @classmethod
    def from_app(cls, app: App, *, clock: Callable[[], dt.datetime] | None = None) -> WebChannel:
        key = links.link_key(app.config, ephemeral_ok=True)
        assert key is not None
        return cls(app=app, key=key, clock=clock or app.service.clock)

    def routes(self) -> list[web.RouteDef]:
        return self.receiver.routes()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def link_for(self, person_id: int, closes_at: dt.datetime | None = None) -> str:
        return links.make_link(self.app.config, self.key, person_id=person_id, now=self.clock(),
                               closes_at=closes_at, base=self.base)  # fmt: skip

    async def send(self, address: Address, messages: Sequence[Outbound]) -> Sent:
        """E-mail the invitation (or reminder) with the person's check-in link."""
        checkin_id = next((m.checkin_id for m in messages if m.checkin_id is not None), None)

        def read() -> links.Recipient | None:
            with transaction(self.app.sessions) as s:
                return links.recipient(s, address.external_id, checkin_id)

        found = await asyncio.to_thread(read)
        if found is None or found.email is None:
            raise Unreachable("no e-mail address")
        config = self.app.config
        program = config.programs.get(found.program or "")
        message = transport.compose(
            config=config, to=found.email, name=found.name,
            program_title=(program.title if program and program.title else found.program or "Rapport"),
            body="\n\n".join(m.text for m in messages), link=self.link_for(found.person_id, found.closes_at),
        )  # fmt: skip
        if transport.delivery_mode(config) == "smtp":
            return Sent(external_ref=await transport.send_smtp(message, config.email))
        path = await transport.write_file(message, config.channels.web.directory, address.external_id, self.clock())
        return Sent(external_ref=path)
