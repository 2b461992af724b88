"""The web-link check-in channel (docs/web.md): an e-mailed link to a small conversation page.

- :mod:`.translate` (pure): the page's form -> :class:`Inbound`.
- :mod:`.receiver`: the aiohttp routes ``GET/POST /c/{token}`` on Rapport's web server.
- :mod:`.transport`: the invitation by e-mail (SMTP, or ``.eml`` files on the defaults).
- :mod:`.links`: signed, expiring links. The database work is the engine's
  (:mod:`bot.engine.web_visits`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence

from aiohttp import web

from bot.channels.base import Address, Outbound, Sent
from bot.channels.web import links, transport
from bot.channels.web.receiver import Receiver
from bot.channels.web.translate import NAME
from bot.config import Config
from bot.engine.service import CheckinService
from bot.engine.web_visits import WebVisits
from memory.errors import Unreachable
from prompts import Markup

__all__ = ["NAME", "WebChannel"]


class WebChannel:
    name = NAME
    markup: Markup = "plain"

    def __init__(
        self, *, service: CheckinService, config: Config, key: bytes, clock: Callable[[], dt.datetime],
        base: str | None = None,
    ) -> None:  # fmt: skip
        self.config, self.key, self.clock = config, key, clock
        self.visits = WebVisits(service=service)
        self.base = base or links.base_url(config)
        self.receiver = Receiver(
            service=service, visits=self.visits, key=key, clock=clock, secure=self.base.lower().startswith("https://")
        )

    @classmethod
    def build(cls, *, service: CheckinService, config: Config) -> WebChannel:
        """From the config: the link key (or one for this process only, with a warning)."""
        key = links.link_key(config, ephemeral_ok=True)
        assert key is not None
        return cls(service=service, config=config, key=key, clock=service.clock)

    def describe(self) -> str:
        """The start-up line: where invitations go (so nobody waits for e-mail that is a file)."""
        if transport.delivery_mode(self.config) == "smtp":
            return f"web: on (invitations by e-mail through {self.config.email.host or 'SMTP (email.host unset)'})"
        return f"web: on (invitations are written as .eml files to {self.config.channels.web.directory}/, not sent)"

    def routes(self) -> list[web.RouteDef]:
        return self.receiver.routes()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def link_for(self, person_id: int, closes_at: dt.datetime | None = None) -> str:
        return links.make_link(self.config, self.key, person_id=person_id, now=self.clock(),
                               closes_at=closes_at, base=self.base)  # fmt: skip

    async def send(self, address: Address, messages: Sequence[Outbound]) -> Sent:
        """E-mail the invitation (or reminder) with the person's check-in link."""
        checkin_id = next((m.checkin_id for m in messages if m.checkin_id is not None), None)

        found = await asyncio.to_thread(self.visits.recipient, address.external_id, checkin_id)
        if found is None or found.email is None:
            raise Unreachable("no e-mail address")
        config = self.config
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
